from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from community.db import Base, BigId, Timestamp


class Role(enum.StrEnum):
    owner = "owner"
    admin = "admin"
    manager = "manager"


class TokenKind(enum.StrEnum):
    api = "api"          # bearer tokens for the JSON API, listed and revocable by their owner
    session = "session"  # the server-side half of a browser session cookie


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_lower", func.lower(text("email")), unique=True),)

    id: Mapped[BigId]
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuthToken(Base):
    __tablename__ = "auth_tokens"

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[TokenKind] = mapped_column(Enum(TokenKind, name="token_kind"))
    name: Mapped[str] = mapped_column(String(100), default="")
    # sha256 of the secret: a leaked table row cannot be replayed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[Timestamp]
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class LoginLink(Base):
    __tablename__ = "login_links"

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class EmailChange(Base):
    """A request to move an account to another address: it happens only when the link sent to
    that address is confirmed (once, before it expires, by the account that asked)."""

    __tablename__ = "email_changes"

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    new_email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # Set when confirmed, or when a later request or a confirmed change made it void.
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


# What the members directory's filters read (migration 0012_members_speed).
_FILTERED = ["status", "spent", "tags", "offer_ids", "joined_at", "last_payment_at", "user_id"]


class Member(Base):
    """A user's place in a community; `role` is set for its staff (owner, admin, manager)."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("community_id", "user_id"),
        # The members directory's sorts (keyset: the sort value, then the id) and filters.
        # Each sort index also carries what the filters read (migration 0012_members_speed), so
        # a filtered page walks the index alone (an index-only scan).
        Index("ix_members_name", "community_id", "name_key", "id", postgresql_include=_FILTERED),
        Index("ix_members_email", "community_id", "email_key", "id", postgresql_include=_FILTERED),
        Index("ix_members_name_prefix", "community_id", "name_key", postgresql_ops={"name_key": "text_pattern_ops"}),
        Index("ix_members_email_prefix", "community_id", "email_key", postgresql_ops={"email_key": "text_pattern_ops"}),
        Index("ix_members_joined", "community_id", "joined_at", "id", postgresql_include=[c for c in _FILTERED if c != "joined_at"]),
        Index("ix_members_spent", "community_id", "spent", "id", postgresql_include=[c for c in _FILTERED if c != "spent"]),
        Index(
            "ix_members_last_payment", "community_id",
            text("coalesce(last_payment_at, '-infinity'::timestamptz)"), "id", postgresql_include=_FILTERED,
        ),
        Index("ix_members_status", "community_id", "status", "id"),
        Index("ix_members_status_until", "community_id", "status_until", postgresql_where=text("status_until IS NOT NULL")),
        Index("ix_members_tags", "tags", postgresql_using="gin"),
        Index("ix_members_offer_ids", "offer_ids", postgresql_using="gin"),
        Index("ix_members_search", "search_key", postgresql_using="gin", postgresql_ops={"search_key": "gin_trgm_ops"}),
    )

    id: Mapped[BigId]
    # FK by table name: communities live on a higher floor (hubs/), which accounts never imports.
    community_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("communities.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role | None] = mapped_column(Enum(Role, name="member_role"))
    # Labels for the members directory; purchases add their offer's auto-tags.
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(60)), default=list, server_default=text("'{}'"))
    joined_at: Mapped[Timestamp]
    # The directory's summary of this member, written only by the database's triggers
    # (migration 0011_members_directory: payments, entitlements, subscriptions, users), so every
    # path that changes a payment or an entitlement keeps it current; see community/members.
    name_key: Mapped[str] = mapped_column(Text, server_default="")  # lower(users.name)
    email_key: Mapped[str] = mapped_column(Text, server_default="")  # lower(users.email)
    search_key: Mapped[str] = mapped_column(Text, server_default="")  # both, for contains-search
    status: Mapped[str] = mapped_column(String(20), server_default="none")
    status_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    spent: Mapped[int] = mapped_column(BigInteger, server_default="0")  # net, community's currency
    totals: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))  # net per currency
    last_payment_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    offer_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
