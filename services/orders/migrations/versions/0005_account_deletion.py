"""Account deletion: open parts by seller, and the buyers whose accounts are gone.

CountOpenSales (identity asks it before deleting an account) counts a
seller's open parts: PENDING or PACKED, neither shipped, delivered nor
cancelled. The partial index holds only those, so the count reads a seller's
open parts alone, however many orders they fulfilled before.

`deleted_buyers` holds the accounts whose AccountDeleted orders has applied:
a checkout by one of them is refused, so no order is written for a buyer
after their orders were anonymised (an access token outlives its session by
up to its lifetime).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE INDEX fulfilments_open_by_seller ON orders.fulfilments (seller_id, order_id)
                  WHERE delivery_status IN ('DELIVERY_STATUS_PENDING', 'DELIVERY_STATUS_PACKED')""")
    op.execute("""
        CREATE TABLE orders.deleted_buyers (
            user_id bigint PRIMARY KEY,
            deleted_at timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS orders.deleted_buyers")
    op.execute("DROP INDEX IF EXISTS orders.fulfilments_open_by_seller")
