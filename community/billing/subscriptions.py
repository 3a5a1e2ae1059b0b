"""Memberships over time: renewals, failed payments and grace, cancellations, trials.

Stripe owns a subscription; `Subscription` is our copy as last read from Stripe, and the
entitlement's `ends_at` follows it (see docs/DESIGN.md §12):

- active or trialing: open-ended, or the cancel moment (the period end) once it cancels at
  period end (status cancelled);
- past_due: status past_due until the grace end (the first failed attempt of the open invoice
  plus the community's grace days); when that passes unpaid, on Stripe's clock (the next event)
  or ours (the expiry sweep), access stops; a later paid invoice reopens it;
- unpaid or paused: ended now (expired); canceled: ended now (cancelled);
- incomplete: nothing (the checkout has not been paid, so nothing was granted).

Events only say "something changed": each handler locks our row, re-fetches the subscription
from Stripe and applies its current state, so duplicate, concurrent and out-of-order deliveries
end the same way. Payments are recorded once per invoice (per account).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.billing import invoices, notices
from community.billing import service as billing
from community.billing.models import (
    Checkout,
    CheckoutState,
    PaymentKind,
    StripeEvent,
    Subscription,
)
from community.billing.stripe_objects import field, from_stamp, id_of, metadata_id
from community.db import utcnow
from community.errors import NotYetKnown
from community.hubs.models import Community
from community.mail.announce import announce
from community.money import format_amount
from community.offers import entitlements
from community.offers.models import Entitlement, EntitlementStatus
from community.settings import Settings
from community.stripe_client import stripe_client

OPEN = ("active", "trialing")
GRACE = "past_due"
LAPSED = ("unpaid", "paused")  # kept by Stripe, but not paid for: no access
CANCELED = ("canceled", "incomplete_expired")
ENDS_AT_PERIOD_END = "ends at period end"


# ---------------------------------------------------------------- reading Stripe objects


def period_end(current: Any) -> dt.datetime | None:
    """When the current period ends: on the subscription's items (the subscription has no
    period of its own since API 2025-03-31); the earliest, should items differ."""
    ends = [field(item, "current_period_end") for item in field(field(current, "items"), "data") or []]
    ends = [end for end in ends if end]
    return from_stamp(min(ends)) if ends else None


def _period_amount(current: Any) -> int:
    return sum(
        (field(field(item, "price"), "unit_amount") or 0) * (field(item, "quantity") or 1)
        for item in field(field(current, "items"), "data") or []
    )


# ---------------------------------------------------------------- Stripe calls


async def _retrieve(settings: Settings, account: str, subscription_id: str) -> stripe.Subscription:
    return await stripe_client(settings).v1.subscriptions.retrieve_async(
        subscription_id, options={"stripe_account": account}
    )


async def fetch(settings: Settings, subscription: Subscription) -> stripe.Subscription:
    """The subscription as Stripe holds it now, read on its connected account."""
    return await _retrieve(settings, subscription.stripe_account_id, subscription.stripe_subscription_id)


async def _unpaid_invoice(settings: Settings, subscription: Subscription, current: Any) -> tuple[dt.datetime | None, int | None]:
    """When the unpaid invoice was first tried (finalized, then charged at once), and what it
    asks for: the grace period counts from there, whichever event tells us first."""
    invoice_id = id_of(field(current, "latest_invoice"))
    if invoice_id is None:
        return None, None
    invoice = await stripe_client(settings).v1.invoices.retrieve_async(
        invoice_id, options={"stripe_account": subscription.stripe_account_id}
    )
    if invoice.status != "open":
        return None, None
    return from_stamp(field(field(invoice, "status_transitions"), "finalized_at") or invoice.created), invoice.amount_due


# ---------------------------------------------------------------- our rows


async def locked_for_entitlement(session: AsyncSession, community_id: int, entitlement_id: int) -> Subscription | None:
    """The entitlement's subscription, locked (before the entitlement: the order handlers keep)."""
    return await session.scalar(
        select(Subscription)
        .where(Subscription.community_id == community_id, Subscription.entitlement_id == entitlement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _locked(session: AsyncSession, account: str, subscription_id: str) -> Subscription | None:
    """Our row, locked: every change to one subscription runs one at a time, each on a fresh fetch."""
    return await session.scalar(
        select(Subscription)
        .where(Subscription.stripe_account_id == account, Subscription.stripe_subscription_id == subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def start(
    session: AsyncSession, settings: Settings, checkout: Checkout, entitlement: Entitlement, current: Any = None
) -> Subscription | None:
    """A recurring checkout was fulfilled: keep its subscription, in step with Stripe. Once
    (a second call, or a concurrent one, finds the row). None when the entitlement already
    follows another subscription."""
    assert checkout.stripe_account_id and checkout.stripe_subscription_id
    current = current or await _retrieve(settings, checkout.stripe_account_id, checkout.stripe_subscription_id)
    await session.execute(
        pg_insert(Subscription)
        .values(
            community_id=checkout.community_id,
            entitlement_id=entitlement.id,
            user_id=entitlement.user_id,
            offer_id=entitlement.offer_id,
            stripe_account_id=checkout.stripe_account_id,
            stripe_subscription_id=checkout.stripe_subscription_id,
            stripe_customer_id=id_of(field(current, "customer")),
            status=field(current, "status") or "incomplete",
            currency=(field(current, "currency") or checkout.currency).upper(),
            amount=_period_amount(current),
        )
        .on_conflict_do_nothing()
    )
    subscription = await _locked(session, checkout.stripe_account_id, checkout.stripe_subscription_id)
    if subscription is not None:
        await apply_stripe_state(session, settings, subscription, current, reason="subscription started")
    return subscription


# ---------------------------------------------------------------- Stripe's state -> the entitlement


@dataclass(frozen=True)
class Target:
    """Where the entitlement should be: `status` with access until `until` (None: open-ended),
    or, with `now`, ended at once."""

    status: EntitlementStatus
    until: dt.datetime | None = None
    now: bool = False


async def apply_stripe_state(
    session: AsyncSession,
    settings: Settings,
    subscription: Subscription,
    current: Any,
    *,
    reason: str,
    actor_id: int | None = None,
    at: dt.datetime | None = None,
) -> str:
    """Make our row and its entitlement match `current`, a Stripe subscription just fetched or
    returned by Stripe. The caller holds the row locked. Idempotent. `at` is Stripe's time of
    the event being handled (its clock says whether a grace period is over); now if not given."""
    community = await session.get_one(Community, subscription.community_id)
    stripe_now = at or utcnow()
    was_cancelling = subscription.cancel_at_period_end
    unpaid = await _copy_state(settings, subscription, current, grace_days=community.grace_days, stripe_now=stripe_now)
    outcome = await _move(session, subscription, _target(subscription, current, stripe_now), reason=reason, actor_id=actor_id)
    # Cancelled during a grace period, access still ends with the grace (no move), but the
    # member cancelled all the same.
    cancelled_in_grace = subscription.status == GRACE and subscription.cancel_at_period_end and not was_cancelling
    if outcome == ENDS_AT_PERIOD_END or cancelled_in_grace:  # once per cancel, wherever the member cancelled
        entitlement = await session.get_one(Entitlement, subscription.entitlement_id)
        await notices.cancellation(session, settings, entitlement, by_staff=False)
    if unpaid is not None:
        await _tell_payment_failed(session, settings, subscription, community, unpaid)
    await session.flush()
    return f"{subscription.status}: {outcome}"


async def _copy_state(
    settings: Settings, subscription: Subscription, current: Any, *, grace_days: int, stripe_now: dt.datetime
) -> int | None:
    """Copy Stripe's fields. When a grace period starts with this change: the amount unpaid."""
    subscription.status = field(current, "status") or subscription.status
    subscription.cancel_at_period_end = bool(field(current, "cancel_at_period_end"))
    subscription.current_period_end = period_end(current) or subscription.current_period_end
    subscription.trial_end = from_stamp(field(current, "trial_end"))
    subscription.canceled_at = from_stamp(field(current, "canceled_at"))
    subscription.stripe_customer_id = id_of(field(current, "customer")) or subscription.stripe_customer_id
    subscription.amount = _period_amount(current) or subscription.amount
    subscription.synced_at = utcnow()
    if subscription.status == GRACE:
        if subscription.grace_ends_at is None:
            failed_at, amount_due = await _unpaid_invoice(settings, subscription, current)
            subscription.grace_ends_at = (failed_at or stripe_now) + dt.timedelta(days=grace_days)
            return subscription.amount if amount_due is None else amount_due
    elif subscription.status not in LAPSED:
        subscription.grace_ends_at = None  # paid (or over): the next failure starts a new grace
    return None


def _target(subscription: Subscription, current: Any, stripe_now: dt.datetime) -> Target | None:
    status = subscription.status
    stop = from_stamp(field(current, "cancel_at")) or (
        subscription.current_period_end if subscription.cancel_at_period_end else None
    )
    if status in OPEN:
        return Target(EntitlementStatus.cancelled, stop) if stop else Target(EntitlementStatus.active)
    if status == GRACE:
        grace = subscription.grace_ends_at
        assert grace is not None
        if stripe_now >= grace:
            return Target(EntitlementStatus.expired, now=True)
        return Target(EntitlementStatus.past_due, min(grace, stop) if stop else grace)
    if status in LAPSED:
        return Target(EntitlementStatus.expired, now=True)
    if status in CANCELED:
        return Target(EntitlementStatus.cancelled, now=True)
    return None  # incomplete: not paid yet, so nothing was granted


async def _move(
    session: AsyncSession, subscription: Subscription, target: Target | None, *, reason: str, actor_id: int | None
) -> str:
    """One entitlement transition (at most two for a resumed-then-cancelling one), only if needed."""
    if target is None:
        return "unchanged"
    keys = {"community_id": subscription.community_id, "entitlement_id": subscription.entitlement_id}
    entitlement = await entitlements.get_entitlement(session, subscription.community_id, subscription.entitlement_id, lock=True)
    now = utcnow()
    live = entitlements.is_live(entitlement, now)
    if target.now or (target.until is not None and target.until <= now):
        if not live:
            return "unchanged"
        ended = target.status if target.status in entitlements.ENDED else EntitlementStatus.expired
        await entitlements.end(session, **keys, status=ended, at=now, actor_id=actor_id, reason=reason)
        return "access ended"
    if entitlement.status is target.status and entitlement.ends_at == target.until and live:
        return "unchanged"
    if target.status is EntitlementStatus.past_due:
        assert target.until is not None
        await entitlements.past_due_until(session, **keys, until=target.until, actor_id=actor_id, reason=reason)
        return "in grace"
    if target.status is EntitlementStatus.cancelled:
        if not (live and entitlement.ends_at is None):  # end() keeps the earlier of two ends: start open
            await entitlements.reopen(session, **keys, ends_at=None, actor_id=actor_id, reason=reason)
        await entitlements.end(session, **keys, status=target.status, at=target.until, actor_id=actor_id, reason=reason)
        return ENDS_AT_PERIOD_END
    await entitlements.reopen(session, **keys, ends_at=None, actor_id=actor_id, reason=reason)
    return "access open"


# ---------------------------------------------------------------- emails


def _day(moment: dt.datetime | None) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}" if moment else ""


def _facts(settings: Settings, subscription: Subscription, amount: int) -> dict[str, Any]:
    return {
        "user_id": subscription.user_id,
        "offer_id": subscription.offer_id,
        "amount": format_amount(amount, subscription.currency),
        "community_url": f"{settings.base_url}/communities/{subscription.community_id}",
    }


async def _tell_payment_failed(
    session: AsyncSession, settings: Settings, subscription: Subscription, community: Community, amount: int
) -> None:
    """Once per grace period: the member (to update their card) and staff are told."""
    await announce(
        session, "payment_failed", community_id=community.id, grace_ends=_day(subscription.grace_ends_at),
        grace_days=community.grace_days, **_facts(settings, subscription, amount),
    )


# ---------------------------------------------------------------- webhook handlers


def _event_time(row: StripeEvent) -> dt.datetime | None:
    created = row.payload.get("created")
    return from_stamp(created) if isinstance(created, int) else None


BEFORE_FULFILMENT = "before fulfilment (which reads the subscription itself)"


async def _subscription_of(
    session: AsyncSession, settings: Settings, row: StripeEvent, subscription_id: str | None, metadata: Any, *, wait: bool
) -> tuple[Subscription | None, str]:
    """Our row for the subscription an event names, locked, found through our records and the
    account the event came from; else why not. Before its checkout is fulfilled there is
    nothing to change: fulfilment fetches the subscription after this event's change. Only
    an event carrying a payment (`wait`) raises NotYetKnown then, so the job is retried."""
    if row.account is None or not subscription_id:
        return None, "not ours"
    subscription = await _locked(session, row.account, subscription_id)
    if subscription is not None:
        return subscription, ""
    checkout_id = metadata_id(field(metadata, "checkout_id"))
    if checkout_id is None:
        return None, "not ours"
    checkout = await session.scalar(select(Checkout).where(Checkout.id == checkout_id).with_for_update())
    if checkout is not None and checkout.stripe_account_id != row.account:
        return None, "not ours"  # another account naming our checkout: not believed
    if checkout is None or checkout.state in (CheckoutState.open, CheckoutState.processing):
        if wait:
            raise NotYetKnown(f"checkout {checkout_id} of subscription {subscription_id} is not fulfilled yet")
        return None, BEFORE_FULFILMENT
    if checkout.state is not CheckoutState.fulfilled or checkout.stripe_subscription_id != subscription_id:
        return None, "not ours"
    entitlement = await session.get(Entitlement, checkout.entitlement_id) if checkout.entitlement_id else None
    if entitlement is None:
        return None, "not ours"
    # Fulfilled before subscriptions were kept: keep it now.
    return await start(session, settings, checkout, entitlement), ""


async def _sync(session: AsyncSession, settings: Settings, row: StripeEvent) -> tuple[Subscription | None, Any, str]:
    """Apply the subscription an event is about as it is now: (our row, Stripe's, outcome)."""
    obj = (row.payload.get("data") or {}).get("object") or {}
    subscription, why = await _subscription_of(session, settings, row, obj.get("id"), obj.get("metadata"), wait=False)
    if subscription is None:
        return None, None, why
    row.community_id = subscription.community_id
    current = await fetch(settings, subscription)
    outcome = await apply_stripe_state(session, settings, subscription, current, reason=f"Stripe: {row.type}", at=_event_time(row))
    return subscription, current, outcome


async def _sync_event(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    """customer.subscription.created / updated / deleted."""
    return (await _sync(session, settings, row))[2]


async def _invoice_event(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    """invoice.paid / invoice.payment_failed: record a paid invoice once (re-fetched: the event
    carries no payments), then apply the subscription's current state (a payment extends or
    restores; a failure starts the grace)."""
    invoice = (row.payload.get("data") or {}).get("object") or {}
    details = field(field(invoice, "parent"), "subscription_details")
    subscription, why = await _subscription_of(
        session, settings, row, invoices.subscription_of(invoice), field(details, "metadata"), wait=row.type == "invoice.paid"
    )
    if subscription is None:
        return why
    row.community_id = subscription.community_id
    recorded = ""
    if row.type == "invoice.paid" and isinstance(invoice.get("id"), str):
        recorded = await _record_invoice(session, settings, subscription, invoice["id"])
    current = await fetch(settings, subscription)
    state = await apply_stripe_state(session, settings, subscription, current, reason=f"Stripe: {row.type}", at=_event_time(row))
    return f"{recorded}; {state}" if recorded else state


async def _record_invoice(session: AsyncSession, settings: Settings, subscription: Subscription, invoice_id: str) -> str:
    """A paid invoice, with the payment intent and charge that paid it: the first one is the
    purchase the checkout recorded (it gets its invoice, intent, charge and receipt); a later
    one with money in it is a renewal, recorded once and told to the member."""
    account = subscription.stripe_account_id
    known = await billing.find_payment(
        session, community_id=subscription.community_id, stripe_account_id=account, stripe_invoice_id=invoice_id
    )
    if known is not None and known.stripe_payment_intent_id and known.stripe_charge_id:
        return "payment already recorded"  # a repeated event: nothing to ask Stripe
    invoice = await invoices.retrieve(settings, account, invoice_id)
    paid = invoices.paid_with(invoice)
    recorded = await invoices.recorded_payment(session, account, invoice)
    if recorded is not None:
        invoices.fill(recorded, invoice, paid)
        return "first invoice: the purchase" if recorded.kind is PaymentKind.purchase else "payment already recorded"
    if invoice.billing_reason == invoices.FIRST_INVOICE:
        return "first invoice: no purchase recorded" if invoice.amount_paid else "nothing paid"
    if invoice.amount_paid <= 0:
        return "nothing paid"
    discount = sum(d.amount for d in invoice.total_discount_amounts or [])
    payment = await billing.record_payment(
        session, community_id=subscription.community_id, user_id=subscription.user_id, offer_id=subscription.offer_id,
        entitlement_id=subscription.entitlement_id, checkout_id=None, kind=PaymentKind.renewal.value,
        amount=invoice.amount_paid, discount_amount=discount, currency=invoice.currency or subscription.currency,
        stripe_account_id=account, stripe_invoice_id=invoice.id, stripe_payment_intent_id=paid.payment_intent,
        stripe_charge_id=paid.charge, stripe_subscription_id=subscription.stripe_subscription_id,
        paid_at=from_stamp(invoice.status_transitions.paid_at),
    )
    receipt = invoice.hosted_invoice_url
    payment.receipt_url = receipt
    facts = _facts(settings, subscription, invoice.amount_paid)
    facts["amount"] = format_amount(invoice.amount_paid, payment.currency)
    await announce(session, "payment_succeeded", community_id=subscription.community_id, receipt_url=receipt or "", **facts)
    return "renewal recorded"


async def _trial_will_end(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    """Three days before a trial ends: tell the member (with no card on file, it then ends)."""
    subscription, current, outcome = await _sync(session, settings, row)
    if subscription is None:
        return outcome
    if subscription.status != "trialing":
        return f"{outcome}; trial already over"
    if subscription.cancel_at_period_end or field(current, "cancel_at"):
        return f"{outcome}; cancelled, so not charged: the cancellation email told the end"
    if subscription.trial_warned_for == subscription.trial_end:
        return f"{outcome}; trial ending already told"
    subscription.trial_warned_for = subscription.trial_end
    has_card = bool(field(current, "default_payment_method") or field(current, "default_source"))
    await announce(
        session, "trial_ending", community_id=subscription.community_id, trial_ends=_day(subscription.trial_end),
        has_card=has_card, **_facts(settings, subscription, subscription.amount),
    )
    return f"{outcome}; trial ending told"


EVENT_HANDLERS: dict[str, Any] = {
    "invoice.paid": _invoice_event,
    "invoice.payment_failed": _invoice_event,
    "customer.subscription.created": _sync_event,
    "customer.subscription.updated": _sync_event,
    "customer.subscription.deleted": _sync_event,
    "customer.subscription.trial_will_end": _trial_will_end,
}
