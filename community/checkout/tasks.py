"""The sweep of lapsed checkouts (a cron): a checkout still open after its Stripe session's
expiry is re-read from Stripe and settled as Stripe says it ended.

Stripe announces an expiry (`checkout.session.expired`) and a payment (`checkout.session.completed`)
by webhook, retrying for days; until one of them is processed, the checkout's discount use stays
held. This sweep does not wait for them: a lost or late expiry gives the use back here, and a
payment whose event has not arrived yet is fulfilled here (the event then changes nothing).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community.billing.models import Checkout, CheckoutState
from community.checkout import service
from community.db import utcnow
from community.settings import Settings

log = logging.getLogger(__name__)

# Stripe's own expiry and its event come first; the sweep looks a little later.
SWEEP_AFTER = dt.timedelta(minutes=2)
# A session Stripe did not answer about is asked again after this long.
RECHECK_AFTER = dt.timedelta(minutes=15)
SWEEP_BATCH = 100


async def sweep_lapsed(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, now: dt.datetime | None = None
) -> int:
    """Settle open checkouts whose session lapsed, one transaction each; returns how many left
    `open`. Idempotent, and safe beside the webhook: both lock the checkout and re-read Stripe."""
    now = now or utcnow()
    async with sessions() as session:
        due = list(
            await session.scalars(
                select(Checkout.id)
                .where(
                    Checkout.state == CheckoutState.open,
                    Checkout.expires_at < now - SWEEP_AFTER,
                    Checkout.stripe_session_id.is_not(None),
                    or_(Checkout.stripe_checked_at.is_(None), Checkout.stripe_checked_at < now - RECHECK_AFTER),
                )
                .order_by(Checkout.expires_at)
                .limit(SWEEP_BATCH)
            )
        )
    settled = 0
    for checkout_id in due:
        try:
            settled += await _sweep_one(sessions, settings, checkout_id, now)
        except Exception:  # one checkout's trouble must not stop the others; it is asked again later
            log.exception("sweeping checkout %s failed", checkout_id)
    return settled


async def _sweep_one(sessions: async_sessionmaker[AsyncSession], settings: Settings, checkout_id: int, now: dt.datetime) -> bool:
    async with sessions() as session, session.begin():
        checkout = await session.scalar(select(Checkout).where(Checkout.id == checkout_id).with_for_update())
        if checkout is None or checkout.state is not CheckoutState.open:
            return False
        checkout.stripe_checked_at = now
        await service.recheck(session, settings, checkout)
        return checkout.state is not CheckoutState.open
