from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from services.engagement.servicer import EngagementServicer
from services.engagement.settings import EngagementSettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(EngagementSettings)
    servicer = EngagementServicer(settings)
    service.run(
        service.Service(
            name="engagement",
            port=service_port("engagement"),
            servicers=[
                (
                    engagement_pb2_grpc.add_EngagementServiceServicer_to_server,
                    servicer,
                    engagement_pb2.DESCRIPTOR.services_by_name["EngagementService"].full_name,
                )
            ],
            on_start=[servicer.start],  # connect, create keyspace + tables, prepare statements
            on_stop=[servicer.stop],  # flushes the hot counters one last time
            background=[
                servicer.relay_outbox,
                servicer.flush_counters,
                servicer.consume_post_events,
                servicer.consume_account_events,
                servicer.watch_redis_epoch,
            ],
        )
    )


if __name__ == "__main__":
    main()
