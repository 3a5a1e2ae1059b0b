"""arq WorkerSettings built from our Settings: `community worker` runs it."""

from __future__ import annotations

from typing import Any

from arq.cron import cron
from arq.worker import Worker, func

from community.affiliates.commissions import approve_all_due
from community.billing.refunds import retry_pending
from community.campaigns.tasks import start_due
from community.checkout.tasks import sweep_lapsed
from community.db import create_engine, session_factory
from community.jobs import (
    ARQ_FUNCTION,
    HANDLER_TIMEOUT,
    MAX_TRIES,
    Handler,
    redis_settings,
    run_outbox_job,
)
from community.members.directory import fold_counts
from community.offers.tasks import sweep_expired
from community.settings import Settings
from workers.registry import HANDLERS


async def sweep_expired_entitlements(ctx: dict[str, Any]) -> int:
    """Every minute: passes and periods that ended start their access runs (idempotent)."""
    async with ctx["sessions"]() as session, session.begin():
        return await sweep_expired(session)


async def approve_commissions(ctx: dict[str, Any]) -> int:
    """Every five minutes: commissions whose hold is over become payable (batched, idempotent)."""
    return await approve_all_due(ctx["sessions"])


async def retry_pending_refunds(ctx: dict[str, Any]) -> int:
    """Every minute: refunds still pending after a couple of minutes are asked of Stripe again,
    with the same idempotency key, and settled (idempotent)."""
    return await retry_pending(ctx["sessions"], ctx["settings"])


async def sweep_lapsed_checkouts(ctx: dict[str, Any]) -> int:
    """Every minute: checkouts still open after their Stripe session lapsed are re-read from
    Stripe and settled (an expiry gives the discount use back; a payment is fulfilled)."""
    return await sweep_lapsed(ctx["sessions"], ctx["settings"])


async def start_due_campaigns(ctx: dict[str, Any]) -> int:
    """Every minute: scheduled campaigns whose time has come are queued and their delivery job
    written (skip-locked: two workers never start one twice)."""
    return await start_due(ctx["sessions"])


async def fold_member_counts(ctx: dict[str, Any]) -> int:
    """Every minute: the member counts' change rows are summed per community (members/directory.py)."""
    async with ctx["sessions"]() as session, session.begin():
        return await fold_counts(session)


def worker_options(
    settings: Settings,
    *,
    handlers: dict[str, Handler] | None = None,
    retry_base_seconds: float = 5.0,
    handler_timeout: float = HANDLER_TIMEOUT,
) -> dict[str, Any]:
    """Keyword arguments for arq's Worker (shared by the CLI and the tests)."""
    engine_box: dict[str, Any] = {}

    async def startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings.database_url, pool_size=5)
        engine_box["engine"] = engine
        ctx.update(
            settings=settings,
            sessions=session_factory(engine),
            handlers=HANDLERS if handlers is None else handlers,
            retry_base_seconds=retry_base_seconds,
            handler_timeout=handler_timeout,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "engine" in engine_box:
            await engine_box.pop("engine").dispose()

    return dict(
        # Our own row counts tries (MAX_TRIES); arq's limit only has to stay out of its way.
        functions=[func(run_outbox_job, name=ARQ_FUNCTION, max_tries=MAX_TRIES + 5)],
        cron_jobs=[
            cron(sweep_expired_entitlements, name="sweep_expired_entitlements", second=0),
            cron(approve_commissions, name="approve_commissions", minute=set(range(0, 60, 5)), second=30),
            cron(retry_pending_refunds, name="retry_pending_refunds", second=20),
            cron(sweep_lapsed_checkouts, name="sweep_lapsed_checkouts", second=40),
            cron(start_due_campaigns, name="start_due_campaigns", second=10),
            cron(fold_member_counts, name="fold_member_counts", second=50),
        ],
        redis_settings=redis_settings(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        job_timeout=handler_timeout + 60,  # ours fires first, so a slow handler is a counted try
        keep_result=3600,
    )


def build_worker(settings: Settings, *, burst: bool = False, handle_signals: bool | None = None, **kwargs: Any) -> Worker:
    """`handle_signals` defaults to True for a standalone worker; pass False when another
    server in the same process (uvicorn in `community demo`) owns Ctrl-C."""
    return Worker(
        **worker_options(settings, **kwargs),
        burst=burst,
        poll_delay=0 if burst else 0.2,
        handle_signals=not burst if handle_signals is None else handle_signals,
    )
