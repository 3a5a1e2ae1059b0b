"""Stripe event types billing acts on, and their handlers. The webhook inbox (checkout)
stores and queues every event; for these types it hands the stored row here.

A handler is `async def handle(session, settings, row: StripeEvent) -> str`: it finds the
community through our own records (never metadata alone), sets `row.community_id`, re-fetches
the Stripe object where order matters, is idempotent, and returns the outcome to store. It
raises `community.errors.NotYetKnown` while the record it needs is not committed yet (the job retries)."""

from __future__ import annotations

from community.billing import disputes, refunds, subscriptions

HANDLERS = {**subscriptions.EVENT_HANDLERS, **refunds.EVENT_HANDLERS, **disputes.EVENT_HANDLERS}
