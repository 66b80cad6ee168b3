"""PostgreSQL through async SQLAlchemy (psycopg 3)."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.kit.config import Settings


def engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(settings.pg_dsn, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
