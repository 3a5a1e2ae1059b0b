"""Memberships as members and owners act on them: a member's own memberships and payments,
cancelling at the period's end, resuming, the Stripe billing portal; an owner ending one now.

Every change that concerns a Stripe subscription is made at Stripe first; the subscription
object Stripe answers is then applied through subscriptions.apply_stripe_state, the same path
its webhooks take, so our rows never claim what Stripe does not hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.billing import notices, subscriptions
from community.billing import service as billing
from community.billing.models import Payment, Subscription
from community.billing.notices import billing_page_url
from community.db import utcnow
from community.errors import Conflict, DomainError, Invalid, NotFound
from community.hubs.models import Community
from community.offers import entitlements, grants
from community.offers.models import Entitlement, EntitlementStatus, Offer, OfferStatus
from community.settings import Settings
from community.stripe_client import UNANSWERED, stripe_client

ENDED_AT_STRIPE = subscriptions.CANCELED
# Stripe's answers that tell nothing about the request's outcome (it may not have run): try again later.


class StripeChangeFailed(DomainError):
    """Stripe refused a change to the subscription (409) or did not answer (502): nothing
    changes here either."""

    def __init__(self, subscription: Subscription, exc: stripe.StripeError, *, doing: str):
        unanswered = isinstance(exc, UNANSWERED)
        self.status_code = 502 if unanswered else 409
        said = "did not answer" if unanswered else f"refused: {exc.user_message or exc}"
        super().__init__(
            f"the Stripe subscription {subscription.stripe_subscription_id} could not be {doing} (Stripe {said})",
            field="entitlement_id",
        )


class CancelFailed(StripeChangeFailed):
    """Stripe refused to cancel the subscription (409) or did not answer (502): the end it was
    part of is rolled back, so the member is not left paying for access they lost."""

    def __init__(self, subscription: Subscription, exc: stripe.StripeError):
        super().__init__(subscription, exc, doing="cancelled")


@dataclass(frozen=True)
class Membership:
    entitlement: Entitlement
    offer: Offer
    subscription: Subscription | None
    join_again_url: str | None  # ended, and the offer is still for sale


def _offer_page_url(settings: Settings, community: Community, offer: Offer) -> str:
    # The offer's checkout page on its community's origin (served by checkout, a floor above).
    return grants.landing_url(settings, community.slug, offer.slug) + "/checkout"


def subscription_is_live(subscription: Subscription | None) -> bool:
    return subscription is not None and subscription.status not in ENDED_AT_STRIPE


# ---------------------------------------------------------------- reading


async def my_memberships(session: AsyncSession, settings: Settings, community_id: int, user_id: int) -> list[Membership]:
    community = await session.get_one(Community, community_id)
    held = await entitlements.of_member(session, community_id, user_id)
    offers = {o.id: o for o in await session.scalars(select(Offer).where(Offer.id.in_({e.offer_id for e in held})))}
    subs = {
        s.entitlement_id: s
        for s in await session.scalars(
            select(Subscription).where(
                Subscription.community_id == community_id, Subscription.entitlement_id.in_([e.id for e in held])
            )
        )
    }
    live_offers = {e.offer_id for e in held if entitlements.is_live(e)}
    memberships = []
    for e in sorted(held, key=lambda e: (not entitlements.is_live(e), -e.id)):
        offer = offers[e.offer_id]
        rejoin = not entitlements.is_live(e) and offer.status is OfferStatus.published and e.offer_id not in live_offers
        memberships.append(
            Membership(e, offer, subs.get(e.id), _offer_page_url(settings, community, offer) if rejoin else None)
        )
    return memberships


async def my_payments(session: AsyncSession, community_id: int, user_id: int, *, after: int | None, limit: int) -> list[Payment]:
    return await billing.list_payments(session, community_id, after=after, limit=limit, user_id=user_id)


async def total_spent(session: AsyncSession, community_id: int, user_id: int) -> dict[str, int]:
    """Net of refunds and chargebacks; someone who is no member here is not found."""
    if await accounts.membership(session, community_id, user_id) is None:
        raise NotFound("member not found")
    return await billing.total_spent(session, community_id=community_id, user_id=user_id)


async def my_payment(session: AsyncSession, community_id: int, user_id: int, payment_id: int) -> Payment:
    payment = await billing.get_payment(session, community_id, payment_id)
    if payment.user_id != user_id:
        raise NotFound("payment not found")
    return payment


async def _own_subscription(
    session: AsyncSession, community_id: int, user_id: int, entitlement_id: int
) -> tuple[Entitlement, Subscription]:
    """The member's own entitlement (another's answers 404) and its live subscription, locked."""
    entitlement = await entitlements.get_entitlement(session, community_id, entitlement_id)
    if entitlement.user_id != user_id:
        raise NotFound("entitlement not found")
    subscription = await subscriptions.locked_for_entitlement(session, community_id, entitlement_id)
    if not subscription_is_live(subscription):
        raise Conflict("this membership has no running subscription", field="entitlement_id")
    assert subscription is not None
    return entitlement, subscription


async def _at_stripe(subscription: Subscription, doing: str, call: Awaitable[Any]) -> Any:
    """A member's change made at Stripe; a refusal or no answer is a clear 409/502, not a 500."""
    try:
        return await call
    except stripe.StripeError as exc:
        raise StripeChangeFailed(subscription, exc, doing=doing) from None


