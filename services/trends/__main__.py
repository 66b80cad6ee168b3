"""python -m services.trends: the public top-hashtags list plus its counter
(post events from Kafka -> windowed counts in Redis)."""

from aviary.trends.v1 import trends_pb2, trends_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.trends.servicer import TrendsServicer
from services.trends.settings import TrendsSettings


def main() -> None:
    settings = load(TrendsSettings)
    servicer = TrendsServicer(settings)
    service.run(
        service.Service(
            name="trends",
            port=service_port("trends"),
            servicers=[
                (
                    trends_pb2_grpc.add_TrendsServiceServicer_to_server,
                    servicer,
                    trends_pb2.DESCRIPTOR.services_by_name["TrendsService"].full_name,
                )
            ],
            on_start=[servicer.start],  # wait for Redis
            on_stop=[servicer.stop],
            background=[servicer.consume],  # post events -> counts
        )
    )


if __name__ == "__main__":
    main()
