"""Checkouts keep the parameters their key came with, and their failure's details.

`request_params` (payment method, expected total, as model.checkout_params
builds them) lets a key reused with other parameters be refused instead of
answered with the first outcome. Rows from before it are NULL and read as
their payment method alone. `failure_details` holds the google.rpc detail
messages of a failure (a serialized google.rpc.Status), e.g. the new total
of a price the buyer has not agreed to, so a retry of the key hears them too.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE orders.checkouts ADD COLUMN request_params jsonb, ADD COLUMN failure_details bytea")


def downgrade() -> None:
    op.execute("ALTER TABLE orders.checkouts DROP COLUMN request_params, DROP COLUMN failure_details")
