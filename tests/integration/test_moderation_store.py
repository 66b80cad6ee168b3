"""Moderation's decisions against the devstack's PostgreSQL (the `moderation`
schema, migrated by the running moderation service): a decision whose effect
elsewhere fails is not recorded, and suspensions are recorded with the
decision and lifted once. Reports are made under fresh ids and deleted
afterwards."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from services.kit.events.kafka import Producer
from services.kit.server.errors import unavailable
from services.kit.server.ids import IdGenerator
from services.kit.settings import load
from services.moderation.settings import ModerationSettings
from services.moderation import rules
from services.moderation.store import OPEN, RESOLVED, ModerationStore, NewReport, NotSuspended, ReportRow

_ids = IdGenerator(random.randrange(1024))


@pytest.fixture
async def store():
    settings = load(ModerationSettings)
    producer = Producer(settings.kafka_bootstrap)
    store = ModerationStore(settings, producer)
    await store.start()
    made: list[int] = []
    yield store, made
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM moderation.reports WHERE user_id = ANY(:ids)"), {"ids": made})
        await conn.execute(sa.text("DELETE FROM moderation.suspensions WHERE user_id = ANY(:ids)"), {"ids": made})
    await store.stop()
    await producer.close()


async def _report(store: ModerationStore, made: list[int], accused: int) -> ReportRow:
    made.append(accused)
    row, created = await store.create(NewReport(_ids.next_id(), _ids.next_id(), None, accused, "SPAM", ""))
    assert created
    return row


def _event(row: ReportRow) -> tuple[int, bytes, bytes]:
    # An empty payload: notifications skips what it cannot read as a decision.
    return _ids.next_id(), str(row.reporter_id).encode(), b""


async def _suspension(store: ModerationStore, user_id: int):
    async with store.engine.connect() as conn:
        query = sa.text("SELECT report_id, suspended_by, reinstated_at FROM moderation.suspensions WHERE user_id = :u")
        return (await conn.execute(query, {"u": user_id})).first()


async def test_a_decision_whose_effect_fails_leaves_every_report_open_and_nothing_recorded(store):
    store, made = store
    accused = _ids.next_id()
    first, second = await _report(store, made, accused), await _report(store, made, accused)

    async def identity_down(row: ReportRow) -> None:
        assert row.report_id == first.report_id and row.status == OPEN
        raise unavailable("identity is away")

    with pytest.raises(Exception, match="identity is away"):
        await store.resolve(first.report_id, rules.SUSPEND_ACCOUNT, "ana", "", _event, identity_down)
    for report in (first, second):
        again = await store.get(report.report_id)
        assert again is not None and again.status == OPEN and again.decision == ""
    assert await _suspension(store, accused) is None


async def test_a_suspension_is_recorded_with_its_decision_and_lifted_once(store):
    store, made = store
    accused = _ids.next_id()
    report = await _report(store, made, accused)
    effects: list[int] = []

    async def suspended(row: ReportRow) -> None:
        effects.append(row.user_id)

    closed = await store.resolve(report.report_id, rules.SUSPEND_ACCOUNT, "ana", "spam", _event, suspended)
    assert effects == [accused]
    assert [r.status for r in closed] == [RESOLVED] and closed[0].decision == rules.SUSPEND_ACCOUNT
    record = await _suspension(store, accused)
    assert record is not None and record.report_id == report.report_id and record.reinstated_at is None

    async def identity_down() -> None:
        raise unavailable("identity is away")

    with pytest.raises(Exception, match="identity is away"):
        await store.reinstate(accused, "bo", "appeal", identity_down)
    record = await _suspension(store, accused)
    assert record is not None and record.reinstated_at is None  # still suspended

    async def reinstated() -> None:
        effects.append(-accused)

    lifted = await store.reinstate(accused, "bo", "appeal", reinstated)
    assert lifted is not None and effects == [accused, -accused]
    with pytest.raises(NotSuspended):
        await store.reinstate(accused, "bo", "twice", reinstated)
    assert effects == [accused, -accused]  # identity is not asked when nothing is in force

    # Suspended again later (a new report): a new record in force.
    again = await _report(store, made, accused)
    await store.resolve(again.report_id, rules.SUSPEND_ACCOUNT, "cy", "", _event, suspended)
    record = await _suspension(store, accused)
    assert record is not None and record.report_id == again.report_id and record.suspended_by == "cy"
    assert record.reinstated_at is None


async def test_reinstating_an_account_never_suspended_is_refused_without_asking_identity(store):
    store, _ = store

    async def must_not_run() -> None:
        raise AssertionError("identity asked")

    with pytest.raises(NotSuspended):
        await store.reinstate(_ids.next_id(), "ana", "", must_not_run)
