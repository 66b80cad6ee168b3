"""python -m services.conversations: the conversations API, its outbox relay and its live pusher."""

from aviary.conversations.v1 import conversations_pb2, conversations_pb2_grpc
from services.conversations.servicer import ConversationsServicer
from services.conversations.settings import ConversationsSettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(ConversationsSettings)
    servicer = ConversationsServicer(settings)
    service.run(
        service.Service(
            name="conversations",
            port=service_port("conversations"),
            servicers=[
                (
                    conversations_pb2_grpc.add_ConversationsServiceServicer_to_server,
                    servicer,
                    conversations_pb2.DESCRIPTOR.services_by_name["ConversationsService"].full_name,
                )
            ],
            on_start=[servicer.start],  # connect, create keyspace + tables, prepare statements
            on_stop=[servicer.stop],
            # outbox -> Kafka; Kafka -> live pushes on Redis; account deletions -> leaves
            background=[servicer.relay, servicer.push_live, servicer.consume_account_events],
        )
    )


if __name__ == "__main__":
    main()
