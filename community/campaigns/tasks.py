"""The campaign jobs: delivery (through the outbox) and the cron that starts scheduled ones."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community import jobs
from community.campaigns import sender, service
from community.jobs import JobContext

# One run sends for at most this long, then hands over to a fresh job (well inside the job timeout).
SLICE_SECONDS = 240.0


async def deliver(session: AsyncSession, ctx: JobContext, *, campaign_id: int) -> None:
    """Claims and records run in their own transactions (ctx.sessions): what was sent stays
    recorded whatever happens to this job. A rerun claims only what is still queued."""
    result = await sender.deliver_campaign(ctx.sessions, ctx.settings, campaign_id, budget=SLICE_SECONDS)
    if result == "more":
        await jobs.enqueue(session, service.DELIVER, community_id=ctx.community_id, campaign_id=campaign_id)


async def start_due(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Every minute: scheduled campaigns whose time has come start; campaigns whose last sender
    died mid-batch are settled (see sender.settle_stale)."""
    async with sessions() as session, session.begin():
        started = await service.start_due(session)
        await sender.settle_stale(session)
        return started
