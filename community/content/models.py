from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (Index("ix_posts_group_id_desc", "group_id", "id"),)

    id: Mapped[BigId]
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("hub_groups.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
