"""The transactional outbox (DESIGN.md section 8).

`enqueue` writes an outbox row in the caller's transaction, so a job exists if and only if the
change that asked for it committed. The relay moves pending rows to arq (job id derived from the
row id); the worker runs the row's handler and marks the row done in the handler's own
transaction. A handler that raises is retried with backoff; after its last try the row stays
`failed`, visible through the API and `community jobs`, until someone retries it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arq import ArqRedis, Retry, create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp, utcnow
from community.settings import Settings

log = logging.getLogger("community.jobs")

ARQ_FUNCTION = "run_outbox_job"
MAX_TRIES = 5
# A row queued this long ago and still not done is handed to arq again: if Redis lost it
# (restart without persistence) it runs; if arq still has it, enqueue_job is a no-op.
REQUEUE_AFTER = dt.timedelta(minutes=10)
# A handler running longer than this fails its try like one that raised (counted, retried, in
# the end `failed`). It must stay below arq's job_timeout: arq's own timeout is final and
# leaves the row queued with the try uncounted.
HANDLER_TIMEOUT = 540.0


class JobState(enum.StrEnum):
    pending = "pending"  # written, not yet handed to arq
    queued = "queued"    # handed to arq
    done = "done"
    failed = "failed"    # gave up after MAX_TRIES; kept for inspection and manual retry


class OutboxJob(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "id", postgresql_where="state = 'pending'"),
        Index("ix_outbox_community_state", "community_id", "state", "id"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("communities.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    state: Mapped[JobState] = mapped_column(Enum(JobState, name="job_state"), default=JobState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by a manual retry so arq sees a fresh job id (it refuses ids it still remembers).
    generation: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    queued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def arq_job_id(self) -> str:
        return f"outbox-{self.id}-{self.generation}"


async def enqueue(session: AsyncSession, name: str, *, community_id: int | None = None, **payload: Any) -> OutboxJob:
    """Schedule `name(**payload)` to run after the caller's transaction commits."""
    row = OutboxJob(name=name, community_id=community_id, payload=payload, state=JobState.pending)
    session.add(row)
    await session.flush()
    return row


# ---------------------------------------------------------------- worker side


@dataclass
class JobContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    outbox_id: int
    attempt: int
    community_id: int | None = None  # the outbox row's tenant, for community-scoped handlers


# A handler may return a dict: it replaces the stored payload once the job is done, so a
# payload carrying a secret (an emailed login link) is not kept after it has served.
Handler = Callable[..., Awaitable[dict[str, Any] | None]]


def backoff_seconds(attempt: int, base: float) -> float:
    return min(300.0, base * 4 ** (attempt - 1))


async def run_outbox_job(ctx: dict[str, Any], outbox_id: int) -> str:
    """The single arq function: run one outbox row's handler, exactly once to completion."""
    sessions: async_sessionmaker[AsyncSession] = ctx["sessions"]
    handlers: dict[str, Handler] = ctx["handlers"]
    async with sessions() as session, session.begin():
        # The row lock makes a concurrent duplicate delivery wait, then see `done` and skip.
        row = await session.scalar(select(OutboxJob).where(OutboxJob.id == outbox_id).with_for_update())
        if row is None or row.state in (JobState.done, JobState.failed):
            return "skipped"
        handler = handlers.get(row.name)
        row.attempts += 1
        attempt = row.attempts  # counted on the row, so a re-relayed job keeps its history
        try:
            if handler is None:
                raise LookupError(f"no handler registered for job {row.name!r}")
            job_ctx = JobContext(ctx["settings"], sessions, row.id, attempt, row.community_id)
            async with asyncio.timeout(ctx.get("handler_timeout", HANDLER_TIMEOUT)):
                async with session.begin_nested():  # the handler's writes roll back alone if it raises
                    kept_payload = await handler(session, job_ctx, **row.payload)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the row
            row.last_error = f"{type(exc).__name__}: {exc}"[:4000]
            if attempt >= MAX_TRIES or handler is None:
                row.state = JobState.failed
                row.finished_at = utcnow()
                log.error("job %s #%s failed for good: %s", row.name, row.id, row.last_error)
                return "failed"
            delay = backoff_seconds(attempt, ctx.get("retry_base_seconds", 5.0))
            log.warning("job %s #%s failed (try %s), retrying in %.0fs: %s", row.name, row.id, attempt, delay, row.last_error)
        else:
            if kept_payload is not None:
                row.payload = kept_payload
            row.state = JobState.done
            row.finished_at = utcnow()
            row.last_error = None
            return "done"
    # Outside the transaction, so the attempt count and error above are committed first.
    raise Retry(defer=delay)