def _options(subscription: Subscription, key: str | None = None) -> Any:
    options: dict[str, str] = {"stripe_account": subscription.stripe_account_id}
    if key:
        options["idempotency_key"] = key
    return options


# ---------------------------------------------------------------- the member's actions


async def cancel_at_period_end(
    session: AsyncSession, settings: Settings, *, community_id: int, user_id: int, entitlement_id: int
) -> Entitlement:
    """No more charges; access stays until the period ends. The member gets a confirmation,
    the staff a notice. Cancelling again changes nothing (and sends nothing)."""
    entitlement, subscription = await _own_subscription(session, community_id, user_id, entitlement_id)
    if subscription.cancel_at_period_end:
        return entitlement
    current = await _at_stripe(subscription, "cancelled", stripe_client(settings).v1.subscriptions.update_async(
        subscription.stripe_subscription_id,
        {"cancel_at_period_end": True, "cancellation_details": {"comment": "cancelled by the member"}},
        _options(subscription),
    ))
    # The state change sends the member's confirmation and the staff notice.
    await subscriptions.apply_stripe_state(
        session, settings, subscription, current, reason="cancelled by the member", actor_id=user_id
    )
    await session.refresh(entitlement)
    return entitlement


async def resume(
    session: AsyncSession, settings: Settings, *, community_id: int, user_id: int, entitlement_id: int
) -> Entitlement:
    """Undo a cancel at the period's end, before the period ends. Resuming a running one
    changes nothing."""
    entitlement, subscription = await _own_subscription(session, community_id, user_id, entitlement_id)
    if not subscription.cancel_at_period_end:
        return entitlement
    current = await _at_stripe(subscription, "resumed", stripe_client(settings).v1.subscriptions.update_async(
        subscription.stripe_subscription_id, {"cancel_at_period_end": False}, _options(subscription)
    ))
    await subscriptions.apply_stripe_state(session, settings, subscription, current, reason="resumed by the member", actor_id=user_id)
    await session.refresh(entitlement)
    return entitlement


async def payment_method_url(
    session: AsyncSession, settings: Settings, *, community_id: int, user_id: int, entitlement_id: int
) -> str:
    """A Stripe billing portal session for the subscription's customer, back to our billing page."""
    _, subscription = await _own_subscription(session, community_id, user_id, entitlement_id)
    if not subscription.stripe_customer_id:
        raise Conflict("Stripe knows no customer for this membership", field="entitlement_id")
    portal = await _at_stripe(subscription, "opened in Stripe's billing portal", stripe_client(settings).v1.billing_portal.sessions.create_async(
        {"customer": subscription.stripe_customer_id, "return_url": billing_page_url(settings, community_id)},
        _options(subscription),
    ))
    return portal.url


# ---------------------------------------------------------------- the owner's (and a refund's) end


async def end_now(
    session: AsyncSession,
    settings: Settings,
    *,
    community_id: int,
    entitlement_id: int,
    status: EntitlementStatus,
    actor_id: int | None,
    reason: str = "",
    at: dt.datetime | None = None,
    notify: bool = False,
) -> Entitlement:
    """The one way staff (or a refund that revokes) end an entitlement. One with a live Stripe
    subscription is cancelled at Stripe in the same step: nobody is charged for access they
    lost. If Stripe refuses, CancelFailed: the caller's transaction fails and the entitlement
    keeps running."""
    if at is not None and at.tzinfo is None:
        raise Invalid("give a time zone (e.g. 2026-01-31T00:00:00Z)", field="at")
    # The subscription row before the entitlement: the order webhook handlers lock them in.
    subscription = await subscriptions.locked_for_entitlement(session, community_id, entitlement_id)
    entitlement = await entitlements.get_entitlement(session, community_id, entitlement_id, lock=True)
    if subscription_is_live(subscription) and at is not None and at > utcnow():
        raise Invalid("a subscribed membership ends now (a member's own cancel ends it at the period's end)", field="at")
    if entitlements.is_live(entitlement):
        entitlement = await entitlements.end(
            session, community_id=community_id, entitlement_id=entitlement_id, status=status, at=at,
            actor_id=actor_id, reason=reason,
        )
    elif not subscription_is_live(subscription):
        raise Conflict("this entitlement has already ended")
    if subscription is not None and subscription_is_live(subscription):
        current = await _cancel_at_stripe(settings, subscription)
        await subscriptions.apply_stripe_state(
            session, settings, subscription, current, reason=reason or f"{status.value} by staff", actor_id=actor_id
        )
    if notify:
        await notices.cancellation(session, settings, entitlement, by_staff=True)
    return entitlement


async def _cancel_at_stripe(settings: Settings, subscription: Subscription) -> Any:
    try:
        try:
            return await stripe_client(settings).v1.subscriptions.cancel_async(
                subscription.stripe_subscription_id,
                {"cancellation_details": {"comment": "cancelled by staff"}},
                _options(subscription, f"cancel-{subscription.stripe_subscription_id}"),
            )
        except stripe.InvalidRequestError as refused:
            current = await subscriptions.fetch(settings, subscription)
            if current.status not in ENDED_AT_STRIPE:
                raise refused from None
            return current  # already cancelled at Stripe (a repeated request)
    except stripe.StripeError as exc:
        raise CancelFailed(subscription, exc) from None
