"""campaigns: one email from an owner to a segment, its recipients (one row per member, each
sent at most once) and the members who unsubscribed from a community's campaigns

Revision ID: 0014_campaigns
Revises: 0011_members_directory
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_campaigns"
down_revision = "0013_notifications"
branch_labels = None
depends_on = None

FORGET = """
CREATE OR REPLACE FUNCTION campaigns_forget_recipients() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'campaigns' THEN
        DELETE FROM campaign_recipients WHERE campaign_id = OLD.id;
    ELSE
        DELETE FROM campaign_recipients WHERE user_id = OLD.id;
    END IF;
    RETURN OLD;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("community_id", sa.BigInteger(), sa.ForeignKey("communities.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("format", sa.String(10), server_default="text", nullable=False),
        sa.Column("segment", sa.String(40), nullable=False),
        sa.Column("state", sa.String(12), server_default="draft", nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipients_total", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("state IN ('draft', 'scheduled', 'sending', 'sent', 'cancelled')", name="ck_campaigns_state"),
        sa.CheckConstraint("format IN ('text', 'markdown')", name="ck_campaigns_format"),
    )
    op.create_index("ix_campaigns_community", "campaigns", ["community_id", "id"])
    op.create_index("ix_campaigns_due", "campaigns", ["send_at"], postgresql_where=sa.text("state = 'scheduled'"))
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.BigInteger(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), server_default="", nullable=False),
        sa.Column("state", sa.String(10), server_default="queued", nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'sending', 'sent', 'failed', 'bounced', 'skipped', 'cancelled')",
            name="ck_campaign_recipients_state",
        ),
    )
    op.create_index(
        "ix_campaign_recipients_queued", "campaign_recipients", ["campaign_id", "user_id"],
        postgresql_where=sa.text("state = 'queued'"),
    )
    op.create_index("ix_campaign_recipients_user", "campaign_recipients", ["user_id"])
    # No foreign keys on the recipients (one check per row would be most of queueing's time):
    # these triggers do what ON DELETE CASCADE would.
    op.execute(FORGET)
    op.execute("CREATE TRIGGER campaigns_forget_recipients AFTER DELETE ON campaigns FOR EACH ROW EXECUTE FUNCTION campaigns_forget_recipients()")
    op.execute("CREATE TRIGGER campaigns_forget_recipients AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION campaigns_forget_recipients()")
    op.create_table(
        "campaign_unsubscribes",
        sa.Column("community_id", sa.BigInteger(), sa.ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS campaigns_forget_recipients ON users")
    op.execute("DROP TRIGGER IF EXISTS campaigns_forget_recipients ON campaigns")
    op.execute("DROP FUNCTION IF EXISTS campaigns_forget_recipients()")
    op.drop_table("campaign_unsubscribes")
    op.drop_table("campaign_recipients")
    op.drop_table("campaigns")
