"""What inventory requests may contain; pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.server.errors import invalid_argument
from services.kit.server.ids import parse_id

MAX_LINES = 50
MAX_LINE_QUANTITY = 1_000
MAX_STOCK_QUANTITY = 1_000_000
MAX_TTL_SECONDS = 3_600
MAX_BATCH_GET = 500
# Reservation ids and idempotency keys are caller-chosen strings; bounded so
# they index well and cannot be used to stuff the database.
MAX_KEY_LENGTH = 128


@dataclass(frozen=True, order=True)
class Line:
    """One reservation line. Ordered by product id: lines are applied in that
    order so concurrent reservations lock stock rows in one global order."""

    product_id: int
    quantity: int


def check_key(value: str, field: str) -> str:
    """A caller-chosen id (reservation id, idempotency key): 1..128 printable ASCII characters."""
    if not value:
        raise invalid_argument(field, "is required")
    if len(value) > MAX_KEY_LENGTH:
        raise invalid_argument(field, f"must be at most {MAX_KEY_LENGTH} characters, got {len(value)}")
    if not all(" " < ch <= "~" for ch in value):
        raise invalid_argument(field, "must be printable ASCII without spaces")
    return value


def check_lines(items) -> list[Line]:
    """The request's lines, checked, in request order."""
    if not items:
        raise invalid_argument("items", "must hold at least one line")
    if len(items) > MAX_LINES:
        raise invalid_argument("items", f"at most {MAX_LINES} lines, got {len(items)}")
    lines: list[Line] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(items):
        product_id = parse_id(item.product_id, f"items[{i}].product_id")
        if product_id in seen:
            raise invalid_argument(
                f"items[{i}].product_id", f"product {product_id} is already on line {seen[product_id]}; list it once"
            )
        seen[product_id] = i
        if not 1 <= item.quantity <= MAX_LINE_QUANTITY:
            raise invalid_argument(f"items[{i}].quantity", f"must be 1..{MAX_LINE_QUANTITY}, got {item.quantity}")
        lines.append(Line(product_id, item.quantity))
    return lines


def ttl_seconds(value: int, default: int) -> int:
    """0 means the configured default."""
    if value == 0:
        return default
    if not 1 <= value <= MAX_TTL_SECONDS:
        raise invalid_argument("ttl_seconds", f"must be 1..{MAX_TTL_SECONDS}, got {value}")
    return value


def initial_quantity(value: int) -> int:
    if not 0 <= value <= MAX_STOCK_QUANTITY:
        raise invalid_argument("quantity", f"must be 0..{MAX_STOCK_QUANTITY}, got {value}")
    return value


def added_quantity(value: int) -> int:
    if not 1 <= value <= MAX_STOCK_QUANTITY:
        raise invalid_argument("quantity", f"must be 1..{MAX_STOCK_QUANTITY}, got {value}")
    return value
