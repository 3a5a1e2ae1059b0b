"""Test fixtures on real services.

PostgreSQL and Redis are the ones named by COMMUNITY_TEST_DATABASE_URL and
COMMUNITY_TEST_REDIS_URL, else embedded ones started here. The suite creates its own fresh
database on that server (dropped at the end), applies the real Alembic migrations to it, and
empties every table and the Redis database between tests.
"""

from __future__ import annotations

import os

# Before the app is imported: argon2's cheapest profile for the suite's thousands of sign-ups
# (accounts/service.py; the same code paths).
os.environ.setdefault("COMMUNITY_PASSWORD_HASHING", "cheapest")

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from community.app import create_app
from community.db import create_engine, session_factory, to_async_url
from community.migrate import upgrade
from community.models import metadata
from community.runtime import services
from community.settings import Settings
from community.stripe_client import stripe_client
from stripe_sandbox import StripeSandbox


@dataclass
class TestServices:
    database_url: str
    redis_url: str
    data_dir: Path


@pytest.fixture(scope="session")
async def test_services() -> AsyncIterator[TestServices]:
    import os

    database_url = os.environ.get("COMMUNITY_TEST_DATABASE_URL") or None
    redis_url = _worker_redis(os.environ.get("COMMUNITY_TEST_REDIS_URL") or None)
    root = Path(tempfile.mkdtemp(prefix="community-tests-"))
    root.chmod(0o755)  # embedded PostgreSQL runs as its own system user when we are root
    try:
        with services(root / "services", database_url, redis_url) as found:
            server_url = make_url(to_async_url(found.database_url))
            name = f"community_test_{secrets.token_hex(4)}"
            await _create_database(server_url, name)
            try:
                yield TestServices(
                    database_url=server_url.set(database=name).render_as_string(hide_password=False),
                    redis_url=found.redis_url,
                    data_dir=root / "data",
                )
            finally:
                await _drop_database(server_url, name)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _worker_redis(url: str | None) -> str | None:
    """Under pytest-xdist each worker empties its Redis database between tests: on a given
    server, each worker takes its own database number (the URL's, then the next ones up, or
    down from 15). Embedded Redis is one server per worker already."""
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base, index = int(parts.path.strip("/") or 0), int(worker[2:])
    number = base + index if base + index < 16 else base - index  # Redis has databases 0-15
    return parts._replace(path=f"/{number}").geturl()


async def _admin_engine(server_url) -> AsyncEngine:
    return create_engine(server_url.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")


async def _create_database(server_url, name: str) -> None:
    engine = await _admin_engine(server_url)
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
        # A test database need not survive a crash of its server: commits return without waiting
        # for the WAL flush (thousands of them; what each transaction sees is unchanged).
        await conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit TO off'))
    await engine.dispose()


async def _drop_database(server_url, name: str) -> None:
    engine = await _admin_engine(server_url)
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@dataclass
class StripeFixture:
    """The local Stripe sandbox, with one platform and one Connect webhook endpoint whose
    deliveries the tests take and post to the app themselves."""

    sandbox: StripeSandbox
    platform_endpoint: str
    connect_endpoint: str

    def drain(self) -> None:
        self.sandbox.take_deliveries(self.platform_endpoint)
        self.sandbox.take_deliveries(self.connect_endpoint)


STRIPE_KEY = "sk_test_community_suite"
PLATFORM_WEBHOOK_SECRET = "whsec_test_platform"
CONNECT_WEBHOOK_SECRET = "whsec_test_connect"


@pytest.fixture(scope="session")
def stripe_sandbox() -> Iterator[StripeFixture]:
    with StripeSandbox(api_key=STRIPE_KEY, retry_delays=(0.2, 0.5, 1.0)) as sandbox:
        yield StripeFixture(
            sandbox,
            platform_endpoint=sandbox.add_webhook_endpoint(None, PLATFORM_WEBHOOK_SECRET, connect=False),
            connect_endpoint=sandbox.add_webhook_endpoint(None, CONNECT_WEBHOOK_SECRET, connect=True),
        )


@pytest.fixture
async def stripe_env(stripe_sandbox: StripeFixture, settings: Settings) -> AsyncIterator[StripeFixture]:
    stripe_sandbox.drain()  # no deliveries left over from an earlier test
    yield stripe_sandbox
    # The sandbox outlives each test: a subscription left running would renew when a later
    # test moves the clock, and send events about rows that test never had.
    state = stripe_sandbox.sandbox.state
    for sub_id in list(state.index.get("subscription", [])):
        sub = state.objects[sub_id]
        if sub["status"] not in ("canceled", "incomplete_expired"):
            await stripe_client(settings).v1.subscriptions.cancel_async(sub_id, options={"stripe_account": sub["_account"]})
    stripe_sandbox.drain()


@pytest.fixture(scope="session")
def settings(test_services: TestServices, stripe_sandbox: StripeFixture) -> Settings:
    test_services.data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        env="test",
        data_dir=test_services.data_dir,
        database_url=test_services.database_url,
        redis_url=test_services.redis_url,
        secret_key="test-secret-key-" + "x" * 32,
        base_url="http://testserver",
        stripe_secret_key=STRIPE_KEY,
        stripe_api_base=stripe_sandbox.sandbox.url,
        stripe_webhook_secret=PLATFORM_WEBHOOK_SECRET,
        stripe_connect_webhook_secret=CONNECT_WEBHOOK_SECRET,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await upgrade(settings.database_url)  # the real migrations, not create_all
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


TABLES = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)


@pytest.fixture(autouse=True)
async def clean_state(engine: AsyncEngine, redis: Redis, settings: Settings) -> AsyncIterator[None]:
    """Every test starts from empty tables, an empty Redis database and no mail."""
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    await redis.flushdb()
    shutil.rmtree(settings.data_dir / "mail", ignore_errors=True)
    yield


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[Litestar]:
    """Run the app's lifespan in one dedicated task (see STACK_NOTES: a fixture that yields
    inside app.lifespan() fails at teardown with a cancel-scope error)."""
    started, stop = asyncio.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        try:
            async with app.lifespan():
                started.set()
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the waiting test below
            failure.append(exc)
            started.set()

    task = asyncio.create_task(hold())
    await started.wait()
    if failure:
        raise failure[0]
    try:
        yield app
    finally:
        stop.set()
        await task


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Litestar]:
    async with running(create_app(settings)) as application:
        yield application


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


# ---------------------------------------------------------------- helpers for tests


@dataclass
class Account:
    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up(client: httpx.AsyncClient, email: str, password: str = "correct horse battery", name: str = "") -> Account:
    response = await client.post("/api/v1/auth/signup", json={"email": email, "password": password, "name": name or email.split("@")[0]})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(id=body["user"]["id"], email=body["user"]["email"], token=body["secret"])


async def create_community(client: httpx.AsyncClient, owner: Account, name: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/communities", json={"name": name, **fields}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Account:
    return await sign_up(client, "owner@example.com", name="Olivia Owner")


@pytest.fixture
async def community(client: httpx.AsyncClient, owner: Account) -> dict[str, Any]:
    return await create_community(client, owner, "Makers Guild")
