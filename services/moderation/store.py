"""PostgreSQL storage for reports (schema `moderation`).

One row per report. A reporter has at most one open report per target (a
partial unique index), so reporting again returns the open one; resolving
closes every open report of the target in one transaction, which also stores
one ReportResolved event per closed report in the outbox: every reporter is
told, even if Kafka is away at the time.

A decision with an effect elsewhere (a post removed, an account suspended or
reinstated) is carried out by the caller's callback inside that transaction,
while the report (and the account) is locked: the peer's idempotent call
first, then the record. A failed call rolls the record back; a failed commit
after a call leaves the report open, and resolving it again repeats the call
harmlessly.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.events.kafka import MODERATION_TOPIC, Producer
from services.kit.events.pg_outbox import PgOutbox
from services.moderation.settings import ModerationSettings
from services.kit.stores import pg
from services.moderation.rules import SUSPEND_ACCOUNT

SCHEMA = "moderation"
OPEN = "OPEN"
RESOLVED = "RESOLVED"

_COLUMNS = (
    "report_id, reporter_id, post_id, user_id, reason, comment, status, decision, "
    "resolved_by, resolution_note, created_at, resolved_at"
)


@dataclass(frozen=True)
class ReportRow:
    report_id: int
    reporter_id: int
    post_id: int | None
    user_id: int
    reason: str
    comment: str
    status: str
    decision: str
    resolved_by: str
    resolution_note: str
    created_at: datetime.datetime
    resolved_at: datetime.datetime | None


@dataclass(frozen=True)
class NewReport:
    report_id: int
    reporter_id: int
    post_id: int | None
    user_id: int
    reason: str
    comment: str


class AlreadyResolved(Exception):
    def __init__(self, row: ReportRow) -> None:
        super().__init__(row.report_id)
        self.row = row


class NotSuspended(Exception):
    """Moderation holds no suspension of the account in force."""


# (event id, key, payload) of the event telling a closed report's reporter.
EventFor = Callable[["ReportRow"], tuple[int, bytes, bytes]]
# The decision's effect elsewhere, run on the locked report before it is closed.
CarryOut = Callable[["ReportRow"], Awaitable[None]]

# One operator at a time decides about an account (suspend, reinstate): a
# transaction-scoped lock keyed by the account, released at commit or rollback.
_ACCOUNT_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('moderation:account:' || :user_id, 0))")


class ModerationStore:
    def __init__(self, settings: ModerationSettings, producer: Producer) -> None:
        self.settings = settings
        self._producer = producer
        self._engine: AsyncEngine | None = None
        self._outbox: PgOutbox | None = None

    async def start(self) -> None:
        self._engine = pg.engine(self.settings, pool_size=5)
        self._outbox = PgOutbox(self._engine, SCHEMA, self._producer)

    @property
    def outbox(self) -> PgOutbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "call start() first"
        return self._engine

    async def create(self, report: NewReport) -> tuple[ReportRow, bool]:
        """(the report, True) — or the reporter's open report of the same target and False."""
        insert = sa.text(f"""INSERT INTO "{SCHEMA}".reports
                (report_id, reporter_id, post_id, user_id, reason, comment, status)
            VALUES (:report_id, :reporter_id, :post_id, :user_id, :reason, :comment, '{OPEN}')
            ON CONFLICT DO NOTHING RETURNING {_COLUMNS}""")
        existing = sa.text(f"""SELECT {_COLUMNS} FROM "{SCHEMA}".reports
            WHERE reporter_id = :reporter_id AND user_id = :user_id
              AND coalesce(post_id, 0) = coalesce(CAST(:post_id AS bigint), 0) AND status = '{OPEN}'""")
        params = {
            "report_id": report.report_id,
            "reporter_id": report.reporter_id,
            "post_id": report.post_id,
            "user_id": report.user_id,
            "reason": report.reason,
            "comment": report.comment,
        }
        async with self.engine.begin() as conn:
            row = (await conn.execute(insert, params)).first()
            if row is not None:
                return ReportRow(*row), True
            row = (await conn.execute(existing, params)).first()
        if row is None:  # resolved between the two statements: report anew
            return await self.create(report)
        return ReportRow(*row), False

    async def get(self, report_id: int) -> ReportRow | None:
        query = sa.text(f'SELECT {_COLUMNS} FROM "{SCHEMA}".reports WHERE report_id = :id')
        async with self.engine.connect() as conn:
            row = (await conn.execute(query, {"id": report_id})).first()
        return None if row is None else ReportRow(*row)

    async def page(self, status: str, after_id: int, limit: int) -> list[ReportRow]:
        """Reports with `status`, oldest first, after `after_id`."""
        query = sa.text(f"""SELECT {_COLUMNS} FROM "{SCHEMA}".reports
            WHERE status = :status AND report_id > :after ORDER BY report_id LIMIT :limit""")
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query, {"status": status, "after": after_id, "limit": limit})).all()
        return [ReportRow(*r) for r in rows]

    async def resolve(
        self, report_id: int, decision: str, operator: str, note: str, event_for: EventFor, carry_out: CarryOut
    ) -> list[ReportRow]:
        """Resolves the report and every other open report of its target, with
        an event for each, in one transaction; the resolved rows, the named
        report first. `carry_out` runs first, on the locked open report: what
        it raises rolls everything back. A suspension is recorded with it.
        AlreadyResolved when the named report was resolved before; an empty
        list when there is no such report."""
        lock = sa.text(f'SELECT {_COLUMNS} FROM "{SCHEMA}".reports WHERE report_id = :id FOR UPDATE')
        close = sa.text(f"""UPDATE "{SCHEMA}".reports
            SET status = '{RESOLVED}', decision = :decision, resolved_by = :operator,
                resolution_note = :note, resolved_at = now()
            WHERE status = '{OPEN}' AND user_id = :user_id
              AND coalesce(post_id, 0) = coalesce(CAST(:post_id AS bigint), 0)
            RETURNING {_COLUMNS}""")
        async with self.engine.begin() as conn:
            found = (await conn.execute(lock, {"id": report_id})).first()
            if found is None:
                return []
            row = ReportRow(*found)
            if row.status != OPEN:
                raise AlreadyResolved(row)
            if decision == SUSPEND_ACCOUNT:
                await conn.execute(_ACCOUNT_LOCK, {"user_id": str(row.user_id)})
            await carry_out(row)
            if decision == SUSPEND_ACCOUNT:
                await _record_suspension(conn, row, operator)
            params = {"decision": decision, "operator": operator, "note": note}
            closed = (await conn.execute(close, {**params, "user_id": row.user_id, "post_id": row.post_id})).all()
            rows = [ReportRow(*r) for r in closed]
            for resolved in rows:
                await self.outbox.add(conn, *_with_topic(event_for(resolved)))
        self.outbox.notify()
        return sorted(rows, key=lambda r: r.report_id != report_id)

    async def reinstate(
        self, user_id: int, operator: str, note: str, carry_out: Callable[[], Awaitable[None]]
    ) -> datetime.datetime:
        """Lifts the account's suspension in force: `carry_out` (identity's
        reinstatement) runs on the locked record, then the record says who
        lifted it; the time it was lifted. NotSuspended when no suspension is
        in force."""
        lock = sa.text(f"""SELECT reinstated_at FROM "{SCHEMA}".suspensions
            WHERE user_id = :user_id FOR UPDATE""")
        lift = sa.text(f"""UPDATE "{SCHEMA}".suspensions
            SET reinstated_by = :operator, reinstate_note = :note, reinstated_at = now()
            WHERE user_id = :user_id RETURNING reinstated_at""")
        async with self.engine.begin() as conn:
            await conn.execute(_ACCOUNT_LOCK, {"user_id": str(user_id)})
            found = (await conn.execute(lock, {"user_id": user_id})).first()
            if found is None or found[0] is not None:
                raise NotSuspended(user_id)
            await carry_out()
            lifted = (await conn.execute(lift, {"user_id": user_id, "operator": operator, "note": note})).scalar_one()
        return lifted


async def _record_suspension(conn, row: ReportRow, operator: str) -> None:
    """Records the suspension; one already in force keeps its first record."""
    await conn.execute(
        sa.text(f"""INSERT INTO "{SCHEMA}".suspensions (user_id, report_id, suspended_by)
            VALUES (:user_id, :report_id, :operator)
            ON CONFLICT (user_id) DO UPDATE SET report_id = EXCLUDED.report_id,
                suspended_by = EXCLUDED.suspended_by, suspended_at = now(),
                reinstated_by = '', reinstate_note = '', reinstated_at = NULL
            WHERE "{SCHEMA}".suspensions.reinstated_at IS NOT NULL"""),
        {"user_id": row.user_id, "report_id": row.report_id, "operator": operator},
    )


def _with_topic(event: tuple[int, bytes, bytes]) -> tuple[int, str, bytes, bytes]:
    event_id, key, payload = event
    return event_id, MODERATION_TOPIC, key, payload
