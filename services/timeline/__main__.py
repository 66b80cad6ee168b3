from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.timeline.servicer import TimelineServicer
from services.timeline.settings import TimelineSettings


def main() -> None:
    settings = load(TimelineSettings)
    servicer = TimelineServicer(settings)
    service.run(
        service.Service(
            name="timeline",
            port=service_port("timeline"),
            servicers=[
                (
                    timeline_pb2_grpc.add_TimelineServiceServicer_to_server,
                    servicer,
                    timeline_pb2.DESCRIPTOR.services_by_name["TimelineService"].full_name,
                )
            ],
            on_start=[servicer.start],
            on_stop=[servicer.stop],
            # identity's account deletions -> the account's keys dropped
            background=[servicer.consume_account_events, servicer.watch_redis_epoch, servicer.move_legacy_keys],
        )
    )


if __name__ == "__main__":
    main()
