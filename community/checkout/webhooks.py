"""The Stripe webhook inbox: verify on the raw body, store each event once, process it through
the outbox. Processing maps an event to a community through our own records, re-fetches the
current object from Stripe (so the order of deliveries does not matter) and is idempotent."""

from __future__ import annotations

import json
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs
from community.billing import events as billing_events
from community.billing.models import Checkout, CheckoutState, StripeEvent
from community.checkout import connect, service
from community.db import utcnow
from community.errors import DomainError, Invalid, NotYetKnown
from community.jobs import JobContext
from community.settings import Settings
from community.stripe_client import stripe_client

PROCESS_EVENT = "checkout.process_stripe_event"

CHECKOUT_TYPES = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
}
HANDLED = CHECKOUT_TYPES | {"account.updated"} | set(billing_events.HANDLERS)


class WebhookRefused(DomainError):
    """400: a bad or stale signature, or an endpoint without a configured secret."""

    status_code = 400


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    if not secret:
        raise WebhookRefused("this webhook endpoint is not configured (no signing secret)")
    if not signature:
        raise WebhookRefused("missing Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, tolerance=300)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise WebhookRefused("invalid or stale signature") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise Invalid("not a Stripe event", field="body")
    return event


async def receive(session: AsyncSession, event: dict[str, Any], *, connect_endpoint: bool) -> bool:
    """Store the event once and queue its processing; a duplicate delivery is acknowledged and
    ignored. Returns whether it was new."""
    account = event.get("account") if connect_endpoint else None
    handled = event["type"] in HANDLED
    stored = await session.scalar(
        pg_insert(StripeEvent)
        .values(
            event_id=event["id"][:255],
            type=event["type"][:100],
            account=account if isinstance(account, str) else None,
            payload=event,
            # Types we do not act on are kept for the record, already settled.
            **({} if handled else {"processed_at": utcnow(), "outcome": "ignored"}),
        )
        .on_conflict_do_nothing(index_elements=[StripeEvent.event_id])
        .returning(StripeEvent.id)
    )
    if stored is None:
        return False
    if handled:
        await jobs.enqueue(session, PROCESS_EVENT, event_row_id=stored)
    return True


# ---------------------------------------------------------------- processing (a job)


async def process_event(session: AsyncSession, ctx: JobContext, *, event_row_id: int) -> None:
    row = await session.scalar(select(StripeEvent).where(StripeEvent.id == event_row_id).with_for_update())
    if row is None or row.processed_at is not None:
        return
    row.outcome = await _dispatch(session, ctx.settings, row)
    row.processed_at = utcnow()


async def _dispatch(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    obj = (row.payload.get("data") or {}).get("object") or {}
    if row.type == "account.updated":
        account_id = row.account or obj.get("id")
        community_id = await connect.on_account_updated(session, stripe_client(settings), account_id) if account_id else None
        row.community_id = community_id
        return "updated" if community_id else "unknown account"
    if row.type in billing_events.HANDLERS:
        return await billing_events.HANDLERS[row.type](session, settings, row)
    checkout = await _checkout_for(session, row, obj)
    if checkout is None:
        return "not ours"
    row.community_id = checkout.community_id
    if checkout.state is CheckoutState.fulfilled:
        return "already fulfilled"  # final: nothing Stripe says now changes it, so no need to ask
    if row.type == "checkout.session.async_payment_failed":
        return await service.payment_failed(session, checkout)
    # The current state of the session, not the event's snapshot: a late "completed" after an
    # "async_payment_succeeded", or an "expired" racing a payment, then end the same way.
    current = await service.fetch_session(settings, checkout)
    return await service.settle(session, settings, checkout, current)


async def _checkout_for(session: AsyncSession, row: StripeEvent, obj: dict[str, Any]) -> Checkout | None:
    """Our record for this session, found by the Stripe session id we stored and checked
    against the account the event came from; metadata alone is never trusted."""
    session_id = obj.get("id")
    if not isinstance(session_id, str):
        return None
    checkout = await session.scalar(select(Checkout).where(Checkout.stripe_session_id == session_id).with_for_update())
    if checkout is None:
        metadata = obj.get("metadata") or {}
        if metadata.get("checkout_id"):
            # Ours, but the request that created it has not committed yet: retry later.
            raise NotYetKnown(f"checkout for session {session_id} is not stored yet")
        return None
    if row.account != checkout.stripe_account_id:
        return None  # an event from another account naming our session id: not believed
    return checkout
