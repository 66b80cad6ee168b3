"""reports of posts and accounts

Revision ID: 0001
Revises:
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "moderation")


def upgrade() -> None:
    s = _schema()
    op.execute(f"""CREATE TABLE "{s}".reports (
        report_id bigint PRIMARY KEY,
        reporter_id bigint NOT NULL,
        post_id bigint,
        user_id bigint NOT NULL,
        reason text NOT NULL,
        comment text NOT NULL DEFAULT '',
        status text NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
        decision text NOT NULL DEFAULT '',
        resolved_by text NOT NULL DEFAULT '',
        resolution_note text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        resolved_at timestamptz
    )""")
    # A reporter has at most one open report per target: reporting again returns it.
    op.execute(f"""CREATE UNIQUE INDEX reports_one_open_per_reporter_target
        ON "{s}".reports (reporter_id, user_id, coalesce(post_id, 0)) WHERE status = 'OPEN'""")
    # The operators' queue (oldest first) and a target's open reports.
    op.execute(f'CREATE INDEX reports_by_status ON "{s}".reports (status, report_id)')
    op.execute(f"""CREATE INDEX reports_open_by_target ON "{s}".reports (user_id, post_id)
        WHERE status = 'OPEN'""")


def downgrade() -> None:
    op.execute(f'DROP TABLE IF EXISTS "{_schema()}".reports')
