"""PostgreSQL storage for payments and the ledger (schema `payments`): the only code that talks SQL.

Concurrency model. Everything that may call the provider for a payment runs
inside `locked(payment_id)`: one transaction holding a transaction-scoped
advisory lock on the payment, so across every replica exactly one caller at
a time decides and calls the provider for it; the others wait, then find the
outcome already written. The lock dies with the transaction, so a process
that dies mid-call leaves nothing held - only a PENDING row that the next
caller settles.

Just before an authorization request leaves, `mark_authorization_sent`
commits a marker on a *separate* connection (from a small pool of its own,
so it can never wait behind connections that are themselves waiting for the
lock): if we then die, the next caller knows the request may have arrived.
"""

from __future__ import annotations

import datetime
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import AsyncIterator

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.stores import migrations, pg
from services.kit.server.ids import IdGenerator
from services.payments import rules
from services.payments.settings import PaymentsSettings
from services.payments.validation import AuthorizeInput

log = logging.getLogger(__name__)

SCHEMA = "payments"
_metadata = sa.MetaData(schema=SCHEMA)
payments = sa.Table(
    "payments",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("buyer_id", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("payment_method", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("provider_ref", sa.Text, nullable=False),
    sa.Column("decline_reason", sa.Text, nullable=False),
    sa.Column("authorization_sent_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
ledger = sa.Table(
    "ledger",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("payment_id", sa.BigInteger, nullable=False),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("provider_idempotency_key", sa.Text, nullable=False),
    sa.Column("provider_ref", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
deleted_buyers = sa.Table(
    "deleted_buyers",
    _metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True),
)

_NOW = sa.func.clock_timestamp()
_P = sa.bindparam

# Statements are built once: building them per call was a measurable share
# of the CPU each payment costs.
_INSERT_PAYMENT = (
    postgresql.insert(payments)
    .values(
        id=_P("new_id"),
        idempotency_key=_P("key"),
        buyer_id=_P("buyer"),
        amount_minor=_P("amount"),
        currency=_P("cur"),
        payment_method=_P("method"),
        reference=_P("ref_text"),
        status=rules.PENDING,
        provider_ref="",
        decline_reason="",
        created_at=_NOW,
        updated_at=_NOW,
    )
    .on_conflict_do_nothing(index_elements=[payments.c.idempotency_key])
    .returning(*payments.c)
)
_PAYMENT_BY_ID = sa.select(payments).where(payments.c.id == _P("pid"))
_PAYMENT_BY_KEY = sa.select(payments).where(payments.c.idempotency_key == _P("key"))
_LEDGER_OF = sa.select(ledger).where(ledger.c.payment_id == _P("pid")).order_by(ledger.c.created_at, ledger.c.id)
# Two-key advisory locks live in their own key space (apart from the
# single-bigint one); the first key keeps payments apart from anyone else's.
# lock_timeout is set first, in the same round trip: never wait forever
# behind a stuck holder (a holder's provider call is bounded far below it).
_LOCK = sa.text(
    "SELECT set_config('lock_timeout', :timeout, true), "
    "pg_advisory_xact_lock(hashtext('aviary.payments'), hashtext(:id))"
)
_MARK_SENT = (
    sa.update(payments)
    .where(payments.c.id == _P("pid"), payments.c.authorization_sent_at.is_(None))
    .values(authorization_sent_at=_NOW)
)
_INSERT_ENTRY = sa.insert(ledger).values(
    id=_P("entry_id"),
    payment_id=_P("pid"),
    operation=_P("op"),
    outcome=_P("result"),
    amount_minor=_P("amount"),
    provider_idempotency_key=_P("provider_key"),
    provider_ref=_P("entry_ref"),
    detail=_P("entry_detail"),
    created_at=_NOW,
)
# A deleted buyer's payment that kept its buyer (its authorization was out
# when the deletion came, or it was written after) loses it with its next status.
_BUYER_UNLESS_DELETED = sa.case(
    (sa.exists().where(deleted_buyers.c.user_id == payments.c.buyer_id), 0), else_=payments.c.buyer_id
)
# The entry and the payment's new state in one round trip (a data-modifying
# CTE runs even though the outer statement does not read it).
_RECORD = (
    sa.update(payments)
    .where(payments.c.id == _P("pid"))
    .values(
        status=_P("new_status"),
        decline_reason=_P("new_reason"),
        provider_ref=_P("payment_ref"),
        buyer_id=_BUYER_UNLESS_DELETED,
        updated_at=_NOW,
    )
    .returning(*payments.c)
    .add_cte(_INSERT_ENTRY.returning(ledger.c.id).cte("entry"))
)


_MARK_BUYER_DELETED = sa.text(f"INSERT INTO {SCHEMA}.deleted_buyers (user_id) VALUES (:buyer) ON CONFLICT DO NOTHING")
# A payment whose authorization is out keeps its buyer: a resend must carry
# the very parameters of the first request (the buyer is in its metadata),
# or the provider refuses the key. So does one whose lock another caller
# holds (it may be about to send); both lose it when next recorded. The lock
# taken here is held to the commit, so the next caller reads the row after.
_ANONYMISE_BUYER = sa.text(f"""
    UPDATE {SCHEMA}.payments SET buyer_id = 0
    WHERE buyer_id = :buyer AND CASE
        WHEN status <> 'PENDING' THEN true
        WHEN authorization_sent_at IS NOT NULL THEN false
        ELSE pg_try_advisory_xact_lock(hashtext('aviary.payments'), hashtext(id::text))
    END""")


@dataclass(frozen=True)
class PaymentRecord:
    id: int
    idempotency_key: str
    buyer_id: int
    amount_minor: int
    currency: str
    payment_method: str
    reference: str
    status: str
    provider_ref: str
    decline_reason: str
    authorization_sent: bool
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class LedgerRecord:
    id: int
    payment_id: int
    operation: str
    outcome: str
    amount_minor: int
    provider_idempotency_key: str
    provider_ref: str
    detail: str
    created_at: datetime.datetime


class PaymentBusy(Exception):
    """Another caller held the payment's lock for longer than lock_timeout."""


class PaymentsStore:
    def __init__(self, settings: PaymentsSettings, ids: IdGenerator) -> None:
        self._settings = settings
        self._ids = ids
        self._engine: AsyncEngine | None = None
        self._auto: AsyncEngine | None = None
        self._marker_pool: AsyncEngine | None = None
        self._marker_engine: AsyncEngine | None = None
        self._lock_timeout = f"{int(settings.lock_timeout_seconds * 1000)}ms"

    async def start(self) -> None:
        await migrations.upgrade_async("payments", SCHEMA, self._settings.pg_dsn)
        if self._engine is None:
            # A connection is held for the length of a provider call (the
            # lock lives in its transaction), so size for concurrent calls.
            self._engine = pg.engine(self._settings, pool_size=self._settings.pg_pool_size)
            self._auto = pg.autocommit(self._engine)
            self._marker_pool = pg.engine(self._settings, pool_size=self._settings.pg_marker_pool_size)
            self._marker_engine = pg.autocommit(self._marker_pool)
        log.info("payments schema ready")

    async def stop(self) -> None:
        for engine in (self._engine, self._marker_pool):
            if engine is not None:
                await engine.dispose()

    # -- payments --------------------------------------------------------------

    async def create_or_get(self, payment_id: int, request: AuthorizeInput) -> tuple[PaymentRecord, bool]:
        """The payment of request.idempotency_key, created PENDING (and
        committed) when the key is new; True when this call created it."""
        async with self._autocommit() as conn:
            row = (
                await conn.execute(
                    _INSERT_PAYMENT,
                    {
                        "new_id": payment_id,
                        "key": request.idempotency_key,
                        "buyer": request.buyer_id,
                        "amount": request.amount_minor,
                        "cur": request.currency,
                        "method": request.payment_method,
                        "ref_text": request.reference,
                    },
                )
            ).first()
            if row is not None:
                return _payment(row), True
            # Rows are never deleted, so the conflicting one is there to read.
            row = (await conn.execute(_PAYMENT_BY_KEY, {"key": request.idempotency_key})).one()
            return _payment(row), False

    async def get(self, payment_id: int) -> PaymentRecord | None:
        async with self._autocommit() as conn:
            row = (await conn.execute(_PAYMENT_BY_ID, {"pid": payment_id})).first()
        return None if row is None else _payment(row)

    async def get_by_key(self, idempotency_key: str) -> PaymentRecord | None:
        async with self._autocommit() as conn:
            row = (await conn.execute(_PAYMENT_BY_KEY, {"key": idempotency_key})).first()
        return None if row is None else _payment(row)

    async def ledger_entries(self, payment_id: int) -> list[LedgerRecord]:
        async with self._autocommit() as conn:
            rows = (await conn.execute(_LEDGER_OF, {"pid": payment_id})).all()
        return [_ledger(row) for row in rows]

    async def forget_buyer(self, buyer_id: int) -> int:
        """Applies a buyer's account deletion; returns how many payments lost
        their buyer. The buyer is recorded as deleted first, committed, so a
        payment this pass leaves (or misses: written meanwhile) loses the
        buyer at its next status; then their payments get buyer_id 0 in one
        transaction. The ledger holds no buyer and is left as it is.
        Idempotent: a rerun finds nothing left it may change."""
        assert self._engine is not None, "call start() first"
        async with self._engine.begin() as conn:
            await conn.execute(_MARK_BUYER_DELETED, {"buyer": buyer_id})
        async with self._engine.begin() as conn:
            return (await conn.execute(_ANONYMISE_BUYER, {"buyer": buyer_id})).rowcount

    @asynccontextmanager
    async def locked(self, payment_id: int) -> AsyncIterator["LockedPayment"]:
        """A unit of work on one payment under its lock; committed when the
        block exits normally, rolled back (lock released) otherwise. No such
        payment -> LookupError."""
        assert self._engine is not None and self._marker_engine is not None, "call start() first"
        async with self._engine.begin() as conn:
            try:
                await conn.execute(_LOCK, {"timeout": self._lock_timeout, "id": str(payment_id)})
            except OperationalError as exc:
                if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                    raise PaymentBusy(payment_id) from exc
                raise
            # A statement of its own: its snapshot is taken after the lock,
            # so it sees what the previous holder committed.
            row = (await conn.execute(_PAYMENT_BY_ID, {"pid": payment_id})).first()
            if row is None:
                raise LookupError(payment_id)
            yield LockedPayment(conn, self._marker_engine, self._ids, _payment(row))

    def _autocommit(self):
        assert self._auto is not None, "call start() first"
        return self._auto.connect()


class LockedPayment:
    """One payment, read under its lock, and the writes allowed on it."""

    def __init__(
        self, conn: AsyncConnection, marker_engine: AsyncEngine, ids: IdGenerator, payment: PaymentRecord
    ) -> None:
        self._conn = conn
        self._marker_engine = marker_engine
        self._ids = ids
        self._wrote = False
        self.payment = payment

    async def mark_authorization_sent(self) -> None:
        """Commits, before the request leaves, that it may reach the provider."""
        if self.payment.authorization_sent:
            return
        # The marker connection would wait for our own row lock after a write.
        assert not self._wrote, "mark the authorization sent before writing in the unit of work"
        async with self._marker_engine.connect() as marker:
            await marker.execute(_MARK_SENT, {"pid": self.payment.id})
        self.payment = replace(self.payment, authorization_sent=True)

    async def record(
        self,
        *,
        operation: str,
        outcome: str,
        provider_idempotency_key: str,
        provider_ref: str = "",
        detail: str = "",
        status: str | None = None,
        decline_reason: str | None = None,
        payment_provider_ref: str | None = None,
    ) -> None:
        """One ledger entry, plus the payment's new status / decline reason /
        provider ref when given, in the unit of work's transaction."""
        self._wrote = True
        p = self.payment
        params = {
            "entry_id": self._ids.next_id(),
            "pid": p.id,
            "op": operation,
            "result": outcome,
            "amount": p.amount_minor,
            "provider_key": provider_idempotency_key,
            "entry_ref": provider_ref,
            "entry_detail": detail[:1000],
        }
        changed = (
            status not in (None, p.status)
            or decline_reason not in (None, p.decline_reason)
            or payment_provider_ref not in (None, "", p.provider_ref)
        )
        if not changed:
            await self._conn.execute(_INSERT_ENTRY, params)
            return
        params.update(
            new_status=status or p.status,
            new_reason=p.decline_reason if decline_reason is None else decline_reason,
            payment_ref=payment_provider_ref or p.provider_ref,
        )
        self.payment = _payment((await self._conn.execute(_RECORD, params)).one())


def _payment(row) -> PaymentRecord:
    return PaymentRecord(
        id=row.id,
        idempotency_key=row.idempotency_key,
        buyer_id=row.buyer_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        payment_method=row.payment_method,
        reference=row.reference,
        status=row.status,
        provider_ref=row.provider_ref,
        decline_reason=row.decline_reason,
        authorization_sent=row.authorization_sent_at is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _ledger(row) -> LedgerRecord:
    return LedgerRecord(
        id=row.id,
        payment_id=row.payment_id,
        operation=row.operation,
        outcome=row.outcome,
        amount_minor=row.amount_minor,
        provider_idempotency_key=row.provider_idempotency_key,
        provider_ref=row.provider_ref,
        detail=row.detail,
        created_at=row.created_at,
    )
