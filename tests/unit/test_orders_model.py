"""Pure rules of the checkout saga and of delivery (no backends)."""

import grpc
import pytest

from aviary.orders.v1 import orders_pb2
from services.kit.server.errors import ApiError
from services.orders import model
from services.orders.model import Line

DS = orders_pb2.DeliveryStatus


def test_compensation_covers_the_step_that_was_under_way_newest_first():
    # Pricing touches nothing remote.
    assert model.compensations(model.PRICE) == ()
    # A reservation that timed out may still have happened: release it.
    assert model.compensations(model.RESERVE) == ("release",)
    # An authorization that failed may have gone through: undo it, then release.
    assert model.compensations(model.AUTHORIZE) == ("undo_payment", "release")
    # A failed capture undoes everything, the order first.
    assert model.compensations(model.CAPTURE) == ("cancel_order", "undo_payment", "release")


@pytest.mark.parametrize(
    "key, pm, field",
    [
        ("", "pm_card_visa", "idempotency_key"),
        ("short", "pm_card_visa", "idempotency_key"),
        ("x" * 129, "pm_card_visa", "idempotency_key"),
        ("with space!", "pm_card_visa", "idempotency_key"),
        ("k-0123456789", "", "payment_method"),
        ("k-0123456789", "   ", "payment_method"),
        ("k-0123456789", "p" * 256, "payment_method"),
        ("k-0123456789", "pm\n", "payment_method"),
    ],
)
def test_bad_checkout_requests_name_the_field(key, pm, field):
    with pytest.raises(ApiError) as err:
        model.validate_checkout(key, pm)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith(field)


def test_good_checkout_requests_pass():
    model.validate_checkout("0b1f5a0e-6c2d-4b77-9d9a-3f1c2e4d5a6b", "pm_card_visa")
    model.validate_checkout("k" * 128, "pm_1234")


def test_lines_round_trip_and_total():
    lines = [Line(1, 2, "mug", 3, 1250), Line(4, 2, "tea", 1, 99)]
    assert [Line.from_json(line.to_json()) for line in lines] == lines
    assert model.total(lines) == 3 * 1250 + 99


CONFIRMED = "ORDER_STATUS_CONFIRMED"


def test_delivery_moves_forward_only_and_may_skip_a_step():
    model.check_advance(CONFIRMED, DS.DELIVERY_STATUS_PENDING, DS.DELIVERY_STATUS_PACKED, "")
    model.check_advance(CONFIRMED, DS.DELIVERY_STATUS_PENDING, DS.DELIVERY_STATUS_SHIPPED, "no packing step")
    for current, wanted in [
        (DS.DELIVERY_STATUS_SHIPPED, DS.DELIVERY_STATUS_PACKED),
        (DS.DELIVERY_STATUS_SHIPPED, DS.DELIVERY_STATUS_SHIPPED),
        (DS.DELIVERY_STATUS_DELIVERED, DS.DELIVERY_STATUS_DELIVERED),
    ]:
        with pytest.raises(ApiError) as err:
            model.check_advance(CONFIRMED, current, wanted, "")
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("wanted", [DS.DELIVERY_STATUS_UNSPECIFIED, DS.DELIVERY_STATUS_PENDING, 99])
def test_delivery_targets_are_packed_shipped_or_delivered(wanted):
    with pytest.raises(ApiError) as err:
        model.check_advance(CONFIRMED, DS.DELIVERY_STATUS_PENDING, wanted, "")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.message.startswith("status")


def test_only_confirmed_orders_have_a_delivery():
    for status in ("ORDER_STATUS_PENDING", "ORDER_STATUS_CANCELLED"):
        with pytest.raises(ApiError) as err:
            model.check_advance(status, DS.DELIVERY_STATUS_PENDING, DS.DELIVERY_STATUS_PACKED, "")
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_a_long_note_is_refused():
    with pytest.raises(ApiError) as err:
        model.check_advance(CONFIRMED, DS.DELIVERY_STATUS_PENDING, DS.DELIVERY_STATUS_PACKED, "n" * 281)
    assert err.value.message.startswith("note")


@pytest.mark.parametrize(
    "current, wanted, allowed",
    [
        (DS.DELIVERY_STATUS_PENDING, DS.DELIVERY_STATUS_DELIVERED, "next is packed or shipped"),
        (DS.DELIVERY_STATUS_PACKED, DS.DELIVERY_STATUS_DELIVERED, "next is shipped"),
    ],
)
def test_a_jump_is_refused_naming_the_allowed_next_status(current, wanted, allowed):
    with pytest.raises(ApiError) as err:
        model.check_advance(CONFIRMED, current, wanted)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot jump" in err.value.message and allowed in err.value.message


