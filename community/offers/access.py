"""The access query: who can open which group, derived from entitlements and the offers'
current groups at the moment of asking (DESIGN.md section 6). Nothing is copied per buyer.

An entitlement grants a group when it is live (`ends_at` null or in the future) and its offer
links the group for its id (`offer_groups.entitlement_ids`, the grandfathering ranges).
Plain SQL through Core: asyncpg prepares and caches each statement; no ORM objects.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

# The one definition of "entitlement e grants group og.group_id", shared by every query here
# and by the access-change runs.
LIVE = "(e.ends_at IS NULL OR e.ends_at > now())"
GRANTS = f"""
    entitlements e
    JOIN offer_groups og ON og.offer_id = e.offer_id AND e.id <@ og.entitlement_ids
    WHERE {LIVE}
"""

_CAN_OPEN = text(
    f"SELECT EXISTS (SELECT 1 FROM {GRANTS} AND e.community_id = :community_id "
    "AND e.user_id = :user_id AND og.group_id = :group_id)"
)

_GROUPS_OF = text(
    f"SELECT DISTINCT og.group_id FROM {GRANTS} AND e.community_id = :community_id "
    "AND e.user_id = :user_id ORDER BY og.group_id"
)

_MEMBERS_OF = text(
    "SELECT u.id AS user_id, u.email, u.name FROM users u WHERE u.id IN ("
    f"SELECT e.user_id FROM {GRANTS} AND og.group_id = :group_id "
    "AND e.community_id = :community_id AND e.user_id > :after) ORDER BY u.id LIMIT :limit"
)


async def can_open(session: AsyncSession, community_id: int, user_id: int, group_id: int) -> bool:
    return bool(
        await session.scalar(_CAN_OPEN, {"community_id": community_id, "user_id": user_id, "group_id": group_id})
    )


async def groups_of(session: AsyncSession, community_id: int, user_id: int) -> list[int]:
    rows = await session.scalars(_GROUPS_OF, {"community_id": community_id, "user_id": user_id})
    return list(rows.all())


async def members_of(session: AsyncSession, community_id: int, group_id: int, *, after: int, limit: int) -> list:
    """Rows of (user_id, email, name), by user id."""
    rows = await session.execute(
        _MEMBERS_OF, {"community_id": community_id, "group_id": group_id, "after": after, "limit": limit}
    )
    return list(rows.all())


_COUNT_REACHING = text(
    f"SELECT count(DISTINCT e.user_id) FROM {GRANTS} AND e.community_id = :community_id "
    "AND og.group_id = ANY(CAST(:group_ids AS bigint[])) "
    "AND NOT EXISTS (SELECT 1 FROM members m WHERE m.community_id = :community_id AND m.user_id = e.user_id "
    "AND m.role IN ('owner', 'admin'))"
).bindparams(bindparam("group_ids"))


async def count_reaching(session: AsyncSession, community_id: int, group_ids: list[int]) -> int:
    """How many people open at least one of these groups through an offer: those who lose
    access when the groups are deleted. Owners and admins are not counted: they open every
    group by their role and lose nothing."""
    if not group_ids:
        return 0
    return await session.scalar(_COUNT_REACHING, {"community_id": community_id, "group_ids": list(group_ids)}) or 0


# The access-change runs compare, for candidate (user, group) pairs, what the access query
# says now with what the access log last recorded, and log only the differences: one statement
# per keyset batch, which also reads the batch, so a batch is one round trip.
#
# Its reads are what a run pays beyond the log rows it writes, so per pair it does the least:
# - "has it now" comes from the candidate's own live entitlement when that grants the group
#   (what an edit for everyone makes true of an offer's holders); only when it does not, and
#   some offer links the group at all, does it ask the GRANTS query for the user's other
#   entitlements (a removed or deleted group that no offer grants needs no probe);
# - "had it" is the pair's last log entry: one backward probe of ix_access_log_user_group,
#   however long the pair's history.
# The LATERAL is fenced (OFFSET 0) so each probe is an init plan run at most once per pair,
# lazily (never when the direct answer is yes), and is never turned into a hashed scan of all
# entitlements.
#
# {candidates} gives one row per user: (user_id, entitlement_id: one of the user's live
# entitlements in the batch or NULL, offer_id: its offer); {progress} gives the cursor after the
# batch, how much of the run's total (:total) it covered (seen) and whether the batch was full
# (more). The statement records that progress on the run row (:run_id) and answers `more`.
_RECONCILE = f"""
    WITH {{candidates}},
    groups AS (
        SELECT g.group_id, COALESCE(hg.name, :deleted_name) AS name,
               EXISTS (SELECT 1 FROM offer_groups og WHERE og.group_id = g.group_id) AS linked
        FROM unnest(CAST(:group_ids AS bigint[])) AS g(group_id)
        LEFT JOIN hub_groups hg ON hg.id = g.group_id AND hg.community_id = :community_id
    ),
    changes AS (
        SELECT c.user_id, g.group_id, g.name, x.has
        FROM candidates c
        CROSS JOIN groups g
        LEFT JOIN offer_groups og ON og.offer_id = c.offer_id AND og.group_id = g.group_id
        CROSS JOIN LATERAL (
            SELECT COALESCE(c.entitlement_id <@ og.entitlement_ids, false)
                   OR g.linked AND COALESCE((
                       SELECT true FROM {GRANTS} AND og.group_id = g.group_id
                       AND e.community_id = :community_id AND e.user_id = c.user_id LIMIT 1
                   ), false) AS has,
                   COALESCE((
                       SELECT l.change = 'gained' FROM access_log l
                       WHERE l.community_id = :community_id AND l.user_id = c.user_id AND l.group_id = g.group_id
                       ORDER BY l.id DESC LIMIT 1
                   ), false) AS had
            OFFSET 0
        ) x
        WHERE x.has <> x.had
    ),
    logged AS (
        INSERT INTO access_log (community_id, user_id, group_id, group_name, change, cause, run_id)
        SELECT :community_id, ch.user_id, ch.group_id, ch.name,
               CAST(CASE WHEN ch.has THEN 'gained' ELSE 'lost' END AS access_change), :cause, :run_id
        FROM changes ch
    ),
    progress AS ({{progress}}),
    counted AS (
        SELECT p.*, CASE WHEN CAST(:total AS bigint) > 0 THEN LEAST(:total, r.done + p.seen) ELSE r.done + p.seen END AS done
        FROM progress p, access_runs r WHERE r.id = :run_id
    ),
    saved AS (  -- the run's progress, in the batch's transaction: a crash loses both or neither
        UPDATE access_runs r
        SET cursor = COALESCE(c.cursor, r.cursor),
            state = CAST(CASE WHEN c.more THEN 'running' ELSE 'done' END AS access_run_state),
            done = CASE WHEN c.more THEN c.done ELSE GREATEST(:total, c.done) END,
            total = CASE WHEN c.more THEN :total ELSE GREATEST(:total, c.done) END,
            finished_at = CASE WHEN c.more THEN r.finished_at ELSE now() END
        FROM counted c WHERE r.id = :run_id
    )
    SELECT more FROM progress
