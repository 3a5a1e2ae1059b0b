"""notifications: per-community message settings and templates, per-offer overrides, per-staff
choices, and the delivery log (one row per event, message and recipient)

Revision ID: 0013_notifications
Revises: 0011_members_directory
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_notifications"
down_revision = "0012_members_speed"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "notification_settings",
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.String(60), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("community_id", "message", name="pk_notification_settings"),
        _fk("notification_settings", "community_id", "communities"),
    )
    op.create_table(
        "notification_offer_overrides",
        sa.Column("offer_id", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.String(60), nullable=False),
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("offer_id", "message", name="pk_notification_offer_overrides"),
        _fk("notification_offer_overrides", "offer_id", "offers"),
        _fk("notification_offer_overrides", "community_id", "communities"),
    )
    op.create_index(
        "ix_notification_offer_overrides_community_id",
        "notification_offer_overrides",
        ["community_id"],
    )
    op.create_table(
        "notification_staff_choices",
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.String(60), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "user_id", "message", name="pk_notification_staff_choices"),
        _fk("notification_staff_choices", "community_id", "communities"),
        _fk("notification_staff_choices", "user_id", "users"),
    )
    op.create_table(
        "email_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("event_key", sa.String(100), nullable=False),
        sa.Column("message", sa.String(60), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_email_deliveries"),
        sa.UniqueConstraint(
            "event_key",
            "message",
            "email",
            name="uq_email_deliveries_event_key_message_email",
        ),
        _fk("email_deliveries", "community_id", "communities"),
        _fk("email_deliveries", "user_id", "users", "SET NULL"),
    )
    op.create_index(
        "ix_email_deliveries_community",
        "email_deliveries",
        ["community_id", "id"],
    )
    op.create_index(
        "ix_email_deliveries_member",
        "email_deliveries",
        ["community_id", "user_id", "id"],
    )


def downgrade() -> None:
    for table in (
        "email_deliveries",
        "notification_staff_choices",
        "notification_offer_overrides",
        "notification_settings",
    ):
        op.drop_table(table)
