"""Access at scale: an offer's group edit with N buyers, its side effects, the access query.

    python bench/access.py [--buyers 1000000]

COMMUNITY_DATABASE_URL / COMMUNITY_REDIS_URL when set, else embedded services in a temp dir;
works in a fresh database bench_<random>, dropped at the end. Progress on stderr; on stdout:
edit_commit_ms (PUT .../offers/{id}/groups add, then remove, commit inside the request),
floor_s (one INSERT ... SELECT of N access-log rows), side_effect_s / side_effect_ratio (the
add-edit's run through runs.process_run, over floor_s), grandfather_ratio (a new-buyers-only
edit's request over floor_s), access_p50_ms / access_p99_ms (the access query, access.can_open's
statement, prepared on a raw asyncpg connection, back to back for random buyers and groups through
the whole of a run in progress; the runs (remove, add, remove, ...) go on in another process, so
their Python work does not delay the samples in this event loop; samples between two runs are
not counted), access_http_ratio (GET .../groups/{id}/access req/s over a bare Litestar endpoint's,
both served by one uvicorn server in its own process, run as `community serve` runs it, loaded
over TCP by a light keep-alive client in this process, in alternating timed rounds; stderr
shows each round with the server's and the load generator's CPU, so one can see which is the
bottleneck).
Stderr also shows, for reference: the query's tail (p90, p99.9, max), the same query with idle
gaps between queries, the endpoint's one statement (token + membership + access) and can_open
through an ORM AsyncSession (checkout + BEGIN + statement + ROLLBACK).

On a small machine the tail of the access query is mostly CPU scheduling: the run's PostgreSQL
backend keeps a core busy, and anything else running there competes for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import queue
import random
import statistics
import time

import asyncpg
import httpx
import uvicorn
from harness import load, log, out, scratch_settings, server_process
from litestar import Litestar, get
from sqlalchemy import text
from sqlalchemy.engine import make_url

from community.accounts import service as accounts
from community.app import create_app
from community.db import create_engine, session_factory
from community.migrate import upgrade
from community.offers import access, grants
from community.offers.runs import process_run
from community.settings import Settings

logging.getLogger("httpx").setLevel(logging.WARNING)
SEED = (  # N buyers, set-based: users (one signed up already), members, one live entitlement each
    "INSERT INTO users (email, name) SELECT 'b' || i || '@example.com', '' FROM generate_series(1, :n) AS i",
    "INSERT INTO members (community_id, user_id) SELECT :c, id FROM users WHERE id <> :owner",
    "INSERT INTO entitlements (community_id, offer_id, user_id, source, status, note) "
    + "SELECT :c, :o, user_id, 'comp', 'active', '' FROM members WHERE community_id = :c AND role IS NULL",
)
FLOOR = (
    "INSERT INTO access_log (community_id, user_id, group_id, group_name, change, cause) "
    "SELECT community_id, user_id, :g, 'G2', 'gained', 'floor' FROM entitlements WHERE offer_id = :o"
)


def background_runs(database_url: str, community_id: int, offer_id: int, group_id: int, run_id: int, in_run, stop, done) -> None:
    """In its own process: process the run, then remove or add the group for everyone again,
    process that run, ... until told to stop (after the current run). Each run's time to `done`."""

    async def loop(run_id: int) -> None:
        engine = create_engine(database_url, pool_size=2)
        sessions = session_factory(engine)
        adding = True
        while True:
            in_run.value, start = 1, time.perf_counter()
            await process_run(sessions, run_id)
            done.put(time.perf_counter() - start)
            in_run.value = 0
            if stop.is_set():
                break
            async with sessions() as s, s.begin():
                change = {"add": [group_id], "remove": []} if adding else {"add": [], "remove": [group_id]}
                await grants.edit_groups(s, community_id=community_id, offer_id=offer_id, mode=grants.EditMode.everyone, **change)
            async with sessions() as s:
                run_id = await s.scalar(text("SELECT max(id) FROM access_runs WHERE community_id = :c"), {"c": community_id})
            adding = not adding
        await engine.dispose()

    asyncio.run(loop(run_id))


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


