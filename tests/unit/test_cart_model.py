"""The cart's pure logic: key layout, decoding stored lines, input checks, pricing."""

from __future__ import annotations

import grpc
import pytest

from aviary.catalog.v1 import catalog_pb2
from services.cart.model import (
    CartState,
    Line,
    cart_key,
    checked_checkout_id,
    checked_quantity,
    checkout_marker_key,
    decode_script_reply,
    decode_state,
    encode_line,
    line_full_problem,
    priced_cart,
    raw_cart,
)
from services.kit.server.errors import ApiError

NOW_MS = 1_800_000_000_000


def _slot_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes: the first {...} with content."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_cart_and_marker_keys_share_the_users_hash_tag():
    assert cart_key(42) == "cart:{42}"
    assert _slot_tag(checkout_marker_key(42, "co-1")) == "42"
    # A checkout id cannot move the marker to another slot: the first tag wins.
    assert _slot_tag(checkout_marker_key(42, "{7}")) == "42"
    assert _slot_tag(cart_key(42)) != _slot_tag(cart_key(43))


def test_lines_decode_oldest_first_whatever_the_hash_order():
    fields = {
        b"_currency": b"USD",
        b"_seq": b"3",
        b"300": encode_line(3, 1),
        b"100": encode_line(1, 5),
        b"200": encode_line(2, 100),
    }
    state = decode_state(fields, 60_000)
    assert state.currency == "USD"
    assert state.lines == [Line(100, 5, 1), Line(200, 100, 2), Line(300, 1, 3)]
    assert state.product_ids == [100, 200, 300]
    assert state.ttl_ms == 60_000
    assert state.quantity_of(200) == 100 and state.quantity_of(999) == 0


def test_missing_cart_decodes_as_empty_without_expiry():
    state = decode_state({}, -2)
    assert state.lines == [] and state.currency == "" and state.ttl_ms is None


def test_script_reply_decodes_flat_field_list():
    reply = [b"line_full", b"98", 5000, b"_currency", b"EUR", b"_seq", b"1", b"77", b"1:98"]
    decoded = decode_script_reply(reply)
    assert decoded.status == "line_full" and decoded.detail == "98"
    assert decoded.state.currency == "EUR"
    assert decoded.state.lines == [Line(77, 98, 1)]
    assert decoded.state.ttl_ms == 5000


@pytest.mark.parametrize("quantity", [1, 50, 100])
def test_quantity_in_range_is_accepted(quantity):
    assert checked_quantity(quantity) == quantity


@pytest.mark.parametrize("quantity", [0, -1, 101, 2**31 - 1, -(2**31)])
def test_quantity_out_of_range_names_the_field(quantity):
    with pytest.raises(ApiError) as err:
        checked_quantity(quantity)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message == "quantity: must be 1..100"


def test_quantity_check_can_name_a_nested_field():
    with pytest.raises(ApiError) as err:
        checked_quantity(0, "items[2].quantity")
    assert err.value.message.startswith("items[2].quantity: ")


def test_line_full_message_says_what_the_line_holds():
    assert line_full_problem(97) == "a line may hold at most 100 (it has 97)"


@pytest.mark.parametrize("checkout_id", ["1", "7317239000000001", "co_2024-01:a.b", "x" * 128])
def test_checkout_ids_accepted(checkout_id):
    assert checked_checkout_id(checkout_id) == checkout_id


@pytest.mark.parametrize("checkout_id", ["", "x" * 129, "has space", "brace{", "é"])
def test_bad_checkout_ids_rejected(checkout_id):
    with pytest.raises(ApiError) as err:
        checked_checkout_id(checkout_id)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("checkout_id: ")


def _product(pid: int, price: int, *, active: bool = True, title: str = "") -> catalog_pb2.Product:
    return catalog_pb2.Product(id=str(pid), title=title or f"p{pid}", price_minor=price, currency="USD", active=active)


