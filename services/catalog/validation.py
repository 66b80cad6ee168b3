"""What a product may contain; pure functions, no I/O."""

from __future__ import annotations

import re

from services.kit.server.errors import invalid_argument
from services.kit.server.ids import parse_ids

TITLE_MAX = 120
DESCRIPTION_MAX = 5_000
PRICE_MIN = 1
PRICE_MAX = 100_000_000
MAX_MEDIA = 8
STOCK_MAX = 1_000_000
RESTOCK_MAX = 1_000_000
IDEMPOTENCY_KEY_MAX = 128
CURRENCY_PATTERN = re.compile(r"[A-Za-z]{3}")


def check_title(title: str) -> str:
    trimmed = title.strip()
    if not trimmed:
        raise invalid_argument("title", "is required")
    if len(trimmed) > TITLE_MAX:
        raise invalid_argument("title", f"must be at most {TITLE_MAX} characters, got {len(trimmed)}")
    if _has_control(trimmed, allowed=""):
        raise invalid_argument("title", "must not contain control characters")
    return trimmed


def check_description(description: str) -> str:
    trimmed = description.strip()
    if len(trimmed) > DESCRIPTION_MAX:
        raise invalid_argument("description", f"must be at most {DESCRIPTION_MAX} characters, got {len(trimmed)}")
    if _has_control(trimmed, allowed="\n\t"):
        raise invalid_argument("description", "must not contain control characters other than line breaks and tabs")
    return trimmed


def check_price(price_minor: int) -> int:
    if not PRICE_MIN <= price_minor <= PRICE_MAX:
        raise invalid_argument(
            "price_minor", f"must be {PRICE_MIN}..{PRICE_MAX:,} (minor units, e.g. cents), got {price_minor}"
        )
    return price_minor


def check_currency(currency: str) -> str:
    """An ISO 4217-shaped code, upper-cased."""
    if not currency:
        raise invalid_argument("currency", "is required (an ISO 4217 code such as USD)")
    # fullmatch, not match + "$": "$" would also accept a trailing newline.
    if CURRENCY_PATTERN.fullmatch(currency) is None:
        raise invalid_argument("currency", f"must be a 3-letter ISO 4217 code such as USD, got {currency[:20]!r}")
    return currency.upper()


def check_media_ids(media_ids) -> list[int]:
    parsed = parse_ids(media_ids, "media_ids", max_items=MAX_MEDIA)
    seen: set[int] = set()
    for i, media_id in enumerate(parsed):
        if media_id in seen:
            raise invalid_argument(f"media_ids[{i}]", f"media {media_id} is listed more than once")
        seen.add(media_id)
    return parsed


def check_initial_stock(stock: int) -> int:
    if not 0 <= stock <= STOCK_MAX:
        raise invalid_argument("stock", f"must be 0..{STOCK_MAX:,}, got {stock}")
    return stock


def check_restock_quantity(quantity: int) -> int:
    if not 1 <= quantity <= RESTOCK_MAX:
        raise invalid_argument("quantity", f"must be 1..{RESTOCK_MAX:,}, got {quantity}")
    return quantity


def check_idempotency_key(key: str) -> str:
    if not key:
        raise invalid_argument("idempotency_key", "is required (any unique string, reused only to retry)")
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise invalid_argument("idempotency_key", f"must be at most {IDEMPOTENCY_KEY_MAX} characters, got {len(key)}")
    if not all(" " < ch <= "~" for ch in key):
        raise invalid_argument("idempotency_key", "must be printable ASCII without spaces")
    return key


def _has_control(text: str, allowed: str) -> bool:
    return any((ord(ch) < 0x20 or ord(ch) == 0x7F) and ch not in allowed for ch in text)
