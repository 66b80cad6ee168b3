"""One fulfilment per seller of an order, and the buyer's cancel.

Existing orders get a fulfilment per seller of their lines, at the order's
delivery status (until now the whole order moved as one). Their history
moves (every entry but the confirmation) are credited to the seller when the
order has one; an older multi-seller order's moves stay order-wide
(seller_id NULL), which is what they were.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE orders.fulfilments (
            order_id bigint NOT NULL REFERENCES orders.orders (id),
            seller_id bigint NOT NULL,
            delivery_status text NOT NULL,
            PRIMARY KEY (order_id, seller_id)
        )""")
    op.execute("""
        INSERT INTO orders.fulfilments (order_id, seller_id, delivery_status)
        SELECT DISTINCT i.order_id, i.seller_id, o.delivery_status
        FROM orders.order_items i JOIN orders.orders o ON o.id = i.order_id""")
    # NULL: an entry about the whole order (its confirmation, its cancellation).
    op.execute("ALTER TABLE orders.delivery_events ADD COLUMN seller_id bigint")
    op.execute("""
        UPDATE orders.delivery_events e SET seller_id = single.seller_id
        FROM (SELECT order_id, min(seller_id) AS seller_id FROM orders.fulfilments
              GROUP BY order_id HAVING count(*) = 1) single
        WHERE e.order_id = single.order_id AND e.seq > 0""")
    # The buyer's cancel: its progress (REQUESTED -> RESTOCKED -> DONE), and a
    # lease the recovery sweep takes over when the process driving it died.
    op.execute("""
        ALTER TABLE orders.orders
            ADD COLUMN cancel_state text,
            ADD COLUMN cancel_reason text NOT NULL DEFAULT '',
            ADD COLUMN cancel_time timestamptz,
            ADD COLUMN cancel_lease_until timestamptz""")
    op.execute("""CREATE INDEX orders_cancels_unfinished ON orders.orders (cancel_lease_until)
                  WHERE cancel_state IN ('REQUESTED', 'RESTOCKED')""")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS orders.orders_cancels_unfinished")
    op.execute("""
        ALTER TABLE orders.orders DROP COLUMN IF EXISTS cancel_state, DROP COLUMN IF EXISTS cancel_reason,
            DROP COLUMN IF EXISTS cancel_time, DROP COLUMN IF EXISTS cancel_lease_until""")
    op.execute("ALTER TABLE orders.delivery_events DROP COLUMN IF EXISTS seller_id")
    op.execute("DROP TABLE IF EXISTS orders.fulfilments")
