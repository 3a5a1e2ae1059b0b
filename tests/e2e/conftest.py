"""Fixtures for browser tests: the real app served over HTTP on 127.0.0.1 by uvicorn, and a
headless Chromium driven by Playwright, both on the test session's own event loop.

Needs the system Chromium at /usr/bin/chromium (Debian: `apt-get install -y chromium`);
Playwright's own browser download is not used. Without it the browser tests are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from community.app import create_app
from community.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C stays with pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class LiveServer:
    url: str
    settings: Settings  # the settings the served app runs with (base_url is `url`)


@pytest.fixture(scope="session")
async def live_server(settings: Settings, engine: AsyncEngine) -> AsyncIterator[LiveServer]:
    """The app over real HTTP; `engine` first, so the migrations have run."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, held open: no race with another process
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    served = dataclasses.replace(settings, base_url=url)
    config = uvicorn.Config(
        create_app(served),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()  # raises the startup failure
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield LiveServer(url=url, settings=served)
    finally:
        server.should_exit = True
        with contextlib.suppress(SystemExit):
            await task
        sock.close()


class Loopback(httpx.AsyncHTTPTransport):
    """Browsers and curl resolve every `*.localhost` name to the loopback address (the
    communities' default origins); Python's resolver here does not. This transport connects to
    127.0.0.1 for them and keeps the Host header (and the cookie jar) of the real name."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".localhost"):
            # A copy: the client files the answer's cookies under the original request's name.
            request = httpx.Request(
                request.method, request.url.copy_with(host="127.0.0.1"), headers=request.headers,  # Host: as it was
                stream=request.stream, extensions=request.extensions,
            )
        return await super().handle_async_request(request)


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client against the live server (no redirects followed); it reaches the
    communities' origins (`http://{slug}.localhost:{port}`) too."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10, transport=Loopback()) as client:
        yield client


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile per test: no cookies carried between tests."""
    ctx = await browser.new_context(base_url=live_server.url)
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def browser_context_factory(browser: Browser, live_server: LiveServer) -> AsyncIterator[Callable[[], Awaitable[BrowserContext]]]:
    """More independent browser profiles in one test (say, a second user), closed at the end."""
    made: list[BrowserContext] = []

    async def make() -> BrowserContext:
        ctx = await browser.new_context(base_url=live_server.url)
        ctx.set_default_timeout(10_000)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A tab that records what the browser refused under the Content-Security-Policy (Chromium
    reports each violation on the console) in `page.csp_violations`, and uncaught script errors
    in `page.script_errors`."""
    tab = await context.new_page()
    violations: list[str] = []
    script_errors: list[str] = []
    tab.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
    tab.on("pageerror", lambda exc: script_errors.append(str(exc)))
    tab.csp_violations = violations  # type: ignore[attr-defined]
    tab.script_errors = script_errors  # type: ignore[attr-defined]
    yield tab
    await tab.close()


SERIOUS = ("serious", "critical")


async def assert_accessible(page: Page, where: str) -> None:
    """axe-core (bundled by axe-playwright-python) finds no serious or critical violation."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
    assert found == [], f"{where}: {found}"


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


async def at_both_widths(page: Page, where: str, stem: str) -> None:
    """axe-core at desktop and at a phone's width, with a screenshot of each (`stem`.png and
    `stem`-phone.png), and no sideways scrolling on the phone; back at desktop width after."""
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    await assert_accessible(page, where)
    await page.screenshot(path=f"{stem}.png", full_page=True)
    await page.set_viewport_size(PHONE)
    await assert_accessible(page, f"{where} at a phone's width")
    await page.screenshot(path=f"{stem}-phone.png", full_page=True)
    # Usable at a phone's width: nothing makes the page scroll sideways (wide tables scroll in their own box).
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{where}: the page is {overflow}px wider than a phone's screen"
    await page.set_viewport_size(DESKTOP)
