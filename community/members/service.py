"""Notes, tags, segments, bulk tagging and the account rules of a community's members.

Writes are for owners and admins (the API's `editor`); managers read. Every function takes the
community it acts in; a user who is no member of it is not found (404), whoever they are elsewhere.

Account rules:
- **Removing a member** cancels every membership now, through billing.memberships.end_now (a
  running Stripe subscription is cancelled at Stripe in the same step; a refusal rolls all of it
  back), then takes their place in the community (the `members` row, so their access and their
  member pages go). Their history stays: entitlements and their events, payments, refunds, the
  access log and staff notes are kept by user, and show again if they ever join again. Staff are
  refused: take their role away first.
- **Deleting an account** is possible only for one that never paid anything anywhere (payments
  are the books), that is no staff and has no place in another community, and has no running
  subscription: the user row goes, with their free or comped entitlements. Otherwise 409, saying why.
- **A plan never moves between accounts**: payments, invoices and the Stripe subscription belong
  to the customer who paid; `transfer` answers 409 with that reason (end it, comp the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Text,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import Member, User
from community.billing import memberships
from community.billing.models import Payment, Subscription
from community.db import utcnow
from community.errors import Conflict, Invalid, NotFound, check_storable
from community.members import directory
from community.members.models import MemberNote, MemberSegment
from community.offers import entitlements
from community.offers.models import Entitlement, EntitlementStatus, Offer
from community.settings import Settings

NOTE_MAX = 5000
TAG_MAX = 60
MEMBER_TAGS_MAX = 50
SEGMENT_NAME_MAX = 100
SELECTION_MAX = 1000
_T = literal_column("t")  # one tag of a member's array, unnested


async def require_member(session: AsyncSession, community_id: int, user_id: int, *, lock: bool = False) -> Member:
    query = select(Member).where(Member.community_id == community_id, Member.user_id == user_id)
    member = await session.scalar(query.with_for_update() if lock else query)
    if member is None:
        raise NotFound("member not found")
    return member


# ---------------------------------------------------------------- notes


def _note_body(body: str) -> str:
    text = check_storable(body, "body").strip()
    if not 1 <= len(text) <= NOTE_MAX:
        raise Invalid(f"a note has 1 to {NOTE_MAX} characters", field="body")
    return text


async def notes(session: AsyncSession, community_id: int, user_id: int) -> list[MemberNote]:
    await require_member(session, community_id, user_id)
    return list(
        (
            await session.scalars(
                select(MemberNote)
                .where(MemberNote.community_id == community_id, MemberNote.user_id == user_id)
                .order_by(MemberNote.id.desc())
            )
        ).all()
    )


async def add_note(session: AsyncSession, community_id: int, user_id: int, *, author_id: int, body: str) -> MemberNote:
    await require_member(session, community_id, user_id)
    note = MemberNote(community_id=community_id, user_id=user_id, author_id=author_id, body=_note_body(body))
    session.add(note)
    await session.flush()
    await session.refresh(note)
    return note


async def _note(session: AsyncSession, community_id: int, user_id: int, note_id: int) -> MemberNote:
    note = await session.scalar(
        select(MemberNote)
        .where(MemberNote.community_id == community_id, MemberNote.user_id == user_id, MemberNote.id == note_id)
        .with_for_update()
    )
    if note is None:
        raise NotFound("note not found")
    return note


async def edit_note(
    session: AsyncSession, community_id: int, user_id: int, note_id: int, *, editor_id: int, body: str
) -> MemberNote:
    note = await _note(session, community_id, user_id, note_id)
    note.body = _note_body(body)
    note.edited_by_id = editor_id
    note.edited_at = utcnow()
    await session.flush()
    return note


async def delete_note(session: AsyncSession, community_id: int, user_id: int, note_id: int) -> None:
    await session.delete(await _note(session, community_id, user_id, note_id))
    await session.flush()


async def author_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {i: name or email for i, name, email in await session.execute(select(User.id, User.name, User.email).where(User.id.in_(ids)))}


# ---------------------------------------------------------------- tags


@dataclass(frozen=True)
class Tag:
    tag: str
    auto: bool  # an auto-tag of an offer they hold or held (a purchase added it)


def clean_tag(tag: str, field: str = "tag") -> str:
    value = check_storable(tag, field).strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Invalid("must be one line, without control characters", field=field)
    if not 1 <= len(value) <= TAG_MAX:
        raise Invalid(f"a tag has 1 to {TAG_MAX} characters", field=field)
    return value


async def auto_tags(session: AsyncSession, community_id: int, user_id: int) -> set[str]:
    """The auto-tags of the offers this member holds or held, case-folded."""
    rows = await session.scalars(
        select(func.unnest(Offer.auto_tags)).where(
            Offer.community_id == community_id,
            Offer.id.in_(select(Entitlement.offer_id).where(Entitlement.community_id == community_id, Entitlement.user_id == user_id)),
        )
    )
    return {t.casefold() for t in rows}


async def tags(session: AsyncSession, community_id: int, user_id: int) -> list[Tag]:
    member = await require_member(session, community_id, user_id)
    auto = await auto_tags(session, community_id, user_id)
    return [Tag(t, t.casefold() in auto) for t in member.tags or []]


async def add_tag(session: AsyncSession, community_id: int, user_id: int, tag: str) -> list[Tag]:
    value = clean_tag(tag)
    member = await require_member(session, community_id, user_id, lock=True)
    current = list(member.tags or [])
    if value.casefold() not in {t.casefold() for t in current}:  # the first spelling stays
        if len(current) >= MEMBER_TAGS_MAX:
            raise Invalid(f"a member has at most {MEMBER_TAGS_MAX} tags", field="tag")
        member.tags = sorted([*current, value], key=str.casefold)
        await session.flush()
    return await tags(session, community_id, user_id)


async def remove_tag(session: AsyncSession, community_id: int, user_id: int, tag: str) -> list[Tag]:
    """An auto-tag can be removed too; buying its offer again adds it back."""
    value = clean_tag(tag)
    member = await require_member(session, community_id, user_id, lock=True)
    kept = [t for t in member.tags or [] if t.casefold() != value.casefold()]
    if len(kept) == len(member.tags or []):
        raise NotFound("this member has no such tag", field="tag")
    member.tags = kept
    await session.flush()
    return await tags(session, community_id, user_id)


async def bulk_tag(
    session: AsyncSession,
    community_id: int,
    *,
    tag: str,
    add: bool,
    filters: directory.Filters | None = None,
    user_ids: Sequence[int] | None = None,
) -> int:
    """Add or remove a tag for everyone a filter (a segment) matches, or for a selection of
    user ids (each must be a member here: otherwise 404 and nothing changes). One UPDATE.
    Returns how many members changed."""
    value = clean_tag(tag)
    if (filters is None) == (user_ids is None):
        raise Invalid("give either a segment (or filters) or user_ids", field="user_ids")
    if user_ids is not None:
        ids = sorted(set(user_ids))
        if not 1 <= len(ids) <= SELECTION_MAX:
            raise Invalid(f"select 1 to {SELECTION_MAX} members", field="user_ids")
        found = await session.scalar(select(func.count()).select_from(Member).where(*directory.selection(community_id, ids)))
        if found != len(ids):
            raise NotFound("some of these users are no members of this community", field="user_ids")
        where = directory.selection(community_id, ids)
    else:
        assert filters is not None
        where = await directory.conditions(session, community_id, filters)
    folded = func.lower(literal(value, Text))
    has_it = exists(select(1).select_from(func.unnest(Member.tags).alias("t")).where(func.lower(_T) == folded))
    if add:
        statement = (
            update(Member)
            .where(*where, ~has_it, func.cardinality(Member.tags) < MEMBER_TAGS_MAX)
            .values(tags=func.array_append(Member.tags, cast(literal(value), Text)))
        )
    else:
        kept = select(func.array_agg(_T)).select_from(func.unnest(Member.tags).alias("t")).where(
            func.lower(_T) != folded
        )
        statement = (
            update(Member)
            .where(*where, has_it)
            .values(tags=func.coalesce(kept.scalar_subquery(), cast(literal([]), ARRAY(Text))))
        )
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- segments


@dataclass(frozen=True)
class SegmentCount:
    key: str  # a built-in key, or a saved segment's id as text: what `segment=` takes
    name: str
    builtin: bool
    count: int
    filters: dict[str, object] | None = None
    id: int | None = None


async def segments(session: AsyncSession, community_id: int) -> list[SegmentCount]:
    """Every segment with how many members it holds now: the built-ins from the kept counts
    (affiliates counted), then each saved one counted."""
    counts = await directory.kept_counts(session, community_id)
    counts["affiliates"] = await directory.count(session, community_id, directory.Filters(segment="affiliates"))
    out = [SegmentCount(k, name, True, counts.get(k, 0)) for k, name in directory.BUILTIN_SEGMENTS.items()]
    for saved in await saved_segments(session, community_id):
        n = await directory.count(session, community_id, directory.Filters(segment=str(saved.id)))
        out.append(SegmentCount(str(saved.id), saved.name, False, n, dict(saved.filters), saved.id))
    return out


async def segment_names(session: AsyncSession, community_id: int) -> dict[str, str]:
    """Every segment's key and name, without counting anyone (`segments` counts)."""
    names = dict(directory.BUILTIN_SEGMENTS)
    names.update((str(saved.id), saved.name) for saved in await saved_segments(session, community_id))
    return names


