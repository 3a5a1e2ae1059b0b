"""The delivery log: every catalogue message sent to someone, and what became of it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp

STATES = ("queued", "sending", "sent", "failed", "bounced")


class Delivery(Base):
    """One message to one recipient for one event, with its state: (event_key, message, email)
    is unique, so an event is decided once; the send job claims the row (`sending`) before it
    sends, so a rerun never sends twice."""

    __tablename__ = "email_deliveries"
    __table_args__ = (
        UniqueConstraint("event_key", "message", "email"),
        Index("ix_email_deliveries_community", "community_id", "id"),
        Index("ix_email_deliveries_member", "community_id", "user_id", "id"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(String(60))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    # queued -> sending -> sent | failed (with the server's answer) | bounced (5xx at RCPT)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
