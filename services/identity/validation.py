"""Rules for what a sign-up or a profile may contain; pure functions, no I/O."""
from __future__ import annotations

import re

from services.kit.auth import ROLE_USER, ROLES
from services.kit.errors import invalid_argument

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_]{3,15}")
PASSWORD_MIN = 8
PASSWORD_MAX = 128
DISPLAY_NAME_MAX = 50
BIO_MAX = 160


def check_username(username: str) -> str:
    if not username:
        raise invalid_argument("username", "is required")
    # fullmatch, not match + "$": "$" would also accept a trailing newline.
    if USERNAME_PATTERN.fullmatch(username) is None:
        raise invalid_argument(
            "username", f"must be 3 to 15 characters of letters, digits or '_', got {username[:40]!r}"
        )
    return username


def check_password(password: str) -> str:
    if not password:
        raise invalid_argument("password", "is required")
    # Counted in code points, as a person would count characters.
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise invalid_argument(
            "password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {len(password)}"
        )
    return password


def check_role(role: str) -> str:
    """The account role to store: USER when not given, else USER or SELLER in any case."""
    if role == "":
        return ROLE_USER
    # ASCII only: str.upper() maps some non-ASCII letters onto ASCII ("ſ" -> "S").
    normalized = role.upper() if role.isascii() else role
    if normalized not in ROLES:
        raise invalid_argument("role", "must be USER or SELLER")
    return normalized


def display_name_or_default(display_name: str, username: str) -> str:
    """The display name to store at sign-up: the given one checked, or the username when blank."""
    return check_display_name(display_name) if display_name.strip() else username


def check_display_name(display_name: str) -> str:
    trimmed = display_name.strip()
    if not trimmed:
        raise invalid_argument("display_name", "must not be empty")
    if len(trimmed) > DISPLAY_NAME_MAX:
        raise invalid_argument(
            "display_name", f"must be at most {DISPLAY_NAME_MAX} characters, got {len(trimmed)}"
        )
    if _has_control(trimmed, allowed=""):
        raise invalid_argument("display_name", "must not contain control characters")
    return trimmed


def check_bio(bio: str) -> str:
    """The bio to store: trimmed, at most BIO_MAX characters; empty clears it."""
    trimmed = bio.strip()
    if len(trimmed) > BIO_MAX:
        raise invalid_argument("bio", f"must be at most {BIO_MAX} characters, got {len(trimmed)}")
    if _has_control(trimmed, allowed="\n"):
        raise invalid_argument("bio", "must not contain control characters other than line breaks")
    return trimmed


def _has_control(text: str, allowed: str) -> bool:
    return any((ord(ch) < 0x20 or ord(ch) == 0x7F) and ch not in allowed for ch in text)


def could_be_username(username: str) -> bool:
    """False for strings no account can have, so lookups can skip the database."""
    return USERNAME_PATTERN.fullmatch(username) is not None
