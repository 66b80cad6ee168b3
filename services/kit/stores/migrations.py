"""Alembic migrations for the services that own a PostgreSQL schema.

Each such service keeps its revisions in `services/<service>/migrations/`
(an `env.py` that calls `run_env`, and `versions/`). A service brings its
schema to the newest revision when it starts; concurrent starts take turns
on an advisory lock, so replicas never race the DDL. Operators run the same
by hand:

    python -m services.kit.stores.migrations <service>            # upgrade to head
    python -m services.kit.stores.migrations <service> current    # show the revision
"""

from __future__ import annotations

import asyncio
import importlib
import sys

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import NullPool

from services.kit.settings import REPO_ROOT, load


def _config(service: str, schema: str, dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO_ROOT / "services" / service / "migrations"))
    cfg.attributes["schema"] = schema
    cfg.attributes["dsn"] = dsn
    return cfg


def upgrade(service: str, schema: str, dsn: str, revision: str = "head") -> None:
    """Blocking: brings `schema` in the database at `dsn` to the newest revision of `service` (or to `revision`)."""
    command.upgrade(_config(service, schema, dsn), revision)


async def upgrade_async(service: str, schema: str, dsn: str) -> None:
    """upgrade() off the event loop (Alembic is synchronous)."""
    await asyncio.to_thread(upgrade, service, schema, dsn)


def run_env(context) -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    schema = context.config.attributes["schema"]
    engine = sa.create_engine(context.config.attributes["dsn"], poolclass=NullPool)
    with engine.connect() as conn:
        # Session-level lock: one migrator per schema at a time.
        conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": f"migrate:{schema}"})
        try:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.commit()
            context.configure(connection=conn, version_table_schema=schema, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": f"migrate:{schema}"})
            conn.commit()
    engine.dispose()


def _service_dsn(service: str) -> str:
    """The service's AVIARY_PG_DSN as the service itself reads it (services/<service>/settings.py)."""
    module = importlib.import_module(f"services.{service}.settings")
    return load(getattr(module, f"{service.capitalize()}Settings")).pg_dsn


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m services.kit.stores.migrations <service> [upgrade|current|history]")
    service, action = argv[0], (argv[1] if len(argv) > 1 else "upgrade")
    cfg = _config(service, service, _service_dsn(service))
    if action == "upgrade":
        command.upgrade(cfg, "head")
    elif action == "current":
        command.current(cfg, verbose=True)
    elif action == "history":
        command.history(cfg)
    else:
        raise SystemExit(f"unknown action {action!r}: use upgrade, current or history")


if __name__ == "__main__":
    main(sys.argv[1:])
