"""The cart servicer's pure rules: what a buyable product is, how a checkout's
bought lines are checked, and how outcomes are counted."""

from __future__ import annotations

import grpc
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from aviary.cart.v1 import cart_pb2
from aviary.catalog.v1 import catalog_pb2
from services.cart.servicer import OPERATIONS, _checked_bought, _purchasable, counted
from services.kit.server.errors import ApiError, not_found


def test_purchasable_product_is_known_and_active():
    products = {1: catalog_pb2.Product(id="1", active=True), 2: catalog_pb2.Product(id="2", active=False)}
    assert _purchasable(products, 1).id == "1"
    with pytest.raises(ApiError) as err:
        _purchasable(products, 3)
    assert (err.value.code, err.value.message) == (grpc.StatusCode.NOT_FOUND, "product 3 not found")
    with pytest.raises(ApiError) as err:
        _purchasable(products, 2)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "2" in err.value.message


def test_checked_bought_lines():
    items = [cart_pb2.CartItem(product_id="10", quantity=2), cart_pb2.CartItem(product_id="11", quantity=100)]
    assert _checked_bought(items) == [(10, 2), (11, 100)]


@pytest.mark.parametrize(
    "items, field",
    [
        ([], "items"),
        ([cart_pb2.CartItem(product_id="", quantity=1)], "items[0].product_id"),
        (
            [cart_pb2.CartItem(product_id="1", quantity=1), cart_pb2.CartItem(product_id="2", quantity=101)],
            "items[1].quantity",
        ),
        ([cart_pb2.CartItem(product_id="1", quantity=1)] * 201, "items"),
    ],
)
def test_checked_bought_names_the_bad_field(items, field):
    with pytest.raises(ApiError) as err:
        _checked_bought(items)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith(f"{field}: ")


class _Servicer:
    @counted("unit_ok")
    async def ok(self, request, context):
        return "done"

    @counted("unit_missing")
    async def missing(self, request, context):
        raise not_found("nope")

    @counted("unit_redis")
    async def redis_down(self, request, context):
        raise RedisConnectionError("connection refused")


def _count(op: str, result: str) -> float:
    return OPERATIONS.labels(op, result)._value.get()


async def test_counted_records_each_outcome_and_maps_redis_outages():
    servicer = _Servicer()
    assert await servicer.ok(None, None) == "done"
    assert _count("unit_ok", "OK") == 1
    with pytest.raises(ApiError):
        await servicer.missing(None, None)
    assert _count("unit_missing", "NOT_FOUND") == 1
    with pytest.raises(ApiError) as err:
        await servicer.redis_down(None, None)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert _count("unit_redis", "UNAVAILABLE") == 1
