"""Alembic environment of the orders schema (see services/kit/migrations.py)."""

from alembic import context

from services.kit.migrations import run_env

run_env(context)
