"""python -m services.notifications: the notifications API plus its Kafka consumer."""

from aviary.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.notifications.servicer import NotificationsServicer
from services.notifications.settings import NotificationsSettings


def main() -> None:
    settings = load(NotificationsSettings)
    servicer = NotificationsServicer(settings)
    service.run(
        service.Service(
            name="notifications",
            port=service_port("notifications"),
            servicers=[
                (
                    notifications_pb2_grpc.add_NotificationsServiceServicer_to_server,
                    servicer,
                    notifications_pb2.DESCRIPTOR.services_by_name["NotificationsService"].full_name,
                )
            ],
            on_start=[servicer.start],  # connect, create keyspace + tables, prepare statements
            on_stop=[servicer.stop],
            background=[
                servicer.consume,  # post, graph, engagement, order and moderation events -> notifications
                servicer.consume_messages,  # direct messages -> one notice per conversation
                servicer.consume_accounts,  # deleted accounts -> their notices withdrawn
            ],
        )
    )


if __name__ == "__main__":
    main()
