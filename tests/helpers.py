"""Helpers that run the real background machinery: the outbox relay step and an arq worker in burst mode."""

from __future__ import annotations

from typing import Any

from arq import Retry, create_pool

from community import jobs
from community.db import create_engine, session_factory
from community.settings import Settings
from workers.settings import build_worker


async def relay(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    pool = await create_pool(jobs.redis_settings(settings.redis_url))
    try:
        async with session_factory(engine)() as session, session.begin():
            return await jobs.relay_once(session, pool)
    finally:
        await pool.aclose()
        await engine.dispose()


async def run_jobs(settings: Settings, **worker_kwargs: Any) -> int:
    """Relay pending outbox rows, then run a real arq worker until the queue is empty. Events
    announced meanwhile, the emails decided for them, and an access run's emails go in a further
    round (as the relay would pick them up in production)."""
    worker_kwargs.setdefault("retry_base_seconds", 0.0)
    moved = 0
    for _ in range(5):
        await decide_notifications(settings, worker_kwargs.get("handlers"))
        round_moved = await relay(settings)
        moved += round_moved
        worker = build_worker(settings, burst=True, **worker_kwargs)
        try:
            await worker.main()
        finally:
            await worker.close()
        if not await _announced_pending(settings):
            break
    return moved


async def _announced_pending(settings: Settings) -> bool:
    from sqlalchemy import func, select

    from community.mail.announce import NOTIFY
    from community.mail.service import SEND_EMAIL
    from community.offers.runs import SEND_ACCESS_EMAILS

    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return bool(
                await session.scalar(
                    select(func.count())
                    .select_from(jobs.OutboxJob)
                    .where(jobs.OutboxJob.name.in_([NOTIFY, SEND_EMAIL, SEND_ACCESS_EMAILS]), jobs.OutboxJob.state == jobs.JobState.pending)
                )
            )
    finally:
        await engine.dispose()


async def decide_notifications(settings: Settings, handlers: dict[str, Any] | None = None) -> int:
    """Run the pending announce jobs now, through the real outbox runner: the notifications
    package decides who is told and queues one send job per message (then visible as outbox
    rows named `mail.SEND_EMAIL`). Other jobs are left pending."""
    from sqlalchemy import select

    from community.mail.announce import NOTIFY
    from workers.registry import HANDLERS

    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            ids = list(
                await session.scalars(
                    select(jobs.OutboxJob.id)
                    .where(jobs.OutboxJob.name == NOTIFY, jobs.OutboxJob.state == jobs.JobState.pending)
                    .order_by(jobs.OutboxJob.id)
                )
            )
        for outbox_id in ids:
            ctx = {"sessions": sessions, "handlers": {**HANDLERS, **(handlers or {})}, "settings": settings}
            try:
                await jobs.run_outbox_job(ctx, outbox_id)
            except Retry:  # failed this time: the worker's round retries it
                pass
        return len(ids)
    finally:
        await engine.dispose()
