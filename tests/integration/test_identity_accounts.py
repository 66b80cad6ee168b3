"""Suspension and deletion against the running identity, its PostgreSQL rows,
its outbox relay to identity.events.v1 and the gone-accounts set in Redis."""

from __future__ import annotations

import asyncio
import os
import secrets

import grpc
import pytest
import sqlalchemy as sa

from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2
from services.identity.servicer import IdentityServicer
from services.identity.settings import IdentitySettings
from services.identity.store import UNUSABLE_PASSWORD_HASH, IdentityStore
from services.kit.events.kafka import IDENTITY_TOPIC
from services.kit.peers import accounts
from services.kit.server import operators
from services.kit.settings import load, load_settings
from tests import redis_clients
from tests.integration.support import TopicReader

PASSWORD = "correct horse battery"
HOLD_SECONDS = 30 * 24 * 3600


@pytest.fixture(scope="module")
def as_operator() -> tuple[tuple[str, str]]:
    token = operators.issue(load_settings().operator_private_key.read_bytes(), "it-operator", ["moderation"], 600)
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def events():
    reader = TopicReader(IDENTITY_TOPIC, events_pb2.AccountEvent)
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def pg():
    engine = sa.create_engine(load(IdentitySettings).pg_dsn)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def gone_set():
    client = redis_clients.from_url(load_settings().redis_url)
    yield lambda: {int(m) for m in client.smembers(accounts.GONE_KEY)}
    client.close()


def sign_up(identity, role: str = "") -> identity_pb2.CreateAccountResponse:
    return identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(5)}", password=PASSWORD, role=role),
        timeout=10,
    )


def live_sessions(pg, user_id: str) -> int:
    with pg.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM identity.sessions WHERE user_id = :u AND revoked_at IS NULL"),
            {"u": int(user_id)},
        ).scalar_one()


def of_user(user_id: str, kind: str):
    return lambda e: e.WhichOneof("kind") == kind and getattr(e, kind).user_id == int(user_id)


def test_suspension_revokes_every_session_publishes_its_event_and_marks_the_account_gone(
    identity, as_operator, events, pg, gone_set
):
    account = sign_up(identity)
    user_id = account.user.id
    identity.CreateSession(identity_pb2.CreateSessionRequest(username=account.user.username, password=PASSWORD))
    assert live_sessions(pg, user_id) == 2

    status = identity.SuspendAccount(
        identity_pb2.SuspendAccountRequest(user_id=user_id, report_id="77"), metadata=as_operator, timeout=10
    )
    again = identity.SuspendAccount(identity_pb2.SuspendAccountRequest(user_id=user_id), metadata=as_operator)

    assert status.suspended and again.suspended
    assert live_sessions(pg, user_id) == 0
    assert int(user_id) in gone_set()
    (record,) = events.wait_for(of_user(user_id, "suspended"))
    assert record.key == user_id.encode()
    assert events.event(record).suspended.report_id == 77

    lifted = identity.ReinstateAccount(identity_pb2.ReinstateAccountRequest(user_id=user_id), metadata=as_operator)
    assert not lifted.suspended
    assert int(user_id) not in gone_set()
    assert len(events.wait_for(of_user(user_id, "reinstated"))) == 1
    # The repeated suspension changed nothing, so it published nothing.
    assert len(events.wait_for(of_user(user_id, "suspended"), count=2, deadline_s=1.0)) == 1