async def saved_segments(session: AsyncSession, community_id: int) -> list[MemberSegment]:
    return list(
        (
            await session.scalars(
                select(MemberSegment).where(MemberSegment.community_id == community_id).order_by(func.lower(MemberSegment.name), MemberSegment.id)
            )
        ).all()
    )


async def save_segment(
    session: AsyncSession, community_id: int, *, name: str, filters: directory.Filters, author_id: int
) -> MemberSegment:
    clean = check_storable(name, "name").strip()
    if not 1 <= len(clean) <= SEGMENT_NAME_MAX:
        raise Invalid(f"a name has 1 to {SEGMENT_NAME_MAX} characters", field="name")
    if filters.segment is not None and not filters.segment.isdigit():
        pass  # a built-in segment is a plain condition: it may be part of a saved one
    elif filters.segment is not None:
        raise Invalid("a saved segment cannot contain another saved segment", field="segment")
    if clean.casefold() in {k.casefold() for k in directory.BUILTIN_SEGMENTS} | {
        v.casefold() for v in directory.BUILTIN_SEGMENTS.values()
    }:
        raise Conflict("a built-in segment has this name", field="name")
    if filters.offer is not None and await session.scalar(
        select(Offer.id).where(Offer.community_id == community_id, Offer.id == filters.offer)
    ) is None:
        raise NotFound("offer not found", field="offer")
    segment = MemberSegment(community_id=community_id, name=clean, filters=filters.as_stored(), created_by_id=author_id)
    session.add(segment)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("a segment with this name exists", field="name") from None
    await session.refresh(segment)
    return segment


