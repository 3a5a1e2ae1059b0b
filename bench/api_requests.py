"""Authenticated API requests against baselines measured in the same run.

    python bench/api_requests.py [--requests 2000] [--concurrency 16]

Uses COMMUNITY_DATABASE_URL / COMMUNITY_REDIS_URL when set, else embedded services in a
temporary directory; works in a fresh database bench_<random>, dropped at the end. Prints requests per second and each ratio to the baselines:
- a bare Litestar endpoint returning the same JSON shape (framework cost only),
- a raw asyncpg token lookup (the least a database-backed auth check can cost).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import asyncpg
import harness
import httpx
from litestar import Litestar, get

from community.accounts.service import hash_secret
from community.app import create_app
from community.migrate import upgrade

logging.getLogger("httpx").setLevel(logging.WARNING)


async def timed(label: str, total: int, concurrency: int, call) -> float:
    rate = await harness.timed(total, concurrency, lambda _: call())
    print(f"  {label:<44} {rate:>9.0f} /s")
    return rate


async def main(requests: int, concurrency: int) -> None:
    async with harness.scratch_settings() as settings:
        await upgrade(settings.database_url)
        app = create_app(settings)

        @get("/me", sync_to_thread=False)
        def bare() -> dict:
            return {"id": 1, "email": "a@b.c", "name": "x", "has_password": True, "created_at": "2026-01-01T00:00:00Z"}

        bare_app = Litestar([bare])
        async with app.lifespan(), bare_app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client, httpx.AsyncClient(
                transport=httpx.ASGITransport(app=bare_app), base_url="http://bench"
            ) as bare_client:
                email = f"bench{time.time_ns()}@example.com"
                signup = (await client.post("/api/v1/auth/signup", json={"email": email, "password": "bench password"})).json()
                headers = {"Authorization": f"Bearer {signup['secret']}"}
                community = (await client.post("/api/v1/communities", json={"name": f"Bench {time.time_ns()}"}, headers=headers)).json()
                hub = (await client.post(f"/api/v1/communities/{community['id']}/hubs", json={"name": "Hub"}, headers=headers)).json()
                for i in range(5):
                    await client.post(f"/api/v1/communities/{community['id']}/hubs/{hub['id']}/groups", json={"name": f"G{i}"}, headers=headers)

                pool = await asyncpg.create_pool(settings.database_url.replace("+asyncpg", ""), min_size=4, max_size=concurrency)
                token_hash = hash_secret(signup["secret"])

                async def raw_lookup() -> None:
                    await pool.fetchrow("SELECT id, user_id FROM auth_tokens WHERE token_hash = $1 AND revoked_at IS NULL", token_hash)

                async def bare_call() -> None:
                    assert (await bare_client.get("/me")).status_code == 200

                async def me_call() -> None:
                    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200

                async def hubs_call() -> None:
                    assert (await client.get(f"/api/v1/communities/{community['id']}/hubs", headers=headers)).status_code == 200

                print(f"{requests} calls, {concurrency} concurrent, one process (in-process ASGI, no sockets)")
                for warm in (bare_call, me_call, hubs_call, raw_lookup):
                    for _ in range(50):
                        await warm()
                bare_rate = await timed("baseline: bare Litestar JSON endpoint", requests, concurrency, bare_call)
                raw_rate = await timed("baseline: raw asyncpg token lookup", requests, concurrency, raw_lookup)
                me_rate = await timed("GET /api/v1/me (token check + user)", requests, concurrency, me_call)
                hubs_rate = await timed("GET /communities/{id}/hubs (token+role+2 q)", requests, concurrency, hubs_call)
                print("ratios (higher is slower):")
                print(f"  /me   vs bare endpoint: {bare_rate / me_rate:5.1f}x   vs raw lookup: {raw_rate / me_rate:5.1f}x")
                print(f"  /hubs vs bare endpoint: {bare_rate / hubs_rate:5.1f}x   vs raw lookup: {raw_rate / hubs_rate:5.1f}x")
                await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency))
