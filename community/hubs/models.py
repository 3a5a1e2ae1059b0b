from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class Community(Base):
    """The tenant: every tenant-owned row points here."""

    __tablename__ = "communities"

    id: Mapped[BigId]
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    default_currency: Mapped[str] = mapped_column(String(3), default="USD")
    support_email: Mapped[str | None] = mapped_column(String(320))
    # The connected Stripe account can take charges (kept current by checkout's account.updated).
    charges_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Days a membership keeps its access after a failed renewal while Stripe retries.
    grace_days: Mapped[int] = mapped_column(Integer, default=7, server_default=text("7"))
    created_at: Mapped[Timestamp]


class Hub(Base):
    __tablename__ = "hubs"
    __table_args__ = (
        UniqueConstraint("community_id", "slug"),
        Index("ix_hubs_community_position", "community_id", "position"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[Timestamp]


class HubGroup(Base):
    __tablename__ = "hub_groups"
    __table_args__ = (
        UniqueConstraint("community_id", "slug"),
        Index("ix_hub_groups_hub_position", "hub_id", "position"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    hub_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("hubs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[Timestamp]
