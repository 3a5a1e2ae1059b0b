"""members directory: each member row carries what the directory sorts and filters by (kept
current by triggers on payments, entitlements, subscriptions and users), notes, saved segments

Revision ID: 0011_members_directory
Revises: 0009_email_changes
"""

import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_members_directory"
down_revision = "0010_dispute_due_by"
branch_labels = None
depends_on = None

# One definition of a member's summary, for one member (u) or every member of a community
# (u null). The statuses, best first (docs/DESIGN.md, "The members directory"):
#   active     a live entitlement (ends_at null or ahead) in status active, not in a trial
#   trialing   a live entitlement whose subscription is trialing
#   past_due   a live entitlement whose renewal failed (access until the grace end)
#   cancelled  a live entitlement that will end (cancelled at period end, an end date ahead)
#   ended      entitlements, none live
#   none       never held one (staff, a member who joined without an offer)
# status_until is the next moment the status can change by time alone (the nearest ends_at
# ahead); a reader recounts rows whose moment has passed (members_recount_due).
RECOUNT = """
CREATE OR REPLACE FUNCTION members_recount(c bigint, u bigint) RETURNS void
LANGUAGE sql AS $$
UPDATE members m SET
    status = x.status, status_until = x.status_until, offer_ids = x.offer_ids,
    totals = x.totals, spent = x.spent, last_payment_at = x.last_payment_at
FROM (
    SELECT m2.id, s.status, s.status_until, s.offer_ids, p.totals, p.last_payment_at,
           coalesce((p.totals ->> upper(cm.default_currency))::bigint, 0) AS spent
    FROM members m2
    JOIN communities cm ON cm.id = m2.community_id
    CROSS JOIN LATERAL (
        SELECT
            CASE
                WHEN bool_or((e.ends_at IS NULL OR e.ends_at > now()) AND e.status = 'active'
                             AND coalesce(sub.status, '') <> 'trialing') THEN 'active'
                WHEN bool_or((e.ends_at IS NULL OR e.ends_at > now()) AND e.status = 'active') THEN 'trialing'
                WHEN bool_or((e.ends_at IS NULL OR e.ends_at > now()) AND e.status = 'past_due') THEN 'past_due'
                WHEN bool_or(e.ends_at IS NULL OR e.ends_at > now()) THEN 'cancelled'
                WHEN count(e.id) > 0 THEN 'ended'
                ELSE 'none'
            END AS status,
            min(e.ends_at) FILTER (WHERE e.ends_at > now()) AS status_until,
            coalesce(array_agg(DISTINCT e.offer_id ORDER BY e.offer_id), '{}') AS offer_ids
        FROM entitlements e
        LEFT JOIN subscriptions sub ON sub.entitlement_id = e.id
        WHERE e.community_id = m2.community_id AND e.user_id = m2.user_id
    ) s
    CROSS JOIN LATERAL (
        SELECT coalesce(jsonb_object_agg(t.currency, t.net), '{}') AS totals, max(t.last_at) AS last_payment_at
        FROM (
            SELECT upper(pay.currency) AS currency,
                   sum(pay.amount - pay.refunded_amount - pay.disputed_amount) AS net,
                   max(pay.paid_at) FILTER (WHERE pay.amount > 0) AS last_at
            FROM payments pay
            WHERE pay.community_id = m2.community_id AND pay.user_id = m2.user_id
            GROUP BY upper(pay.currency)
        ) t
    ) p
    WHERE m2.community_id = c AND (u IS NULL OR m2.user_id = u)
) x
WHERE m.id = x.id
  AND (m.status, m.status_until, m.offer_ids, m.totals, m.spent, m.last_payment_at)
      IS DISTINCT FROM (x.status, x.status_until, x.offer_ids, x.totals, x.spent, x.last_payment_at)
$$;

CREATE OR REPLACE FUNCTION members_recount_due(c bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer := 0; r record;
BEGIN
    FOR r IN SELECT user_id FROM members
             WHERE community_id = c AND status_until <= now()
             ORDER BY id FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM members_recount(c, r.user_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

CREATE OR REPLACE FUNCTION members_recount_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM members_recount(OLD.community_id, OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.community_id, NEW.user_id) IS DISTINCT FROM (OLD.community_id, OLD.user_id)) THEN
        PERFORM members_recount(NEW.community_id, NEW.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION members_fill_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT lower(u.name), lower(u.email) INTO NEW.name_key, NEW.email_key FROM users u WHERE u.id = NEW.user_id;
    NEW.search_key := NEW.name_key || ' ' || NEW.email_key;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION members_joined_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM members_recount(NEW.community_id, NEW.user_id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION members_user_renamed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE members SET name_key = lower(NEW.name), email_key = lower(NEW.email),
                       search_key = lower(NEW.name) || ' ' || lower(NEW.email)
    WHERE user_id = NEW.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION members_currency_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE members SET spent = coalesce((totals ->> upper(NEW.default_currency))::bigint, 0)
    WHERE community_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER members_recount AFTER INSERT OR UPDATE OR DELETE ON entitlements
    FOR EACH ROW EXECUTE FUNCTION members_recount_trigger();
CREATE TRIGGER members_recount AFTER INSERT OR DELETE OR UPDATE OF status, entitlement_id, user_id, community_id ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION members_recount_trigger();
CREATE TRIGGER members_recount AFTER INSERT OR DELETE OR UPDATE OF amount, refunded_amount, disputed_amount, currency, paid_at, user_id, community_id ON payments
    FOR EACH ROW EXECUTE FUNCTION members_recount_trigger();
CREATE TRIGGER members_fill_keys BEFORE INSERT OR UPDATE OF user_id ON members
    FOR EACH ROW EXECUTE FUNCTION members_fill_keys();
CREATE TRIGGER members_joined AFTER INSERT ON members
    FOR EACH ROW EXECUTE FUNCTION members_joined_trigger();
CREATE TRIGGER members_user_renamed AFTER UPDATE OF name, email ON users
    FOR EACH ROW WHEN ((OLD.name, OLD.email) IS DISTINCT FROM (NEW.name, NEW.email))
    EXECUTE FUNCTION members_user_renamed();
CREATE TRIGGER members_currency_changed AFTER UPDATE OF default_currency ON communities
    FOR EACH ROW WHEN (OLD.default_currency IS DISTINCT FROM NEW.default_currency)
    EXECUTE FUNCTION members_currency_changed();
"""

