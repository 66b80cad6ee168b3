"""The recovery sweep's index leaves out failed checkouts.

0001 indexed (and the sweep claimed) every checkout that was not finished
*or* had not cleared its cart. A failed checkout keeps its cart on purpose (the
buyer may try again), so it matched for ever: the sweep took every failed
saga over every couple of seconds, found nothing to do and let its lease run
out again, which kept a core busy on a machine with many refused checkouts.
Only a succeeded checkout has a cart left to clear.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS orders.checkouts_unfinished")
    op.execute("""CREATE INDEX checkouts_unfinished ON orders.checkouts (lease_until)
                  WHERE state NOT IN ('SUCCEEDED', 'FAILED') OR (state = 'SUCCEEDED' AND NOT cart_cleared)""")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS orders.checkouts_unfinished")
    op.execute("""CREATE INDEX checkouts_unfinished ON orders.checkouts (lease_until)
                  WHERE state NOT IN ('SUCCEEDED', 'FAILED') OR NOT cart_cleared""")
