"""Checkout's own table: the community's connected Stripe account. (Checkout records and the
Stripe events inbox live in billing.models, where the floors that read them can reach.)"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, Timestamp


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
