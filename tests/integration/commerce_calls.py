"""Commerce over gRPC for integration tests: accounts from identity, products,
carts, checkouts and delivery moves against the running services, each call
made as the account (its access token in the metadata)."""

from __future__ import annotations

import secrets
import uuid

import psycopg

from aviary.cart.v1 import cart_pb2
from aviary.catalog.v1 import catalog_pb2
from aviary.identity.v1 import identity_pb2
from aviary.orders.v1 import orders_pb2
from services.kit.settings import load
from services.orders.settings import OrdersSettings


class Account:
    def __init__(self, created) -> None:
        self.id = created.user.id
        self.auth = (("authorization", f"Bearer {created.access_token}"),)


def sign_up(identity, role: str = "USER") -> Account:
    request = identity_pb2.CreateAccountRequest(
        username=f"t_{secrets.token_hex(5)}", password="correct horse battery", role=role
    )
    return Account(identity.CreateAccount(request, timeout=15))


def create_product(catalog, seller: Account, *, stock: int = 10, price_minor: int = 1000) -> catalog_pb2.Product:
    request = catalog_pb2.CreateProductRequest(
        title=f"Thing {secrets.token_hex(3)}", price_minor=price_minor, currency="USD", stock=stock
    )
    return catalog.CreateProduct(request, metadata=seller.auth, timeout=15)


def buy(cart, orders, buyer: Account, *products: catalog_pb2.Product) -> orders_pb2.Order:
    """One checkout of one unit of each product."""
    for product in products:
        cart.AddCartItem(
            cart_pb2.AddCartItemRequest(product_id=product.id, quantity=1), metadata=buyer.auth, timeout=15
        )
    request = orders_pb2.CreateCheckoutRequest(idempotency_key=f"k-{uuid.uuid4().hex}", payment_method="pm_card_visa")
    return orders.CreateCheckout(request, metadata=buyer.auth, timeout=30)


def ship(orders, seller: Account, order_id: str) -> orders_pb2.Order:
    request = orders_pb2.AdvanceDeliveryRequest(order_id=order_id, status=orders_pb2.DELIVERY_STATUS_SHIPPED)
    return orders.AdvanceDelivery(request, metadata=seller.auth, timeout=15)


def open_sales(orders, seller_id: str | int) -> int:
    request = orders_pb2.CountOpenSalesRequest(seller_id=str(seller_id))
    return orders.CountOpenSales(request, timeout=15).open_order_count


def pg_connect() -> psycopg.Connection:
    """The orders service's own database (read-only here)."""
    return psycopg.connect(
        load(OrdersSettings).pg_dsn.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )
