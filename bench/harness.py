"""What the bench scripts share: their output lines, a scratch database on the configured (or
embedded) services, a uvicorn server in its own process and a keep-alive HTTP load on it, and
timed rounds of calls."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from community.db import create_engine, to_async_url
from community.runtime import services
from community.settings import Settings

T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"[{time.perf_counter() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def out(key: str, value: object) -> None:
    """A result line, `key=value` on stdout."""
    print(f"{key}={value}", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


async def timed(total: int, concurrency: int, call: Callable[[int], Awaitable[object]]) -> float:
    """`call(n)` for n in range(total), `concurrency` at a time, in this event loop: calls per second."""
    counter = iter(range(total))

    async def runner() -> None:
        for n in counter:
            await call(n)

    start = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


async def _admin(server_url: Any, statement: str) -> None:
    engine = create_engine(server_url.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


@asynccontextmanager
async def scratch_settings() -> AsyncIterator[Settings]:
    """Settings on a fresh database bench_<random> (dropped at the end) of COMMUNITY_DATABASE_URL
    / COMMUNITY_REDIS_URL when set, else of embedded services in a temporary directory.
    COMMUNITY_BENCH_KEEP=1 keeps the database (to EXPLAIN its queries afterwards);
    COMMUNITY_BENCH_DATABASE=<name> works in that (kept) database instead, and keeps it."""
    data_dir = Path(tempfile.mkdtemp(prefix="community-bench-"))
    data_dir.chmod(0o755)  # embedded PostgreSQL runs as its own system user when we are root
    (data_dir / "data").mkdir()
    try:
        with services(data_dir / "services", os.environ.get("COMMUNITY_DATABASE_URL"), os.environ.get("COMMUNITY_REDIS_URL")) as found:
            server_url = make_url(to_async_url(found.database_url))
            reuse = os.environ.get("COMMUNITY_BENCH_DATABASE")  # a database a kept run left
            name = reuse or f"bench_{secrets.token_hex(4)}"
            if not reuse:
                await _admin(server_url, f'CREATE DATABASE "{name}"')
            log(f"database {name}")
            try:
                yield Settings(
                    env="test", data_dir=data_dir / "data",
                    database_url=server_url.set(database=name).render_as_string(hide_password=False),
                    redis_url=found.redis_url, secret_key="bench-" + "k" * 40, base_url="http://bench",
                )
            finally:
                if reuse or os.environ.get("COMMUNITY_BENCH_KEEP"):  # keep the seeded database to study it
                    log(f"kept {name} (COMMUNITY_BENCH_KEEP): drop it yourself")
                else:
                    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    log(f"dropped {name}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@asynccontextmanager
async def server_process(serve: Callable[[Settings, int], None], settings: Settings, ready_path: str) -> AsyncIterator[tuple[int, int]]:
    """`serve(settings, port)` in a process of its own until `ready_path` answers; yields
    (port, pid). Stopped with SIGTERM at the end: uvicorn's graceful shutdown runs the lifespan."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(settings, port), daemon=True)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                try:
                    await http.get(ready_path)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert server.pid is not None
        yield port, server.pid
    finally:
        server.terminate()
        server.join(timeout=60)


async def load(
    port: int,
    server_pid: int,
    request: Callable[[int, int], bytes],
    status: bytes,
    seconds: float,
    concurrency: int,
    warm_up: float = 0.0,
) -> tuple[int, float, float, float]:
    """A minimal HTTP/1.1 load generator on keep-alive connections (a few microseconds of our
    CPU per request, so the server is what is measured): connection n sends `request(n, i)` for
    its i-th request and expects `status`, for `seconds` after `warm_up` seconds not counted.
    (responses, elapsed, the server process's CPU share and ours over that time)."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    until, count = [0.0], [0]

    async def client(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        while time.perf_counter() < until[0]:
            sent += 1
            writer.write(request(n, sent))
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] != status:
                raise RuntimeError(f"{request(n, sent)[:100]!r}: {head[:300]!r}")
            at = head.lower().index(b"content-length:") + 15
            await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
            count[0] += 1

    if warm_up:
        until[0] = time.perf_counter() + warm_up
        await asyncio.gather(*(client(n, *c) for n, c in enumerate(connections)))
    count[0], start, cpu, server_cpu = 0, time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
    until[0] = start + seconds
    await asyncio.gather(*(client(n, *c) for n, c in enumerate(connections)))
    elapsed = time.perf_counter() - start
    server_share, client_share = (cpu_seconds(server_pid) - server_cpu) / elapsed, (time.process_time() - cpu) / elapsed
    for _, writer in connections:
        writer.close()
    return count[0], elapsed, server_share, client_share
