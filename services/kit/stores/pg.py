"""PostgreSQL through async SQLAlchemy (psycopg 3)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.kit import tracing

# A connection back in the pool for longer than this is pinged before its
# next use. One used more recently is trusted: pinging every checkout cost a
# round trip per transaction (about a fifth of a small transaction's CPU),
# and a connection can die just after a ping all the same.
PING_AFTER_IDLE_SECONDS = 1.0


class PgSettings(Protocol):
    """A service's settings that name its own database (pg_dsn_setting)."""

    @property
    def pg_dsn(self) -> str: ...

    @property
    def pg_pool_timeout_seconds(self) -> float: ...


def engine(settings: PgSettings, *, pool_size: int = 10) -> AsyncEngine:
    """A pool of exactly `pool_size` connections, opened as needed and kept.

    No overflow: SQLAlchemy closes an overflow connection as soon as it is
    checked in, so a burst above the pool size opened and closed a connection
    per transaction, and each open is a PostgreSQL backend fork plus a SCRAM
    handshake (milliseconds of CPU on both sides: more than the transaction).
    A transaction waits for a free connection instead, up to
    AVIARY_PG_POOL_TIMEOUT_SECONDS.
    """
    created = create_async_engine(
        settings.pg_dsn,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=settings.pg_pool_timeout_seconds,
        # The connection used last is used next: the rest stay idle rather
        # than each taking a turn, so a moderate rate keeps one or two
        # connections busy (no idle ping each, their statements prepared soonest).
        pool_use_lifo=True,
    )
    ping_idle_connections(created)
    tracing.instrument_engine(created)
    return created


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, each statement a transaction of its own: a single
    statement, or reads that need no snapshot in common (each statement takes
    its own under READ COMMITTED anyway), skip the BEGIN and the
    COMMIT/ROLLBACK round trips (a quarter to a third of a small read's client CPU).
    Nothing that must hold a lock or see its own writes across statements
    belongs here."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def ping_idle_connections(engine: AsyncEngine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Pings a pooled connection before use when it sat idle `idle_seconds`
    or more; a dead one (PostgreSQL restarted, or closed it) is replaced
    before the caller sees it, and so are the others opened before it. A
    statement that fails on a dead connection anyway does the same."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_from = record.info.pop("idle_from", None)
        if idle_from is None or time.monotonic() - idle_from < idle_seconds:
            return  # new, or just used
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            # The pool drops every connection opened before now (one that
            # died idle most likely went with all its siblings) and opens another.
            raise exc.InvalidatePoolError(f"idle connection failed its ping: {error}") from error
