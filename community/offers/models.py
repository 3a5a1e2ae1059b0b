"""Offers, the groups they grant, entitlements (who holds which offer until when), and the
access-change machinery (runs and the access log)."""

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
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INT8MULTIRANGE, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class Pricing(enum.StrEnum):
    free = "free"
    one_time = "one_time"
    recurring = "recurring"


class OfferStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    archived = "archived"


class Destination(enum.StrEnum):
    platform = "platform"
    custom_url = "custom_url"


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (UniqueConstraint("community_id", "slug"),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[OfferStatus] = mapped_column(Enum(OfferStatus, name="offer_status"), default=OfferStatus.draft)
    pricing: Mapped[Pricing] = mapped_column(Enum(Pricing, name="offer_pricing"))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    old_amount: Mapped[int | None] = mapped_column(BigInteger)  # compare-at price, above `amount`
    interval_months: Mapped[int | None] = mapped_column(Integer)  # recurring: 1, 3, 6 or 12
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    trial_requires_card: Mapped[bool] = mapped_column(Boolean, default=True)
    access_days: Mapped[int | None] = mapped_column(Integer)  # one-time: None = lifetime
    thumbnail: Mapped[str | None] = mapped_column(String(200))  # storage keys
    cover: Mapped[str | None] = mapped_column(String(200))
    landing_page: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    checkout_code_head: Mapped[str] = mapped_column(Text, default="")
    checkout_code_body: Mapped[str] = mapped_column(Text, default="")
    confirmation_subject: Mapped[str] = mapped_column(String(200), default="")
    confirmation_body: Mapped[str] = mapped_column(Text, default="")
    destination: Mapped[Destination] = mapped_column(Enum(Destination, name="offer_destination"), default=Destination.platform)
    destination_url: Mapped[str | None] = mapped_column(String(2048))
    resell_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    resell_commission_bps: Mapped[int | None] = mapped_column(Integer)
    resell_commission_flat: Mapped[int | None] = mapped_column(BigInteger)
    resell_description: Mapped[str] = mapped_column(Text, default="")
    # Which payments earn: "first" only, "all", or the first `resell_earn_months` months.
    resell_earns: Mapped[str] = mapped_column(String(10), default="first", server_default="first")
    resell_earn_months: Mapped[int | None] = mapped_column(Integer)
    resell_window_days: Mapped[int] = mapped_column(Integer, default=30, server_default=text("30"))
    resell_hold_days: Mapped[int] = mapped_column(Integer, default=30, server_default=text("30"))
    resell_min_payout: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    auto_tags: Mapped[list[str]] = mapped_column(ARRAY(String(60)), default=list)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OfferGroup(Base):
    """An offer currently grants this group, to the entitlements whose ids lie in
    `entitlement_ids` (all of them unless an edit was "new buyers only").

    Grandfathering is a range of entitlement ids, not a row per buyer: "add for new buyers
    only" links the group for ids from the next one on; "remove for new buyers only" keeps it
    for ids up to the last one. Either is one row written, exact at commit, at any size.
    """

    __tablename__ = "offer_groups"
    __table_args__ = (Index("ix_offer_groups_group", "group_id", "offer_id"),)

    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("hub_groups.id", ondelete="CASCADE"), primary_key=True)
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    entitlement_ids: Mapped[Any] = mapped_column(INT8MULTIRANGE, server_default=text("'{(,)}'::int8multirange"))
    created_at: Mapped[Timestamp]


class EntitlementSource(enum.StrEnum):
    purchase = "purchase"
    free = "free"
    comp = "comp"  # given by the owner


class EntitlementStatus(enum.StrEnum):
    active = "active"
    past_due = "past_due"
    cancelled = "cancelled"
    refunded = "refunded"
    expired = "expired"


class Entitlement(Base):
    """One buyer's holding of one offer. Access runs while `ends_at` is null or in the future."""

    __tablename__ = "entitlements"
    __table_args__ = (
        # The access query: a user's entitlements in a community.
        Index("ix_entitlements_user", "community_id", "user_id", "offer_id"),
        # Keyset batches over an offer's holders.
        Index("ix_entitlements_offer", "offer_id", "id"),
        # The expiry cron: ends_at passing by.
        Index("ix_entitlements_ends_at", "ends_at", postgresql_where="ends_at IS NOT NULL"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="RESTRICT"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[EntitlementSource] = mapped_column(Enum(EntitlementSource, name="entitlement_source"))
    status: Mapped[EntitlementStatus] = mapped_column(Enum(EntitlementStatus, name="entitlement_status"))
    starts_at: Mapped[Timestamp]
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Set once the expiry cron has started the access run for the current ends_at.
    expiry_processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[Timestamp]


class EntitlementEvent(Base):
    """The history of every state change of an entitlement."""

    __tablename__ = "entitlement_events"
    __table_args__ = (Index("ix_entitlement_events_entitlement", "entitlement_id", "id"),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    entitlement_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entitlements.id", ondelete="CASCADE"))
    status: Mapped[EntitlementStatus] = mapped_column(Enum(EntitlementStatus, name="entitlement_status"))
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[Timestamp]


class RunState(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class AccessRun(Base):
    """One access change's side effects, worked through in keyset batches; resumable."""

    __tablename__ = "access_runs"
    __table_args__ = (CheckConstraint("done <= total OR total = 0", name="progress"),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    cause: Mapped[str] = mapped_column(String(200))
    # What to reconcile: {"offer_id": o, "group_ids": [...]} (the offer's holders x those
    # groups), {"entitlement_ids": [...], "group_ids": [...]}, or {"group_id": g} (a deleted
    # group: everyone last logged as having it).
    scope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[RunState] = mapped_column(Enum(RunState, name="access_run_state"), default=RunState.pending)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # last user id handled (offer and group runs alike)
    errors: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AccessChange(enum.StrEnum):
    gained = "gained"
    lost = "lost"


class AccessLogEntry(Base):
    """What members were told: the last entry per (user, group) is the access they were last
    known to have. Runs compare the derived access with it, so a run repeated writes nothing."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_user_group", "community_id", "user_id", "group_id", "id"),
        Index("ix_access_log_group_user", "community_id", "group_id", "user_id"),  # deleted-group runs
    )

    id: Mapped[BigId]
    # No foreign keys: an append-only audit written a million rows at a time, where checking
    # them cost two thirds of each batch (bench/access.py). Rows always come from RECONCILE,
    # which only writes ids it read from entitlements.
    community_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    # No FK: a deleted group's "lost" entries must outlive it.
    group_id: Mapped[int] = mapped_column(BigInteger)
    group_name: Mapped[str] = mapped_column(String(120))
    change: Mapped[AccessChange] = mapped_column(Enum(AccessChange, name="access_change"))
    cause: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[Timestamp]
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # the email went out
