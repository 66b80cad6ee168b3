"""The rules of sessions: refresh-token verdicts, token shapes, the `sid`
claim, and the deadline of a live stream opened with an access token."""

from __future__ import annotations

import asyncio
import datetime
import gc
import time
import warnings

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.identity import sessions, validation
from services.identity.sessions import PresentedToken, Verdict
from services.kit.server.auth import AUDIENCE, StreamDeadline, TokenIssuer
from services.kit.server.errors import ApiError

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
LATER = NOW + datetime.timedelta(days=1)
EARLIER = NOW - datetime.timedelta(seconds=1)
GRACE = 30.0


def presented(
    *, rotated_at=None, retired_last=False, revoked=False, expires_at=LATER, suspended=False
) -> PresentedToken:
    return PresentedToken(
        session_id=7,
        user_id=3,
        expires_at=expires_at,
        rotated_at=rotated_at,
        session_revoked=revoked,
        account_suspended=suspended,
        retired_last=retired_last,
    )


def judge(found: PresentedToken | None) -> Verdict:
    return sessions.judge(found, NOW, GRACE)


def test_the_current_token_of_a_live_session_rotates():
    assert judge(presented()) is Verdict.ROTATE


def test_a_retired_token_whose_successor_was_used_revokes_the_family():
    # Even a second after: someone used the successor, so two hold the family.
    assert judge(presented(rotated_at=EARLIER, retired_last=False)) is Verdict.REUSED
    # However old the copy: a retired token shows someone else holds the family.
    assert judge(presented(rotated_at=EARLIER, expires_at=EARLIER)) is Verdict.REUSED


@pytest.mark.parametrize("seconds_ago", [0.0, 1.0, GRACE])
def test_a_lost_answer_is_reissued_within_the_grace(seconds_ago):
    rotated_at = NOW - datetime.timedelta(seconds=seconds_ago)
    assert judge(presented(rotated_at=rotated_at, retired_last=True)) is Verdict.REISSUE


def test_past_the_grace_even_an_unused_successor_does_not_save_the_family():
    rotated_at = NOW - datetime.timedelta(seconds=GRACE + 0.001)
    assert judge(presented(rotated_at=rotated_at, retired_last=True)) is Verdict.REUSED
    assert sessions.judge(presented(rotated_at=EARLIER, retired_last=True), NOW, 0.0) is Verdict.REUSED


@pytest.mark.parametrize(
    "found",
    [
        None,
        presented(revoked=True),
        presented(revoked=True, rotated_at=EARLIER),  # nothing left to revoke
        presented(revoked=True, rotated_at=EARLIER, retired_last=True),  # nor to reissue
        presented(expires_at=EARLIER),
        presented(expires_at=NOW),
    ],
    ids=["unknown", "revoked session", "revoked and rotated", "revoked and just rotated", "expired", "expires now"],
)
def test_unknown_expired_or_revoked_tokens_are_refused(found):
    assert judge(found) is Verdict.REFUSED


def test_refresh_tokens_are_random_and_stored_only_as_a_hash():
    first, second = sessions.new_refresh_token(), sessions.new_refresh_token()
    assert first != second
    assert sessions.could_be_refresh_token(first) and sessions.could_be_refresh_token(second)
    digest = sessions.refresh_token_hash(first)
    assert len(digest) == 32 and first.encode() not in digest
    assert digest == sessions.refresh_token_hash(first) != sessions.refresh_token_hash(second)


@pytest.mark.parametrize("token", ["", "short", "x" * 42, "x" * 44, "a" * 42 + "=", "a" * 42 + "\n", "ä" * 43])
def test_strings_never_issued_as_refresh_tokens_cost_no_lookup(token):
    assert not sessions.could_be_refresh_token(token)


def test_a_refresh_token_lives_its_configured_lifetime():
    assert sessions.refresh_expiry(NOW, 30 * 24 * 3600) == NOW + datetime.timedelta(days=30)


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def test_access_tokens_of_a_log_in_carry_its_session(key_pair):
    private, public = key_pair
    issuer = TokenIssuer(private, ttl_seconds=900)
    token, exp = issuer.issue(42, "ada", "USER", session_id=99)
    claims = jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE)
    assert claims["sid"] == "99" and claims["sub"] == "42"
    assert claims["exp"] == exp == claims["iat"] + 900


def test_tokens_minted_outside_a_log_in_have_no_session(key_pair):
    private, public = key_pair
    token, _ = TokenIssuer(private, ttl_seconds=60).issue(42, "ada")
    assert "sid" not in jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE)


def test_a_stream_waits_at_most_its_heartbeat_and_never_past_the_token():
    deadline = StreamDeadline(expires_at=1000.0)
    assert deadline.wait_seconds(15.0, now=900.0) == 15.0
    assert deadline.wait_seconds(15.0, now=990.0) == 10.0


@pytest.mark.parametrize("now", [1000.0, 1000.5])
def test_a_stream_ends_unauthenticated_once_its_token_expired(now):
    with pytest.raises(ApiError) as refused:
        StreamDeadline(expires_at=1000.0).wait_seconds(15.0, now=now)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "reconnect with a fresh token" in refused.value.message


async def test_a_stream_takes_its_next_message_or_none_when_a_heartbeat_is_due():
    deadline = StreamDeadline(expires_at=time.time() + 60)
    queue: asyncio.Queue = asyncio.Queue()
    queue.put_nowait(b"")
    assert await deadline.next_message(queue, 0.05) == b""
    assert await deadline.next_message(queue, 0.05) is None


async def test_an_expired_stream_ends_without_taking_a_message():
    queue: asyncio.Queue = asyncio.Queue()
    queue.put_nowait(b"kept")
    gc.collect()  # what earlier tests left, so that only this call's leftovers warn below
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with pytest.raises(ApiError) as refused:
            await StreamDeadline(expires_at=time.time() - 1).next_message(queue, 15.0)
        gc.collect()
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert [str(w.message) for w in warned if "never awaited" in str(w.message)] == []
    assert queue.get_nowait() == b"kept"


def test_a_new_password_is_refused_under_the_field_it_came_in():
    with pytest.raises(ApiError) as refused:
        validation.check_password("password123", field="new_password")
    assert refused.value.message.startswith("new_password: ")
    assert refused.value.details[0].field_violations[0].field == "newPassword"


@pytest.mark.parametrize(
    "found",
    [
        presented(suspended=True),
        # Its sessions were revoked with the suspension, and a rotated copy
        # must not read as a leak: the answer is why, not "log in again".
        presented(suspended=True, revoked=True, rotated_at=EARLIER, retired_last=True),
    ],
    ids=["live session", "revoked and rotated"],
)
def test_a_suspended_accounts_tokens_never_rotate(found):
    assert judge(found) is Verdict.SUSPENDED
