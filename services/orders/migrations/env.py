"""Alembic environment of the orders schema (see services/kit/stores/migrations.py)."""

from alembic import context

from services.kit.stores.migrations import run_env

run_env(context)