def test_priced_cart_uses_catalog_prices_and_totals_only_available_lines():
    state = CartState("USD", [Line(1, 2, 1), Line(2, 3, 2), Line(3, 1, 3)], ttl_ms=10_000)
    products = {1: _product(1, 250, title="mug"), 2: _product(2, 1000, active=False)}  # 3 is gone
    cart = priced_cart(9, state, products, NOW_MS)
    assert cart.user_id == "9" and cart.currency == "USD"
    assert [(i.product_id, i.quantity) for i in cart.items] == [("1", 2), ("2", 3), ("3", 1)]
    mug, inactive, gone = cart.items
    assert (mug.title, mug.unit_price_minor, mug.available) == ("mug", 250, True)
    assert (inactive.unit_price_minor, inactive.available) == (1000, False)
    assert (gone.title, gone.unit_price_minor, gone.available) == ("", 0, False)
    assert cart.total_minor == 2 * 250
    assert cart.expires_at.ToMilliseconds() == NOW_MS + 10_000


def test_empty_cart_has_no_expiry_and_no_total():
    cart = priced_cart(9, CartState(), {}, NOW_MS)
    assert list(cart.items) == [] and cart.total_minor == 0 and cart.currency == ""
    assert not cart.HasField("expires_at")


def test_raw_cart_has_lines_but_no_prices():
    state = CartState("EUR", [Line(5, 4, 1)], ttl_ms=1_000)
    cart = raw_cart(3, state, NOW_MS)
    assert cart.user_id == "3" and cart.currency == "EUR"
    assert [(i.product_id, i.quantity, i.unit_price_minor) for i in cart.items] == [("5", 4, 0)]
    assert cart.total_minor == 0
    assert cart.expires_at.ToMilliseconds() == NOW_MS + 1_000


def test_lines_keep_the_price_they_were_added_at_and_older_lines_have_none():
    fields = {b"_currency": b"USD", b"_seq": b"2", b"1": encode_line(1, 2, 1250), b"2": b"2:1"}
    assert encode_line(1, 2, 1250) == b"1:2:1250" and encode_line(2, 1) == b"2:1"
    assert decode_state(fields, 1_000).lines == [Line(1, 2, 1, 1250), Line(2, 1, 2, None)]


def test_priced_cart_shows_price_changes_and_flags_only_a_rise_on_an_available_line():
    state = CartState("USD", [Line(1, 1, 1, 1000), Line(2, 1, 2, 1000), Line(3, 1, 3, None)], ttl_ms=10_000)
    fell = priced_cart(9, state, {1: _product(1, 800), 2: _product(2, 1000), 3: _product(3, 50)}, NOW_MS)
    assert [(i.unit_price_minor, i.added_unit_price_minor, i.price_changed) for i in fell.items] == [
        (800, 1000, True),
        (1000, 1000, False),
        (50, 0, False),
    ]
    assert not fell.items[2].HasField("added_unit_price_minor")
    assert fell.price_increased is False and fell.total_minor == 1850

    rose = priced_cart(9, state, {1: _product(1, 1200), 2: _product(2, 1000), 3: _product(3, 50)}, NOW_MS)
    assert rose.items[0].price_changed and rose.price_increased is True and rose.total_minor == 2250

    withdrawn = priced_cart(9, state, {1: _product(1, 1200, active=False), 2: _product(2, 1000)}, NOW_MS)
    assert withdrawn.items[0].price_changed and withdrawn.price_increased is False


def test_raw_cart_carries_the_added_prices_for_the_checkout():
    state = CartState("USD", [Line(5, 4, 1, 700), Line(6, 1, 2)], ttl_ms=1_000)
    cart = raw_cart(3, state, NOW_MS)
    assert [i.added_unit_price_minor for i in cart.items] == [700, 0]
    assert [i.HasField("added_unit_price_minor") for i in cart.items] == [True, False]
