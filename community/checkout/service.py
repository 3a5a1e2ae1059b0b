"""Checkout: our record first, then a Stripe Checkout Session on the community's connected
account; one idempotent fulfilment used by the webhook and the completion route alike."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import Member, User
from community.affiliates import service as affiliates
from community.affiliates.links import Attribution
from community.billing import discounts, subscriptions
from community.billing import service as billing
from community.billing.models import Checkout, CheckoutState, PaymentKind
from community.checkout import connect
from community.db import utcnow
from community.errors import Conflict, Invalid, NotFound
from community.hubs.models import Community
from community.mail.announce import announce
from community.money import format_amount
from community.offers import entitlements, grants
from community.offers import service as offers
from community.offers.models import (
    Destination,
    EntitlementSource,
    Offer,
    OfferStatus,
    Pricing,
)
from community.settings import Settings
from community.stripe_client import stripe_client

# Stripe lets a Checkout Session live 30 minutes to 24 hours. A discount code reserved for it
# is held until Stripe says the session can no longer be paid (see billing.service).
SESSION_LIFETIME = dt.timedelta(hours=2)
MAX_NAME = 120

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    checkout: Checkout
    redirect_url: str  # Stripe's hosted page, or (free) our completion route


async def published_offer(session: AsyncSession, community_slug: str, offer_slug: str, *, drafts: bool = False) -> tuple[Community, Offer]:
    """The public face of an offer: only published ones (drafts for the owner's preview)."""
    query = (
        select(Community, Offer)
        .join(Offer, Offer.community_id == Community.id)
        .where(Community.slug == community_slug, Offer.slug == offer_slug)
    )
    if not drafts:
        query = query.where(Offer.status == OfferStatus.published)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound("offer not found")
    return row[0], row[1]


def completion_url(settings: Settings, checkout: Checkout) -> str:
    # The completion route logs the buyer in, so it lives on the platform's own origin.
    return f"{settings.base_url}/checkout/{checkout.token}/complete"


async def thanks_url(session: AsyncSession, settings: Settings, checkout: Checkout) -> str:
    # Runs the owner's custom code: on its community's own origin.
    slug = (await session.execute(select(Community.slug).where(Community.id == checkout.community_id))).scalar_one()
    return f"{settings.pages_origin(slug)}/checkout/{checkout.token}/thanks"


def offer_page_url(settings: Settings, community: Community, offer: Offer) -> str:
    return grants.landing_url(settings, community.slug, offer.slug)


def destination_url(settings: Settings, checkout: Checkout, offer: Offer) -> str:
    """Where a buyer goes after paying: only ever the owner's saved, validated URL or ours."""
    if offer.destination is Destination.custom_url and offer.destination_url:
        return offer.destination_url
    return f"{settings.base_url}/communities/{checkout.community_id}"


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise Invalid(f"may be at most {MAX_NAME} characters", field="name")
    return name


async def start(
    session: AsyncSession,
    settings: Settings,
    *,
    community: Community,
    offer: Offer,
    email: str,
    name: str,
    viewer_id: int | None,
    code: str | None,
    attribution: Attribution | None = None,
) -> Started:
    """Validate, then fulfil a free checkout at once or send the buyer to Stripe. The amount
    always comes from the offer and the discount code, never from the form."""
    # FOR SHARE: an unpublish waits for this checkout (as for free claims).
    locked = await session.scalar(
        select(Offer.status).where(Offer.id == offer.id).with_for_update(read=True)
    )
    if locked is not OfferStatus.published:
        raise NotFound("offer not found")
    buyer: User | None
    if viewer_id is not None:
        buyer = await accounts.get_user(session, viewer_id)  # a logged-in buyer buys as themselves
        email = accounts.normalize_email(buyer.email)
    else:
        email = accounts.normalize_email(email)
    if code and offer.pricing is not Pricing.free:
        # Before counting the code's uses: this buyer's own earlier tabs give theirs back.
        await _close_earlier(session, settings, community.id, email, code)
    if viewer_id is None:
        buyer = await accounts.find_user_by_email(session, email)
    name = _clean_name(name)
    if buyer is not None and await entitlements.live_entitlement(
        session, community_id=community.id, offer_id=offer.id, user_id=buyer.id
    ):
        raise Conflict("you already have this offer: log in to open it", field="email")

    free = offer.pricing is Pricing.free
    quote = None
    if not free:
        quote = await billing.quote(
            session, community_id=community.id, offer_id=offer.id, pricing=offer.pricing.value,
            amount=offer.amount, currency=offer.currency, code=code or None, email=email,
        )
        free = offer.pricing is Pricing.one_time and quote.is_free  # a 100% code on a one-time offer
    account = None if free else await connect.require_account(session, community.id)
    attribution = await affiliates.checked_attribution(session, offer, attribution)
    checkout = Checkout(
        community_id=community.id,
        offer_id=offer.id,
        token=secrets.token_urlsafe(32),
        email=email,
        name=name,
        viewer_id=viewer_id,
        list_amount=quote.list_amount if quote else 0,
        discount_amount=quote.discount_amount if quote else 0,
        amount_due=quote.amount_due if quote else 0,
        currency=offer.currency,
        discount_code_id=quote.code_id if quote else None,
        discount_code=quote.code if quote else None,
        affiliate_id=attribution.affiliate_id if attribution else None,
        affiliate_clicked_at=attribution.clicked_at if attribution else None,
    )
    session.add(checkout)
    await session.flush()
    if quote is not None and quote.code_id is not None:
        checkout.expires_at = utcnow() + SESSION_LIFETIME
        await billing.reserve(
            session, community_id=community.id, quote=quote, checkout_id=checkout.id, email=email,
            user_id=buyer.id if buyer else None, expires_at=checkout.expires_at,
        )
    if free:
        await fulfil(session, settings, checkout, paid_amount=0, discount_amount=checkout.discount_amount)
        return Started(checkout, completion_url(settings, checkout))

    assert account is not None
    client = stripe_client(settings)
    checkout.stripe_account_id = account.account_id
    checkout.expires_at = checkout.expires_at or utcnow() + SESSION_LIFETIME
    stripe_session = await client.v1.checkout.sessions.create_async(
        await _session_params(client, settings, community, offer, checkout, quote),
        {"stripe_account": account.account_id, "idempotency_key": f"checkout-{checkout.token}-session"},
    )
    checkout.stripe_session_id = stripe_session.id
    await session.flush()
    if not stripe_session.url:
        raise Conflict("Stripe did not return a payment page; try again")
    return Started(checkout, stripe_session.url)


async def _close_earlier(session: AsyncSession, settings: Settings, community_id: int, email: str, code: str) -> None:
    """A buyer starting over with the same code (a second tab) gives back the use their earlier
    checkouts hold, but only once Stripe has closed those sessions: `close` expires each one
    first, and one paid meanwhile is settled as paid instead."""
    if not discounts.CODE_PATTERN.fullmatch(code.strip()):
        return  # no code is spelt so (the quote says why)
    found = await discounts.find_code(session, community_id, code)
    if found is None:
        return
    earlier = await session.scalars(
        select(Checkout)
        .where(
            Checkout.discount_code_id == found.id, Checkout.state == CheckoutState.open,
            Checkout.community_id == community_id, func.lower(Checkout.email) == email.lower(),
            Checkout.stripe_session_id.is_not(None),
        )
        .order_by(Checkout.id)
        .with_for_update()  # the webhook settling one of them waits, then finds it settled
        .execution_options(populate_existing=True)
    )
    for checkout in earlier.all():
        await close(session, settings, checkout)


async def close(session: AsyncSession, settings: Settings, checkout: Checkout) -> str:
    """Make the checkout's Stripe session unpayable, then settle it as Stripe says it ended:
    expired (its discount use is released), or completed before we asked (fulfilled as paid, or
    left processing). Without an answer from Stripe nothing changes: a session that may still
    be paid keeps its reservation. The caller holds the checkout row locked."""
    assert checkout.stripe_session_id is not None
    try:
        current = await stripe_client(settings).v1.checkout.sessions.expire_async(
            checkout.stripe_session_id, options={"stripe_account": checkout.stripe_account_id}
        )
    except stripe.InvalidRequestError:
        # No longer open (it completed, or expired already), or unknown: read how it ended.
        return await recheck(session, settings, checkout)
    except stripe.StripeError as exc:
        log.warning("could not expire checkout %s's session: %s", checkout.id, exc)
        return "unanswered"
    return await settle(session, settings, checkout, current)


async def recheck(session: AsyncSession, settings: Settings, checkout: Checkout) -> str:
    """Settle the checkout from its session as Stripe holds it now (the sweep of lapsed
    checkouts, and `close`). A session Stripe does not know on the checkout's account cannot be
    paid: it ends as expired. Any other failure changes nothing."""
    try:
        current = await fetch_session(settings, checkout)
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404 or exc.code != "resource_missing":
            log.warning("could not read checkout %s's session: %s", checkout.id, exc)
            return "unanswered"
        checkout.state = CheckoutState.expired
        await billing.release(session, community_id=checkout.community_id, checkout_id=checkout.id)
        return "expired"
    except stripe.StripeError as exc:
        log.warning("could not read checkout %s's session: %s", checkout.id, exc)
        return "unanswered"
    return await settle(session, settings, checkout, current)


async def _session_params(
    client: stripe.StripeClient,
    settings: Settings,
    community: Community,
    offer: Offer,
    checkout: Checkout,
    quote: billing.Quote | None,
) -> stripe.params.checkout.SessionCreateParams:
    assert quote is not None and checkout.expires_at is not None
    metadata = {"checkout_id": str(checkout.id), "community_id": str(community.id), "offer_id": str(offer.id)}
    if checkout.affiliate_id is not None and checkout.affiliate_clicked_at is not None:
        metadata["affiliate_id"] = str(checkout.affiliate_id)
        metadata["affiliate_clicked_at"] = str(int(checkout.affiliate_clicked_at.timestamp()))
    product: stripe.params.checkout.SessionCreateParamsLineItemPriceDataProductData = {"name": offer.title[:250]}
    price: stripe.params.checkout.SessionCreateParamsLineItemPriceData = {
        "currency": offer.currency.lower(),
        "unit_amount": offer.amount,
        "product_data": product,
    }
    params: stripe.params.checkout.SessionCreateParams = {
        "line_items": [{"quantity": 1, "price_data": price}],
        "customer_email": checkout.email,
        "client_reference_id": str(checkout.id),
        "metadata": metadata,
        "success_url": completion_url(settings, checkout) + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": offer_page_url(settings, community, offer) + "/checkout",
        "expires_at": int(checkout.expires_at.timestamp()),
    }
    if quote.code_id is not None:
        params["discounts"] = [{"coupon": await _coupon(client, checkout, offer, quote)}]
    fee_bps = settings.platform_fee_bps
    if offer.pricing is Pricing.recurring:
        months = offer.interval_months or 1
        price["recurring"] = {"interval": "year", "interval_count": 1} if months == 12 else {"interval": "month", "interval_count": months}
        subscription: stripe.params.checkout.SessionCreateParamsSubscriptionData = {"metadata": metadata}
        if offer.trial_days:
            subscription["trial_period_days"] = offer.trial_days
            subscription["trial_settings"] = {"end_behavior": {"missing_payment_method": "cancel"}}
            if not offer.trial_requires_card:
                params["payment_method_collection"] = "if_required"
        if fee_bps:
            subscription["application_fee_percent"] = fee_bps / 100
        params["mode"] = "subscription"
        params["subscription_data"] = subscription
    else:
        intent: stripe.params.checkout.SessionCreateParamsPaymentIntentData = {"metadata": metadata}
        if fee_bps:
            intent["application_fee_amount"] = checkout.amount_due * fee_bps // 10_000
        params["mode"] = "payment"
        params["payment_intent_data"] = intent
    return params


async def _coupon(client: stripe.StripeClient, checkout: Checkout, offer: Offer, quote: billing.Quote) -> str:
    """A single-use coupon on the connected account carrying our code's terms: Stripe then
    computes the same total our quote showed."""
    params: stripe.params.CouponCreateParams = {"max_redemptions": 1, "name": (quote.code or "discount")[:40]}
    if quote.percent_bps is not None:
        params["percent_off"] = quote.percent_bps / 100
    else:
        params["amount_off"] = quote.amount_off or 0
        params["currency"] = offer.currency.lower()
    if offer.pricing is Pricing.recurring and quote.duration:
        params["duration"] = quote.duration  # type: ignore[typeddict-item]  # validated by billing
        if quote.duration == "repeating":
            params["duration_in_months"] = quote.duration_months or 1
    else:
        params["duration"] = "once"
    coupon = await client.v1.coupons.create_async(
        params, {"stripe_account": checkout.stripe_account_id, "idempotency_key": f"checkout-{checkout.token}-coupon"}
    )
    return coupon.id


# ---------------------------------------------------------------- fulfilment


async def checkout_by_token(session: AsyncSession, token: str, *, lock: bool = False) -> Checkout:
    query = select(Checkout).where(Checkout.token == token)
    checkout = await session.scalar(query.with_for_update() if lock else query)
    if checkout is None:
        raise NotFound("checkout not found")
    return checkout


async def fulfil(
    session: AsyncSession,
    settings: Settings,
    checkout: Checkout,
    *,
    paid_amount: int,
    discount_amount: int,
    stripe_session: Any = None,
) -> bool:
    """Grant the offer, record the payment and the redemption, tag the buyer, confirm by email.
    The caller holds the checkout row locked; a second call changes nothing (returns False)."""
    if checkout.state is CheckoutState.fulfilled:
        return False
    offer = await offers.get_offer(session, checkout.community_id, checkout.offer_id)
    community = await session.get_one(Community, checkout.community_id)
    user, created = await accounts.ensure_user(session, checkout.email)
    if created and checkout.name:
        user.name = checkout.name
    if stripe_session is not None:
        checkout.stripe_customer_id = _id_of(stripe_session.customer)
        checkout.stripe_payment_intent_id = _id_of(stripe_session.payment_intent)
        checkout.stripe_subscription_id = _id_of(stripe_session.subscription)
    held = await entitlements.live_entitlement(
        session, community_id=checkout.community_id, offer_id=offer.id, user_id=user.id
    )
    if held is not None and checkout.stripe_subscription_id and await subscriptions.locked_for_entitlement(
        session, checkout.community_id, held.id
    ):
        # A second subscription (two checkouts paid in parallel tabs): Stripe charges both, so
        # each gets its own entitlement whose renewals, failures and end are followed.
        held = None
    if held is None:
        held = await entitlements.grant(
            session, community_id=checkout.community_id, offer=offer, user_id=user.id,
            source=EntitlementSource.free if offer.pricing is Pricing.free else EntitlementSource.purchase,
            note=f"checkout {checkout.id}",
        )
    if paid_amount > 0:
        await billing.record_payment(
            session, community_id=checkout.community_id, user_id=user.id, offer_id=offer.id,
            entitlement_id=held.id, checkout_id=checkout.id, kind=PaymentKind.purchase.value,
            amount=paid_amount, discount_amount=discount_amount, currency=checkout.currency,
            stripe_account_id=checkout.stripe_account_id, stripe_checkout_session_id=checkout.stripe_session_id,
            stripe_payment_intent_id=checkout.stripe_payment_intent_id,
            stripe_subscription_id=checkout.stripe_subscription_id,
        )
    if offer.pricing is Pricing.recurring and checkout.stripe_subscription_id:
        await subscriptions.start(session, settings, checkout, held)  # renewals and failures follow it
    if checkout.discount_code_id is not None:
        await billing.redeem(session, community_id=checkout.community_id, checkout_id=checkout.id)
    await _apply_tags(session, checkout.community_id, user.id, offer.auto_tags)
    checkout.state = CheckoutState.fulfilled
    checkout.fulfilled_at = utcnow()
    checkout.user_id = user.id
    checkout.new_user = created
    checkout.entitlement_id = held.id
    checkout.discount_amount = discount_amount
    await _confirm_by_email(session, settings, checkout, offer, community, user, paid_amount, needs_password=user.password_hash is None)
    await session.flush()
    return True


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.id  # an expanded object


async def _apply_tags(session: AsyncSession, community_id: int, user_id: int, tags: list[str]) -> None:
    if not tags:
        return
    member = await session.scalar(
        select(Member).where(Member.community_id == community_id, Member.user_id == user_id).with_for_update()
    )
    if member is not None:
        member.tags = sorted(set(member.tags or []) | set(tags))


async def _confirm_by_email(
    session: AsyncSession,
    settings: Settings,
    checkout: Checkout,
    offer: Offer,
    community: Community,
    user: Any,
    paid_amount: int,
    *,
    needs_password: bool,
) -> None:
    """Announce the purchase: the notifications package confirms it to the buyer (the offer's
    confirmation email) and tells staff."""
    # A buyer without a password gets a one-time link to log in and set one.
    login_link = await accounts.create_login_link(session, user=user, base_url=settings.base_url) if needs_password else None
    await announce(
        session, "purchase", community_id=checkout.community_id, user_id=user.id, offer_id=offer.id,
        buyer_name=user.name or checkout.name or "",
        amount=format_amount(paid_amount, checkout.currency) if paid_amount else "0",
        access_url=destination_url(settings, checkout, offer), login_link=login_link,
    )


async def settle(session: AsyncSession, settings: Settings, checkout: Checkout, stripe_session: Any) -> str:
    """Act on the current state of the checkout's Stripe session (the webhook and the
    completion route both call this, with the session just fetched from Stripe)."""
    if stripe_session.id != checkout.stripe_session_id:
        raise Conflict("this payment does not belong to this checkout")
    if checkout.state is CheckoutState.fulfilled:
        return "already fulfilled"
    if stripe_session.status == "complete" and stripe_session.payment_status in ("paid", "no_payment_required"):
        details = stripe_session.total_details
        await fulfil(
            session, settings, checkout,
            paid_amount=stripe_session.amount_total or 0,
            discount_amount=(details.amount_discount if details else 0) or 0,
            stripe_session=stripe_session,
        )
        return "fulfilled"
    if stripe_session.status == "expired":
        checkout.state = CheckoutState.expired
        await billing.release(session, community_id=checkout.community_id, checkout_id=checkout.id)
        return "expired"
    if stripe_session.status == "complete":  # a delayed payment method, not settled yet
        checkout.state = CheckoutState.processing
        return "processing"
    return "open"


async def payment_failed(session: AsyncSession, checkout: Checkout) -> str:
    """A delayed payment failed: nothing was granted; the discount code counts again."""
    if checkout.state is CheckoutState.fulfilled:
        return "already fulfilled"
    checkout.state = CheckoutState.failed
    await billing.release(session, community_id=checkout.community_id, checkout_id=checkout.id)
    return "failed"


async def fetch_session(settings: Settings, checkout: Checkout) -> Any:
    """The checkout's Stripe session as Stripe holds it now, read on the checkout's account."""
    assert checkout.stripe_session_id is not None
    return await stripe_client(settings).v1.checkout.sessions.retrieve_async(
        checkout.stripe_session_id, options={"stripe_account": checkout.stripe_account_id}
    )
