"""python -m services.moderation: reports, and the operators' queue."""

from aviary.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.moderation.servicer import ModerationServicer
from services.moderation.settings import ModerationSettings


def main() -> None:
    settings = load(ModerationSettings)
    servicer = ModerationServicer(settings)
    service.run(
        service.Service(
            name="moderation",
            port=service_port("moderation"),
            servicers=[
                (
                    moderation_pb2_grpc.add_ModerationServiceServicer_to_server,
                    servicer,
                    moderation_pb2.DESCRIPTOR.services_by_name["ModerationService"].full_name,
                )
            ],
            on_start=[servicer.start],  # migrate the schema, connect
            on_stop=[servicer.stop],
            background=[servicer.relay],  # outbox -> moderation.events.v1
        )
    )


if __name__ == "__main__":
    main()
