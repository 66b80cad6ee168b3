"""Request checks: each failure is INVALID_ARGUMENT naming the field."""
from __future__ import annotations

import re
from dataclasses import dataclass

from services.kit.errors import invalid_argument
from services.kit.ids import parse_id

AMOUNT_MIN = 1
AMOUNT_MAX = 100_000_000_000
# Stripe accepts idempotency keys up to 255 characters.
KEY_MAX = 255
PAYMENT_METHOD_MAX = 255
REFERENCE_MAX = 500

_CURRENCY = re.compile(r"[A-Za-z]{3}")
_PAYMENT_METHOD = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class AuthorizeInput:
    idempotency_key: str
    buyer_id: int
    amount_minor: int
    currency: str  # upper-case ISO 4217
    payment_method: str
    reference: str


def authorize_input(request) -> AuthorizeInput:
    return AuthorizeInput(
        idempotency_key=idempotency_key(request.idempotency_key),
        buyer_id=parse_id(request.buyer_id, "buyer_id"),
        amount_minor=amount_minor(request.amount_minor),
        currency=currency(request.currency),
        payment_method=payment_method(request.payment_method),
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


def payment_method(value: str) -> str:
    if value == "":
        raise invalid_argument("payment_method", "is required")
    if len(value) > PAYMENT_METHOD_MAX or not _PAYMENT_METHOD.fullmatch(value):
        raise invalid_argument(
            "payment_method", f"must be a provider payment method id such as pm_card_visa, got {value[:40]!r}")
    return value


def reference(value: str) -> str:
    if len(value) > REFERENCE_MAX:
        raise invalid_argument("reference", f"at most {REFERENCE_MAX} characters, got {len(value)}")
    return value


def payment_id(value: str) -> int:
    return parse_id(value, "payment_id")
