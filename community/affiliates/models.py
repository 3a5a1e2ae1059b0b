"""Resell rights: affiliates (buyers who opted in), their clicks, commissions as a ledger, and
payouts. A program's settings live on its offer (offers.resell_*)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class AffiliateStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"  # the link still redirects; it earns nothing


class Affiliate(Base):
    """A buyer enrolled in one offer's program, with a short code for links."""

    __tablename__ = "affiliates"
    __table_args__ = (
        UniqueConstraint("offer_id", "user_id"),
        Index("ix_affiliates_community", "community_id", "id"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[AffiliateStatus] = mapped_column(
        Enum(AffiliateStatus, name="affiliate_status"), default=AffiliateStatus.active
    )
    created_at: Mapped[Timestamp]
    suspended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Click(Base):
    """One counted click on an affiliate link (repeats by a visitor within an hour are one).
    Written in batches; no foreign keys, like the access log (append-only, high volume)."""

    __tablename__ = "affiliate_clicks"
    __table_args__ = (
        Index("ix_affiliate_clicks_affiliate_at", "affiliate_id", "at"),
        # The flush's repeat check: this visitor's clicks on this link within the hour.
        Index("ix_affiliate_clicks_visitor", "affiliate_id", "visitor_hash", "at"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger)
    affiliate_id: Mapped[int] = mapped_column(BigInteger)
    offer_id: Mapped[int] = mapped_column(BigInteger)
    visitor_hash: Mapped[str] = mapped_column(String(64))
    ip_hash: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    referrer: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CommissionState(enum.StrEnum):
    pending = "pending"  # inside the hold period
    approved = "approved"  # payable
    paid = "paid"  # in a paid payout
    reversed = "reversed"  # fully refunded or disputed before payout
    rejected = "rejected"  # earns nothing (self-referral, suspended affiliate); kept with the reason


class Commission(Base):
    """What one payment earned its affiliate: at most one per payment."""

    __tablename__ = "commissions"
    __table_args__ = (
        UniqueConstraint("payment_id"),
        Index("ix_commissions_affiliate", "affiliate_id", "id"),
        Index("ix_commissions_community", "community_id", "id"),
        Index("ix_commissions_hold", "hold_until", postgresql_where="state = 'pending'"),
        CheckConstraint("amount >= 0 AND reversed_amount >= 0 AND reversed_amount <= amount", name="amounts"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    affiliate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("affiliates.id", ondelete="CASCADE"))
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="CASCADE"))
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id", ondelete="CASCADE"))
    buyer_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    currency: Mapped[str] = mapped_column(String(3))
    base_amount: Mapped[int] = mapped_column(BigInteger)  # what the buyer paid, after discounts
    amount: Mapped[int] = mapped_column(BigInteger)  # earned at payment time (0 when rejected)
    reversed_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # taken back by refunds and disputes
    state: Mapped[CommissionState] = mapped_column(Enum(CommissionState, name="commission_state"))
    reason: Mapped[str] = mapped_column(String(200), default="")
    hold_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[Timestamp]


class EntryKind(enum.StrEnum):
    earned = "earned"
    reversal = "reversal"  # a refund or dispute taking part of it back (negative)
    restored = "restored"  # a won dispute giving it back (positive)


class LedgerEntry(Base):
    """The affiliate's ledger: every movement of money owed, signed. An entry is payable once
    its commission is approved (or at once, for a reversal after payout: it becomes a negative
    line on the next payout) and belongs to at most one payout."""

    __tablename__ = "commission_entries"
    __table_args__ = (
        Index("ix_commission_entries_affiliate", "affiliate_id", "payout_id", "id"),
        Index("ix_commission_entries_commission", "commission_id"),
        Index("ix_commission_entries_payout", "payout_id", postgresql_where="payout_id IS NOT NULL"),
        # What is payable in a community: the entries in no payout yet.
        Index("ix_commission_entries_unpaid", "community_id", "id", postgresql_where="payout_id IS NULL"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    affiliate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("affiliates.id", ondelete="CASCADE"))
    commission_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("commissions.id", ondelete="CASCADE"))
    kind: Mapped[EntryKind] = mapped_column(Enum(EntryKind, name="commission_entry_kind"))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed, minor units
    currency: Mapped[str] = mapped_column(String(3))
    payout_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payouts.id", ondelete="SET NULL"))
    created_at: Mapped[Timestamp]


class PayoutState(enum.StrEnum):
    open = "open"  # created, not paid yet
    paid = "paid"


class Payout(Base):
    __tablename__ = "payouts"
    __table_args__ = (Index("ix_payouts_community", "community_id", "id"),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    affiliate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("affiliates.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # the sum of its entries
    state: Mapped[PayoutState] = mapped_column(Enum(PayoutState, name="payout_state"), default=PayoutState.open)
    reference: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[Timestamp]
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
