"""page_size / page_token handling shared by every List method.

Tokens are opaque to clients and verified by the server: base64url of an
HMAC-SHA256 tag (16 bytes, keyed by AVIARY_PAGE_TOKEN_SECRET, the same in
every service) followed by the cursor as versioned JSON. A token the server
did not issue, or one altered by a single bit, is refused with
INVALID_ARGUMENT before its cursor is read.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json

from services.kit import settings
from services.kit.server.errors import invalid_argument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# Production sets its own secret (Helm); anyone knowing this one could mint tokens.
DEVSTACK_TOKEN_SECRET = "aviary-devstack-page-token-secret"
_TOKEN_VERSION = 2
_TAG_BYTES = 16
# Far above any token the server issues; longer ones are refused unread.
MAX_TOKEN_CHARS = 512
INT64_MAX = 2**63 - 1
_MALFORMED = "is malformed; pass back next_page_token unchanged"


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
    payload = json.dumps({"v": _TOKEN_VERSION, **cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_tag(payload) + payload).rstrip(b"=").decode()


def decode_token(token: str) -> dict | None:
    """None for an empty token (first page); INVALID_ARGUMENT when malformed,
    forged or altered."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid_argument("page_token", _MALFORMED)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise invalid_argument("page_token", _MALFORMED) from exc
    tag, payload = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(payload)):
        raise invalid_argument("page_token", _MALFORMED)
    try:
        cursor = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_argument("page_token", _MALFORMED) from exc
    if not isinstance(cursor, dict) or cursor.get("v") != _TOKEN_VERSION:
        raise invalid_argument("page_token", _MALFORMED)
    return cursor


def cursor_int(cursor: dict, key: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer position from a decoded token, range-checked (a 64-bit
    column or score takes nothing wider)."""
    value = cursor.get(key)
    if type(value) is not int or not minimum <= value <= maximum:
        raise invalid_argument("page_token", _MALFORMED)
    return value


def int_cursor(token: str, key: str) -> int | None:
    """Decodes a token holding one integer position (e.g. the last id seen)."""
    cursor = decode_token(token)
    return None if cursor is None else cursor_int(cursor, key)


def _tag(payload: bytes) -> bytes:
    return hmac.new(_secret(), payload, hashlib.sha256).digest()[:_TAG_BYTES]


@functools.cache
def _secret() -> bytes:
    return settings.current().page_token_secret.encode()
