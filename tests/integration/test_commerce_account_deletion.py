"""catalog, cart and recommendations apply identity's AccountDeleted, against
the running services: a deleted seller's products are deactivated through
the usual update (with their ProductUpserted events) and stay off sale; a
deleted user's cart is deleted and a gone account adds nothing to a cart;
recommendations forget what they kept of the user."""

from __future__ import annotations

import grpc
import pytest

from aviary.cart.v1 import cart_pb2, cart_pb2_grpc
from aviary.catalog.v1 import catalog_pb2
from aviary.events.v1 import events_pb2
from services.kit.events.kafka import CATALOG_TOPIC
from services.kit.settings import load_settings, service_addr
from tests import redis_clients
from tests.integration.account_events import account_deleted, mark_back, mark_gone, publish, wait_until
from tests.integration.commerce_calls import create_product, sign_up
from tests.integration.support import TopicReader, wait_serving


@pytest.fixture(scope="module")
def cart():
    channel = wait_serving(service_addr("cart"))
    yield cart_pb2_grpc.CartServiceStub(channel)
    channel.close()


@pytest.fixture
def product_events():
    reader = TopicReader(CATALOG_TOPIC, events_pb2.ProductEvent)
    yield reader
    reader.close()


def get_product(catalog, product_id: str) -> catalog_pb2.Product:
    return catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product_id), timeout=10)


def add(cart, user, product_id: str) -> cart_pb2.Cart:
    return cart.AddCartItem(
        cart_pb2.AddCartItemRequest(product_id=product_id, quantity=1), metadata=user.auth, timeout=10
    )


def test_a_deleted_sellers_products_go_off_sale_for_good(identity, catalog, cart, product_events):
    seller, bystander, shopper = sign_up(identity, "SELLER"), sign_up(identity, "SELLER"), sign_up(identity)
    products = [create_product(catalog, seller) for _ in range(3)]
    kept = create_product(catalog, bystander)
    publish(account_deleted(seller.id, role="SELLER"))

    wait_until(lambda: not any(get_product(catalog, p.id).active for p in products))
    assert get_product(catalog, kept.id).active
    listed = catalog.ListProducts(catalog_pb2.ListProductsRequest(seller_id=seller.id), timeout=10)
    assert list(listed.products) == []
    # Through the usual path: one ProductUpserted (inactive) per product, for search, feed and recommendations.
    wanted = {int(p.id) for p in products}
    events = product_events.wait_for(
        lambda e: e.WhichOneof("kind") == "upserted" and e.upserted.product_id in wanted and not e.upserted.active,
        count=3,
    )
    assert {product_events.event(r).upserted.product_id for r in events} == wanted
    # Not for sale: a cart refuses it.
    with pytest.raises(grpc.RpcError) as err:
        add(cart, shopper, products[0].id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The seller's token outlives the session for a while: nothing goes back on sale with it.
    with pytest.raises(grpc.RpcError) as err:
        create_product(catalog, seller)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        catalog.UpdateProduct(
            catalog_pb2.UpdateProductRequest(product_id=products[0].id, active=True), metadata=seller.auth, timeout=10
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not get_product(catalog, products[0].id).active
    # A redelivery finds nothing left to deactivate.
    publish(account_deleted(seller.id, role="SELLER"))
    assert not any(get_product(catalog, p.id).active for p in products)


def test_a_deleted_users_cart_is_deleted(identity, catalog, cart):
    seller, user, other = sign_up(identity, "SELLER"), sign_up(identity), sign_up(identity)
    product = create_product(catalog, seller)
    add(cart, user, product.id)
    add(cart, other, product.id)
    # As identity does: the account is gone at once, its AccountDeleted follows.
    mark_gone(user.id)
    try:
        # Gone accounts put nothing in a cart (their tokens may still verify);
        # each process sees the gone set within a couple of seconds.
        def refused():
            try:
                add(cart, user, product.id)
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.PERMISSION_DENIED
            return False

        wait_until(refused, timeout=10)
        publish(account_deleted(user.id))

        def cart_of(who):
            return cart.GetUserCart(cart_pb2.GetUserCartRequest(user_id=who.id), timeout=10)

        wait_until(lambda: not cart_of(user).items)
        assert [i.product_id for i in cart_of(other).items] == [product.id]
        assert refused()
        assert not cart_of(user).items
    finally:
        mark_back(user.id)


def test_recommendations_forget_a_deleted_user(identity):
    user = sign_up(identity)
    prefix = "rec"
    client = redis_clients.from_url(load_settings().redis_url)
    keys = [f"{prefix}:{{u:{user.id}}}:{name}" for name in ("bought", "sellers")]
    try:
        client.sadd(keys[0], "1", "2")
        client.sadd(keys[1], "3")
        publish(account_deleted(user.id))
        wait_until(lambda: client.exists(*keys) == 0)
    finally:
        client.delete(*keys)
        client.close()
