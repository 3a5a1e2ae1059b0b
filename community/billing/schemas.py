"""Discount codes and payments in and out. Shapes and bounds here; the rules between fields
live in community/billing/discounts.py."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from community.billing.discounts import (
    MAX_AMOUNT,
    MAX_MONTHS,
    MAX_OFFERS,
    Counts,
    code_state,
)
from community.billing.models import (
    DiscountCode,
    DiscountRedemption,
    Dispute,
    Payment,
    Refund,
)
from community.billing.refunds import MAX_REASON
from community.inputs import Instant
from community.web import MAX_ID

CodeText = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=60, description="3 to 40 characters of A-Z a-z 0-9 _ -; compared case-insensitively."
    ),
]
Kind = Literal["percent", "amount"]
Bps = Annotated[int, msgspec.Meta(ge=1, le=10_000, description="Percent codes: basis points (100 = 1%, 10000 = 100%).")]
AmountOff = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="Amount codes: minor units taken off.")]
Currency = Annotated[
    str, msgspec.Meta(min_length=3, max_length=3, description="Amount codes: ISO 4217; the community's by default.")
]
AppliesToIn = Literal["all", "offers"]
OfferIds = Annotated[
    list[Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]],
    msgspec.Meta(max_length=MAX_OFFERS, description="With applies_to \"offers\": the offers the code is for."),
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
DurationIn = Literal["once", "repeating", "forever"]
Months = Annotated[int, msgspec.Meta(ge=1, le=MAX_MONTHS, description="Repeating discounts: how many months.")]


class DiscountCodeCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A percent code takes percent_bps; an amount code amount_off (and currency). The code is
    valid from starts_at (now by default) until ends_at (exclusive; never by default).
    duration (and duration_months) only matter on recurring offers."""

    code: CodeText
    kind: Kind
    percent_bps: Bps | None = None
    amount_off: AmountOff | None = None
    currency: Currency | None = None
    applies_to: AppliesToIn = "all"
    offer_ids: OfferIds | None = None
    starts_at: Instant | None = None
    ends_at: Instant | None = None
    max_redemptions: Limit | None = None
    per_customer_limit: Limit | None = None
    duration: DurationIn = "once"
    duration_months: Months | None = None
    active: bool = True


class DiscountCodeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change (offer_ids is replaced as a whole); null clears a nullable
    field. Redemptions already made keep their amount."""

    code: CodeText | UnsetType = UNSET
    kind: Kind | UnsetType = UNSET
    percent_bps: Bps | None | UnsetType = UNSET
    amount_off: AmountOff | None | UnsetType = UNSET
    currency: Currency | None | UnsetType = UNSET
    applies_to: AppliesToIn | UnsetType = UNSET
    offer_ids: OfferIds | None | UnsetType = UNSET
    starts_at: Instant | UnsetType = UNSET
    ends_at: Instant | None | UnsetType = UNSET
    max_redemptions: Limit | None | UnsetType = UNSET
    per_customer_limit: Limit | None | UnsetType = UNSET
    duration: DurationIn | UnsetType = UNSET
    duration_months: Months | None | UnsetType = UNSET
    active: bool | UnsetType = UNSET


def given(data: DiscountCodeCreate | DiscountCodeUpdate) -> dict[str, Any]:
    """The fields the caller set, as plain values for the service."""
    if isinstance(data, DiscountCodeCreate):
        return {name: getattr(data, name) for name in data.__struct_fields__ if getattr(data, name) is not None}
    return {name: getattr(data, name) for name in data.__struct_fields__ if getattr(data, name) is not UNSET}


class DiscountCodeOut(msgspec.Struct):
    id: int
    code: str
    kind: str
    percent_bps: int | None
    amount_off: int | None
    currency: str | None
    applies_to: str
    offer_ids: list[int]
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    max_redemptions: int | None
    per_customer_limit: int | None
    duration: str
    duration_months: int | None
    active: bool
    redeemed: int  # paid redemptions
    reserved: int  # checkouts holding this code that may still be paid at Stripe
    # Now: active | scheduled (starts later) | expired | used_up (redeemed + reserved reached
    # max_redemptions) | disabled (active: false). Only an active code is taken at checkout.
    state: str
    created_at: dt.datetime
    updated_at: dt.datetime | None


def code_out(code: DiscountCode, offer_ids: list[int], counts: Counts, now: dt.datetime) -> DiscountCodeOut:
    return DiscountCodeOut(
        id=code.id,
        code=code.code,
        kind=code.kind.value,
        percent_bps=code.percent_bps,
        amount_off=code.amount_off,
        currency=code.currency,
        applies_to=code.applies_to.value,
        offer_ids=offer_ids,
        starts_at=code.starts_at,
        ends_at=code.ends_at,
        max_redemptions=code.max_redemptions,
        per_customer_limit=code.per_customer_limit,
        duration=code.duration.value,
        duration_months=code.duration_months,
        active=code.active,
        redeemed=counts.redeemed,
        reserved=counts.reserved,
        state=code_state(code, counts, now).value,
        created_at=code.created_at,
        updated_at=code.updated_at,
    )


class RedemptionOut(msgspec.Struct):
    id: int
    code_id: int
    checkout_id: int
    email: str
    user_id: int | None
    amount_off: int
    currency: str
    state: str  # reserved | redeemed | released
    expires_at: dt.datetime | None  # when its checkout session lapses at Stripe (it counts until released)
    created_at: dt.datetime
    redeemed_at: dt.datetime | None


def redemption_out(r: DiscountRedemption) -> RedemptionOut:
    return RedemptionOut(
        id=r.id,
        code_id=r.code_id,
        checkout_id=r.checkout_id,
        email=r.email_normalized,
        user_id=r.user_id,
        amount_off=r.amount_off,
        currency=r.currency,
        state=r.state.value,
        expires_at=r.expires_at,
        created_at=r.created_at,
        redeemed_at=r.redeemed_at,
    )


class PaymentOut(msgspec.Struct):
    id: int
    user_id: int
    offer_id: int
    entitlement_id: int | None
    checkout_id: int | None
    kind: str
    amount: int
    discount_amount: int
    currency: str
    status: str
    refunded_amount: int
    disputed_amount: int  # held by open or lost chargebacks
    net_amount: int  # amount - refunded - disputed: what counts toward the member's total spent
    receipt_url: str | None
    stripe_checkout_session_id: str | None
    stripe_payment_intent_id: str | None
    stripe_invoice_id: str | None
    stripe_charge_id: str | None
    stripe_subscription_id: str | None
    paid_at: dt.datetime
    created_at: dt.datetime


class RevenueOut(msgspec.Struct):
    """One offer's takings in one currency (minor units)."""

    offer_id: int
    currency: str
    payments: int  # how many payments (purchases and renewals)
    paid_amount: int  # charged
    refunded_amount: int
    disputed_amount: int  # held by open or lost chargebacks
    net_amount: int  # paid - refunded - disputed