# ---------------------------------------------------------------- relay


async def relay_once(session: AsyncSession, pool: ArqRedis, batch: int = 200) -> int:
    """Hand pending (and long-unfinished) rows to arq. Raises if Redis is unreachable;
    the caller's rollback then leaves every row as it was."""
    stale = utcnow() - REQUEUE_AFTER
    rows = (
        await session.scalars(
            select(OutboxJob)
            .where(
                or_(
                    OutboxJob.state == JobState.pending,
                    (OutboxJob.state == JobState.queued) & (OutboxJob.queued_at < stale),
                )
            )
            .order_by(OutboxJob.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in rows:
        job = await pool.enqueue_job(ARQ_FUNCTION, row.id, _job_id=row.arq_job_id)
        if job is None and not await pool.exists(job_key_prefix + row.arq_job_id):
            # Not queued, only a result is left: arq ended this job without finishing the row
            # (its own timeout, an error outside the handler; a finished row is not selected
            # here, and a run in progress waits on our row lock with its job still queued) and
            # would refuse the id while it keeps that result (keep_result). Drop it, run again.
            await pool.delete(result_key_prefix + row.arq_job_id)
            await pool.enqueue_job(ARQ_FUNCTION, row.id, _job_id=row.arq_job_id)
        row.state = JobState.queued
        row.queued_at = utcnow()
    return len(rows)


def redis_settings(url: str, conn_retries: int = 5) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = conn_retries
    return settings


async def run_relay(
    sessions: async_sessionmaker[AsyncSession],
    redis_url: str,
    stop: asyncio.Event,
    interval: float = 0.5,
    round_timeout: float = 30.0,
) -> None:
    """Loop until `stop` is set. Survives Redis (and database) outages: rows simply wait.
    A round is bounded by `round_timeout`: a Redis that hangs instead of refusing (a stopped
    process, a dropped network) has no socket timeout in arq and would otherwise hold the
    relay, and its transaction's row locks, for good."""
    pool: ArqRedis | None = None
    try:
        while not stop.is_set():
            moved = 0
            try:
                async with asyncio.timeout(round_timeout):
                    if pool is None:
                        pool = await create_pool(redis_settings(redis_url, conn_retries=0))
                    async with sessions() as session, session.begin():
                        moved = await relay_once(session, pool)
            except Exception as exc:  # noqa: BLE001 - keep relaying after any outage
                log.warning("outbox relay: %s: %s (rows wait)", type(exc).__name__, exc)
                if pool is not None:
                    await _close(pool)
                    pool = None
            if moved == 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass
    finally:
        if pool is not None:
            await _close(pool)


async def _close(pool: ArqRedis) -> None:
    try:
        async with asyncio.timeout(5):
            await pool.aclose()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to keep
        pass


# ---------------------------------------------------------------- inspection


async def list_jobs(
    session: AsyncSession,
    *,
    community_id: int | None,
    state: JobState | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[OutboxJob]:
    query = select(OutboxJob).order_by(OutboxJob.id.desc()).limit(limit)
    if community_id is not None:
        query = query.where(OutboxJob.community_id == community_id)
    if state is not None:
        query = query.where(OutboxJob.state == state)
    if after is not None:
        query = query.where(OutboxJob.id < after)
    return list((await session.scalars(query)).all())


async def count_jobs(session: AsyncSession, *, community_id: int | None, state: JobState) -> int:
    """How many rows are in `state` (of one community, or all with None)."""
    query = select(func.count()).select_from(OutboxJob).where(OutboxJob.state == state)
    if community_id is not None:
        query = query.where(OutboxJob.community_id == community_id)
    return await session.scalar(query) or 0


async def retry_failed(session: AsyncSession, *, job_id: int, community_id: int | None) -> OutboxJob | None:
    """Put a failed row back in line; the relay picks it up. None if there is no such failed row."""
    query = (
        update(OutboxJob)
        .where(OutboxJob.id == job_id, OutboxJob.state == JobState.failed)
        .values(
            state=JobState.pending,
            attempts=0,
            generation=OutboxJob.generation + 1,
            finished_at=None,
            queued_at=None,
        )
        .returning(OutboxJob)
    )
    if community_id is not None:
        query = query.where(OutboxJob.community_id == community_id)
    return (await session.scalars(query)).one_or_none()
