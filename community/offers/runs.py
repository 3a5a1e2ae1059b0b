"""Access-change runs: the side effects of a change in who can open what.

Access itself changes at commit (it is derived); a run only works out whose *effective*
access changed and tells them: it walks the candidates in keyset batches, and each batch is
one set-based statement (`access.RECONCILE_*`) that compares the access query with the last
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
from community.offers.access import (
    RECONCILE_ENTITLEMENTS,
    RECONCILE_LOGGED,
    RECONCILE_OFFER,
)
from community.offers.models import AccessLogEntry, AccessRun, Entitlement, RunState

PROCESS_RUN = "offers.access_run"
SEND_ACCESS_EMAILS = "offers.access_emails"
BATCH_SIZE = 5000
_LOCK_NAMESPACE = 0x0ACC  # pg_advisory_xact_lock(namespace, community_id)

_RUNS = AccessRun.__table__
# Each batch's transaction opens with one statement: the community's lock (batches of one
# community never run at once), then the run's row, locked and read (the advisory lock is taken
# first, by the CTE the locked row is joined with, in every transaction alike); and it commits
# asynchronously (synchronous_commit off, for this transaction only). A crash may lose the last
# batches' commits, but never half of one: their log rows and the cursor that covers them are
# lost together, so the run resumes before them and writes them again. Any later ordinary
# commit (the outbox marking the job done, say) flushes them first: the WAL is written in order.
_LOCK_RUN = text(
    """
    WITH setup AS MATERIALIZED (
        SELECT pg_advisory_xact_lock(:ns, :community), set_config('synchronous_commit', 'off', true)
    )
    SELECT r.id, r.community_id, r.cause, r.scope, r.state, r.total, r.done, r.cursor
    FROM access_runs r, setup WHERE r.id = :run_id FOR UPDATE OF r
    """
).columns(
    _RUNS.c.id, _RUNS.c.community_id, _RUNS.c.cause, _RUNS.c.scope, _RUNS.c.state, _RUNS.c.total, _RUNS.c.done, _RUNS.c.cursor
)


async def start_run(session: AsyncSession, *, community_id: int, cause: str, scope: dict[str, Any]) -> AccessRun:
    """In the caller's transaction: the run exists if and only if the change committed."""
    run = AccessRun(community_id=community_id, cause=cause[:200], scope=scope, state=RunState.pending)
    session.add(run)
    await session.flush()
    await jobs.enqueue(session, PROCESS_RUN, community_id=community_id, run_id=run.id)
    return run


async def _total(session: AsyncSession, run) -> int:
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


async def _reconcile_next_batch(session: AsyncSession, run, total: int) -> bool:
    """Reconcile the batch after the run's cursor and record the progress on the run row, in one
    statement; True when more may follow.
    The cursor is a user id for an offer's holders and a deleted group's members, an entitlement
    id for a list of entitlements."""
    scope = run.scope
    params: dict[str, Any] = {
        "community_id": run.community_id,
        "cursor": run.cursor,
        "limit": BATCH_SIZE,
        "total": total,
        "cause": run.cause,
        "run_id": run.id,
        # A deleted group's row is gone: its name comes with the run (older runs have none).
        "deleted_name": scope.get("group_name") or "(deleted group)",
    }
    if "group_id" in scope:  # a deleted group: everyone last logged as having it
        statement = RECONCILE_LOGGED
        params |= {"group_id": scope["group_id"], "group_ids": [scope["group_id"]]}
    elif "offer_id" in scope:
        statement = RECONCILE_OFFER
        params |= {"offer_id": scope["offer_id"], "group_ids": list(scope["group_ids"])}
    else:
        statement = RECONCILE_ENTITLEMENTS
        params |= {"entitlement_ids": list(scope["entitlement_ids"]), "group_ids": list(scope["group_ids"])}
    return (await session.execute(statement, params)).scalar_one()


async def process_run(sessions: async_sessionmaker[AsyncSession], run_id: int) -> AccessRun | None:
    """Work through a run batch by batch, each batch its own transaction of three statements
    (lock and read the run, reconcile a batch and record the progress, commit), all on one
    connection (a session from the factory would give its connection back at every commit, and
    check one out again, pinging it, at the next batch)."""
    async with sessions.kw["bind"].connect() as connection, AsyncSession(bind=connection, expire_on_commit=False) as session:
        community_id = await session.scalar(select(_RUNS.c.community_id).where(_RUNS.c.id == run_id))
        await session.commit()
        while community_id is not None:
            async with session.begin():
                run = (
                    await session.execute(_LOCK_RUN, {"ns": _LOCK_NAMESPACE, "community": community_id, "run_id": run_id})
                ).one_or_none()
                if run is None or run.state in (RunState.done, RunState.failed):
                    break
                total = await _total(session, run) if run.state is RunState.pending else run.total
                if not await _reconcile_next_batch(session, run, total):
                    await jobs.enqueue(session, SEND_ACCESS_EMAILS, community_id=community_id, run_id=run_id)
                    break
        return await session.get(AccessRun, run_id)


def percent_done(run: AccessRun) -> float:
    if run.state is RunState.done:
        return 100.0
    return round(100.0 * run.done / run.total, 1) if run.total else 0.0
