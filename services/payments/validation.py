"""Request checks: each failure is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from services.kit.server.errors import invalid_argument
from services.kit.server.ids import parse_id

AMOUNT_MIN = 1
AMOUNT_MAX = 100_000_000_000
# Stripe accepts idempotency keys up to 255 characters.
KEY_MAX = 255
PAYMENT_METHOD_MAX = 255
REFERENCE_MAX = 500

_CURRENCY = re.compile(r"[A-Za-z]{3}")
# A provider payment method id: Stripe's are "pm_" then letters, digits and underscores.
_PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]+")

# Stripe's documented test payment methods: the accepted set of the local
# stack (stripe-mock approves anything, so without a set any string would
# pay). The declines are simulated by the fault injector (faults.py).
STRIPE_TEST_METHODS = (
    "pm_card_visa",
    "pm_card_visa_debit",
    "pm_card_mastercard",
    "pm_card_mastercard_debit",
    "pm_card_mastercard_prepaid",
    "pm_card_amex",
    "pm_card_discover",
    "pm_card_diners",
    "pm_card_jcb",
    "pm_card_unionpay",
    "pm_card_chargeDeclined",
    "pm_card_visa_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
)


@dataclass(frozen=True)
class AcceptedMethods:
    """The payment methods this deployment takes: any well-formed id when
    `only` is empty (production: the provider decides whether it exists),
    otherwise exactly those in `only`."""

    only: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, configured: str, extra: Iterable[str] = ()) -> "AcceptedMethods":
        """From a comma list; `extra` (the fault injector's methods) joins a
        non-empty list only, so it can never narrow "any" to itself."""
        listed = {name.strip() for name in configured.split(",") if name.strip()}
        return cls(frozenset(listed | set(extra)) if listed else frozenset())

    def problem(self, value: str) -> str | None:
        """Why `value` is refused (without the field name), or None."""
        if value == "":
            return "is required"
        if len(value) > PAYMENT_METHOD_MAX or not _PAYMENT_METHOD.fullmatch(value):
            return f"must be a provider payment method id such as pm_card_visa, got {value[:40]!r}"
        if self.only and value not in self.only:
            return f"{value[:40]!r} is not a payment method this shop accepts; use one such as pm_card_visa"
        return None


@dataclass(frozen=True)
class AuthorizeInput:
    idempotency_key: str
    buyer_id: int
    amount_minor: int
    currency: str  # upper-case ISO 4217
    payment_method: str
    reference: str


def authorize_input(request, accepted: AcceptedMethods) -> AuthorizeInput:
    return AuthorizeInput(
        idempotency_key=idempotency_key(request.idempotency_key),
        buyer_id=parse_id(request.buyer_id, "buyer_id"),
        amount_minor=amount_minor(request.amount_minor),
        currency=currency(request.currency),
        payment_method=payment_method(request.payment_method, accepted),
        reference=reference(request.reference),
    )


def idempotency_key(value: str, field: str = "idempotency_key") -> str:
    if value == "":
        raise invalid_argument(field, "is required")
    if len(value) > KEY_MAX:
        raise invalid_argument(field, f"at most {KEY_MAX} characters, got {len(value)}")
    if not value.isprintable():
        raise invalid_argument(field, "must not contain control characters")
    return value


def amount_minor(value: int) -> int:
    if not AMOUNT_MIN <= value <= AMOUNT_MAX:
        raise invalid_argument("amount_minor", f"must be {AMOUNT_MIN:,}..{AMOUNT_MAX:,} minor units, got {value}")
    return value


def currency(value: str) -> str:
    if value == "":
        raise invalid_argument("currency", "is required")
    if not _CURRENCY.fullmatch(value):
        raise invalid_argument("currency", f"must be a 3-letter ISO 4217 code such as USD, got {value[:20]!r}")
    return value.upper()


def payment_method(value: str, accepted: AcceptedMethods) -> str:
    problem = accepted.problem(value)
    if problem is not None:
        raise invalid_argument("payment_method", problem)
    return value


def reference(value: str) -> str:
    if len(value) > REFERENCE_MAX:
        raise invalid_argument("reference", f"at most {REFERENCE_MAX} characters, got {len(value)}")
    return value


def payment_id(value: str) -> int:
    return parse_id(value, "payment_id")
