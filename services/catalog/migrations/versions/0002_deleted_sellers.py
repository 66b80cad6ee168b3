"""Sellers whose accounts were deleted

Written by the account consumer before it deactivates the seller's
products; creating or reactivating a product of a seller listed here is
refused, so nothing of theirs is on sale again (an access token outlives
its session by up to its lifetime).

Revision ID: 0002
Revises: 0001
"""

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "catalog")


def upgrade() -> None:
    s = _schema()
    op.execute(f"""CREATE TABLE "{s}".deleted_sellers (
        seller_id bigint PRIMARY KEY,
        deleted_at timestamptz NOT NULL DEFAULT now()
    )""")


def downgrade() -> None:
    op.execute(f'DROP TABLE IF EXISTS "{_schema()}".deleted_sellers')
