"""The rules of sessions and their rotating refresh tokens; pure functions, no I/O.

A session starts at each log-in (and sign-up). It holds a family of refresh
tokens of which only the newest works: refreshing hands out the next one and
retires the one presented. A retired token presented again means two parties
hold the family (a copy leaked), so the whole session is revoked; unless it
is the answer that was lost: see `judge`.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import re
import secrets
from dataclasses import dataclass

# 256 bits of randomness, URL-safe base64 without padding: 43 characters.
REFRESH_TOKEN_BYTES = 32
_REFRESH_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

# Why a session was revoked, kept on its row for operators.
REVOKED_LOGGED_OUT = "logged out"
REVOKED_TOKEN_REUSED = "refresh token reused"
REVOKED_PASSWORD_CHANGED = "password changed"
REVOKED_ACCOUNT_SUSPENDED = "account suspended"
REVOKED_ACCOUNT_DELETED = "account deleted"


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def refresh_token_hash(token: str) -> bytes:
    """What is stored instead of the token. A fast hash suffices: the token is
    random and long, so a leaked table gives nothing to guess against."""
    return hashlib.sha256(token.encode()).digest()


def could_be_refresh_token(token: str) -> bool:
    """False for strings never issued as refresh tokens, so they cost no lookup."""
    return _REFRESH_TOKEN_PATTERN.fullmatch(token) is not None


class Verdict(enum.Enum):
    ROTATE = "rotate"  # the session's current token: hand out the next one
    REISSUE = "reissue"  # its answer was lost: replace the unused successor
    REUSED = "reused"  # a retired token: revoke the whole session
    REFUSED = "refused"  # unknown, expired, or of a revoked session
    SUSPENDED = "suspended"  # the account is suspended: nothing rotates


@dataclass(frozen=True)
class PresentedToken:
    """What the store holds about a presented refresh token and its session."""

    session_id: int
    user_id: int
    expires_at: datetime.datetime
    # When it was retired; None while it is the session's current token.
    rotated_at: datetime.datetime | None
    session_revoked: bool
    account_suspended: bool = False
    # No token of its session was retired after it: its successor is unused.
    retired_last: bool = False


def judge(found: PresentedToken | None, now: datetime.datetime, reissue_seconds: float) -> Verdict:
    """What to do with a presented refresh token.

    A client that refreshed and never read the answer (the page was reloaded
    or the connection dropped mid-call) holds only the retired token. Within
    `reissue_seconds` of its retirement, and while its successor has not been
    used, that token gets a new successor in place of the unused one: the
    grace of OAuth providers' rotation, so a reload does not end the session.
    A successor that was used shows a second holder, and revokes."""
    if found is None:
        return Verdict.REFUSED
    # First: a suspended account's tokens (its sessions revoked with the
    # suspension) are answered with why, not as a leak or a stale token.
    if found.account_suspended:
        return Verdict.SUSPENDED
    if found.session_revoked:
        return Verdict.REFUSED
    # Checked before expiry: a retired token shows a copy is out there,
    # however old it is.
    if found.rotated_at is not None:
        lost_answer = found.retired_last and now - found.rotated_at <= datetime.timedelta(seconds=reissue_seconds)
        return Verdict.REISSUE if lost_answer else Verdict.REUSED
    if found.expires_at <= now:
        return Verdict.REFUSED
    return Verdict.ROTATE


def refresh_expiry(now: datetime.datetime, lifetime_seconds: int) -> datetime.datetime:
    """When a refresh token issued at `now` stops working."""
    return now + datetime.timedelta(seconds=lifetime_seconds)
