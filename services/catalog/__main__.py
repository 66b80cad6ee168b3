"""python -m services.catalog: the product catalog, plus its outbox relay to Kafka."""

from aviary.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.servicer import CatalogServicer
from services.catalog.settings import CatalogSettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(CatalogSettings)
    servicer = CatalogServicer(settings)
    service.run(
        service.Service(
            name="catalog",
            port=service_port("catalog"),
            servicers=[
                (
                    catalog_pb2_grpc.add_CatalogServiceServicer_to_server,
                    servicer,
                    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
                )
            ],
            on_start=[servicer.start],  # migrate the schema, connect
            on_stop=[servicer.stop],
            # outbox -> catalog.events.v1; deleted sellers' products deactivated
            background=[servicer.relay, servicer.consume_account_events],
        )
    )


if __name__ == "__main__":
    main()
