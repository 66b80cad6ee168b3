"""A seller's products newest first, inactive ones included

For a seller's own listing with `include_inactive` (ListProducts); the
partial index of 0001 serves the public listing of active ones only.

Revision ID: 0003
Revises: 0002
"""

from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "catalog")


def upgrade() -> None:
    s = _schema()
    op.execute(f'CREATE INDEX IF NOT EXISTS products_seller_newest ON "{s}".products (seller_id, id DESC)')


def downgrade() -> None:
    op.execute(f'DROP INDEX IF EXISTS "{_schema()}".products_seller_newest')
