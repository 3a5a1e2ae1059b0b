"""Discount codes (with their redemptions, reserved while the buyer is at Stripe), the
payments ledger (one row per payment Stripe took, recorded once however often a webhook
arrives), checkout records and the inbox of Stripe events."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class DiscountKind(enum.StrEnum):
    percent = "percent"
    amount = "amount"


class AppliesTo(enum.StrEnum):
    all = "all"
    offers = "offers"


class DiscountDuration(enum.StrEnum):
    once = "once"
    repeating = "repeating"
    forever = "forever"


class DiscountCode(Base):
    __tablename__ = "discount_codes"
    __table_args__ = (
        # Codes are case-insensitive: "SUMMER" and "summer" are the same code.
        Index("uq_discount_codes_community_id_lower_code", "community_id", text("lower(code)"), unique=True),
        Index("ix_discount_codes_community", "community_id", "id"),
        CheckConstraint(
            "(kind = 'percent' AND percent_bps BETWEEN 1 AND 10000 AND amount_off IS NULL AND currency IS NULL)"
            " OR (kind = 'amount' AND amount_off >= 1 AND currency IS NOT NULL AND percent_bps IS NULL)",
            name="value",
        ),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window"),
        CheckConstraint("max_redemptions IS NULL OR max_redemptions >= 1", name="max_redemptions"),
        CheckConstraint("per_customer_limit IS NULL OR per_customer_limit >= 1", name="per_customer_limit"),
        CheckConstraint(
            "(duration = 'repeating' AND duration_months BETWEEN 1 AND 36)"
            " OR (duration <> 'repeating' AND duration_months IS NULL)",
            name="duration",
        ),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))  # as the owner typed it
    kind: Mapped[DiscountKind] = mapped_column(Enum(DiscountKind, name="discount_kind"))
    percent_bps: Mapped[int | None] = mapped_column(Integer)  # 10000 = 100%
    amount_off: Mapped[int | None] = mapped_column(BigInteger)  # minor units of `currency`
    currency: Mapped[str | None] = mapped_column(String(3))
    applies_to: Mapped[AppliesTo] = mapped_column(Enum(AppliesTo, name="discount_applies_to"), default=AppliesTo.all)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[DiscountDuration] = mapped_column(
        Enum(DiscountDuration, name="discount_duration"), default=DiscountDuration.once
    )
    duration_months: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class DiscountCodeOffer(Base):
    """The offers a code is limited to (applies_to = offers)."""

    __tablename__ = "discount_code_offers"
    __table_args__ = (Index("ix_discount_code_offers_offer", "offer_id"),)

    code_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("discount_codes.id", ondelete="CASCADE"), primary_key=True
    )
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True)
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))


class RedemptionState(enum.StrEnum):
    reserved = "reserved"  # the buyer is at Stripe; counts while unexpired
    redeemed = "redeemed"  # paid; counts forever
    released = "released"  # abandoned or expired checkout; counts no more


class DiscountRedemption(Base):
    __tablename__ = "discount_redemptions"
    __table_args__ = (
        UniqueConstraint("code_id", "checkout_id"),
        Index("ix_discount_redemptions_checkout", "community_id", "checkout_id"),
        Index("ix_discount_redemptions_code_email", "code_id", "email_normalized"),
        CheckConstraint("amount_off >= 0", name="amount_off"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    # The API refuses to delete a code once redeemed (deactivate instead).
    code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("discount_codes.id", ondelete="CASCADE"))
    checkout_id: Mapped[int] = mapped_column(BigInteger)  # no FK: checkouts live on a higher floor
    email_normalized: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    amount_off: Mapped[int] = mapped_column(BigInteger)  # taken off the first payment
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[RedemptionState] = mapped_column(
        Enum(RedemptionState, name="discount_redemption_state"), default=RedemptionState.reserved
    )
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PaymentKind(enum.StrEnum):
    purchase = "purchase"
    renewal = "renewal"


class PaymentStatus(enum.StrEnum):
    succeeded = "succeeded"
    partially_refunded = "partially_refunded"
    refunded = "refunded"


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        # A webhook delivered twice records one payment.
        Index(
            "uq_payments_account_payment_intent",
            "stripe_account_id",
            "stripe_payment_intent_id",
            unique=True,
            postgresql_where="stripe_payment_intent_id IS NOT NULL",
            postgresql_nulls_not_distinct=True,  # a payment without an account id is still one
        ),
        Index(
            "uq_payments_account_invoice",
            "stripe_account_id",
            "stripe_invoice_id",
            unique=True,
            postgresql_where="stripe_invoice_id IS NOT NULL",
            postgresql_nulls_not_distinct=True,
        ),
        Index(
            "uq_payments_purchase_checkout",
            "checkout_id",
            unique=True,
            postgresql_where="kind = 'purchase' AND checkout_id IS NOT NULL",
        ),
        Index("ix_payments_community", "community_id", "id"),
        Index("ix_payments_user", "community_id", "user_id", "id"),
        Index("ix_payments_offer", "community_id", "offer_id", "id"),
        CheckConstraint("amount >= 0 AND discount_amount >= 0", name="amounts"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="refunded"),
        CheckConstraint("disputed_amount >= 0 AND disputed_amount <= amount", name="disputed"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id"))
    entitlement_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("entitlements.id", ondelete="SET NULL")
    )
    checkout_id: Mapped[int | None] = mapped_column(BigInteger)  # no FK: higher floor
    kind: Mapped[PaymentKind] = mapped_column(Enum(PaymentKind, name="payment_kind"))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units actually paid
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[PaymentStatus] = mapped_column(
        Enum(PaymentStatus, name="payment_status"), default=PaymentStatus.succeeded
    )
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # Held by open or lost disputes (chargebacks); a won dispute gives it back.
    disputed_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    receipt_url: Mapped[str | None] = mapped_column(String(2048))  # Stripe's receipt or hosted invoice
    paid_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_at: Mapped[Timestamp]


class Subscription(Base):
    """A recurring entitlement's Stripe subscription, as last read from Stripe (events only
    say "something changed": the subscription is re-fetched, so an old event never wins)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("stripe_account_id", "stripe_subscription_id"),
        Index("ix_subscriptions_member", "community_id", "user_id", "id"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    entitlement_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entitlements.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id"))
    stripe_account_id: Mapped[str] = mapped_column(String(255))
    stripe_subscription_id: Mapped[str] = mapped_column(String(255))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    # Stripe's status: trialing, active, past_due, unpaid, canceled, incomplete, paused, ...
    status: Mapped[str] = mapped_column(String(40))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    current_period_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    trial_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # While a failed renewal is retried: access lasts until then.
    grace_ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The trial end the member was warned about (trial_will_end: one warning per trial).
    trial_warned_for: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # each period's price, minor units
    currency: Mapped[str] = mapped_column(String(3))
    synced_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]


