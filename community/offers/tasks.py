"""Jobs of the offers domain: access-change runs, their emails, and the pass-expiry sweep."""

from __future__ import annotations

from itertools import groupby

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.db import utcnow
from community.hubs.models import Community
from community.jobs import JobContext
from community.mail.delivery import build_message, deliver
from community.mail.service import render
from community.offers import entitlements, runs
from community.offers.models import AccessChange, AccessLogEntry

EMAIL_BATCH = 500


async def process_access_run(session: AsyncSession, ctx: JobContext, *, run_id: int) -> None:
    # Batches commit on their own sessions: a crash keeps the progress made so far.
    await runs.process_run(ctx.sessions, run_id)


async def send_access_emails(session: AsyncSession, ctx: JobContext, *, run_id: int) -> None:
    """One email per member per run, listing the groups gained and lost. Each member's rows
    are marked notified when their email has gone, so a re-run sends only what is left."""
    while True:
        async with ctx.sessions() as batch, batch.begin():
            rows = (
                await batch.execute(
                    select(AccessLogEntry, User.email, User.name, Community.name.label("community_name"))
                    .join(User, User.id == AccessLogEntry.user_id)
                    .join(Community, Community.id == AccessLogEntry.community_id)
                    .where(AccessLogEntry.run_id == run_id, AccessLogEntry.notified_at.is_(None))
                    .order_by(AccessLogEntry.user_id, AccessLogEntry.id)
                    .limit(EMAIL_BATCH)
                    .with_for_update(of=AccessLogEntry, skip_locked=True)
                )
            ).all()
            if not rows:
                return
            for user_id, entries in groupby(rows, key=lambda row: row.AccessLogEntry.user_id):
                entries = list(entries)
                first = entries[0]
                subject, text_body, html = render(
                    "access_changed",
                    name=first.name,
                    email=first.email,
                    community_name=first.community_name,
                    gained=[e.AccessLogEntry.group_name for e in entries if e.AccessLogEntry.change is AccessChange.gained],
                    lost=[e.AccessLogEntry.group_name for e in entries if e.AccessLogEntry.change is AccessChange.lost],
                    site_url=ctx.settings.base_url,
                )
                stem = f"access-{run_id}-{user_id}"
                message = build_message(ctx.settings, to=first.email, subject=subject, text=text_body, html=html, message_id=stem)
                await deliver(ctx.settings, message, file_stem=stem)
                await batch.execute(
                    update(AccessLogEntry)
                    .where(AccessLogEntry.id.in_([e.AccessLogEntry.id for e in entries]))
                    .values(notified_at=utcnow())
                )


async def sweep_expired(session: AsyncSession) -> int:
    """Start the runs of entitlements whose ends_at went by (annual passes, grace periods).
    Access already stopped at ends_at; this tells people and writes the log."""
    return await entitlements.start_expiry_runs(session)


async def on_group_deleted(session: AsyncSession, ctx: JobContext, *, group_id: int, group_name: str) -> None:
    """A hub group was deleted (its offer links went with it): tell everyone who had it.
    Idempotent: a second start finds nobody left to tell."""
    assert ctx.community_id is not None
    await runs.start_run(session, community_id=ctx.community_id, cause=f"group {group_name} deleted", scope={"group_id": group_id, "group_name": group_name})
