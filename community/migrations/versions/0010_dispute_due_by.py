"""disputes: the evidence due date Stripe sends (evidence_details.due_by), kept for the console

Revision ID: 0010_dispute_due_by
Revises: 0009_email_changes
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_dispute_due_by"
down_revision = "0009_email_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("disputes", sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("disputes", "evidence_due_by")