def payment_out(p: Payment) -> PaymentOut:
    return PaymentOut(
        id=p.id,
        user_id=p.user_id,
        offer_id=p.offer_id,
        entitlement_id=p.entitlement_id,
        checkout_id=p.checkout_id,
        kind=p.kind.value,
        amount=p.amount,
        discount_amount=p.discount_amount,
        currency=p.currency,
        status=p.status.value,
        refunded_amount=p.refunded_amount,
        disputed_amount=p.disputed_amount,
        net_amount=p.amount - p.refunded_amount - p.disputed_amount,
        receipt_url=p.receipt_url,
        stripe_checkout_session_id=p.stripe_checkout_session_id,
        stripe_payment_intent_id=p.stripe_payment_intent_id,
        stripe_invoice_id=p.stripe_invoice_id,
        stripe_charge_id=p.stripe_charge_id,
        stripe_subscription_id=p.stripe_subscription_id,
        paid_at=p.paid_at,
        created_at=p.created_at,
    )


class RefundCreate(msgspec.Struct, forbid_unknown_fields=True):
    """amount: minor units, up to what is left on the payment (everything left by default).
    The membership is kept unless revoke_access is true."""

    amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)] = ""
    revoke_access: bool = False


class RefundOut(msgspec.Struct):
    id: int
    payment_id: int
    amount: int
    currency: str
    reason: str
    revoke_access: bool
    state: str  # pending (Stripe has not answered, or holds it: then stripe_refund_id is set) | succeeded | failed | canceled
    error: str | None
    stripe_refund_id: str | None
    actor_id: int | None  # null: made in the Stripe dashboard
    created_at: dt.datetime
    completed_at: dt.datetime | None


def refund_out(r: Refund) -> RefundOut:
    return RefundOut(
        id=r.id,
        payment_id=r.payment_id,
        amount=r.amount,
        currency=r.currency,
        reason=r.reason,
        revoke_access=r.revoke_access,
        state=r.state.value,
        error=r.error,
        stripe_refund_id=r.stripe_refund_id,
        actor_id=r.actor_id,
        created_at=r.created_at,
        completed_at=r.completed_at,
    )


class DisputeOut(msgspec.Struct):
    id: int
    payment_id: int
    stripe_dispute_id: str
    amount: int
    currency: str
    reason: str  # Stripe's: fraudulent, product_not_received, ...
    status: str  # Stripe's: warning_needs_response, needs_response, under_review, won, lost, ...
    evidence_due_by: dt.datetime | None  # respond in the Stripe dashboard by then (null: no response expected)
    created_at: dt.datetime
    closed_at: dt.datetime | None


def dispute_out(d: Dispute) -> DisputeOut:
    return DisputeOut(
        id=d.id, payment_id=d.payment_id, stripe_dispute_id=d.stripe_dispute_id, amount=d.amount, currency=d.currency,
        reason=d.reason, status=d.status, evidence_due_by=d.evidence_due_by, created_at=d.created_at, closed_at=d.closed_at,
    )