def test_the_whole_path_one_step_at_a_time():
    path = [
        DS.DELIVERY_STATUS_PENDING,
        DS.DELIVERY_STATUS_PACKED,
        DS.DELIVERY_STATUS_SHIPPED,
        DS.DELIVERY_STATUS_DELIVERED,
    ]
    for current, wanted in zip(path, path[1:]):
        model.check_advance(CONFIRMED, current, wanted)
    assert model.allowed_next(DS.DELIVERY_STATUS_DELIVERED) == ()


def test_a_repeat_or_a_step_back_is_refused_and_says_what_comes_next():
    with pytest.raises(ApiError) as err:
        model.check_advance(CONFIRMED, DS.DELIVERY_STATUS_PACKED, DS.DELIVERY_STATUS_PACKED)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "already packed; next is shipped" in err.value.message


def test_a_cancelled_part_moves_no_further():
    with pytest.raises(ApiError) as err:
        model.check_advance(CONFIRMED, DS.DELIVERY_STATUS_CANCELLED, DS.DELIVERY_STATUS_PACKED)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("wanted", [DS.DELIVERY_STATUS_CANCELLED, -1, 5, 99])
def test_undefined_or_reserved_targets_are_invalid_arguments(wanted):
    with pytest.raises(ApiError) as err:
        model.check_delivery_request(wanted, "")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.message.startswith("status")


@pytest.mark.parametrize("note", ["tracking\x00", "bell\x07", "esc\x1b[31m"])
def test_control_characters_in_a_note_are_refused(note):
    with pytest.raises(ApiError) as err:
        model.check_delivery_request(DS.DELIVERY_STATUS_SHIPPED, note)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.message.startswith("note")


def test_a_note_is_trimmed_and_may_span_lines():
    assert model.check_delivery_request(DS.DELIVERY_STATUS_SHIPPED, "  box 1\n\tbox 2  ") == "box 1\n\tbox 2"


@pytest.mark.parametrize(
    "parts, derived",
    [
        ([DS.DELIVERY_STATUS_PENDING], DS.DELIVERY_STATUS_PENDING),
        ([DS.DELIVERY_STATUS_SHIPPED, DS.DELIVERY_STATUS_PACKED], DS.DELIVERY_STATUS_PACKED),
        ([DS.DELIVERY_STATUS_DELIVERED, DS.DELIVERY_STATUS_PENDING], DS.DELIVERY_STATUS_PENDING),
        ([DS.DELIVERY_STATUS_DELIVERED, DS.DELIVERY_STATUS_SHIPPED], DS.DELIVERY_STATUS_SHIPPED),
        ([DS.DELIVERY_STATUS_DELIVERED, DS.DELIVERY_STATUS_DELIVERED], DS.DELIVERY_STATUS_DELIVERED),
        ([DS.DELIVERY_STATUS_CANCELLED, DS.DELIVERY_STATUS_CANCELLED], DS.DELIVERY_STATUS_CANCELLED),
        ([DS.DELIVERY_STATUS_UNSPECIFIED], DS.DELIVERY_STATUS_UNSPECIFIED),
        ([], DS.DELIVERY_STATUS_UNSPECIFIED),
    ],
)
def test_the_order_is_where_its_least_advanced_part_is(parts, derived):
    assert model.order_delivery_status(parts) == derived


def test_a_buyer_may_cancel_until_a_part_ships():
    model.check_cancel(CONFIRMED, {1: DS.DELIVERY_STATUS_PENDING, 2: DS.DELIVERY_STATUS_PACKED})
    with pytest.raises(ApiError) as err:
        model.check_cancel(CONFIRMED, {1: DS.DELIVERY_STATUS_PENDING, 2: DS.DELIVERY_STATUS_SHIPPED})
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "seller 2" in err.value.message
    with pytest.raises(ApiError) as err:
        model.check_cancel(CONFIRMED, {1: DS.DELIVERY_STATUS_DELIVERED})
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_a_cancel_needs_a_confirmed_order_and_a_repeat_is_not_refused():
    model.check_cancel("ORDER_STATUS_CANCELLED", {1: DS.DELIVERY_STATUS_CANCELLED})
    with pytest.raises(ApiError) as err:
        model.check_cancel("ORDER_STATUS_PENDING", {1: DS.DELIVERY_STATUS_UNSPECIFIED})
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_a_cancel_reason_is_checked_like_a_note():
    assert model.check_text("reason", " changed my mind ", model.MAX_REASON) == "changed my mind"
    for bad in ("r" * 281, "nul\x00"):
        with pytest.raises(ApiError) as err:
            model.check_text("reason", bad, model.MAX_REASON)
        assert err.value.message.startswith("reason")
