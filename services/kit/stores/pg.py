"""PostgreSQL through async SQLAlchemy (psycopg 3)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.kit import tracing


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
        pool_pre_ping=True,
        pool_timeout=settings.pg_pool_timeout_seconds,
    )
    tracing.instrument_engine(created)
    return created
