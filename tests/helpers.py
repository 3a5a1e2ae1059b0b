"""Helpers that run the real background machinery: the outbox relay step and an arq worker in burst mode."""

from __future__ import annotations

from typing import Any

from arq import create_pool

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
    """Relay pending outbox rows, then run a real arq worker until the queue is empty."""
    moved = await relay(settings)
    worker_kwargs.setdefault("retry_base_seconds", 0.0)
    worker = build_worker(settings, burst=True, **worker_kwargs)
    try:
        await worker.main()
    finally:
        await worker.close()
    return moved
