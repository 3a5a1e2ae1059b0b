"""Billing for the checkout floor: discount quotes and reservations, and the payments ledger.

Every function takes the caller's session, inside the caller's transaction, and never commits.

Discounts at checkout:
- `quote` prices an offer with a code, or says why the code is refused (a 422 on the field
  `discount_code`).
- `reserve` holds one of the code's redemptions for a checkout while the buyer is at Stripe:
  the code row is locked (SELECT ... FOR UPDATE) while its redemptions are counted and the
  reservation written, so two buyers can never both take the last one. A reservation counts
  against the limits until it is released.
- `redeem` turns the reservation into a redemption when the payment succeeds, exactly once
  (an UPDATE guarded by the state: a concurrent or repeated call finds nothing to change).
- `release` gives the slot back once the checkout can no longer be paid: its Stripe session
  expired (Stripe's event, our own expire call, or the sweep that re-reads lapsed sessions) or
  its delayed payment failed. Never earlier: a session still payable keeps its use held.

Rounding: a percent discount is the list amount times the percentage, rounded to the nearest
minor unit, halves up (as Stripe rounds a percent_off coupon), so the quote's amount_due equals
Stripe's amount_total for the same price and coupon. A fixed discount larger than the price
takes the whole price, as a Stripe amount_off coupon does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import false, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs, ratelimit
from community.billing import discounts
from community.billing.discounts import counting, normalize_email
from community.billing.models import (
    AppliesTo,
    DiscountCode,
    DiscountCodeOffer,
    DiscountKind,
    DiscountRedemption,
    Payment,
    PaymentKind,
    PaymentStatus,
    RedemptionState,
)
from community.db import get_in_community, newest_first, utcnow
from community.errors import Conflict, Invalid, NotFound, TooManyRequests
from community.money import MINIMUM_CHARGE, format_amount, validate_currency

FIELD = "discount_code"
NO_SUCH = "no such discount code"
NOT_YET = "this code is not valid yet"
EXPIRED = "this code has expired"
USED_UP = "this code has been used up"
ALREADY_USED = "you have already used this code"
NOT_FOR_OFFER = "this code is not valid for this offer"

# Outbox announcements for other floors (affiliate commissions): a payment was recorded (once),
# or its refunded or disputed amount changed. Payload: payment_id.
PAYMENT_RECORDED = "billing.payment_recorded"
PAYMENT_ADJUSTED = "billing.payment_adjusted"

# Guessing codes: failed lookups per address and window.
GUESS_LIMIT = 20
GUESS_WINDOW_SECONDS = 600


@dataclass(frozen=True)
class Quote:
    list_amount: int  # the offer's price
    discount_amount: int  # taken off the first payment
    amount_due: int  # list_amount - discount_amount (>= 0)
    currency: str
    code_id: int | None
    code: str | None  # as the owner typed it
    percent_bps: int | None
    amount_off: int | None
    duration: str | None  # once|repeating|forever (recurring offers)
    duration_months: int | None

    @property
    def is_free(self) -> bool:
        return self.amount_due == 0


def percent_of(amount: int, bps: int) -> int:
    """`bps` basis points of `amount`, rounded to the nearest minor unit, halves up (Stripe)."""
    return (amount * bps + 5_000) // 10_000


def discount_for(code: DiscountCode, list_amount: int) -> int:
    off = percent_of(list_amount, code.percent_bps or 0) if code.kind == DiscountKind.percent else code.amount_off or 0
    return min(off, list_amount)


def _refuse(reason: str) -> Invalid:
    return Invalid(reason, field=FIELD)


def _check_window(code: DiscountCode, now: dt.datetime) -> None:
    """Valid from starts_at (inclusive) to ends_at (exclusive)."""
    if not code.active:
        raise _refuse(NO_SUCH)
    if now < code.starts_at:
        raise _refuse(NOT_YET)
    if code.ends_at is not None and now >= code.ends_at:
        raise _refuse(EXPIRED)


async def _check_limits(
    session: AsyncSession,
    code: DiscountCode,
    *,
    email: str | None,
    checkout_id: int | None = None,
) -> None:
    """The code's use (redeemed and held reservations), not counting `checkout_id`'s own."""
    if code.max_redemptions is None and (code.per_customer_limit is None or email is None):
        return
    mine = DiscountRedemption.email_normalized == normalize_email(email) if email is not None else false()
    query = select(func.count(), func.count().filter(mine)).where(
        DiscountRedemption.code_id == code.id, counting()
    )
    if checkout_id is not None:
        query = query.where(DiscountRedemption.checkout_id != checkout_id)
    total, by_customer = (await session.execute(query)).one()
    if code.max_redemptions is not None and total >= code.max_redemptions:
        raise _refuse(USED_UP)
    if code.per_customer_limit is not None and email is not None and by_customer >= code.per_customer_limit:
        raise _refuse(ALREADY_USED)


async def _applies_to(session: AsyncSession, code: DiscountCode, offer_id: int) -> bool:
    if code.applies_to == AppliesTo.all:
        return True
    return bool(
        await session.scalar(
            select(func.count()).where(DiscountCodeOffer.code_id == code.id, DiscountCodeOffer.offer_id == offer_id)
        )
    )


async def quote(
    session: AsyncSession,
    *,
    community_id: int,
    offer_id: int,
    pricing: str,
    amount: int,
    currency: str,
    code: str | None,
    email: str | None,
    now: dt.datetime | None = None,
) -> Quote:
    """The price of an offer with a discount code, or an Invalid(field="discount_code") saying
    why the code is refused. No code (None or blank): the list price."""
    currency = currency.upper()
    plain = Quote(amount, 0, amount, currency, None, None, None, None, None, None)
    if code is None or not code.strip():
        return plain
    now = now or utcnow()
    if not discounts.CODE_PATTERN.fullmatch(code.strip()):
        raise _refuse(NO_SUCH)  # cannot exist: no need to ask the database
    found = await discounts.find_code(session, community_id, code)
    if found is None:
        raise _refuse(NO_SUCH)
    _check_window(found, now)
    if pricing == "free" or not await _applies_to(session, found, offer_id):
        raise _refuse(NOT_FOR_OFFER)
    if found.kind == DiscountKind.amount and found.currency != currency:
        raise _refuse(f"a fixed discount in {found.currency} cannot apply to a {currency} price")
    await _check_limits(session, found, email=email)
    off = discount_for(found, amount)
    due = amount - off
    minimum = MINIMUM_CHARGE.get(currency, 0)
    if 0 < due < minimum:
        raise _refuse(f"the discounted price would be below the minimum charge of {format_amount(minimum, currency)}")
    recurring = pricing == "recurring"
    return Quote(
        list_amount=amount,
        discount_amount=off,
        amount_due=due,
        currency=currency,
        code_id=found.id,
        code=found.code,
        percent_bps=found.percent_bps,
        amount_off=found.amount_off,
        duration=found.duration.value if recurring else None,
        duration_months=found.duration_months if recurring else None,
    )


async def reserve(
    session: AsyncSession,
    *,
    community_id: int,
    quote: Quote,
    checkout_id: int,
    email: str,
    user_id: int | None,
    expires_at: dt.datetime,
    now: dt.datetime | None = None,
) -> None:
    """Hold one of the code's redemptions for this checkout until it is redeemed or released
    (`expires_at`, the checkout session's expiry, is kept for the owner to see). The limits are
    checked again under the code row's lock. Idempotent per (code, checkout): a second call
    refreshes the reservation (and a redeemed one stays redeemed). A checkout holds at most one
    code: reserving another releases the previous one."""
    if quote.code_id is None:
        return
    now = now or utcnow()
    try:
        code = await discounts.get_code(session, community_id, quote.code_id, lock=True)
    except NotFound:
        raise _refuse(NO_SUCH) from None
    existing = await session.scalar(
        select(DiscountRedemption)
        .where(DiscountRedemption.code_id == code.id, DiscountRedemption.checkout_id == checkout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if existing is not None and existing.state == RedemptionState.redeemed:
        return
    _check_window(code, now)
    await _check_limits(session, code, email=email, checkout_id=checkout_id)
    await release(session, community_id=community_id, checkout_id=checkout_id, keep_code_id=code.id)
    values = {
        "email_normalized": normalize_email(email),
        "user_id": user_id,
        "amount_off": quote.discount_amount,
        "currency": quote.currency,
        "state": RedemptionState.reserved,
        "expires_at": expires_at,
    }
    if existing is None:
        session.add(DiscountRedemption(community_id=community_id, code_id=code.id, checkout_id=checkout_id, **values))
    else:
        for name, value in values.items():
            setattr(existing, name, value)
    await session.flush()


def _current_of(community_id: int, checkout_id: int):
    """The checkout's latest reservation (its current code)."""
    return (
        select(DiscountRedemption.id)
        .where(DiscountRedemption.community_id == community_id, DiscountRedemption.checkout_id == checkout_id)
        .order_by(DiscountRedemption.id.desc())
        .limit(1)
        .scalar_subquery()
    )


async def redeem(session: AsyncSession, *, community_id: int, checkout_id: int) -> bool:
    """The checkout was paid: its reservation becomes a redemption (a released one too, should
    that ever happen: the buyer did pay). True the first time, False after; False without a reservation."""
    redeemed = await session.scalar(
        update(DiscountRedemption)
        .where(
            DiscountRedemption.id == _current_of(community_id, checkout_id),
            DiscountRedemption.state != RedemptionState.redeemed,
        )
        .values(state=RedemptionState.redeemed, redeemed_at=func.now())
        .returning(DiscountRedemption.id)
        .execution_options(synchronize_session=False)
    )
    return redeemed is not None


async def release(
    session: AsyncSession, *, community_id: int, checkout_id: int, keep_code_id: int | None = None
) -> None:
    """The checkout can no longer be paid (Stripe expired its session, or its delayed payment
    failed): its reservation counts no more. Never call it for a session Stripe may still take
    a payment on. A redeemed one
    stays redeemed. Idempotent. `keep_code_id`: that code's reservation stays (`reserve`
    switching the checkout to it refreshes it)."""
    mine = [DiscountRedemption.community_id == community_id, DiscountRedemption.checkout_id == checkout_id]
    if keep_code_id is not None:
        mine.append(DiscountRedemption.code_id != keep_code_id)
    await session.execute(
        update(DiscountRedemption)
        .where(*mine, DiscountRedemption.state == RedemptionState.reserved)
        .values(state=RedemptionState.released)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- guessing codes


def _guess_key(address: str) -> str:
    return f"discount-guess:{address}"


async def check_guess_rate(redis: Redis, *, address: str) -> None:
    """Refuse (429) an address that failed GUESS_LIMIT code lookups within the window. Counts
    nothing itself: call note_failed_guess after a refusal for an unknown code."""
    key = f"rl:{_guess_key(address)}"
    try:
        count, ttl = await redis.get(key), await redis.ttl(key)
    except RedisError:
        return  # fail open, as community.ratelimit does
    if count is not None and int(count) >= GUESS_LIMIT:
        retry_after = max(int(ttl), 1)
        raise TooManyRequests(
            f"too many discount codes tried; try again in {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )


async def note_failed_guess(redis: Redis, *, address: str) -> None:
    try:
        await ratelimit.hit(redis, _guess_key(address), limit=GUESS_LIMIT, window_seconds=GUESS_WINDOW_SECONDS)
    except TooManyRequests:
        pass  # counted; check_guess_rate refuses the next attempt


# ---------------------------------------------------------------- payments


async def record_payment(
    session: AsyncSession,
    *,
    community_id: int,
    user_id: int,
    offer_id: int,
    entitlement_id: int | None,
    checkout_id: int | None,
    kind: str,
    amount: int,
    discount_amount: int,
    currency: str,
    stripe_account_id: str | None,
    stripe_checkout_session_id: str | None = None,
    stripe_payment_intent_id: str | None = None,
    stripe_invoice_id: str | None = None,
    stripe_charge_id: str | None = None,
    stripe_subscription_id: str | None = None,
    paid_at: dt.datetime | None = None,
) -> Payment:
    """Record a payment Stripe took, once: a second call for the same payment intent, invoice
    (per account) or purchase checkout answers the row already there (INSERT ... ON CONFLICT
    DO NOTHING, then read it), also when both calls run at the same time."""
    kind = PaymentKind(kind)
    if amount < 0 or discount_amount < 0:
        raise ValueError("amounts are not negative")
    values = {
        "community_id": community_id,
        "user_id": user_id,
        "offer_id": offer_id,
        "entitlement_id": entitlement_id,
        "checkout_id": checkout_id,
        "kind": kind,
        "amount": amount,
        "discount_amount": discount_amount,
        "currency": validate_currency(currency),
        "stripe_account_id": stripe_account_id,
        "stripe_checkout_session_id": stripe_checkout_session_id,
        "stripe_payment_intent_id": stripe_payment_intent_id,
        "stripe_invoice_id": stripe_invoice_id,
        "stripe_charge_id": stripe_charge_id,
        "stripe_subscription_id": stripe_subscription_id,
        "status": PaymentStatus.succeeded,
        "refunded_amount": 0,
        "paid_at": paid_at or utcnow(),
    }
    new_id = await session.scalar(
        insert(Payment).values(**values).on_conflict_do_nothing().returning(Payment.id)
    )
    if new_id is not None:
        payment = await session.get(Payment, new_id)
        assert payment is not None
        await jobs.enqueue(session, PAYMENT_RECORDED, community_id=community_id, payment_id=new_id)
        return payment
    existing = await find_payment(
        session,
        community_id=community_id,
        stripe_account_id=stripe_account_id,
        stripe_payment_intent_id=stripe_payment_intent_id,
        stripe_invoice_id=stripe_invoice_id,
        purchase_checkout_id=checkout_id if kind == PaymentKind.purchase else None,
    )
    if existing is None:  # the row that conflicted belongs to another community
        raise Conflict("this payment is recorded for another community", field="stripe_payment_intent_id")
    return existing


async def find_payment(
    session: AsyncSession,
    *,
    community_id: int,
    stripe_account_id: str | None,
    stripe_payment_intent_id: str | None = None,
    stripe_invoice_id: str | None = None,
    stripe_charge_id: str | None = None,
    purchase_checkout_id: int | None = None,
) -> Payment | None:
    """The payment recorded for any of these Stripe ids (per account) or this purchase checkout."""
    same_account = Payment.stripe_account_id.is_not_distinct_from(stripe_account_id)
    stripe_ids = (
        (Payment.stripe_payment_intent_id, stripe_payment_intent_id),
        (Payment.stripe_invoice_id, stripe_invoice_id),
        (Payment.stripe_charge_id, stripe_charge_id),
    )
    matches = [same_account & (column == value) for column, value in stripe_ids if value is not None]
    if purchase_checkout_id is not None:
        matches.append((Payment.kind == PaymentKind.purchase) & (Payment.checkout_id == purchase_checkout_id))
    if not matches:
        return None
    return await session.scalar(
        select(Payment)
        .where(Payment.community_id == community_id, or_(*matches))
        .order_by(Payment.id)
        .limit(1)
        .execution_options(populate_existing=True)
    )


async def apply_refund(session: AsyncSession, *, community_id: int, payment_id: int, amount_refunded: int) -> Payment:
    """Set the payment's refunded total to what its refunds hold now, as a total (so a repeated
    or late call changes nothing): refunds Stripe has pending or succeeded count, and a refund
    that fails or is canceled gives its amount back, so the total can go down."""
    payment = await get_payment(session, community_id, payment_id, lock=True)
    refunded = min(max(amount_refunded, 0), payment.amount)
    if refunded != payment.refunded_amount:
        payment.refunded_amount = refunded
        payment.status = (
            PaymentStatus.refunded
            if refunded == payment.amount
            else PaymentStatus.partially_refunded
            if refunded
            else PaymentStatus.succeeded
        )
        await session.flush()
        await jobs.enqueue(session, PAYMENT_ADJUSTED, community_id=community_id, payment_id=payment.id)
    return payment


async def set_disputed(session: AsyncSession, payment: Payment, amount: int) -> Payment:
    """The amount a chargeback holds on this payment now (0 once a dispute is won). The caller
    holds the payment row locked. Stripe disputes only what was not refunded."""
    disputed = min(max(amount, 0), payment.amount - payment.refunded_amount)
    if disputed != payment.disputed_amount:
        payment.disputed_amount = disputed
        await session.flush()
        await jobs.enqueue(session, PAYMENT_ADJUSTED, community_id=payment.community_id, payment_id=payment.id)
    return payment


async def total_spent(session: AsyncSession, *, community_id: int, user_id: int) -> dict[str, int]:
    """What a member paid in this community, per currency, net of refunds and chargebacks."""
    rows = await session.execute(
        select(
            Payment.currency,
            func.sum(Payment.amount - Payment.refunded_amount - Payment.disputed_amount),
        )
        .where(Payment.community_id == community_id, Payment.user_id == user_id)
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    )
    return {currency: int(total) for currency, total in rows}


@dataclass(frozen=True)
class Revenue:
    """One offer's takings in one currency, from the payments ledger."""

    offer_id: int
    currency: str
    payments: int
    paid: int  # minor units charged
    refunded: int
    disputed: int  # held by open or lost chargebacks

    @property
    def net(self) -> int:
        return self.paid - self.refunded - self.disputed


async def offer_revenue(
    session: AsyncSession, community_id: int, *, offer_ids: Collection[int] | None = None
) -> list[Revenue]:
    """What each offer took, per currency, net of refunds and disputes (the same net as a
    member's total spent), ordered by offer and currency. Offers without payments are absent."""
    query = (
        select(
            Payment.offer_id,
            Payment.currency,
            func.count(),
            func.sum(Payment.amount),
            func.sum(Payment.refunded_amount),
            func.sum(Payment.disputed_amount),
        )
        .where(Payment.community_id == community_id)
        .group_by(Payment.offer_id, Payment.currency)
        .order_by(Payment.offer_id, Payment.currency)
    )
    if offer_ids is not None:
        query = query.where(Payment.offer_id.in_(list(offer_ids)))
    rows = await session.execute(query)
    return [
        Revenue(offer_id, currency, int(count), int(paid), int(refunded), int(disputed))
        for offer_id, currency, count, paid, refunded, disputed in rows
    ]


async def get_payment(session: AsyncSession, community_id: int, payment_id: int, *, lock: bool = False) -> Payment:
    return await get_in_community(session, Payment, community_id, payment_id, what="payment", lock=lock)


async def list_payments(
    session: AsyncSession,
    community_id: int,
    *,
    after: int | None,
    limit: int,
    user_id: int | None = None,
    offer_id: int | None = None,
) -> list[Payment]:
    """Payments, newest first."""
    return await newest_first(session, Payment, community_id, after=after, limit=limit, user_id=user_id, offer_id=offer_id)