async def autocommit(engine, *statements: str) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await conn.execute(text(statement))


async def settle(engine) -> None:
    """CHECKPOINT, so a measured bulk write does not pay for the writes before it (the seed)."""
    try:
        await autocommit(engine, "CHECKPOINT")
    except Exception as exc:  # noqa: BLE001 - needs superuser or pg_checkpoint; measure anyway
        log(f"  (no CHECKPOINT: {exc.__class__.__name__})")


async def call(client: httpx.AsyncClient, method: str, url: str, headers: dict, **kwargs) -> tuple[dict | list, float]:
    start = time.perf_counter()
    response = await client.request(method, url, headers=headers, **kwargs)
    elapsed = time.perf_counter() - start
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json(), elapsed


async def bench(settings: Settings, buyers: int, samples: int, rounds: int, seconds: float, concurrency: int) -> None:
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url, pool_size=5)
    sessions = session_factory(engine)
    app = create_app(settings)

    async with app.lifespan(), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600
    ) as client:
        log("setting up community, hub, 3 groups, offer (through the API)")
        signup, _ = await call(client, "POST", "/api/v1/auth/signup", {}, json={"email": "owner@example.com", "password": "bench password"})
        owner = {"Authorization": f"Bearer {signup['secret']}"}
        cid = (await call(client, "POST", "/api/v1/communities", owner, json={"name": "Bench"}))[0]["id"]
        base = f"/api/v1/communities/{cid}"
        hub = (await call(client, "POST", f"{base}/hubs", owner, json={"name": "Hub"}))[0]["id"]
        g1, g2, g3 = [(await call(client, "POST", f"{base}/hubs/{hub}/groups", owner, json={"name": f"G{i}"}))[0]["id"] for i in (1, 2, 3)]
        oid = (await call(client, "POST", f"{base}/offers", owner, json={"title": "Bench offer", "pricing": "free"}))[0]["id"]
        groups_url = f"{base}/offers/{oid}/groups"
        await call(client, "PUT", groups_url, owner, json={"add": [g1]})
        buyer_signup, _ = await call(client, "POST", "/api/v1/auth/signup", {}, json={"email": "buyer@example.com", "password": "bench password"})
        buyer = {"Authorization": f"Bearer {buyer_signup['secret']}"}

        async def last_run() -> int:
            async with sessions() as s:
                return await s.scalar(text("SELECT max(id) FROM access_runs WHERE community_id = :c"), {"c": cid})

        await process_run(sessions, await last_run())  # group 1 linked before any buyer: nothing to log

        log(f"seeding {buyers} buyers (users, members, entitlements; set-based), then ANALYZE")
        params = {"n": buyers - 1, "c": cid, "o": oid, "owner": signup["user"]["id"]}
        async with engine.begin() as conn:
            for statement in SEED:
                start = time.perf_counter()
                await conn.execute(text(statement), params)
                log(f"  {statement[:40]}... {time.perf_counter() - start:.1f}s")
        await autocommit(engine, "ANALYZE")
        async with sessions() as s:
            low, high = (await s.execute(text("SELECT min(user_id), max(user_id) FROM entitlements WHERE offer_id = :o"), {"o": oid})).one()

        log("edit: add group 2 for everyone")
        _, add_s = await call(client, "PUT", groups_url, owner, json={"add": [g2]})
        add_run = await last_run()

        log("floor: one INSERT ... SELECT of N access-log rows")
        await settle(engine)
        start = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text(FLOOR), {"g": g2, "o": oid})
        floor_s = time.perf_counter() - start  # the commit included
        # Back to the state the floor started from (the group-1 run logged nothing): TRUNCATE
        # rather than DELETE + VACUUM, which would leave statistics saying the log has zero pages,
        # so the run's first batch would be planned for an empty table while it fills it.
        async with sessions() as s:
            others = await s.scalar(text("SELECT count(*) FROM access_log WHERE cause <> 'floor'"))
        await autocommit(engine, "TRUNCATE access_log" if not others else "DELETE FROM access_log WHERE cause = 'floor'")
        out("floor_s", f"{floor_s:.3f}")

        log(f"side effects: process_run({add_run}) to completion")
        await settle(engine)
        start = time.perf_counter()
        run = await process_run(sessions, add_run)
        side_s = time.perf_counter() - start
        async with sessions() as s:
            logged = await s.scalar(text("SELECT count(*) FROM access_log WHERE run_id = :r"), {"r": add_run})
        log(f"  run {add_run}: state={run.state.value} done={run.done}/{run.total} rows logged={logged}")
        out("side_effect_s", f"{side_s:.3f}")
        out("side_effect_ratio", f"{side_s / floor_s:.2f}")

        log("grandfathering: add group 3 for new buyers only")
        _, grand_s = await call(client, "PUT", groups_url, owner, json={"add": [g3], "mode": "new_buyers_only"})
        out("grandfather_ratio", f"{grand_s / floor_s:.4f}")

        log("edit: remove group 2 for everyone")
        _, remove_s = await call(client, "PUT", groups_url, owner, json={"remove": [g2]})
        out("edit_commit_ms", f"add:{add_s * 1000:.1f},remove:{remove_s * 1000:.1f}")

        # Runs go on in another process (this remove's, then add, remove, ...) while we sample:
        # in this event loop their Python work would delay the samples' wake-ups, which is the
        # bench measuring itself, not the query.
        mp = multiprocessing.get_context("spawn")
        in_run, stop, done = mp.Value("b", 0), mp.Event(), mp.Queue()
        worker = mp.Process(
            target=background_runs, args=(settings.database_url, cid, oid, g2, await last_run(), in_run, stop, done)
        )
        worker.start()
        raw = await asyncpg.connect(make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False))
        can_open = await raw.prepare(access.positional(access._CAN_OPEN.text, "community_id", "user_id", "group_id"))
        check = await raw.prepare(access._ACCESS_CHECK_SQL)
        buyer_hash = accounts.hash_secret(buyer_signup["secret"])
        while not in_run.value:
            await asyncio.sleep(0.01)
        log(f"sampling access queries for random buyers, back to back, through a whole run (at least {samples})")
        query_ms, check_ms, session_ms, paced_ms, skipped = [], [], [], [], 0
        while done.empty() or len(query_ms) < samples:  # until the run sampling began in has ended
            user, group = random.randint(low, high), random.choice((g1, g2, g3))
            start = time.perf_counter()
            await can_open.fetchval(cid, user, group)
            elapsed = (time.perf_counter() - start) * 1000
            if in_run.value:
                query_ms.append(elapsed)
            else:  # between runs (the next edit): not what is measured
                skipped += 1
                await asyncio.sleep(0.001)
        log(
            f"  {len(query_ms)} samples during runs ({skipped} between runs not counted): p90={pct(query_ms, 90):.3f}ms "
            f"p99.9={statistics.quantiles(query_ms, n=1000)[998]:.3f}ms max={max(query_ms):.3f}ms, "
            f"{sum(ms > 1 for ms in query_ms)} over 1 ms"
        )
        while len(paced_ms) < samples // 4:  # for reference: with idle gaps between queries
            await asyncio.sleep(random.random() / 1000)
            user, group = random.randint(low, high), random.choice((g1, g2, g3))
            start = time.perf_counter()
            await can_open.fetchval(cid, user, group)
            if in_run.value:
                paced_ms.append((time.perf_counter() - start) * 1000)
        for _ in range(samples // 4):  # for reference (stderr): the endpoint's statement, the ORM session path
            user, group = random.randint(low, high), random.choice((g1, g2, g3))
            start = time.perf_counter()
            await check.fetchrow(buyer_hash, cid, group)
            check_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            async with sessions() as s:
                await access.can_open(s, cid, user, group)
            session_ms.append((time.perf_counter() - start) * 1000)
        stop.set()
        run_times: list[float] = []
        while worker.is_alive() or not done.empty():  # it ends after the run in progress
            try:
                run_times.append(done.get_nowait())
            except queue.Empty:
                await asyncio.sleep(0.1)
        worker.join()
        await raw.close()
        log(f"  runs took {', '.join(f'{t:.1f}s' for t in run_times)}")
        log(f"  (reference) the same query with idle gaps of 0-1 ms between queries: p50={pct(paced_ms, 50):.3f}ms p99={pct(paced_ms, 99):.3f}ms")
        log(f"  (reference) the endpoint's one statement (token + membership + access): p50={pct(check_ms, 50):.3f}ms p99={pct(check_ms, 99):.3f}ms")
        log(f"  (reference) can_open through an ORM AsyncSession: p50={pct(session_ms, 50):.3f}ms p99={pct(session_ms, 99):.3f}ms")
        out("access_p50_ms", f"{pct(query_ms, 50):.3f}")
        out("access_p99_ms", f"{pct(query_ms, 99):.3f}")

        await http_ratio(settings, rounds, seconds, concurrency, f"{base}/groups/{g1}/access", f"{base}/me/groups", buyer)
    await engine.dispose()


@get("/bare/groups", sync_to_thread=False)
def bare() -> dict:
    return {"group_ids": [1, 2]}


def serve(settings: Settings, port: int) -> None:
    """In its own process: uvicorn as `community serve` runs it (uvloop, httptools, one worker;
    no access log), serving the app and, beside it, a bare Litestar app with one endpoint."""
    app, bare_app = create_app(settings), Litestar([bare])

    async def server(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bare/groups":
            await bare_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    uvicorn.run(server, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)


async def http_ratio(
    settings: Settings, rounds: int, seconds: float, concurrency: int, check_path: str, me_path: str, buyer: dict
) -> None:
    """access_http_ratio: the access check's requests/s over the bare endpoint's, both served by
    one real uvicorn server in its own process and loaded over TCP by a light client in this
    one, in alternating rounds (the machine's load drifts; both see the same drift)."""
    async with server_process(serve, settings, "/bare/groups") as (port, server_pid):
        log(f"HTTP: uvicorn in its own process, {rounds} rounds of {seconds:g} s per endpoint, {concurrency} keep-alive connections")
        done_: dict[str, list[tuple[int, float]]] = {"bare": [], "check": [], "me": []}
        for round_ in range(rounds):
            for name, path, headers in (("bare", "/bare/groups", {}), ("check", check_path, buyer), ("me", me_path, buyer)):
                if name == "me" and round_:
                    continue  # for reference, once
                request = "".join([f"GET {path} HTTP/1.1\r\nHost: bench\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"]).encode()
                count, elapsed, server_share, client_cpu = await load(
                    port, server_pid, lambda n, i, request=request: request, b"200", seconds, concurrency, warm_up=0.1
                )
                done_[name].append((count, elapsed))
                log(f"  {name:5s} {count / elapsed:6.0f}/s  server process CPU {server_share:4.0%} of a core, load generator {client_cpu:4.0%}")
        bare_rate, check_rate, me_rate = (sum(c for c, _ in done_[k]) / sum(t for _, t in done_[k]) for k in ("bare", "check", "me"))
        log(f"  bare endpoint {bare_rate:.0f}/s, access check {check_rate:.0f}/s, /me/groups (ORM session) {me_rate:.0f}/s")
        out("access_http_ratio", f"{check_rate / bare_rate:.3f}")


async def main(options: argparse.Namespace) -> None:
    async with scratch_settings() as settings, asyncio.timeout(options.timeout):
        await bench(settings, options.buyers, options.samples, options.rounds, options.round_seconds, options.concurrency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="HTTP: alternating rounds per endpoint")
    parser.add_argument("--round-seconds", type=float, default=1.0, help="HTTP: seconds per endpoint and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before giving up")
    asyncio.run(main(parser.parse_args()))
