from alembic import context

from services.kit.stores.migrations import run_env

run_env(context)
