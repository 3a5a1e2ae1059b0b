"""Notes on members, saved segments, and member counts. The directory's per-member summary
(status, totals, last payment, offers) lives on the `members` row itself (accounts/models.py),
kept by triggers; so are the counts (migration 0015_member_counts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class MemberNote(Base):
    """A staff note on a member: who wrote it and when, who last edited it and when."""

    __tablename__ = "member_notes"
    __table_args__ = (Index("ix_member_notes_member", "community_id", "user_id", "id"),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    edited_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    edited_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class MemberSegment(Base):
    """A saved segment: a name and the directory's filters (see members.directory.Filters)."""

    __tablename__ = "member_segments"
    __table_args__ = (
        Index("uq_member_segments_community_id_lower_name", "community_id", text("lower(name)"), unique=True),
    )

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[Timestamp]


class MemberCount(Base):
    """A change in how many members a community has under one key ('all', a status,
    'customers': ever paid). Rows are only inserted, by the triggers on `members` (migration
    0015_member_counts), and summed when read; the fold cron replaces a community's rows by
    their sums (`member_counts_fold`); `member_counts_rebuild(community)` recomputes them."""

    __tablename__ = "member_counts"
    __table_args__ = (Index("ix_member_counts_community", "community_id", "key", postgresql_include=["n"]),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(20))
    n: Mapped[int] = mapped_column(BigInteger)
