"""Rules for what a sign-up or a profile may contain; pure functions, no I/O."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from services.kit.server.auth import ROLE_USER, ROLES
from services.kit.server.errors import invalid_argument

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


def check_password(password: str, username: str = "", *, field: str = "password") -> str:
    """A new password (NIST SP 800-63B): long enough, not easily guessed, no
    composition rules. Refusals name `field` (sign-up's, or a password change's)."""
    if not password:
        raise invalid_argument(field, "is required")
    # Counted in code points, as a person would count characters.
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise invalid_argument(field, f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {len(password)}")
    weakness = guessable_because(password, username)
    if weakness is not None:
        raise invalid_argument(field, f"{weakness}; a few unrelated words make a strong password")
    return password


def guessable_because(password: str, username: str = "") -> str | None:
    """Why `password` would be among an attacker's first guesses, or None."""
    folded = password.casefold()
    if username and folded == username.casefold():
        return "must not be the username"
    if folded in _common_passwords():
        return "is on a list of common or breached passwords"
    if _is_repetition(folded):
        return "is one character or a short pattern repeated"
    if _is_sequence(folded):
        return "is a run of consecutive characters"
    return None


# Most common of the ~20,000 breached passwords in Django's list (BSD licence),
# those of 8 or more characters, lower-cased, most common first.
_COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
# A password made of a unit this short repeated ("abcabcabc") counts as a pattern.
_REPEAT_UNIT_MAX = 4


@functools.cache
def _common_passwords() -> frozenset[str]:
    return frozenset(_COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines())


def _is_repetition(text: str) -> bool:
    # Periodic: every character equals the one `size` places before it.
    return any(text[size:] == text[:-size] for size in range(1, _REPEAT_UNIT_MAX + 1))


def _is_sequence(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return steps in ({1}, {-1})


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
        raise invalid_argument("display_name", f"must be at most {DISPLAY_NAME_MAX} characters, got {len(trimmed)}")
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
