"""The access query: who can open which group, derived from entitlements and the offers'
current groups at the moment of asking (DESIGN.md section 6). Nothing is copied per buyer.

An entitlement grants a group when it is live (`ends_at` null or in the future) and its offer
links the group for its id (`offer_groups.entitlement_ids`, the grandfathering ranges).
Plain SQL through Core: asyncpg prepares and caches each statement; no ORM objects.
"""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

# The one definition of "entitlement e grants group og.group_id", shared by every query here
# and by the access-change runs.
GRANTS = """
    entitlements e
    JOIN offer_groups og ON og.offer_id = e.offer_id AND e.id <@ og.entitlement_ids
    WHERE (e.ends_at IS NULL OR e.ends_at > now())
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


# The access-change runs compare, for candidate (user, group) pairs, what the access query
# says now with what the access log last recorded, and log only the differences.
RECONCILE = text(
    f"""
    WITH pairs AS (
        SELECT DISTINCT u.user_id, g.group_id
        FROM unnest(CAST(:user_ids AS bigint[])) AS u(user_id)
        CROSS JOIN unnest(CAST(:group_ids AS bigint[])) AS g(group_id)
    ),
    current AS (
        SELECT DISTINCT e.user_id, og.group_id FROM {GRANTS}
        AND e.community_id = :community_id
        AND e.user_id = ANY(CAST(:user_ids AS bigint[])) AND og.group_id = ANY(CAST(:group_ids AS bigint[]))
    ),
    last AS (  -- one backward probe of ix_access_log_user_group per pair, however long its history
        SELECT p.user_id, p.group_id, l.change FROM pairs p
        CROSS JOIN LATERAL (
            SELECT l.change FROM access_log l
            WHERE l.community_id = :community_id AND l.user_id = p.user_id AND l.group_id = p.group_id
            ORDER BY l.id DESC LIMIT 1
        ) l
    ),
    changes AS (
        SELECT p.user_id, p.group_id,
               CASE WHEN c.user_id IS NOT NULL THEN 'gained' ELSE 'lost' END AS change
        FROM pairs p
        LEFT JOIN current c ON c.user_id = p.user_id AND c.group_id = p.group_id
        LEFT JOIN last l ON l.user_id = p.user_id AND l.group_id = p.group_id
        WHERE (c.user_id IS NOT NULL) <> (COALESCE(l.change = 'gained', false))
    )
    INSERT INTO access_log (community_id, user_id, group_id, group_name, change, cause, run_id)
    SELECT :community_id, ch.user_id, ch.group_id, COALESCE(hg.name, :deleted_name),
           CAST(ch.change AS access_change), :cause, :run_id
    FROM changes ch LEFT JOIN hub_groups hg ON hg.id = ch.group_id
    """
).bindparams(bindparam("user_ids"), bindparam("group_ids"))


# The access check a content page or another service makes on every request: token, place in
# the community, the group's existence and the access query, in ONE statement on an
# autocommit connection (one round trip, no ORM session, no transaction).
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


async def check(engine: AsyncEngine, *, token_hash: str, community_id: int, group_id: int):
    """The row of ACCESS_CHECK, or None for an unknown, revoked or expired token."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        result = await connection.execute(
            ACCESS_CHECK, {"token_hash": token_hash, "community_id": community_id, "group_id": group_id}
        )
        return result.first()
