"""Checkout's tables: the community's connected Stripe account, our checkout records, and the
inbox of Stripe events."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class StripeAccount(Base):
    """A community's connected Stripe account. `charges_enabled` here mirrors Stripe; the copy on
    `communities` is what the offers floor reads."""

    __tablename__ = "stripe_accounts"

    community_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(String(255), unique=True)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class CheckoutState(enum.StrEnum):
    open = "open"            # created; the buyer is on Stripe's page (or about to be)
    processing = "processing"  # Stripe completed it, a delayed payment has not settled yet
    fulfilled = "fulfilled"  # paid (or free): entitlement granted, payment recorded
    failed = "failed"        # a delayed payment failed
    expired = "expired"      # abandoned: Stripe expired the session


class Checkout(Base):
    """One attempt to buy one offer. `token` names it in URLs (never the sequential id)."""

    __tablename__ = "checkouts"
    __table_args__ = (Index("ix_checkouts_community_id", "community_id", "id"),)

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
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


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
