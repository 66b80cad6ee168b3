"""Refresh-token rotation against the running identity and PostgreSQL: what
only concurrency shows, and what is stored."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from concurrent.futures import ThreadPoolExecutor

import grpc
import sqlalchemy as sa

from aviary.identity.v1 import identity_pb2
from services.identity import sessions
from services.identity.settings import IdentitySettings
from services.identity.store import IdentityStore, NewRefreshToken
from services.kit.server.auth import verify_token
from services.kit.settings import load

PASSWORD = "correct horse battery"


def sign_up(identity) -> identity_pb2.CreateAccountResponse:
    return identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password=PASSWORD), timeout=10
    )


def refreshed(identity, token: str) -> tuple[grpc.StatusCode, str]:
    """The answer's code, and the new refresh token when there is one."""
    try:
        answer = identity.RefreshSession(identity_pb2.RefreshSessionRequest(refresh_token=token), timeout=10)
    except grpc.RpcError as err:
        return err.code(), ""
    return grpc.StatusCode.OK, answer.refresh_token


def refresh(identity, token: str) -> grpc.StatusCode:
    return refreshed(identity, token)[0]


def test_concurrent_refreshes_with_one_token_leave_one_working_successor(identity):
    token = sign_up(identity).refresh_token
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: refreshed(identity, token), range(8)))
    # The rows are locked: one refresh rotates, each later one finds the token
    # just retired with its successor unused, and replaces that successor.
    assert [code for code, _ in answers] == [grpc.StatusCode.OK] * 8
    successors = {successor for _, successor in answers}
    assert len(successors) == 8
    # Only the last stored works; the replaced ones are unknown, and refusing
    # them revokes nothing.
    codes = {successor: refresh(identity, successor) for successor in successors}
    assert list(codes.values()).count(grpc.StatusCode.OK) == 1, codes
    # The successor has been used now: the first token again is a second holder.
    assert refresh(identity, token) == grpc.StatusCode.UNAUTHENTICATED


def test_a_lost_answer_past_the_grace_revokes_the_session(identity):
    token = sign_up(identity).refresh_token
    code, lost = refreshed(identity, token)
    assert code == grpc.StatusCode.OK
    settings = load(IdentitySettings)
    after_grace = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=settings.refresh_reissue_seconds + 5
    )
    verdicts = asyncio.run(_judged_at(settings, [token, lost], after_grace))
    assert verdicts == [sessions.Verdict.REUSED, sessions.Verdict.REFUSED]
    assert refresh(identity, lost) == grpc.StatusCode.UNAUTHENTICATED


async def _judged_at(settings: IdentitySettings, tokens: list[str], now: datetime.datetime) -> list[sessions.Verdict]:
    """The store's verdicts on `tokens`, presented in turn at `now`."""
    store = IdentityStore(settings)
    await store.start()
    try:
        verdicts = []
        for token in tokens:
            successor = NewRefreshToken(sessions.refresh_token_hash(sessions.new_refresh_token()), now)
            rotation = await store.rotate_refresh_token(sessions.refresh_token_hash(token), successor, now)
            verdicts.append(rotation.verdict)
        return verdicts
    finally:
        await store.stop()


def test_only_a_hash_of_the_refresh_token_is_stored(identity):
    token = sign_up(identity).refresh_token
    engine = sa.create_engine(load(IdentitySettings).pg_dsn)
    try:
        with engine.connect() as conn:
            hashes = conn.execute(
                sa.text("SELECT token_hash FROM identity.refresh_tokens WHERE token_hash = :h"),
                {"h": sessions.refresh_token_hash(token)},
            ).all()
            plain = conn.execute(
                sa.text("SELECT count(*) FROM identity.refresh_tokens WHERE token_hash = :t"),
                {"t": token.encode()},
            ).scalar()
    finally:
        engine.dispose()
    assert len(hashes) == 1 and plain == 0


def test_sessions_past_their_refresh_expiry_are_swept_with_their_tokens(identity):
    expired, live = sign_up(identity), sign_up(identity)
    engine = sa.create_engine(load(IdentitySettings).pg_dsn)
    expired_sid = verify_token(expired.access_token)["sid"]
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE identity.sessions SET expires_at = now() - interval '1 second' WHERE id = :id"),
                {"id": int(expired_sid)},
            )
        asyncio.run(_sweep())
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM identity.refresh_tokens WHERE session_id = :id"), {"id": int(expired_sid)}
            ).scalar()
    finally:
        engine.dispose()
    assert left == 0
    assert refresh(identity, expired.refresh_token) == grpc.StatusCode.UNAUTHENTICATED
    assert refresh(identity, live.refresh_token) == grpc.StatusCode.OK


async def _sweep() -> None:
    store = IdentityStore(load(IdentitySettings))
    await store.start()
    try:
        while await store.delete_expired_sessions(1000):
            pass
    finally:
        await store.stop()
