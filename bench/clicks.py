"""Affiliate links under load: /r/{code} against a bare Litestar redirect, then every click stored.

    python bench/clicks.py [--affiliates 50] [--rounds 5] [--round-seconds 1] [--concurrency 16]

COMMUNITY_DATABASE_URL / COMMUNITY_REDIS_URL when set, else embedded services in a temp dir;
works in a fresh database bench_<random>, dropped at the end. One uvicorn server in its own
process (as `community serve` runs it: one worker, no access log) serves the app and, beside it,
a bare Litestar app with one redirect endpoint; a light keep-alive HTTP/1.1 client in this process
loads both in alternating timed rounds. Every /r/{code} request carries a visitor cookie of its
own, so every one is a click to count (no repeat within the hour). Progress on stderr; on stdout:
bare_rps (the bare redirect), link_rps (/r/{code}: code lookup, click buffered, two cookies,
redirect), link_ratio (link_rps / bare_rps; the goal is at least 0.5), clicks_sent,
clicks_stored_before_shutdown (written by the flusher while the server ran), clicks_stored (after
the server's graceful shutdown, SIGTERM), clicks_lost (sent minus stored; must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

import httpx
import uvicorn
from harness import load, log, out, scratch_settings, server_process
from litestar import Litestar, get
from litestar.response import Redirect
from sqlalchemy import text

from community.affiliates.models import Affiliate
from community.app import create_app
from community.db import create_engine, session_factory
from community.migrate import upgrade
from community.offers.models import Offer, OfferStatus, Pricing
from community.settings import Settings


@get("/bare/r/{code:str}", sync_to_thread=False)
def bare(code: str) -> Redirect:
    return Redirect("/o/bench/offer", status_code=302)


def serve(settings: Settings, port: int) -> None:
    """In its own process: uvicorn serving the app and, beside it, the bare redirect."""
    app, bare_app = create_app(settings), Litestar([bare])

    async def server(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/bare/"):
            await bare_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    uvicorn.run(server, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)


def link_requests(prefix: str, codes: list[str], run: str, host: str):
    """GET {prefix}{code} with a visitor cookie of its own each time: every one a click to count.
    `host`: the community's origin, where its links answer (elsewhere they move there)."""

    def request(n: int, sent: int) -> bytes:
        code = codes[(n + sent) % len(codes)]
        visitor = f"{run}-{n:03d}-{sent:012d}"  # unique per request: every click counts
        return f"GET {prefix}{code} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nCookie: community_vid={visitor}\r\n\r\n".encode()

    return request


async def setup(settings: Settings, affiliates: int) -> list[str]:
    """A community, a published paid offer with a resell program and N affiliates (rows written
    directly: the bench measures links, not enrolment)."""
    app = create_app(settings)
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as api:
        owner = (await api.post("/api/v1/auth/signup", json={"email": "owner@bench.example", "password": "bench password"})).json()
        community = (await api.post("/api/v1/communities", json={"name": "Bench"}, headers={"Authorization": f"Bearer {owner['secret']}"})).json()
    engine = create_engine(settings.database_url, pool_size=2)
    async with session_factory(engine)() as session, session.begin():
        offer = Offer(
            community_id=community["id"], title="Bench offer", slug="offer", pricing=Pricing.one_time, amount=4900,
            currency="USD", status=OfferStatus.published, resell_enabled=True, resell_commission_bps=2000,
            landing_page={"headline": "Bench"},
        )
        session.add(offer)
        await session.flush()
        await session.execute(
            text("INSERT INTO users (email, name) SELECT 'aff' || i || '@bench.example', '' FROM generate_series(1, :n) AS i"), {"n": affiliates}
        )
        users = (await session.execute(text("SELECT id FROM users WHERE email LIKE 'aff%'"))).scalars().all()
        codes = [f"b{n:07d}" for n in range(len(users))]
        session.add_all(Affiliate(community_id=community["id"], offer_id=offer.id, user_id=u, code=c) for u, c in zip(users, codes, strict=True))
    await engine.dispose()
    return codes


async def stored_clicks(settings: Settings) -> int:
    engine = create_engine(settings.database_url, pool_size=1)
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM affiliate_clicks"))).scalar_one()
    await engine.dispose()
    return count


async def bench(settings: Settings, options: argparse.Namespace) -> None:
    await upgrade(settings.database_url)
    codes = await setup(settings, options.affiliates)
    host = settings.pages.host("bench")  # the community "Bench"
    log(f"{len(codes)} affiliates of one offer; starting uvicorn in its own process")
    async with server_process(serve, settings, "/bare/r/x") as (port, server_pid):
        run = secrets.token_hex(3)
        warm_up, *_ = await load(port, server_pid, link_requests("/r/", codes, f"{run}w", host), b"302", options.warm_up, options.concurrency)  # clicks too
        await load(port, server_pid, link_requests("/bare/r/", codes, f"{run}w", host), b"302", options.warm_up, options.concurrency)
        done: dict[str, list[tuple[int, float]]] = {"bare": [], "link": []}
        log(f"{options.rounds} alternating rounds of {options.round_seconds:g} s per endpoint, {options.concurrency} keep-alive connections")
        for round_ in range(options.rounds):
            for name, prefix in (("bare", "/bare/r/"), ("link", "/r/")):
                requests = link_requests(prefix, codes, f"{run}r{round_}", host)
                count, elapsed, server_cpu, _ = await load(port, server_pid, requests, b"302", options.round_seconds, options.concurrency)
                done[name].append((count, elapsed))
                log(f"  {name:4s} {count / elapsed:6.0f}/s  server process CPU {server_cpu:4.0%} of a core")
        clicks = warm_up + sum(c for c, _ in done["link"])
        await asyncio.sleep(0.3)  # less than a flush interval can be left in memory now
        before = await stored_clicks(settings)
    # The server is gone (SIGTERM): its graceful shutdown ran the lifespan's final flush.
    stored = await stored_clicks(settings)
    bare_rps, link_rps = (sum(c for c, _ in done[k]) / sum(t for _, t in done[k]) for k in ("bare", "link"))
    out("bare_rps", f"{bare_rps:.0f}")
    out("link_rps", f"{link_rps:.0f}")
    out("link_ratio", f"{link_rps / bare_rps:.3f}")
    out("clicks_sent", clicks)
    out("clicks_stored_before_shutdown", before)
    out("clicks_stored", stored)
    out("clicks_lost", clicks - stored)


async def main(options: argparse.Namespace) -> None:
    async with scratch_settings() as settings, asyncio.timeout(options.timeout):
        await bench(settings, options)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--affiliates", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per endpoint")
    parser.add_argument("--round-seconds", type=float, default=1.0, help="seconds per endpoint and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warm-up", type=float, default=1.0, help="seconds per endpoint before the rounds")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before giving up")
    asyncio.run(main(parser.parse_args()))