"""

# An offer's holders (an edit of its groups), by user id: a streaming group-by over
# ix_entitlements_user (the community's entitlements in user order, the offer's picked out in
# the index), so each user is one candidate however many of the offer's entitlements they hold.
RECONCILE_OFFER = text(
    _RECONCILE.format(
        candidates=f"""candidates AS MATERIALIZED (
            SELECT e.user_id, min(e.id) FILTER (WHERE {LIVE}) AS entitlement_id,
                   CAST(:offer_id AS bigint) AS offer_id, count(*) AS n
            FROM entitlements e
            WHERE e.community_id = :community_id AND e.offer_id = :offer_id AND e.user_id > :cursor
            GROUP BY e.user_id ORDER BY e.user_id LIMIT :limit
        )""",
        progress="SELECT max(user_id) AS cursor, CAST(coalesce(sum(n), 0) AS bigint) AS seen, count(*) >= :limit AS more "
        "FROM candidates",
    )
).bindparams(bindparam("group_ids"))

# Some entitlements (a transition, passes expiring), by entitlement id.
RECONCILE_ENTITLEMENTS = text(
    _RECONCILE.format(
        candidates=f"""batch AS MATERIALIZED (
            SELECT e.id, e.user_id, e.offer_id, {LIVE} AS live FROM entitlements e
            WHERE e.id = ANY(CAST(:entitlement_ids AS bigint[])) AND e.community_id = :community_id
              AND e.id > :cursor
            ORDER BY e.id LIMIT :limit
        ),
        candidates AS (
            SELECT DISTINCT ON (b.user_id) b.user_id, CASE WHEN b.live THEN b.id END AS entitlement_id, b.offer_id
            FROM batch b ORDER BY b.user_id, b.live DESC, b.id
        )""",
        progress="SELECT max(id) AS cursor, count(*) AS seen, count(*) >= :limit AS more FROM batch",
    )
).bindparams(bindparam("group_ids"), bindparam("entitlement_ids"))

# Everyone last logged with a group (a deleted group), by user id.
RECONCILE_LOGGED = text(
    _RECONCILE.format(
        candidates="""candidates AS MATERIALIZED (
            SELECT l.user_id, NULL::bigint AS entitlement_id, NULL::bigint AS offer_id FROM access_log l
            WHERE l.community_id = :community_id AND l.group_id = :group_id AND l.user_id > :cursor
            GROUP BY l.user_id ORDER BY l.user_id LIMIT :limit
        )""",
        progress="SELECT max(user_id) AS cursor, count(*) AS seen, count(*) >= :limit AS more FROM candidates",
    )
).bindparams(bindparam("group_ids"))


# The access check a content page or another service makes on every request: token, place in
# the community, the group's existence and the access query, in ONE statement: one round trip
# on a connection of its own pool (see check_pool), no ORM session, no transaction.
ACCESS_CHECK = text(
    f"""
    SELECT t.user_id,
           m.id IS NOT NULL AS is_member,
           EXISTS (SELECT 1 FROM hub_groups hg WHERE hg.id = :group_id AND hg.community_id = :community_id)
               AS group_exists,
           COALESCE(m.role IN ('owner', 'admin'), false)
               OR EXISTS (SELECT 1 FROM {GRANTS} AND e.community_id = :community_id
                          AND e.user_id = t.user_id AND og.group_id = :group_id) AS allowed
    FROM auth_tokens t
    LEFT JOIN members m ON m.community_id = :community_id AND m.user_id = t.user_id
    WHERE t.token_hash = :token_hash AND t.kind = 'api' AND t.revoked_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
    """
)


def positional(sql: str, *names: str) -> str:
    """A text() statement's :names as asyncpg's $1, $2, ... (to prepare it on a raw connection)."""
    for i, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"${i}")
    return sql


_ACCESS_CHECK_SQL = positional(ACCESS_CHECK.text, "token_hash", "community_id", "group_id")

# A connection that lost its server (a restart, a failover): the check is retried once on another.
_GONE = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InterfaceError,
    OSError,
)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """These connections only ever run ACCESS_CHECK outside a transaction: no session state to
    reset, so giving one back costs no round trip (asyncpg's default reset is one)."""


async def open_check_pool(database_url: str, *, max_size: int = 10) -> asyncpg.Pool:
    """The access check's own connections, without SQLAlchemy's per-checkout ping (a BEGIN,
    a query and a ROLLBACK: three round trips before the one that matters). asyncpg prepares
    ACCESS_CHECK once per connection and keeps it."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, reset=_nothing_to_reset)


async def check(pool: asyncpg.Pool, *, token_hash: str, community_id: int, group_id: int) -> asyncpg.Record | None:
    """The row of ACCESS_CHECK (user_id, is_member, group_exists, allowed), or None for an
    unknown, revoked or expired token."""
    try:
        return await pool.fetchrow(_ACCESS_CHECK_SQL, token_hash, community_id, group_id)
    except _GONE:  # the pool replaces a dead connection; a second try gets a live one
        return await pool.fetchrow(_ACCESS_CHECK_SQL, token_hash, community_id, group_id)
