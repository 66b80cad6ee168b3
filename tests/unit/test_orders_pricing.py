"""What a buyer agreed to pay, and the parameters a checkout key is bound to (pure rules)."""

import grpc
import pytest
from google.rpc import error_details_pb2

from services.kit.server.errors import ApiError
from services.orders import model, pricing
from services.orders.model import Line

MUG, TEA = Line(1, 9, "mug", 2, 1200), Line(2, 9, "tea", 1, 300)


def _details(failure) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.PreconditionFailure]:
    info, precondition = failure.details
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(precondition, error_details_pb2.PreconditionFailure)
    return info, precondition


def test_prices_at_or_below_what_was_added_need_no_consent():
    assert pricing.refusal([MUG, TEA], "USD", {1: 1200, 2: 350}, None) is None
    # Lines carted before prices were recorded have nothing to compare with.
    assert pricing.refusal([MUG, TEA], "USD", {1: None}, None) is None


def test_a_price_that_rose_is_refused_naming_the_line_and_the_new_total():
    failure = pricing.refusal([MUG, TEA], "USD", {1: 1000, 2: 300}, None)
    assert failure.code == grpc.StatusCode.FAILED_PRECONDITION and failure.retryable
    assert "'mug' (product 1) from 1000 to 1200" in failure.message
    assert "2700 USD" in failure.message and "expected_total_minor 2700" in failure.message
    info, precondition = _details(failure)
    assert (info.reason, dict(info.metadata)) == ("PRICE_CHANGED", {"totalMinor": "2700", "currency": "USD"})
    assert [(v.subject, v.description) for v in precondition.violations] == [
        ("products/1", "unit price rose from 1000 to 1200")
    ]


def test_an_expected_total_is_the_only_rule_when_sent():
    # Agreeing to the new total accepts the rise.
    assert pricing.refusal([MUG, TEA], "USD", {1: 1000}, 2700) is None
    # Any other total is refused, lower or higher, with the total to send.
    for expected in (2600, 2800, 0):
        failure = pricing.refusal([MUG, TEA], "USD", {1: 1200}, expected)
        assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
        assert f"not the {expected} you expected" in failure.message
        info, precondition = _details(failure)
        assert info.metadata["totalMinor"] == "2700"
        assert [v.subject for v in precondition.violations] == ["expected_total_minor"]


@pytest.mark.parametrize("value", [-1, model.MAX_TOTAL_MINOR + 1])
def test_an_expected_total_out_of_range_names_the_field(value):
    with pytest.raises(ApiError) as err:
        model.checked_expected_total(value)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("expected_total_minor: ")


def test_an_expected_total_in_range_or_unset_passes():
    assert [model.checked_expected_total(v) for v in (None, 0, 2700, model.MAX_TOTAL_MINOR)] == [
        None,
        0,
        2700,
        model.MAX_TOTAL_MINOR,
    ]


def test_a_key_is_bound_to_its_payment_method_and_expected_total():
    first = model.checkout_params("pm_card_visa", None)
    assert first == {"payment_method": "pm_card_visa"}
    assert model.differing_params(first, model.checkout_params("pm_card_visa", None)) == []
    assert model.differing_params(first, model.checkout_params("pm_card_amex", None)) == ["payment_method"]
    # Unset and 0 are different requests.
    assert model.differing_params(first, model.checkout_params("pm_card_visa", 0)) == ["expected_total_minor"]
    assert model.differing_params(
        model.checkout_params("pm_card_visa", 2700), model.checkout_params("pm_card_amex", 2600)
    ) == ["expected_total_minor", "payment_method"]
