"""checkout sweep: re-read lapsed open checkouts from Stripe

Revision ID: 0008_checkout_sweep
Revises: 0007_refund_canceled
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_checkout_sweep"
down_revision = "0007_refund_canceled"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("checkouts", sa.Column("stripe_checked_at", sa.DateTime(timezone=True), nullable=True))
    # Few checkouts stay open: the sweep of lapsed sessions and a buyer's earlier tabs read those.
    op.create_index(
        "ix_checkouts_open_expiry", "checkouts", ["expires_at"], unique=False, postgresql_where=sa.text("state = 'open'")
    )
    op.create_index(
        "ix_checkouts_open_code", "checkouts", ["discount_code_id"], unique=False, postgresql_where=sa.text("state = 'open'")
    )


def downgrade() -> None:
    op.drop_index("ix_checkouts_open_code", table_name="checkouts", postgresql_where=sa.text("state = 'open'"))
    op.drop_index("ix_checkouts_open_expiry", table_name="checkouts", postgresql_where=sa.text("state = 'open'"))
    op.drop_column("checkouts", "stripe_checked_at")
