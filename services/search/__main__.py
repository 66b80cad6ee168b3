"""python -m services.search: the search API plus its indexer (post and
product events from Kafka -> OpenSearch)."""

from aviary.search.v1 import search_pb2, search_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.search.servicer import SearchServicer
from services.search.settings import SearchSettings


def main() -> None:
    settings = load(SearchSettings)
    servicer = SearchServicer(settings)
    service.run(
        service.Service(
            name="search",
            port=service_port("search"),
            servicers=[
                (
                    search_pb2_grpc.add_SearchServiceServicer_to_server,
                    servicer,
                    search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name,
                )
            ],
            on_start=[servicer.start],  # create the indices
            on_stop=[servicer.stop],
            background=[servicer.consume],  # post and product events -> index
        )
    )


if __name__ == "__main__":
    main()