async def delete_segment(session: AsyncSession, community_id: int, segment_id: int) -> None:
    result = await session.execute(
        delete(MemberSegment).where(MemberSegment.community_id == community_id, MemberSegment.id == segment_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("segment not found")


# ---------------------------------------------------------------- account rules


async def remove_member(
    session: AsyncSession, settings: Settings, community_id: int, user_id: int, *, actor_id: int
) -> list[int]:
    """Every membership cancelled now (Stripe included), then their place taken: see the module
    docstring. Returns the ids of the entitlements it ended."""
    member = await require_member(session, community_id, user_id, lock=True)
    if member.role is not None:
        raise Conflict(f"this member is staff ({member.role.value}): take the role away first", field="user_id")
    ended: list[int] = []
    for entitlement in await entitlements.of_member(session, community_id, user_id):
        subscription = await session.scalar(select(Subscription).where(Subscription.entitlement_id == entitlement.id))
        if entitlements.is_live(entitlement) or memberships.subscription_is_live(subscription):
            await memberships.end_now(
                session, settings, community_id=community_id, entitlement_id=entitlement.id,
                status=EntitlementStatus.cancelled, actor_id=actor_id, reason="removed from the community",
            )
            ended.append(entitlement.id)
    await session.delete(member)
    await session.flush()
    return ended


async def delete_account(session: AsyncSession, community_id: int, user_id: int) -> None:
    """Only an account that never paid, is nobody's staff, belongs to no other community and
    has no running subscription; otherwise 409 saying which."""
    member = await require_member(session, community_id, user_id, lock=True)
    if member.role is not None:
        raise Conflict(f"this account is staff here ({member.role.value}): it cannot be deleted", field="user_id")
    if await session.scalar(select(exists().where(Payment.user_id == user_id))):
        raise Conflict(
            "this account made purchases: its payments are part of the books and stay; remove the member instead",
            field="user_id",
        )
    if await session.scalar(select(exists().where(Member.user_id == user_id, Member.community_id != community_id))):
        raise Conflict(
            "this account also belongs to another community: remove the member from this one instead", field="user_id"
        )
    live = select(Subscription.id).where(Subscription.user_id == user_id, Subscription.status.not_in(memberships.ENDED_AT_STRIPE))
    if await session.scalar(select(exists(live))):
        raise Conflict("this account has a running subscription: cancel it first", field="user_id")
    try:
        async with session.begin_nested():
            await session.execute(delete(User).where(User.id == user_id))
    except IntegrityError:
        raise Conflict("this account has records that must stay (checkouts, orders): remove the member instead", field="user_id") from None


async def refuse_transfer(session: AsyncSession, community_id: int, entitlement_id: int) -> None:
    """There is no moving a plan to another account: always a Conflict, after a 404 for an id
    that names no entitlement here."""
    await entitlements.get_entitlement(session, community_id, entitlement_id)
    raise Conflict(
        "a membership cannot move to another account: its payments, invoices and Stripe subscription belong "
        "to the customer who paid. End it (or let it run out) and give the other account its own (a comp).",
        field="entitlement_id",
    )

