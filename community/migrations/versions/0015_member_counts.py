"""member counts: how many members a community has, per status and ever paid, kept by triggers
on `members`, so the directory's total and the built-in segments' counts are a read of a few
rows instead of a count over every member (tens of milliseconds at 200,000)

Revision ID: 0015_member_counts
Revises: 0014_campaigns
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0015_member_counts"
down_revision = "0014_campaigns"
branch_labels = None
depends_on = None

# The rows are changes, only ever inserted: a statement that changes members adds one row per
# (community, key) whose count it moved (a bulk recount of 200,000 members adds a handful), so
# concurrent transactions never wait on one another here and no lock order can deadlock. A read
# sums a community's rows; the fold (a cron, member_counts_fold) replaces a community's rows by
# their sums once they are many. A delete whose community is gone (a cascade) adds nothing: the
# community's rows go with it.
SCRIPT = """
CREATE OR REPLACE FUNCTION member_count_keys(status text, last_payment_at timestamptz) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN last_payment_at IS NULL THEN ARRAY['all', status] ELSE ARRAY['all', status, 'customers'] END
$$;
CREATE OR REPLACE FUNCTION member_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO member_counts (community_id, key, n)
        SELECT r.community_id, k, count(*) FROM new_rows r, unnest(member_count_keys(r.status, r.last_payment_at)) k GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO member_counts (community_id, key, n)
        SELECT r.community_id, k, -count(*) FROM old_rows r, unnest(member_count_keys(r.status, r.last_payment_at)) k
        WHERE EXISTS (SELECT 1 FROM communities c WHERE c.id = r.community_id) GROUP BY 1, 2;
    ELSE
        INSERT INTO member_counts (community_id, key, n)
        SELECT community_id, k, sum(delta) FROM (
            SELECT r.community_id, k, 1 AS delta FROM new_rows r, unnest(member_count_keys(r.status, r.last_payment_at)) k
            UNION ALL
            SELECT r.community_id, k, -1 FROM old_rows r, unnest(member_count_keys(r.status, r.last_payment_at)) k
        ) changes GROUP BY 1, 2 HAVING sum(delta) <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION member_counts_fold(most integer DEFAULT 32) RETURNS integer LANGUAGE sql AS $$
    WITH many AS (
        SELECT community_id FROM member_counts GROUP BY community_id HAVING count(*) > most
    ), gone AS (
        DELETE FROM member_counts m USING many WHERE m.community_id = many.community_id
        RETURNING m.community_id, m.key, m.n
    ), kept AS (
        INSERT INTO member_counts (community_id, key, n)
        SELECT community_id, key, sum(n) FROM gone GROUP BY 1, 2 HAVING sum(n) <> 0
        RETURNING 1
    )
    SELECT count(*)::integer FROM (SELECT DISTINCT community_id FROM gone) folded;
$$;
CREATE OR REPLACE FUNCTION member_counts_rebuild(c bigint) RETURNS void LANGUAGE sql AS $$
    DELETE FROM member_counts WHERE community_id = c;
    INSERT INTO member_counts (community_id, key, n)
    SELECT m.community_id, k, count(*) FROM members m, unnest(member_count_keys(m.status, m.last_payment_at)) k
    WHERE m.community_id = c GROUP BY 1, 2;
$$;
CREATE TRIGGER member_counts_inserted AFTER INSERT ON members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_counts_changed();
CREATE TRIGGER member_counts_updated AFTER UPDATE ON members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_counts_changed();
CREATE TRIGGER member_counts_deleted AFTER DELETE ON members
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION member_counts_changed();
"""


def upgrade() -> None:
    op.create_table(
        "member_counts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["community_id"], ["communities.id"], name=op.f("fk_member_counts_community_id_communities"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_counts")),
    )
    op.create_index("ix_member_counts_community", "member_counts", ["community_id", "key"], postgresql_include=["n"])
    # asyncpg runs one statement at a time: split the script at each top-level statement.
    for statement in re.split(r";\s*\n(?=CREATE|DROP)", SCRIPT.strip()):
        op.execute(statement.strip().rstrip(";"))
    op.execute("SELECT member_counts_rebuild(c.id) FROM communities c")


def downgrade() -> None:
    for trigger in ("member_counts_deleted", "member_counts_updated", "member_counts_inserted"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON members")
    for function in ("member_counts_rebuild(bigint)", "member_counts_fold(integer)", "member_counts_changed()", "member_count_keys(text, timestamptz)"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("member_counts")
