"""payments and the append-only payments ledger

Revision ID: 0001
Revises:
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _schema() -> str:
    return context.config.attributes.get("schema", "payments")


def upgrade() -> None:
    s = _schema()
    # One row per caller idempotency key (the UNIQUE is what makes concurrent
    # AuthorizePayment calls with one key share one payment).
    # authorization_sent_at is set, and committed, just before the
    # authorization request leaves: a PENDING payment without it provably
    # never reached the provider, so it can be voided without asking it.
    op.execute(f"""CREATE TABLE "{s}".payments (
        id bigint PRIMARY KEY,
        idempotency_key text NOT NULL UNIQUE,
        buyer_id bigint NOT NULL,
        amount_minor bigint NOT NULL CHECK (amount_minor > 0),
        currency text NOT NULL CHECK (currency ~ '^[A-Z]{{3}}$'),
        payment_method text NOT NULL,
        reference text NOT NULL DEFAULT '',
        status text NOT NULL CHECK (status IN
            ('PENDING', 'AUTHORIZED', 'DECLINED', 'CAPTURED', 'VOIDED', 'REFUNDED')),
        provider_ref text NOT NULL DEFAULT '',
        decline_reason text NOT NULL DEFAULT '',
        authorization_sent_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )""")
    # Payments whose authorization outcome is still unknown (operators, and
    # any future settling sweep, look for these).
    op.execute(f"""CREATE INDEX payments_pending_by_age ON "{s}".payments (created_at)
        WHERE status = 'PENDING'""")

    # One row per provider call outcome, for good.
    op.execute(f"""CREATE TABLE "{s}".ledger (
        id bigint PRIMARY KEY,
        payment_id bigint NOT NULL REFERENCES "{s}".payments (id),
        operation text NOT NULL CHECK (operation IN ('AUTHORIZE', 'CAPTURE', 'VOID', 'REFUND')),
        outcome text NOT NULL CHECK (outcome IN ('SUCCEEDED', 'DECLINED', 'FAILED')),
        amount_minor bigint NOT NULL,
        provider_idempotency_key text NOT NULL,
        provider_ref text NOT NULL DEFAULT '',
        detail text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )""")
    op.execute(f'CREATE INDEX ledger_by_payment ON "{s}".ledger (payment_id, created_at, id)')
    # Append-only, enforced by the database and not only by our code: a
    # ledger row, once written, is never changed or removed.
    op.execute(f"""CREATE FUNCTION "{s}".ledger_is_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the payments ledger is append-only (% refused)', TG_OP;
        END $$""")
    op.execute(f"""CREATE TRIGGER ledger_no_update_or_delete BEFORE UPDATE OR DELETE ON "{s}".ledger
        FOR EACH ROW EXECUTE FUNCTION "{s}".ledger_is_append_only()""")
    op.execute(f"""CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON "{s}".ledger
        FOR EACH STATEMENT EXECUTE FUNCTION "{s}".ledger_is_append_only()""")


def downgrade() -> None:
    s = _schema()
    op.execute(f'DROP TABLE IF EXISTS "{s}".ledger')
    op.execute(f'DROP FUNCTION IF EXISTS "{s}".ledger_is_append_only()')
    op.execute(f'DROP TABLE IF EXISTS "{s}".payments')
