"""refunds can be canceled

Revision ID: 0007_refund_canceled
Revises: 0006
"""

from alembic import op

revision = "0007_refund_canceled"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new enum value may not be used in the transaction that adds it; nothing here uses it.
    op.execute("ALTER TYPE refund_state ADD VALUE IF NOT EXISTS 'canceled'")


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value: the type is rebuilt without it (canceled -> failed).
    op.execute("UPDATE refunds SET state = 'failed' WHERE state = 'canceled'")
    op.drop_index("ix_refunds_pending", table_name="refunds", postgresql_where="state = 'pending'")
    op.execute("ALTER TYPE refund_state RENAME TO refund_state_old")
    op.execute("CREATE TYPE refund_state AS ENUM ('pending', 'succeeded', 'failed')")
    op.execute("ALTER TABLE refunds ALTER COLUMN state TYPE refund_state USING state::text::refund_state")
    op.execute("DROP TYPE refund_state_old")
    op.create_index("ix_refunds_pending", "refunds", ["created_at"], unique=False, postgresql_where="state = 'pending'")
