"""Account deletion: payments by buyer, and the buyers whose accounts are gone.

`payments_by_buyer` finds a deleted buyer's payments without a scan; it
holds only rows still tied to a buyer (anonymised ones have buyer_id 0).

`deleted_buyers` holds the accounts whose AccountDeleted payments has
applied: a payment of theirs that was left with its buyer (an authorization
still unanswered, or one written after the deletion) loses it when its
status is next recorded.

Revision ID: 0002
Revises: 0001
"""

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "payments")


def upgrade() -> None:
    s = _schema()
    op.execute(f'CREATE INDEX payments_by_buyer ON "{s}".payments (buyer_id) WHERE buyer_id <> 0')
    op.execute(f"""CREATE TABLE "{s}".deleted_buyers (
        user_id bigint PRIMARY KEY,
        deleted_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )""")


def downgrade() -> None:
    s = _schema()
    op.execute(f'DROP TABLE IF EXISTS "{s}".deleted_buyers')
    op.execute(f'DROP INDEX IF EXISTS "{s}".payments_by_buyer')
