"""Pure rules of checkout and delivery: saga states, validation, delivery
transitions. No backend here, so all of it is unit-tested on plain data."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TypeAlias

import grpc
from google.protobuf.message import Message

from aviary.events.v1 import events_pb2
from aviary.orders.v1 import orders_pb2
from services.kit.server.errors import failed_precondition, invalid_argument

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
# The most payments will authorize, so the most a checkout can total.
MAX_TOTAL_MINOR = 100_000_000_000


def validate_checkout(key: str, payment_method: str) -> None:
    if not key:
        raise invalid_argument("idempotency_key", "is required (8..128 characters of A-Z, a-z, 0-9, _ and -)")
    if not _KEY.match(key):
        raise invalid_argument("idempotency_key", "must be 8..128 characters of A-Z, a-z, 0-9, _ and -")
    if not payment_method.strip():
        raise invalid_argument("payment_method", 'is required, e.g. "pm_card_visa"')
    if len(payment_method) > MAX_PAYMENT_METHOD or not payment_method.isprintable():
        raise invalid_argument("payment_method", f"must be at most {MAX_PAYMENT_METHOD} printable characters")


def checked_expected_total(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_TOTAL_MINOR:
        raise invalid_argument("expected_total_minor", f"must be 0..{MAX_TOTAL_MINOR:,} minor units, got {value}")
    return value


def checkout_params(payment_method: str, expected_total_minor: int | None) -> dict:
    """The request parameters a checkout's key is bound to (as stored with
    it): a retry of the key must send the same ones."""
    params: dict = {"payment_method": payment_method}
    if expected_total_minor is not None:
        params["expected_total_minor"] = expected_total_minor
    return params


def differing_params(stored: dict, sent: dict) -> list[str]:
    """The parameters a request sends differently from the key's first request."""
    return sorted(name for name in stored.keys() | sent.keys() if stored.get(name) != sent.get(name))


@dataclass(frozen=True)
class Line:
    """One priced line of a checkout (prices read from the catalog)."""

    product_id: int
    seller_id: int
    title: str
    quantity: int
    unit_price_minor: int

    def to_json(self) -> dict:
        return {
            "product_id": self.product_id,
            "seller_id": self.seller_id,
            "title": self.title,
            "quantity": self.quantity,
            "unit_price_minor": self.unit_price_minor,
        }

    @classmethod
    def from_json(cls, d: dict) -> "Line":
        return cls(
            int(d["product_id"]), int(d["seller_id"]), d["title"], int(d["quantity"]), int(d["unit_price_minor"])
        )


def total(lines: list[Line]) -> int:
    return sum(line.quantity * line.unit_price_minor for line in lines)


def event_lines(lines: list[Line]) -> list[events_pb2.OrderLine]:
    """An order's lines as its events carry them."""
    return [
        events_pb2.OrderLine(
            product_id=line.product_id,
            seller_id=line.seller_id,
            quantity=line.quantity,
            unit_price_minor=line.unit_price_minor,
        )
        for line in lines
    ]


@dataclass(frozen=True)
class Failure:
    """Why a checkout failed, as the client will hear it. `retryable` means
    nothing was kept (no order, no charge, no stock), so the same key may run
    again later; otherwise the key's answer is this failure for good."""

    code: grpc.StatusCode
    message: str
    retryable: bool
    # google.rpc detail messages a client can act on (e.g. the new total).
    details: tuple[Message, ...] = ()


# -- delivery --------------------------------------------------------------------

DS = orders_pb2.DeliveryStatus
# A DeliveryStatus value (an int at run time).
Delivery: TypeAlias = orders_pb2.DeliveryStatus.ValueType
PENDING, PACKED, SHIPPED, DELIVERED = (
    DS.DELIVERY_STATUS_PENDING,
    DS.DELIVERY_STATUS_PACKED,
    DS.DELIVERY_STATUS_SHIPPED,
    DS.DELIVERY_STATUS_DELIVERED,
)
CANCELLED = DS.DELIVERY_STATUS_CANCELLED
# Each seller's part (fulfilment) moves one step at a time; packing may be
# skipped (a seller that ships straight from the shelf). Nothing moves back.
_NEXT = {PENDING: (PACKED, SHIPPED), PACKED: (SHIPPED,), SHIPPED: (DELIVERED,), DELIVERED: (), CANCELLED: ()}
_PROGRESS = [PENDING, PACKED, SHIPPED, DELIVERED]
TARGETS = (PACKED, SHIPPED, DELIVERED)
MAX_NOTE = 280
MAX_REASON = 280
CONFIRMED_ORDER = orders_pb2.OrderStatus.Name(orders_pb2.ORDER_STATUS_CONFIRMED)
CANCELLED_ORDER = orders_pb2.OrderStatus.Name(orders_pb2.ORDER_STATUS_CANCELLED)


