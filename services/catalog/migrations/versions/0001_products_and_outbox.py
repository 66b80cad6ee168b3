"""products and the event outbox

Revision ID: 0001
Revises:
"""

from alembic import context, op

from services.kit.events.pg_outbox import create_table_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "catalog")


def upgrade() -> None:
    s = _schema()
    op.execute(f"""CREATE TABLE "{s}".products (
        id bigint PRIMARY KEY,
        seller_id bigint NOT NULL,
        title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 120),
        description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
        price_minor bigint NOT NULL CHECK (price_minor BETWEEN 1 AND 100000000),
        currency text NOT NULL CHECK (currency ~ '^[A-Z]{{3}}$'),
        media_ids bigint[] NOT NULL DEFAULT '{{}}',
        active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""")
    # Listings show active products newest first (ids are time-ordered), all
    # of them or one seller's.
    op.execute(f'CREATE INDEX products_active_newest ON "{s}".products (id DESC) WHERE active')
    op.execute(f'CREATE INDEX products_seller_active_newest ON "{s}".products (seller_id, id DESC) WHERE active')
    op.execute(create_table_sql(s))


def downgrade() -> None:
    s = _schema()
    op.execute(f'DROP TABLE IF EXISTS "{s}".outbox')
    op.execute(f'DROP TABLE IF EXISTS "{s}".products')
