"""Campaigns, their recipients (one row per member, unique per campaign) and unsubscribes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp

# A campaign: draft -> scheduled (a time ahead) or sending -> sent; cancelled from any but sent.
CAMPAIGN_STATES = ("draft", "scheduled", "sending", "sent", "cancelled")
# A recipient: queued -> sending (claimed by a sender, before SMTP) -> sent | failed | bounced;
# skipped (unsubscribed) at queue or send time; cancelled when the campaign is.
RECIPIENT_STATES = ("queued", "sending", "sent", "failed", "bounced", "skipped", "cancelled")
FORMATS = ("text", "markdown")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_one_of("state", CAMPAIGN_STATES), name="ck_campaigns_state"),
        CheckConstraint(_one_of("format", FORMATS), name="ck_campaigns_format"),
        Index("ix_campaigns_community", "community_id", "id"),
        Index("ix_campaigns_due", "send_at", postgresql_where="state = 'scheduled'"),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(10), server_default="text")
    # What `segment=` of the members directory takes: a built-in key or a saved segment's id.
    segment: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(12), server_default="draft")
    send_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]
    queued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    recipients_total: Mapped[int] = mapped_column(Integer, server_default="0")


class CampaignRecipient(Base):
    __tablename__ = "campaign_recipients"
    # One row per (campaign, member): the primary key is what makes "each member once" hold,
    # and the order senders claim in and pages list in. Kept lean (no surrogate id, the
    # community is the campaign's) because queueing writes 100,000 of them in one statement:
    # for the same reason there are no foreign keys (PostgreSQL checks one per row, about 20 us
    # each: 4 of the 7 s it took at 100,000); instead the rows are written only from the
    # campaign's segment (existing members) in the campaign's own transaction, and triggers
    # (migration 0014) delete them with their campaign or their user, as ON DELETE CASCADE would.
    __table_args__ = (
        CheckConstraint(_one_of("state", RECIPIENT_STATES), name="ck_campaign_recipients_state"),
        Index("ix_campaign_recipients_queued", "campaign_id", "user_id", postgresql_where="state = 'queued'"),
        Index("ix_campaign_recipients_user", "user_id"),
    )

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # campaigns.id
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # users.id
    email: Mapped[str] = mapped_column(String(320))  # the address at queue time: who got it
    name: Mapped[str] = mapped_column(String(200), server_default="")
    state: Mapped[str] = mapped_column(String(10), server_default="queued")
    detail: Mapped[str | None] = mapped_column(Text)  # the SMTP server's answer on failure or bounce
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Unsubscribe(Base):
    """A member who asked for no more campaigns from this community (never transactional mail)."""

    __tablename__ = "campaign_unsubscribes"

    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[Timestamp]
