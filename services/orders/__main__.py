"""python -m services.orders: the orders API, the recovery sweeps of checkout
sagas and of buyer cancels, and the outbox relay of order events."""

from aviary.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.orders.servicer import OrdersServicer
from services.orders.settings import OrdersSettings


def main() -> None:
    settings = load(OrdersSettings)
    servicer = OrdersServicer(settings)
    service.run(
        service.Service(
            name="orders",
            port=service_port("orders"),
            servicers=[
                (
                    orders_pb2_grpc.add_OrdersServiceServicer_to_server,
                    servicer,
                    orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name,
                )
            ],
            on_start=[servicer.start],  # migrate the orders schema
            on_stop=[servicer.stop],
            # stale sagas; unfinished buyer cancels; order events -> Kafka; deleted buyers anonymised
            background=[servicer.recover, servicer.recover_cancels, servicer.relay, servicer.consume_account_events],
        )
    )


if __name__ == "__main__":
    main()
