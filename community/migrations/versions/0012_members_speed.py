"""members speed: the directory's sort indexes also carry the columns its filters read, so a
page walks one sort index and filters inside it (an index-only scan), without a visit to the
table per member it passes over

Revision ID: 0012_members_speed
Revises: 0011_members_directory
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_members_speed"
down_revision = "0011_members_directory"
branch_labels = None
depends_on = None

# What a directory filter reads (community/members/directory.py `conditions`), the search
# (search_key, trigrams) and another currency's total (totals) apart: they stay on the table.
FILTERED = ["status", "spent", "tags", "offer_ids", "joined_at", "last_payment_at", "user_id"]
LAST_PAYMENT = sa.text("coalesce(last_payment_at, '-infinity'::timestamptz)")
SORT_INDEXES = {
    "ix_members_name": ["community_id", "name_key", "id"],
    "ix_members_email": ["community_id", "email_key", "id"],
    "ix_members_joined": ["community_id", "joined_at", "id"],
    "ix_members_spent": ["community_id", "spent", "id"],
    "ix_members_last_payment": ["community_id", LAST_PAYMENT, "id"],
}


def _create(name: str, columns: list, covering: bool) -> None:
    include = [c for c in FILTERED if c not in columns] if covering else []
    op.create_index(name, "members", columns, postgresql_include=include)


def upgrade() -> None:
    for name, columns in SORT_INDEXES.items():
        op.drop_index(name, table_name="members")
        _create(name, columns, covering=True)


def downgrade() -> None:
    for name, columns in SORT_INDEXES.items():
        op.drop_index(name, table_name="members")
        _create(name, columns, covering=False)
