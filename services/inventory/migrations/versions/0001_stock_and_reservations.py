"""stock levels, reservations, stock additions

Revision ID: 0001
Revises:
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "inventory")


def upgrade() -> None:
    s = _schema()
    # The CHECKs are the last line of defence against overselling: even a bug
    # in the UPDATEs cannot drive a counter below zero.
    op.execute(f"""CREATE TABLE "{s}".stock (
        product_id bigint PRIMARY KEY,
        available bigint NOT NULL CHECK (available >= 0),
        reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        sold bigint NOT NULL DEFAULT 0 CHECK (sold >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    # One row per reservation id, including tombstones (RELEASED with no
    # items) for ids released before they were ever reserved. Lines are a
    # small JSON array: always read and written with their reservation.
    op.execute(f"""CREATE TABLE "{s}".reservations (
        reservation_id text PRIMARY KEY,
        state text NOT NULL CHECK (state IN ('HELD', 'COMMITTED', 'RELEASED')),
        items jsonb NOT NULL DEFAULT '[]',
        expire_time timestamptz,
        release_reason text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    # The sweeper's scan: only held reservations, by expiry.
    op.execute(f"""CREATE INDEX reservations_held_by_expiry ON "{s}".reservations (expire_time)
        WHERE state = 'HELD'""")
    # AddStock idempotency: one row per (product, key) that added units.
    op.execute(f"""CREATE TABLE "{s}".stock_additions (
        product_id bigint NOT NULL REFERENCES "{s}".stock (product_id),
        idempotency_key text NOT NULL,
        quantity bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (product_id, idempotency_key)
    )""")


def downgrade() -> None:
    s = _schema()
    op.execute(f'DROP TABLE IF EXISTS "{s}".stock_additions')
    op.execute(f'DROP TABLE IF EXISTS "{s}".reservations')
    op.execute(f'DROP TABLE IF EXISTS "{s}".stock')
