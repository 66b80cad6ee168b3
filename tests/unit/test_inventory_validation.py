"""Request rules of inventory: reservation lines, TTLs, caller-chosen keys, quantities."""

import grpc
import pytest

from aviary.inventory.v1 import inventory_pb2 as pb
from services.inventory import validation
from services.inventory.validation import Line
from services.kit.server.errors import ApiError


def _items(*pairs):
    return [pb.ReservationItem(product_id=p, quantity=q) for p, q in pairs]


def _message(call, *args) -> str:
    with pytest.raises(ApiError) as err:
        call(*args)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return err.value.message


def test_lines_keep_request_order_and_sort_by_product_for_locking():
    lines = validation.check_lines(_items(("30", 1), ("10", 2), ("20", 3)))
    assert lines == [Line(30, 1), Line(10, 2), Line(20, 3)]
    # The store applies lines in this order: one global lock order.
    assert sorted(lines) == [Line(10, 2), Line(20, 3), Line(30, 1)]


@pytest.mark.parametrize(
    "items, expected",
    [
        ([], "items: must hold at least one line"),
        ([(str(i), 1) for i in range(1, 52)], "items: at most 50 lines, got 51"),
        ([("1", 1), ("2", 0)], "items[1].quantity: must be 1..1000, got 0"),
        ([("1", 1001)], "items[0].quantity: must be 1..1000, got 1001"),
        ([("1", -3)], "items[0].quantity: must be 1..1000, got -3"),
        ([("", 1)], "items[0].product_id: is required"),
        ([("1", 1), ("0", 1)], "items[1].product_id: must be a decimal 64-bit id"),
        ([("5", 1), ("6", 1), ("5", 2)], "items[2].product_id: product 5 is already on line 0"),
    ],
)
def test_bad_lines_name_the_line_and_field(items, expected):
    assert _message(validation.check_lines, _items(*items)).startswith(expected)


def test_boundary_quantities_pass():
    assert validation.check_lines(_items(("1", 1), ("2", 1000))) == [Line(1, 1), Line(2, 1000)]


def test_ttl_zero_means_the_default_and_bounds_are_1_to_3600():
    assert validation.ttl_seconds(0, 600) == 600
    assert validation.ttl_seconds(1, 600) == 1
    assert validation.ttl_seconds(3600, 600) == 3600
    for bad in (-1, 3601):
        assert _message(validation.ttl_seconds, bad, 600).startswith("ttl_seconds: must be 1..3600")


@pytest.mark.parametrize("key", ["checkout-1", "x" * 128, "a:b/c_d.e~"])
def test_printable_keys_pass(key):
    assert validation.check_key(key, "reservation_id") == key


@pytest.mark.parametrize(
    "key, expected",
    [
        ("", "reservation_id: is required"),
        ("x" * 129, "reservation_id: must be at most 128 characters, got 129"),
        ("with space", "reservation_id: must be printable ASCII"),
        ("tab\there", "reservation_id: must be printable ASCII"),
        ("naïve", "reservation_id: must be printable ASCII"),
    ],
)
def test_bad_keys_name_the_field(key, expected):
    assert _message(validation.check_key, key, "reservation_id").startswith(expected)


def test_stock_quantities():
    assert validation.initial_quantity(0) == 0
    assert validation.initial_quantity(1_000_000) == 1_000_000
    assert _message(validation.initial_quantity, -1).startswith("quantity: must be 0..1000000")
    assert validation.added_quantity(1) == 1
    assert _message(validation.added_quantity, 0).startswith("quantity: must be 1..1000000")
    assert _message(validation.added_quantity, 1_000_001).startswith("quantity: must be 1..1000000")