def test_suspending_needs_an_operator_and_an_account(identity, as_operator):
    account = sign_up(identity)
    request = identity_pb2.SuspendAccountRequest(user_id=account.user.id)
    for metadata in [(), (("authorization", f"Bearer {account.access_token}"),)]:
        with pytest.raises(grpc.RpcError) as refused:
            identity.SuspendAccount(request, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as unknown:
        identity.SuspendAccount(identity_pb2.SuspendAccountRequest(user_id="12345"), metadata=as_operator)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_deletion_clears_the_profile_holds_the_name_and_publishes_account_deleted(identity, events, pg, gone_set):
    account = sign_up(identity)
    user_id, username = account.user.id, account.user.username
    as_user = (("authorization", f"Bearer {account.access_token}"),)
    identity.DeleteAccount(identity_pb2.DeleteAccountRequest(password=PASSWORD), metadata=as_user, timeout=10)

    with pg.connect() as conn:
        row = conn.execute(
            sa.text("SELECT display_name, password_hash, deleted_at FROM identity.users WHERE id = :u"),
            {"u": int(user_id)},
        ).one()
    assert row.display_name == "" and row.password_hash == UNUSABLE_PASSWORD_HASH and row.deleted_at is not None
    assert live_sessions(pg, user_id) == 0
    assert int(user_id) in gone_set()
    (record,) = events.wait_for(of_user(user_id, "deleted"))
    deleted = events.event(record).deleted
    assert (deleted.username, deleted.role) == (username, "USER")
    assert identity.BatchGetUsers(identity_pb2.BatchGetUsersRequest(user_ids=[user_id])).users == []
    with pytest.raises(grpc.RpcError) as taken:
        identity.CreateAccount(identity_pb2.CreateAccountRequest(username=username.upper(), password=PASSWORD))
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_deleted_name_is_freed_once_the_hold_is_over(identity, pg):
    deleted, recent, suspended = sign_up(identity), sign_up(identity), sign_up(identity)
    with pg.begin() as conn:
        for account, age in [(deleted, "31 days"), (recent, "29 days")]:
            conn.execute(
                sa.text(f"UPDATE identity.users SET deleted_at = now() - interval '{age}' WHERE id = :u"),
                {"u": int(account.user.id)},
            )
        conn.execute(
            sa.text("UPDATE identity.users SET suspended_at = now() WHERE id = :u"), {"u": int(suspended.user.id)}
        )
    try:
        freed, gone = asyncio.run(_sweep_and_list())
        assert int(deleted.user.id) in freed and int(recent.user.id) not in freed
        assert {int(recent.user.id), int(suspended.user.id)} <= set(gone)
        assert int(deleted.user.id) not in gone
        again = sign_up_as(identity, deleted.user.username)
        assert again.user.id != deleted.user.id
        with pytest.raises(grpc.RpcError) as taken:
            sign_up_as(identity, recent.user.username)
        assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        with pg.begin() as conn:
            conn.execute(
                sa.text("UPDATE identity.users SET suspended_at = NULL WHERE id = :u"), {"u": int(suspended.user.id)}
            )


def sign_up_as(identity, username: str) -> identity_pb2.CreateAccountResponse:
    return identity.CreateAccount(identity_pb2.CreateAccountRequest(username=username, password=PASSWORD), timeout=10)


async def _sweep_and_list() -> tuple[list[int], list[int]]:
    store = IdentityStore(load(IdentitySettings))
    await store.start()
    try:
        freed: list[int] = []
        while batch := await store.free_held_usernames(HOLD_SECONDS, 1000):
            freed += batch
        return freed, await store.gone_account_ids(HOLD_SECONDS)
    finally:
        await store.stop()


def test_the_sweep_takes_freed_accounts_out_of_the_gone_set(identity, pg, gone_set):
    account = sign_up(identity)
    user_id = int(account.user.id)
    with pg.begin() as conn:
        conn.execute(
            sa.text("UPDATE identity.users SET deleted_at = now() - interval '31 days' WHERE id = :u"), {"u": user_id}
        )
    client = redis_clients.from_url(load_settings().redis_url)
    try:
        client.sadd(accounts.GONE_KEY, str(user_id))
        asyncio.run(_run_username_sweep(until=lambda: user_id not in gone_set()))
        assert user_id not in gone_set()
    finally:
        client.srem(accounts.GONE_KEY, str(user_id))
        client.close()


async def _run_username_sweep(until, deadline_s: float = 10.0) -> None:
    servicer = IdentityServicer(
        load(IdentitySettings, {**os.environ, "AVIARY_IDENTITY_USERNAME_SWEEP_SECONDS": "0.05"})
    )
    await servicer.store.start()
    sweep = asyncio.create_task(servicer.free_held_usernames())
    try:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline_s
        while not until() and loop.time() < give_up:
            await asyncio.sleep(0.05)
    finally:
        sweep.cancel()
        await servicer.redis.aclose()
        await servicer.producer.close()
        await servicer.store.stop()
