"""The sellers whose accounts are gone.

Written by the account consumer under an exclusive advisory lock per seller;
a checkout's move to RESERVED takes the same lock shared for each seller of
its priced lines and is refused when one is listed here, so no new part is
ever written for a deleted seller.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE orders.deleted_sellers (
            seller_id bigint PRIMARY KEY,
            deleted_at timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS orders.deleted_sellers")
