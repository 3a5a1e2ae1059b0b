"""member counts: how many members a community has, per status and ever paid, kept by a trigger
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

# Each count is spread over 16 rows (slot = member id % 16), summed when read: two transactions
# changing members of one community rarely wait for the same row. A statement's changes are
# applied in one INSERT, in (community, key, slot) order, so two statements never take these
# row locks in opposite orders.
SCRIPT = """
CREATE OR REPLACE FUNCTION member_count_keys(status text, last_payment_at timestamptz) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN last_payment_at IS NULL THEN ARRAY['all', status] ELSE ARRAY['all', status, 'customers'] END
$$;
CREATE OR REPLACE FUNCTION member_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- Only UPDATEs here: when a community is deleted its members go by cascade, and its
        -- counts with them (an INSERT would name a community that is gone).
        PERFORM 1 FROM member_counts c
        JOIN (SELECT DISTINCT o.community_id, k, (o.id % 16)::smallint AS slot
              FROM old_rows o, unnest(member_count_keys(o.status, o.last_payment_at)) k) d
          ON c.community_id = d.community_id AND c.key = d.k AND c.slot = d.slot
        ORDER BY c.community_id, c.key, c.slot FOR UPDATE OF c;
        UPDATE member_counts c SET n = c.n - d.n
        FROM (SELECT o.community_id, k, (o.id % 16)::smallint AS slot, count(*) AS n
              FROM old_rows o, unnest(member_count_keys(o.status, o.last_payment_at)) k GROUP BY 1, 2, 3) d
        WHERE c.community_id = d.community_id AND c.key = d.k AND c.slot = d.slot;
        RETURN NULL;
    END IF;
    INSERT INTO member_counts (community_id, key, slot, n)
    SELECT community_id, k, slot, sum(delta) FROM (
        SELECT n.community_id, k, (n.id % 16)::smallint AS slot, 1 AS delta
        FROM new_rows n, unnest(member_count_keys(n.status, n.last_payment_at)) k
        UNION ALL
        SELECT o.community_id, k, (o.id % 16)::smallint, -1
        FROM old_rows o, unnest(member_count_keys(o.status, o.last_payment_at)) k
    ) changes
    GROUP BY community_id, k, slot HAVING sum(delta) <> 0
    ORDER BY community_id, k, slot
    ON CONFLICT (community_id, key, slot) DO UPDATE SET n = member_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION member_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_counts (community_id, key, slot, n)
    SELECT n.community_id, k, (n.id % 16)::smallint, count(*)
    FROM new_rows n, unnest(member_count_keys(n.status, n.last_payment_at)) k
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (community_id, key, slot) DO UPDATE SET n = member_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION member_counts_rebuild(c bigint) RETURNS void LANGUAGE sql AS $$
    DELETE FROM member_counts WHERE community_id = c;
    INSERT INTO member_counts (community_id, key, slot, n)
    SELECT m.community_id, k, (m.id % 16)::smallint, count(*)
    FROM members m, unnest(member_count_keys(m.status, m.last_payment_at)) k
    WHERE m.community_id = c GROUP BY 1, 2, 3;
$$;
CREATE TRIGGER member_counts_inserted AFTER INSERT ON members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_counts_insert();
CREATE TRIGGER member_counts_updated AFTER UPDATE ON members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION member_counts_apply();
CREATE TRIGGER member_counts_deleted AFTER DELETE ON members
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION member_counts_apply();
"""


def upgrade() -> None:
    op.create_table(
        "member_counts",
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["community_id"], ["communities.id"], name=op.f("fk_member_counts_community_id_communities"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("community_id", "key", "slot", name=op.f("pk_member_counts")),
    )
    # asyncpg runs one statement at a time: split the script at each top-level statement.
    for statement in re.split(r";\s*\n(?=CREATE|DROP)", SCRIPT.strip()):
        op.execute(statement.strip().rstrip(";"))
    op.execute("SELECT member_counts_rebuild(c.id) FROM communities c")


def downgrade() -> None:
    for trigger in ("member_counts_deleted", "member_counts_updated", "member_counts_inserted"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON members")
    for function in ("member_counts_rebuild(bigint)", "member_counts_insert()", "member_counts_apply()", "member_count_keys(text, timestamptz)"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("member_counts")
