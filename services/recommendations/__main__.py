"""python -m services.recommendations: the recommendations API plus its
consumer (engagement, post, graph, catalog and order events -> Redis)."""

from aviary.recommendations.v1 import recommendations_pb2, recommendations_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.recommendations.servicer import RecommendationsServicer
from services.recommendations.settings import RecommendationsSettings


def main() -> None:
    settings = load(RecommendationsSettings)
    servicer = RecommendationsServicer(settings)
    service.run(
        service.Service(
            name="recommendations",
            port=service_port("recommendations"),
            servicers=[
                (
                    recommendations_pb2_grpc.add_RecommendationsServiceServicer_to_server,
                    servicer,
                    recommendations_pb2.DESCRIPTOR.services_by_name["RecommendationsService"].full_name,
                )
            ],
            on_start=[servicer.start],  # wait for Redis
            on_stop=[servicer.stop],
            background=[servicer.consume],  # engagement, post, graph, catalog and order events -> Redis
        )
    )


if __name__ == "__main__":
    main()
