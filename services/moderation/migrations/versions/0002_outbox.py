"""the event outbox (decisions reach their reporters through Kafka)

Revision ID: 0002
Revises: 0001
"""

from alembic import context, op

from services.kit.events.pg_outbox import create_table_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "moderation")


def upgrade() -> None:
    op.execute(create_table_sql(_schema()))


def downgrade() -> None:
    op.execute(f'DROP TABLE IF EXISTS "{_schema()}".outbox')