class RefundState(enum.StrEnum):
    # Not final: Stripe has not answered yet (no stripe_refund_id), or holds it pending.
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"  # refused by Stripe, or failed at the bank (even after succeeding)
    canceled = "canceled"  # canceled before it was paid out


class Refund(Base):
    """One refund of one payment: asked for by an owner through us (the row exists before the
    Stripe call and names its idempotency key) or made in the Stripe dashboard (learnt from
    charge.refunded or refund.*). Its state follows Stripe's status, forwards only: pending,
    then succeeded, then failed; or pending, then failed or canceled."""

    __tablename__ = "refunds"
    __table_args__ = (
        Index(
            "uq_refunds_stripe_refund",
            "stripe_refund_id",
            unique=True,
            postgresql_where="stripe_refund_id IS NOT NULL",
        ),
        Index("ix_refunds_payment", "payment_id", "id"),
        # A request repeated with the same Idempotency-Key answers the refund it made.
        Index("uq_refunds_client_key", "payment_id", "client_key", unique=True, postgresql_where="client_key IS NOT NULL"),
        # The retry of pending refunds (a cron, every minute) reads only these.
        Index("ix_refunds_pending", "created_at", postgresql_where="state = 'pending'"),
        CheckConstraint("amount > 0", name="positive"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500), default="")
    revoke_access: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[RefundState] = mapped_column(Enum(RefundState, name="refund_state"), default=RefundState.pending)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))
    actor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(String(500))
    client_key: Mapped[str | None] = mapped_column(String(255))  # the request's Idempotency-Key
    created_at: Mapped[Timestamp]
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Dispute(Base):
    """A dispute of a payment (an inquiry or a chargeback), as Stripe last told us on a
    charge.dispute.* event; what each status means is billing/disputes.py's."""

    __tablename__ = "disputes"

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(40))  # Stripe's: warning_*, needs_response, ..., appeal_*, won, lost
    # Stripe's evidence_details.due_by: staff respond in their Stripe dashboard by then (null: no response expected).
    evidence_due_by: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


