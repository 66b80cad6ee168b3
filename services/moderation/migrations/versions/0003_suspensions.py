"""suspensions moderation decided, and their reinstatements

Revision ID: 0003
Revises: 0002
"""

from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "moderation")


def upgrade() -> None:
    # One row per account ever suspended: the latest suspension, lifted once
    # reinstated_at is set. Identity holds the account's standing; this is
    # moderation's record of who decided it and why.
    op.execute(f"""CREATE TABLE "{_schema()}".suspensions (
        user_id bigint PRIMARY KEY,
        report_id bigint,
        suspended_by text NOT NULL,
        suspended_at timestamptz NOT NULL DEFAULT now(),
        reinstated_by text NOT NULL DEFAULT '',
        reinstate_note text NOT NULL DEFAULT '',
        reinstated_at timestamptz
    )""")


def downgrade() -> None:
    op.execute(f'DROP TABLE IF EXISTS "{_schema()}".suspensions')
