"""The embedded services: real PostgreSQL and Redis under a data dir, reused, data kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
from redis import Redis
from sqlalchemy import text

from community.db import create_engine
from community.runtime import services


async def _query(url: str, *statements: str):
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for sql in statements:
                result = await conn.execute(text(sql))
            return result.all() if result.returns_rows else None
    finally:
        await engine.dispose()


def test_embedded_services_keep_their_data_across_restarts(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # embedded PostgreSQL runs as its own system user when we are root
    data_dir = tmp_path / "data"
    with services(data_dir, None, None) as first:
        assert first.embedded
        asyncio.run(_query(first.database_url, "CREATE TABLE kept (value text)", "INSERT INTO kept VALUES ('still here')"))
        Redis.from_url(first.redis_url).set("kept", "still here")
        redis_pid = Redis.from_url(first.redis_url).info("server")["process_id"]

    # Stopped on exit: nothing keeps running behind the user's back.
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert not any("postgres" in (p.info["name"] or "") and str(data_dir) in " ".join(p.info["cmdline"] or [])
                   for p in psutil.process_iter(["name", "cmdline"]))

    with services(data_dir, None, None) as second:
        assert asyncio.run(_query(second.database_url, "SELECT value FROM kept")) == [("still here",)]
        assert Redis.from_url(second.redis_url).get("kept") == b"still here"


def test_configured_urls_are_used_as_given(tmp_path: Path) -> None:
    with services(tmp_path, "postgresql://db.example/x", "redis://cache.example/0") as found:
        assert (found.database_url, found.redis_url, found.embedded) == ("postgresql://db.example/x", "redis://cache.example/0", False)
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "redis").exists()
