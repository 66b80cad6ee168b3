"""The cart's pure logic: Redis key names, how lines are stored, input checks,
and turning stored lines (plus catalog products) into a Cart message.

One hash per user, `cart:{<user>}`: meta fields `_currency` and `_seq`, and
one field per line, product id -> "<seq>:<quantity>:<price>" (the unit price
when last added). Hash field order is not guaranteed, so lines carry their
insertion sequence and reads sort by it. The whole layout:
services/cart/README.md, "Storage".
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from aviary.cart.v1 import cart_pb2
from aviary.catalog.v1 import catalog_pb2
from services.kit.server.errors import invalid_argument

MAX_LINE_QUANTITY = 100
CURRENCY_FIELD = b"_currency"
SEQ_FIELD = b"_seq"
MAX_CHECKOUT_ID_CHARS = 128
_CHECKOUT_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-_.:")


def cart_key(user_id: int) -> str:
    return f"cart:{{{user_id}}}"


def checkout_marker_key(user_id: int, checkout_id: str) -> str:
    # Same hash tag as the cart, so the clearing script may touch both.
    return f"cart:{{{user_id}}}:checkout:{checkout_id}"


def encode_line(seq: int, quantity: int, added_price_minor: int | None = None) -> bytes:
    price = "" if added_price_minor is None else f":{added_price_minor}"
    return f"{seq}:{quantity}{price}".encode()


@dataclass(frozen=True)
class Line:
    product_id: int
    quantity: int
    seq: int
    # The unit price when the product was last added: what the buyer agreed to.
    added_price_minor: int | None = None


@dataclass(frozen=True)
class CartState:
    """A cart as stored: its lines oldest first, and how long it has left."""

    currency: str = ""
    lines: list[Line] = field(default_factory=list)
    # Milliseconds until the cart expires; None when it does not exist.
    ttl_ms: int | None = None

    @property
    def product_ids(self) -> list[int]:
        return [line.product_id for line in self.lines]

    def quantity_of(self, product_id: int) -> int:
        return next((line.quantity for line in self.lines if line.product_id == product_id), 0)


def decode_state(fields: Mapping[bytes, bytes] | Iterable[bytes], pttl_ms: int) -> CartState:
    """The hash's fields (a mapping, or the flat [f1, v1, f2, v2, ...] a Lua
    script returns) and the key's PTTL -> CartState, lines oldest first."""
    if not isinstance(fields, Mapping):
        flat = list(fields)
        fields = dict(zip(flat[0::2], flat[1::2]))
    currency = fields.get(CURRENCY_FIELD, b"").decode()
    lines = []
    for name, value in fields.items():
        if name in (CURRENCY_FIELD, SEQ_FIELD):
            continue
        seq, quantity, *price = value.split(b":")
        lines.append(
            Line(
                product_id=int(name),
                quantity=int(quantity),
                seq=int(seq),
                added_price_minor=int(price[0]) if price else None,
            )
        )
    lines.sort(key=lambda line: line.seq)
    # PTTL is -2 for a missing key; -1 (no expiry) never happens for a cart.
    return CartState(currency=currency, lines=lines, ttl_ms=pttl_ms if lines and pttl_ms > 0 else None)


@dataclass(frozen=True)
class ScriptReply:
    """What every cart script returns: a status, a detail, and the cart after."""

    status: str
    detail: str
    state: CartState


def decode_script_reply(reply: list) -> ScriptReply:
    """[status, detail, pttl, f1, v1, ...] -> ScriptReply."""
    status, detail, pttl, *fields = reply
    return ScriptReply(_text(status), _text(detail), decode_state(fields, int(pttl)))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- input checks -----------------------------------------------------------------


def checked_quantity(value: int, field_name: str = "quantity") -> int:
    if not 1 <= value <= MAX_LINE_QUANTITY:
        raise invalid_argument(field_name, f"must be 1..{MAX_LINE_QUANTITY}")
    return value


def checked_checkout_id(value: str) -> str:
    if not value:
        raise invalid_argument("checkout_id", "is required")
    if len(value) > MAX_CHECKOUT_ID_CHARS or not set(value) <= _CHECKOUT_ID_CHARS:
        raise invalid_argument("checkout_id", f"must be 1..{MAX_CHECKOUT_ID_CHARS} characters of [A-Za-z0-9-_.:]")
    return value


def line_full_problem(has: int) -> str:
    return f"a line may hold at most {MAX_LINE_QUANTITY} (it has {has})"


def price_rose(line: Line, current_price_minor: int) -> bool:
    """The line costs more than when it was added: a checkout without an
    expected total refuses it until the buyer accepts the new price."""
    return line.added_price_minor is not None and current_price_minor > line.added_price_minor


# -- building responses -------------------------------------------------------------


def _set_expiry(cart: cart_pb2.Cart, state: CartState, now_ms: int) -> None:
    if state.ttl_ms is not None:
        cart.expires_at.FromMilliseconds(now_ms + state.ttl_ms)


def raw_cart(user_id: int, state: CartState, now_ms: int) -> cart_pb2.Cart:
    """The lines as stored, with the prices they were added at but no current
    prices (internal callers re-read the catalog)."""
    cart = cart_pb2.Cart(
        user_id=str(user_id),
        currency=state.currency,
        items=[
            cart_pb2.CartItem(
                product_id=str(line.product_id), quantity=line.quantity, added_unit_price_minor=line.added_price_minor
            )
            for line in state.lines
        ],
    )
    _set_expiry(cart, state, now_ms)
    return cart


def priced_cart(
    user_id: int, state: CartState, products: Mapping[int, catalog_pb2.Product], now_ms: int
) -> cart_pb2.Cart:
    """The cart with CURRENT catalog prices and titles joined in.

    A line whose product is gone shows price 0 and is unavailable; one whose
    product was deactivated keeps its title and price but is unavailable.
    Only available lines count towards the total. Each line also shows the
    price it was added at, and whether the price changed since."""
    cart = cart_pb2.Cart(user_id=str(user_id), currency=state.currency)
    total = 0
    for line in state.lines:
        item = cart.items.add(
            product_id=str(line.product_id), quantity=line.quantity, added_unit_price_minor=line.added_price_minor
        )
        product = products.get(line.product_id)
        if product is None:
            continue
        item.title = product.title
        item.unit_price_minor = product.price_minor
        item.available = product.active
        item.price_changed = line.added_price_minor not in (None, product.price_minor)
        if item.available:
            total += product.price_minor * line.quantity
            cart.price_increased |= price_rose(line, product.price_minor)
    cart.total_minor = total
    _set_expiry(cart, state, now_ms)
    return cart
