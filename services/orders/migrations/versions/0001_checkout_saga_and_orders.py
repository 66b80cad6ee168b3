"""Checkout sagas, orders, their lines and delivery history, and the outbox.

Revision ID: 0001
Revises:
"""

from alembic import op

from services.kit.events.pg_outbox import create_table_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (buyer, idempotency key): the saga's durable state. `state`
    # moves forward one step at a time; a failure records the step that failed
    # and why, and moves to COMPENSATING, then FAILED once every compensation
    # has run. `attempt`
    # counts restarts of a key whose failure left nothing behind (retryable).
    op.execute("""
        CREATE TABLE orders.checkouts (
            id bigint PRIMARY KEY,
            buyer_id bigint NOT NULL,
            idempotency_key text NOT NULL,
            payment_method text NOT NULL,
            attempt int NOT NULL DEFAULT 1,
            state text NOT NULL,
            failed_step text,
            failure_code text,
            failure_message text,
            retryable boolean NOT NULL DEFAULT false,
            lines jsonb,
            total_minor bigint,
            currency text,
            order_id bigint,
            payment_id text,
            cart_cleared boolean NOT NULL DEFAULT false,
            lease_until timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (buyer_id, idempotency_key)
        )""")
    # The recovery sweep looks only at sagas still running.
    op.execute("""CREATE INDEX checkouts_unfinished ON orders.checkouts (lease_until)
                  WHERE state NOT IN ('SUCCEEDED', 'FAILED') OR NOT cart_cleared""")
    # What each step and compensation did, in order: for operators and tests.
    op.execute("""
        CREATE TABLE orders.checkout_steps (
            checkout_id bigint NOT NULL,
            seq bigserial,
            attempt int NOT NULL,
            step text NOT NULL,
            outcome text NOT NULL,
            detail text NOT NULL DEFAULT '',
            at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (checkout_id, seq)
        )""")
    op.execute("""
        CREATE TABLE orders.orders (
            id bigint PRIMARY KEY,
            checkout_id bigint NOT NULL UNIQUE,
            buyer_id bigint NOT NULL,
            idempotency_key text NOT NULL,
            status text NOT NULL,
            total_minor bigint NOT NULL,
            currency text NOT NULL,
            payment_status text NOT NULL,
            delivery_status text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX orders_by_buyer ON orders.orders (buyer_id, id DESC)")
    op.execute("""
        CREATE TABLE orders.order_items (
            order_id bigint NOT NULL REFERENCES orders.orders (id),
            line int NOT NULL,
            product_id bigint NOT NULL,
            seller_id bigint NOT NULL,
            title text NOT NULL,
            quantity bigint NOT NULL,
            unit_price_minor bigint NOT NULL,
            PRIMARY KEY (order_id, line)
        )""")
    op.execute("CREATE INDEX order_items_by_seller ON orders.order_items (seller_id, order_id DESC)")
    op.execute("""
        CREATE TABLE orders.delivery_events (
            order_id bigint NOT NULL REFERENCES orders.orders (id),
            seq int NOT NULL,
            status text NOT NULL,
            actor text NOT NULL,
            note text NOT NULL DEFAULT '',
            at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (order_id, seq)
        )""")
    op.execute(create_table_sql("orders"))


def downgrade() -> None:
    for table in ("outbox", "delivery_events", "order_items", "orders", "checkout_steps", "checkouts"):
        op.execute(f"DROP TABLE IF EXISTS orders.{table}")
