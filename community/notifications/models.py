"""Notification settings (per community, per offer, per staff person) (the delivery log is mail/models.py)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base


class MessageSetting(Base):
    """A community's choice for one catalogue message: on or off, and its edited subject/body
    (null: the catalogue's default)."""

    __tablename__ = "notification_settings"

    community_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    message: Mapped[str] = mapped_column(String(60), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)


class OfferOverride(Base):
    """For one offer, a message on or off whatever the community's setting."""

    __tablename__ = "notification_offer_overrides"

    offer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True)
    message: Mapped[str] = mapped_column(String(60), primary_key=True)
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


class StaffChoice(Base):
    """One staff person's choice of one staff message in one community."""

    __tablename__ = "notification_staff_choices"

    community_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    message: Mapped[str] = mapped_column(String(60), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
