"""page_size / page_token handling shared by every List method.

Tokens are opaque to clients (base64url JSON) but carry a version so a format
change can be detected instead of silently misread.
"""
from __future__ import annotations

import base64
import binascii
import json

from services.kit.errors import invalid_argument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(value: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if value < 0:
        raise invalid_argument("page_size", f"must be between 0 and {maximum}, got {value}")
    if value == 0:
        return default
    return min(value, maximum)


def bounded(field: str, value: int, *, default: int, maximum: int) -> int:
    """A size for a single-page list (top trends, recommendations): 0 means
    the default, 1..maximum as given, anything else is refused rather than
    clamped, since no next page would make up for a silent cut."""
    if value == 0:
        return default
    if value < 0 or value > maximum:
        raise invalid_argument(field, f"must be between 1 and {maximum} (0 for the default {default}), got {value}")
    return value


def no_page_token(token: str, what: str) -> None:
    """Single-page lists take no page token."""
    if token:
        raise invalid_argument("page_token", f"must be empty: {what} are a single page")


def encode_token(cursor: dict) -> str:
    raw = json.dumps({"v": 1, **cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str) -> dict | None:
    """None for an empty token (first page); INVALID_ARGUMENT when malformed."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        cursor = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid_argument("page_token", "is malformed; pass back next_page_token unchanged") from exc
    if not isinstance(cursor, dict) or cursor.get("v") != 1:
        raise invalid_argument("page_token", "is malformed; pass back next_page_token unchanged")
    return cursor


def int_cursor(token: str, key: str) -> int | None:
    """Decodes a token holding one integer position (e.g. the last id seen)."""
    cursor = decode_token(token)
    if cursor is None:
        return None
    value = cursor.get(key)
    if not isinstance(value, int) or value < 0:
        raise invalid_argument("page_token", "is malformed; pass back next_page_token unchanged")
    return value
