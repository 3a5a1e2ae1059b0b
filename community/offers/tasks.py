"""Jobs of the offers domain: access-change runs and the pass-expiry sweep (the emails a run
ends with are the notifications package's: notifications/access.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from community.jobs import JobContext
from community.offers import entitlements, runs

EMAIL_BATCH = 500


async def process_access_run(session: AsyncSession, ctx: JobContext, *, run_id: int) -> None:
    # Batches commit on their own sessions: a crash keeps the progress made so far.
    await runs.process_run(ctx.sessions, run_id)


async def sweep_expired(session: AsyncSession) -> int:
    """Start the runs of entitlements whose ends_at went by (annual passes, grace periods).
    Access already stopped at ends_at; this tells people and writes the log."""
    return await entitlements.start_expiry_runs(session)


async def on_group_deleted(session: AsyncSession, ctx: JobContext, *, group_id: int, group_name: str) -> None:
    """A hub group was deleted (its offer links went with it): tell everyone who had it.
    Idempotent: a second start finds nobody left to tell."""
    assert ctx.community_id is not None
    await runs.start_run(session, community_id=ctx.community_id, cause=f"group {group_name} deleted", scope={"group_id": group_id, "group_name": group_name})
