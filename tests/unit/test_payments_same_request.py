"""A key reused for another payment is refused; an anonymised payment (its
buyer's account deleted) still matches the checkout that made it."""

import datetime

import pytest

from services.kit.server.errors import ApiError
from services.payments.flows import ANONYMISED_BUYER, _check_same_request
from services.payments.store import PaymentRecord
from services.payments.validation import AuthorizeInput

NOW = datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc)


def payment(buyer_id: int) -> PaymentRecord:
    return PaymentRecord(
        id=1,
        idempotency_key="checkout-7-1",
        buyer_id=buyer_id,
        amount_minor=1500,
        currency="USD",
        payment_method="pm_card_visa",
        reference="",
        status="AUTHORIZED",
        provider_ref="pi_1",
        decline_reason="",
        authorization_sent=True,
        created_at=NOW,
        updated_at=NOW,
    )


def request(buyer_id: int = 42, amount_minor: int = 1500) -> AuthorizeInput:
    return AuthorizeInput("checkout-7-1", buyer_id, amount_minor, "USD", "pm_card_visa", "")


def test_the_same_request_passes():
    _check_same_request(payment(42), request())


def test_another_buyer_is_refused_naming_it():
    with pytest.raises(ApiError, match="buyer_id"):
        _check_same_request(payment(42), request(buyer_id=43))


def test_an_anonymised_payment_matches_the_buyer_it_had():
    _check_same_request(payment(ANONYMISED_BUYER), request())


def test_an_anonymised_payment_still_refuses_another_amount():
    with pytest.raises(ApiError, match="amount_minor"):
        _check_same_request(payment(ANONYMISED_BUYER), request(amount_minor=1501))
