"""Pure decisions of payments: the transition rules and request validation."""

import grpc
import pytest

from aviary.payments.v1 import payments_pb2
from services.kit.server.errors import ApiError
from services.payments import rules, validation
from services.payments.provider import provider_idempotency_key
from services.payments.rules import Action, TransitionRefused

ALL = rules.STATUSES


# -- transitions ----------------------------------------------------------------


def test_every_status_and_ledger_value_names_a_proto_enum_value():
    for status in rules.STATUSES:
        payments_pb2.PaymentStatus.Value(f"PAYMENT_STATUS_{status}")
    for operation in rules.OPERATIONS:
        payments_pb2.LedgerOperation.Value(f"LEDGER_OPERATION_{operation}")
    for outcome in rules.OUTCOMES:
        payments_pb2.LedgerOutcome.Value(f"LEDGER_OUTCOME_{outcome}")


def test_capture_calls_the_provider_only_from_authorized_and_is_idempotent():
    assert rules.capture_action(rules.AUTHORIZED, 1) is Action.CALL_PROVIDER
    assert rules.capture_action(rules.CAPTURED, 1) is Action.UNCHANGED


@pytest.mark.parametrize(
    "status,words",
    [
        (rules.PENDING, "pending"),
        (rules.DECLINED, "declined"),
        (rules.VOIDED, "voided"),
        (rules.REFUNDED, "refunded"),
    ],
)
def test_capture_is_refused_elsewhere_with_the_reason(status, words):
    with pytest.raises(TransitionRefused) as err:
        rules.capture_action(status, 42)
    assert "payment 42 cannot be captured" in err.value.message
    assert words in err.value.message


def test_void_from_authorized_calls_the_provider():
    assert rules.void_action(rules.AUTHORIZED, 1, authorization_sent=True) is Action.CALL_PROVIDER


@pytest.mark.parametrize("status", [rules.DECLINED, rules.VOIDED])
def test_void_of_a_payment_that_holds_nothing_returns_it_unchanged(status):
    assert rules.void_action(status, 1, authorization_sent=True) is Action.UNCHANGED


def test_void_of_a_pending_payment_settles_first_if_its_authorization_may_have_arrived():
    assert rules.void_action(rules.PENDING, 1, authorization_sent=True) is Action.SETTLE_FIRST


def test_void_of_a_pending_payment_whose_authorization_never_left_needs_no_provider():
    assert rules.void_action(rules.PENDING, 1, authorization_sent=False) is Action.VOID_UNSENT


@pytest.mark.parametrize("status,words", [(rules.CAPTURED, "refund it instead"), (rules.REFUNDED, "refunded")])
def test_void_after_capture_is_refused(status, words):
    with pytest.raises(TransitionRefused) as err:
        rules.void_action(status, 7, authorization_sent=True)
    assert "payment 7 cannot be voided" in err.value.message and words in err.value.message


def test_refund_only_from_captured_and_is_idempotent():
    assert rules.refund_action(rules.CAPTURED, 1) is Action.CALL_PROVIDER
    assert rules.refund_action(rules.REFUNDED, 1) is Action.UNCHANGED
    for status in (rules.PENDING, rules.AUTHORIZED, rules.DECLINED, rules.VOIDED):
        with pytest.raises(TransitionRefused) as err:
            rules.refund_action(status, 9)
        assert "payment 9 cannot be refunded" in err.value.message
    with pytest.raises(TransitionRefused, match="void it instead"):
        rules.refund_action(rules.AUTHORIZED, 9)


def test_authorize_with_a_known_key_settles_only_a_pending_payment():
    assert rules.authorize_action(rules.PENDING) is Action.SETTLE_FIRST
    for status in set(ALL) - {rules.PENDING}:
        assert rules.authorize_action(status) is Action.UNCHANGED


def test_an_unanswered_authorization_is_voided_only_when_it_certainly_never_arrived():
    after = rules.status_after_authorize_unavailable
    assert after(maybe_processed=False, sent_before=False) == rules.VOIDED
    # This attempt maybe arrived, or an earlier one may have: unknown, stays pending.
    assert after(maybe_processed=True, sent_before=False) == rules.PENDING
    assert after(maybe_processed=False, sent_before=True) == rules.PENDING
    assert after(maybe_processed=True, sent_before=True) == rules.PENDING