DROP = """
DROP TRIGGER IF EXISTS members_currency_changed ON communities;
DROP TRIGGER IF EXISTS members_user_renamed ON users;
DROP TRIGGER IF EXISTS members_joined ON members;
DROP TRIGGER IF EXISTS members_fill_keys ON members;
DROP TRIGGER IF EXISTS members_recount ON payments;
DROP TRIGGER IF EXISTS members_recount ON subscriptions;
DROP TRIGGER IF EXISTS members_recount ON entitlements;
DROP FUNCTION IF EXISTS members_currency_changed();
DROP FUNCTION IF EXISTS members_user_renamed();
DROP FUNCTION IF EXISTS members_joined_trigger();
DROP FUNCTION IF EXISTS members_fill_keys();
DROP FUNCTION IF EXISTS members_recount_trigger();
DROP FUNCTION IF EXISTS members_recount_due(bigint);
DROP FUNCTION IF EXISTS members_recount(bigint, bigint);
"""

def _run(script: str) -> None:
    """asyncpg runs one statement at a time: split the script at each top-level statement."""
    for statement in re.split(r";\s*\n(?=CREATE|DROP)", script.strip()):
        op.execute(statement.strip().rstrip(";"))


COLUMNS = ["name_key", "email_key", "search_key", "status", "status_until", "spent", "totals", "last_payment_at", "offer_ids"]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.add_column("members", sa.Column("name_key", sa.Text(), server_default="", nullable=False))
    op.add_column("members", sa.Column("email_key", sa.Text(), server_default="", nullable=False))
    op.add_column("members", sa.Column("search_key", sa.Text(), server_default="", nullable=False))
    op.add_column("members", sa.Column("status", sa.String(length=20), server_default="none", nullable=False))
    op.add_column("members", sa.Column("status_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("members", sa.Column("spent", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("members", sa.Column("totals", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("members", sa.Column("last_payment_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("members", sa.Column("offer_ids", postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'"), nullable=False))
    _run(RECOUNT)
    op.execute(
        "UPDATE members m SET name_key = lower(u.name), email_key = lower(u.email),"
        " search_key = lower(u.name) || ' ' || lower(u.email) FROM users u WHERE u.id = m.user_id"
    )
    op.execute("SELECT members_recount(c.id, NULL) FROM communities c")
    op.create_index("ix_members_name", "members", ["community_id", "name_key", "id"])
    op.create_index("ix_members_email", "members", ["community_id", "email_key", "id"])
    # A search of one or two characters matches the start of a name or an email (trigrams need three).
    op.create_index(
        "ix_members_name_prefix", "members", ["community_id", "name_key"],
        postgresql_ops={"name_key": "text_pattern_ops"},
    )
    op.create_index(
        "ix_members_email_prefix", "members", ["community_id", "email_key"],
        postgresql_ops={"email_key": "text_pattern_ops"},
    )
    op.create_index("ix_members_joined", "members", ["community_id", "joined_at", "id"])
    op.create_index("ix_members_spent", "members", ["community_id", "spent", "id"])
    op.create_index(
        "ix_members_last_payment", "members",
        ["community_id", sa.text("coalesce(last_payment_at, '-infinity'::timestamptz)"), "id"],
    )
    op.create_index("ix_members_status", "members", ["community_id", "status", "id"])
    op.create_index(
        "ix_members_status_until", "members", ["community_id", "status_until"],
        postgresql_where=sa.text("status_until IS NOT NULL"),
    )
    op.create_index("ix_members_tags", "members", ["tags"], postgresql_using="gin")
    op.create_index("ix_members_offer_ids", "members", ["offer_ids"], postgresql_using="gin")
    op.create_index(
        "ix_members_search", "members", ["search_key"], postgresql_using="gin",
        postgresql_ops={"search_key": "gin_trgm_ops"},
    )
    op.create_table(
        "member_notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("edited_by_id", sa.BigInteger(), nullable=True),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["community_id"], ["communities.id"], name=op.f("fk_member_notes_community_id_communities"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_member_notes_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_member_notes_author_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["edited_by_id"], ["users.id"], name=op.f("fk_member_notes_edited_by_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_notes")),
    )
    op.create_index("ix_member_notes_member", "member_notes", ["community_id", "user_id", "id"])
    op.create_table(
        "member_segments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("filters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["community_id"], ["communities.id"], name=op.f("fk_member_segments_community_id_communities"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_member_segments_created_by_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_segments")),
    )
    op.create_index("uq_member_segments_community_id_lower_name", "member_segments", ["community_id", sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_member_segments_community_id_lower_name", table_name="member_segments")
    op.drop_table("member_segments")
    op.drop_index("ix_member_notes_member", table_name="member_notes")
    op.drop_table("member_notes")
    _run(DROP)
    for name in ["ix_members_search", "ix_members_offer_ids", "ix_members_tags", "ix_members_status_until",
                 "ix_members_status", "ix_members_last_payment", "ix_members_spent", "ix_members_joined",
                 "ix_members_email", "ix_members_name", "ix_members_name_prefix", "ix_members_email_prefix"]:
        op.drop_index(name, table_name="members")
    for column in COLUMNS:
        op.drop_column("members", column)