def delivery_name(status: Delivery) -> str:
    return DS.Name(status)


def short_delivery_name(status: Delivery) -> str:
    return DS.Name(status).removeprefix("DELIVERY_STATUS_").lower()


def allowed_next(current: Delivery) -> tuple[Delivery, ...]:
    """The statuses a part at `current` may move to."""
    return _NEXT.get(current, ())


def _names(statuses) -> str:
    return " or ".join(short_delivery_name(s) for s in statuses)


def check_text(field: str, value: str, limit: int) -> str:
    """A free-text field (a note, a reason): trimmed, at most `limit`
    characters, no control characters but newlines and tabs."""
    value = value.strip()
    if len(value) > limit:
        raise invalid_argument(field, f"must be at most {limit} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise invalid_argument(field, "must not contain control characters")
    return value


def check_delivery_request(wanted: Delivery, note: str) -> str:
    """Validates an advance request before anything is read; returns the note as kept."""
    if wanted not in TARGETS:
        raise invalid_argument("status", "must be PACKED, SHIPPED or DELIVERED")
    return check_text("note", note, MAX_NOTE)


def check_advance(order_status: str, current: Delivery, wanted: Delivery, note: str = "") -> None:
    """Raises when `wanted` is not the next delivery status of a part now at
    `current`: forward only, one step at a time (packing may be skipped)."""
    check_delivery_request(wanted, note)
    if order_status != CONFIRMED_ORDER:
        raise failed_precondition(f"only confirmed orders move along their delivery; this one is {order_status}")
    if wanted in allowed_next(current):
        return
    if current not in _PROGRESS:
        raise failed_precondition(f"this delivery is {short_delivery_name(current)} and moves no further")
    if _PROGRESS.index(wanted) <= _PROGRESS.index(current):
        following = allowed_next(current)
        then = f"; next is {_names(following)}" if following else ""
        raise failed_precondition(
            f"delivery status only moves forward: this part is already {short_delivery_name(current)}{then}"
        )
    raise failed_precondition(
        f"delivery cannot jump from {short_delivery_name(current)} to {short_delivery_name(wanted)}: "
        f"next is {_names(allowed_next(current))}"
    )


def order_delivery_status(parts: list[Delivery]) -> Delivery:
    """The order's delivery status, derived from its parts: the least advanced
    part (an order is delivered when every part is); cancelled when every part
    is; UNSPECIFIED before the order is confirmed (no part moving yet)."""
    moving = [p for p in parts if p in _PROGRESS]
    if moving:
        return min(moving, key=_PROGRESS.index)
    if parts and all(p == CANCELLED for p in parts):
        return CANCELLED
    return DS.DELIVERY_STATUS_UNSPECIFIED


def has_shipped(status: Delivery) -> bool:
    return status in _PROGRESS and _PROGRESS.index(status) >= _PROGRESS.index(SHIPPED)


def check_cancel(order_status: str, parts: dict[int, Delivery]) -> None:
    """Raises unless a buyer may cancel: a confirmed order none of whose parts
    (seller id -> delivery status) has shipped. A cancelled order is not
    refused here: a repeat cancel answers the cancelled order."""
    if order_status == CANCELLED_ORDER:
        return
    if order_status != CONFIRMED_ORDER:
        raise failed_precondition(f"only a confirmed order can be cancelled; this one is {order_status}")
    shipped = sorted(seller for seller, status in parts.items() if has_shipped(status))
    if shipped:
        raise failed_precondition(
            f"part of this order has already shipped (seller {', '.join(map(str, shipped))}): "
            "it can no longer be cancelled"
        )


# Cancellation, after the buyer's request is recorded (status CANCELLED, the
# OrderCancelled event queued): the stock goes back, then the money. Each
# state is persisted with the effect that reached it; both effects are
# idempotent, so the recovery sweep re-runs whatever a crash interrupted.
CANCEL_REQUESTED = "REQUESTED"
CANCEL_RESTOCKED = "RESTOCKED"
CANCEL_DONE = "DONE"
CANCEL_UNFINISHED = (CANCEL_REQUESTED, CANCEL_RESTOCKED)