def test_status_after_a_provider_answer():
    assert rules.status_after(rules.AUTHORIZE, True) == rules.AUTHORIZED
    assert rules.status_after(rules.AUTHORIZE, False) == rules.DECLINED
    assert rules.status_after(rules.CAPTURE, True) == rules.CAPTURED
    assert rules.status_after(rules.VOID, True) == rules.VOIDED
    assert rules.status_after(rules.REFUND, True) == rules.REFUNDED
    with pytest.raises(ValueError):
        rules.status_after(rules.CAPTURE, False)


def test_provider_idempotency_keys_differ_per_payment_and_operation():
    keys = {provider_idempotency_key(p, op) for p in (1, 2) for op in ("authorize", "capture", "void", "refund")}
    assert len(keys) == 8
    assert provider_idempotency_key(5, "authorize") == "aviary-pay-5-authorize"


# -- validation -------------------------------------------------------------------

ANY_METHOD = validation.AcceptedMethods()


def _request(**overrides):
    fields = dict(
        idempotency_key="checkout-1-1",
        buyer_id="12345",
        amount_minor=1999,
        currency="usd",
        payment_method="pm_card_visa",
        reference="checkout 1",
    )
    fields.update(overrides)
    return payments_pb2.AuthorizePaymentRequest(**fields)


def _invalid(**overrides) -> str:
    with pytest.raises(ApiError) as err:
        validation.authorize_input(_request(**overrides), ANY_METHOD)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return err.value.message


def test_a_valid_request_is_normalized():
    parsed = validation.authorize_input(_request(), ANY_METHOD)
    assert parsed.currency == "USD"
    assert (parsed.buyer_id, parsed.amount_minor, parsed.payment_method) == (12345, 1999, "pm_card_visa")


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"idempotency_key": ""}, "idempotency_key: is required"),
        ({"idempotency_key": "k" * 256}, "idempotency_key: at most 255"),
        ({"idempotency_key": "a\nb"}, "idempotency_key: must not contain control"),
        ({"buyer_id": ""}, "buyer_id: is required"),
        ({"buyer_id": "bob"}, "buyer_id: must be a decimal"),
        ({"amount_minor": 0}, "amount_minor: must be 1..100,000,000,000"),
        ({"amount_minor": -5}, "amount_minor:"),
        ({"amount_minor": 100_000_000_001}, "amount_minor:"),
        ({"currency": ""}, "currency: is required"),
        ({"currency": "US"}, "currency: must be a 3-letter"),
        ({"currency": "US1"}, "currency: must be a 3-letter"),
        ({"payment_method": ""}, "payment_method: is required"),
        ({"payment_method": "pm card"}, "payment_method: must be"),
        ({"reference": "r" * 501}, "reference: at most 500"),
    ],
)
def test_bad_input_names_the_field(overrides, field):
    assert _invalid(**overrides).startswith(field)


@pytest.mark.parametrize("method", ["pm_bogus_xyz", "card_visa", "pm_", "pm-card-visa", "pm_card visa"])
def test_a_configured_set_refuses_every_other_method(method):
    accepted = validation.AcceptedMethods.parse("pm_card_visa, pm_card_amex,,")
    assert accepted.problem("pm_card_visa") is None and accepted.problem("pm_card_amex") is None
    assert accepted.problem(method) is not None
    with pytest.raises(ApiError) as err:
        validation.authorize_input(_request(payment_method=method), accepted)
    assert err.value.message.startswith("payment_method: ")


def test_an_empty_set_takes_any_well_formed_id_and_extras_never_narrow_it():
    production = validation.AcceptedMethods.parse(" ", extra=["pm_fault_slow"])
    assert production.only == frozenset()
    assert production.problem("pm_1PqRsTuVwXyZ") is None
    assert production.problem("pm_bogus_xyz") is None  # the provider decides
    assert production.problem("tok_visa") is not None
    devstack = validation.AcceptedMethods.parse(",".join(validation.STRIPE_TEST_METHODS), extra=["pm_fault_slow"])
    assert devstack.problem("pm_fault_slow") is None and devstack.problem("pm_card_chargeDeclined") is None
    assert devstack.problem("pm_fault_other") is not None


def test_amount_bounds_are_inclusive():
    assert validation.authorize_input(_request(amount_minor=1), ANY_METHOD).amount_minor == 1
    assert (
        validation.authorize_input(_request(amount_minor=100_000_000_000), ANY_METHOD).amount_minor == 100_000_000_000
    )