# ---------------------------------------------------------------- checkouts and the Stripe inbox
# A checkout is where a payment starts (the checkout floor writes it; billing follows its
# subscription and affiliates its attribution), and Stripe's events are what billing and
# checkout act on: both live here, below every floor that reads them.


class CheckoutState(enum.StrEnum):
    open = "open"            # created; the buyer is on Stripe's page (or about to be)
    processing = "processing"  # Stripe completed it, a delayed payment has not settled yet
    fulfilled = "fulfilled"  # paid (or free): entitlement granted, payment recorded
    failed = "failed"        # a delayed payment failed
    expired = "expired"      # abandoned: Stripe expired the session


class Checkout(Base):
    """One attempt to buy one offer. `token` names it in URLs (never the sequential id)."""

    __tablename__ = "checkouts"
    __table_args__ = (
        Index("ix_checkouts_community_id", "community_id", "id"),
        # The few checkouts still open: the sweep of lapsed sessions, and a buyer's earlier tabs.
        Index("ix_checkouts_open_expiry", "expires_at", postgresql_where="state = 'open'"),
        Index("ix_checkouts_open_code", "discount_code_id", postgresql_where="state = 'open'"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    # A paid checkout's offer has an entitlement, so the offer cannot be deleted; an abandoned one goes with it.
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(43), unique=True)
    state: Mapped[CheckoutState] = mapped_column(Enum(CheckoutState, name="checkout_state"), default=CheckoutState.open)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(120), default="")
    # The account that was logged in when the checkout started (it may log itself in at the end).
    viewer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    # The buyer once known (fulfilment), and whether fulfilment created their account.
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    new_user: Mapped[bool] = mapped_column(Boolean, default=False)
    list_amount: Mapped[int] = mapped_column(BigInteger)
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    discount_code_id: Mapped[int | None] = mapped_column(BigInteger)
    discount_code: Mapped[str | None] = mapped_column(String(40))
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    entitlement_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("entitlements.id", ondelete="SET NULL"))
    # The affiliate whose link the buyer last clicked inside the window (from the signed cookie).
    affiliate_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("affiliates.id", ondelete="SET NULL"))
    affiliate_clicked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The completion route logs a new buyer in once; later visits ask them to log in.
    login_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]
    fulfilled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # When its Stripe session lapses; a checkout still open later is re-read from Stripe by the
    # sweep (last asked at stripe_checked_at), since its discount use is held until then.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_checked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class StripeEvent(Base):
    """Every Stripe event received, once (the unique Stripe id), then processed by a job."""

    __tablename__ = "stripe_events"

    id: Mapped[BigId]
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    account: Mapped[str | None] = mapped_column(String(255))  # the connected account, for Connect events
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    community_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("communities.id", ondelete="SET NULL")
    )  # known once processing has matched the event to our records
    outcome: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[Timestamp]
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
