"""Pure rules of checkout and delivery: saga states, validation, delivery
transitions. No backend here, so all of it is unit-tested on plain data."""
from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

from aviary.orders.v1 import orders_pb2
from services.kit.errors import invalid_argument

# Saga states, in the order the happy path visits them. Each is persisted
# together with the local effect of the step that reached it:
#   STARTED        the checkout exists;
#   RESERVED       lines priced from the catalog (never from the cart), stock held;
#   ORDER_CREATED  payment authorized, PENDING order written;
#   SUCCEEDED      stock committed, payment captured, order confirmed (terminal).
# A failed step records which step failed and moves the saga to COMPENSATING,
# then to FAILED once every compensation has run (terminal).
STARTED = "STARTED"
RESERVED = "RESERVED"
ORDER_CREATED = "ORDER_CREATED"
SUCCEEDED = "SUCCEEDED"
COMPENSATING = "COMPENSATING"
FAILED = "FAILED"
TERMINAL = frozenset({SUCCEEDED, FAILED})

# Remote steps, and what undoing a failure in each takes. A step may have
# taken effect even though its answer never arrived (a timeout, a crash), so
# the compensation of a failed step covers that step too.
PRICE, RESERVE, AUTHORIZE, CAPTURE = "price", "reserve", "authorize", "capture"
_UNDO = {
    PRICE: (),
    RESERVE: ("release",),
    AUTHORIZE: ("undo_payment", "release"),
    CAPTURE: ("cancel_order", "undo_payment", "release"),
}


def compensations(failed_step: str) -> tuple[str, ...]:
    """What to undo, newest first, after `failed_step` failed."""
    return _UNDO[failed_step]


# Idempotency keys: enough room for a UUID or a client's own scheme.
_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
MAX_PAYMENT_METHOD = 255


def validate_checkout(key: str, payment_method: str) -> None:
    if not key:
        raise invalid_argument("idempotency_key", "is required (8..128 characters of A-Z, a-z, 0-9, _ and -)")
    if not _KEY.match(key):
        raise invalid_argument("idempotency_key", "must be 8..128 characters of A-Z, a-z, 0-9, _ and -")
    if not payment_method.strip():
        raise invalid_argument("payment_method", "is required, e.g. \"pm_card_visa\"")
    if len(payment_method) > MAX_PAYMENT_METHOD or not payment_method.isprintable():
        raise invalid_argument("payment_method", f"must be at most {MAX_PAYMENT_METHOD} printable characters")


@dataclass(frozen=True)
class Line:
    """One priced line of a checkout (prices read from the catalog)."""

    product_id: int
    seller_id: int
    title: str
    quantity: int
    unit_price_minor: int

    def to_json(self) -> dict:
        return {"product_id": self.product_id, "seller_id": self.seller_id, "title": self.title,
                "quantity": self.quantity, "unit_price_minor": self.unit_price_minor}

    @classmethod
    def from_json(cls, d: dict) -> "Line":
        return cls(int(d["product_id"]), int(d["seller_id"]), d["title"], int(d["quantity"]),
                   int(d["unit_price_minor"]))


def total(lines: list[Line]) -> int:
    return sum(line.quantity * line.unit_price_minor for line in lines)


@dataclass(frozen=True)
class Failure:
    """Why a checkout failed, as the client will hear it. `retryable` means
    nothing was kept (no order, no charge, no stock), so the same key may run
    again later; otherwise the key's answer is this failure for good."""

    code: grpc.StatusCode
    message: str
    retryable: bool


# -- delivery --------------------------------------------------------------------

DS = orders_pb2.DeliveryStatus
_DELIVERY_ORDER = [DS.DELIVERY_STATUS_PENDING, DS.DELIVERY_STATUS_PACKED,
                   DS.DELIVERY_STATUS_SHIPPED, DS.DELIVERY_STATUS_DELIVERED]
MAX_NOTE = 280


def delivery_name(status: int) -> str:
    return DS.Name(status)


def short_delivery_name(status: int) -> str:
    return DS.Name(status).removeprefix("DELIVERY_STATUS_").lower()


def check_advance(order_status: str, current: int, wanted: int, note: str) -> None:
    """Raises when `wanted` is not a valid next delivery status of the order."""
    from services.kit.errors import failed_precondition

    if wanted not in _DELIVERY_ORDER[1:]:
        raise invalid_argument("status", "must be PACKED, SHIPPED or DELIVERED")
    if len(note) > MAX_NOTE:
        raise invalid_argument("note", f"must be at most {MAX_NOTE} characters")
    if order_status != orders_pb2.OrderStatus.Name(orders_pb2.ORDER_STATUS_CONFIRMED):
        raise failed_precondition(f"only confirmed orders move along their delivery; this one is {order_status}")
    if _DELIVERY_ORDER.index(wanted) <= _DELIVERY_ORDER.index(current):
        raise failed_precondition(
            f"delivery status only moves forward: the order is already {short_delivery_name(current)}")
