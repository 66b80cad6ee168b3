"""python -m services.cart: the cart API (public) plus its internal checkout methods."""

from aviary.cart.v1 import cart_pb2, cart_pb2_grpc
from services.cart.servicer import CartServicer
from services.cart.settings import CartSettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(CartSettings)
    servicer = CartServicer(settings)
    service.run(
        service.Service(
            name="cart",
            port=service_port("cart"),
            servicers=[
                (
                    cart_pb2_grpc.add_CartServiceServicer_to_server,
                    servicer,
                    cart_pb2.DESCRIPTOR.services_by_name["CartService"].full_name,
                )
            ],
            on_start=[servicer.start],  # connect to Redis (waits until it answers)
            on_stop=[servicer.stop],
            background=[servicer.consume_account_events],  # deleted accounts' carts removed
        )
    )


if __name__ == "__main__":
    main()
