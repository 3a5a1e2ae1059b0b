"""Access-change runs: the side effects of a change in who can open what.

Access itself changes at commit (it is derived); a run only works out whose *effective*
access changed and tells them: it walks the candidates in keyset batches, and each batch is
one set-based statement (`access.RECONCILE`) that compares the access query with the last
access-log entry per (member, group) and logs the differences. Progress is committed per
batch on the run row, so a run resumes after a crash; and since it logs only differences,
running it again writes nothing new. Batches of one community are serialised by an advisory
lock, so concurrent runs never log the same change twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community import jobs
from community.db import utcnow
from community.offers.access import RECONCILE
from community.offers.models import AccessLogEntry, AccessRun, Entitlement, RunState

PROCESS_RUN = "offers.access_run"
SEND_ACCESS_EMAILS = "offers.access_emails"
BATCH_SIZE = 5000
_LOCK_NAMESPACE = 0x0ACC  # pg_advisory_xact_lock(namespace, community_id)


async def start_run(session: AsyncSession, *, community_id: int, cause: str, scope: dict[str, Any]) -> AccessRun:
    """In the caller's transaction: the run exists if and only if the change committed."""
    run = AccessRun(community_id=community_id, cause=cause[:200], scope=scope, state=RunState.pending)
    session.add(run)
    await session.flush()
    await jobs.enqueue(session, PROCESS_RUN, community_id=community_id, run_id=run.id)
    return run


async def _total(session: AsyncSession, run: AccessRun) -> int:
    scope = run.scope
    if "offer_id" in scope:
        return await session.scalar(select(func.count()).where(Entitlement.offer_id == scope["offer_id"])) or 0
    if "entitlement_ids" in scope:
        return len(scope["entitlement_ids"])
    return await session.scalar(
        select(func.count(func.distinct(AccessLogEntry.user_id))).where(
            AccessLogEntry.community_id == run.community_id, AccessLogEntry.group_id == scope["group_id"]
        )
    ) or 0


async def _next_batch(session: AsyncSession, run: AccessRun) -> tuple[list[int], list[int], int, int]:
    """(user ids, group ids, new cursor, how many candidates) after the run's cursor."""
    scope = run.scope
    if "group_id" in scope:  # a deleted group: everyone last logged as having it
        rows = (
            await session.execute(
                select(AccessLogEntry.user_id)
                .where(
                    AccessLogEntry.community_id == run.community_id,
                    AccessLogEntry.group_id == scope["group_id"],
                    AccessLogEntry.user_id > run.cursor,
                )
                .group_by(AccessLogEntry.user_id)
                .order_by(AccessLogEntry.user_id)
                .limit(BATCH_SIZE)
            )
        ).scalars().all()
        return list(rows), [scope["group_id"]], (rows[-1] if rows else run.cursor), len(rows)
    query = select(Entitlement.id, Entitlement.user_id).where(Entitlement.id > run.cursor).order_by(Entitlement.id)
    if "offer_id" in scope:
        query = query.where(Entitlement.offer_id == scope["offer_id"])
    else:
        query = query.where(Entitlement.id.in_(scope["entitlement_ids"]))
    rows = (await session.execute(query.limit(BATCH_SIZE))).all()
    users = sorted({row.user_id for row in rows})
    return users, list(scope["group_ids"]), (rows[-1].id if rows else run.cursor), len(rows)


async def process_run(sessions: async_sessionmaker[AsyncSession], run_id: int) -> AccessRun | None:
    """Work through a run batch by batch, each batch its own transaction."""
    while True:
        async with sessions() as session, session.begin():
            run = await session.scalar(select(AccessRun).where(AccessRun.id == run_id).with_for_update())
            if run is None or run.state in (RunState.done, RunState.failed):
                return run
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :community)"), {"ns": _LOCK_NAMESPACE, "community": run.community_id}
            )
            if run.state is RunState.pending:
                run.state = RunState.running
                run.total = await _total(session, run)
            users, groups, cursor, count = await _next_batch(session, run)
            if users and groups:
                await session.execute(
                    RECONCILE,
                    {
                        "user_ids": users,
                        "group_ids": groups,
                        "community_id": run.community_id,
                        "cause": run.cause,
                        "run_id": run.id,
                        "deleted_name": "(deleted group)",
                    },
                )
            run.cursor = cursor
            run.done = min(run.total, run.done + count) if run.total else run.done + count
            if count < BATCH_SIZE:
                run.state = RunState.done
                run.done = run.total = max(run.total, run.done)
                run.finished_at = utcnow()
                await jobs.enqueue(session, SEND_ACCESS_EMAILS, community_id=run.community_id, run_id=run.id)
                return run


def percent_done(run: AccessRun) -> float:
    if run.state is RunState.done:
        return 100.0
    return round(100.0 * run.done / run.total, 1) if run.total else 0.0
