"""The members directory: everyone who joined a community, sorted, searched, filtered and paged.

What a row shows is the member's summary kept on their `members` row by database triggers
(migration 0011_members_directory), so a page reads one table's indexes whatever the number of
payments behind it:

- **status**, the best of the member's entitlements, in this order:
  `active` (a live entitlement, ends_at null or ahead, that is active and not in a trial),
  `trialing` (live, its subscription in a trial), `past_due` (live, a renewal failed: access
  until the grace end), `cancelled` (live but ending: cancelled at the period end, an end date
  ahead; access until then), `ended` (entitlements, none live), `none` (never held one: staff,
  someone who joined without an offer). A status that changes by time alone (an end date
  passing) is recounted by the next reader (`members_recount_due`) and by the expiry sweep.
- **total spent**: per currency, payments minus refunds and chargebacks, as
  billing.total_spent computes it; the `total_spent` sort and the `spent_above` filter use the
  total in the community's currency (`spent_above` with another `currency` reads that one).
  Amounts are minor units, like the rest of the API.
- **last payment**: the newest payment of a positive amount (never paid: sorts as the oldest).
- **offers**: every offer they hold or held (status says whether access runs).

Search (`q`): three characters or more match anywhere in the name or the email, fewer match
the start of either; case-insensitive, no wildcards.

Pages are keyset pages on (sort value, id): a member who joins between two pages lands before
or after the cursor, never shifting the rows still to come, so nobody repeats or is skipped.
The cursor is an opaque token naming its sort; a token of another sort is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Select,
    Text,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import Member, User
from community.affiliates.models import Affiliate
from community.errors import Invalid, check_storable
from community.hubs.models import Community
from community.inputs import Instant
from community.members.models import MemberCount, MemberSegment
from community.money import validate_currency
from community.offers.models import Offer

STATUSES = ("active", "trialing", "past_due", "cancelled", "ended", "none")
# The built-in smart segments, in the order the console lists them.
BUILTIN_SEGMENTS = {
    "customers": "Customers (ever paid)",
    "active": "Active",
    "trialing": "Trialing",
    "past_due": "Past due",
    "cancelled": "Cancelled (access to period end)",
    "ended": "Ended",
    "affiliates": "Affiliates",
}
NEVER = text("'-infinity'::timestamptz")
SORTS: dict[str, ColumnElement[Any]] = {
    "name": Member.name_key,
    "email": Member.email_key,
    "joined": Member.joined_at,
    "last_payment": func.coalesce(Member.last_payment_at, NEVER),
    "total_spent": Member.spent,
}
ORDERS = ("asc", "desc")
FILTER_NAMES = ("q", "offer", "status", "tag", "segment", "joined_from", "joined_to", "spent_above", "currency")
Q_MAX = 100
TRIGRAM = 3  # a contains-search needs this many characters
MAX_MINOR = 10**15  # above any amount a payment can hold


@dataclass(frozen=True)
class Filters:
    """The directory's filters, as checked values. Saved segments store them (`as_stored`)."""

    q: str | None = None
    offer: int | None = None
    status: str | None = None
    tag: str | None = None
    segment: str | None = None  # a built-in key or a saved segment's id
    joined_from: dt.datetime | None = None
    joined_to: dt.datetime | None = None
    spent_above: int | None = None  # minor units, in `currency` (default: the community's)
    currency: str | None = None

    def as_stored(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in asdict(self).items() if v is not None
        }


@dataclass(frozen=True)
class Sort:
    key: str = "joined"
    order: str = "asc"


def _int(value: str, field: str, *, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Invalid("must be a whole number", field=field) from None
    if not low <= number <= high:
        raise Invalid(f"must be from {low} to {high}", field=field)
    return number


def _instant(value: str, field: str) -> dt.datetime:
    try:
        return Instant.parse(value).plain()
    except (TypeError, ValueError) as exc:
        raise Invalid(str(exc), field=field) from None


def parse_filters(values: Mapping[str, Any]) -> Filters:
    """Filters from text (query parameters, a form, a stored segment); each refusal names its
    field. Unknown names are refused too (the API checks its query first: see web.known_query)."""
    unknown = sorted(set(values) - set(FILTER_NAMES))
    if unknown:
        raise Invalid(f"unknown filter {unknown[0]!r}", field=unknown[0])
    got = {k: (str(v).strip() if v is not None else "") for k, v in values.items()}
    got = {k: v for k, v in got.items() if v != ""}
    for name, value in got.items():
        check_storable(value, name)
    f = Filters()
    if "q" in got:
        if len(got["q"]) > Q_MAX:
            raise Invalid(f"at most {Q_MAX} characters", field="q")
        f = replace(f, q=got["q"])
    if "offer" in got:
        f = replace(f, offer=_int(got["offer"], "offer", low=1, high=2**63 - 1))
    if "status" in got:
        if got["status"] not in STATUSES:
            raise Invalid(f"unknown status: one of {', '.join(STATUSES)}", field="status")
        f = replace(f, status=got["status"])
    if "tag" in got:
        if len(got["tag"]) > 60:
            raise Invalid("a tag has at most 60 characters", field="tag")
        f = replace(f, tag=got["tag"])
    if "segment" in got:
        segment = got["segment"]
        saved_id = segment.isascii() and segment.isdigit() and 1 <= int(segment) < 2**63
        if segment not in BUILTIN_SEGMENTS and not saved_id:
            raise Invalid(f"unknown segment: one of {', '.join(BUILTIN_SEGMENTS)} or a saved segment's id", field="segment")
        f = replace(f, segment=str(int(segment)) if saved_id else segment)
    if "joined_from" in got:
        f = replace(f, joined_from=_instant(got["joined_from"], "joined_from"))
    if "joined_to" in got:
        f = replace(f, joined_to=_instant(got["joined_to"], "joined_to"))
    if f.joined_from and f.joined_to and f.joined_to <= f.joined_from:
        raise Invalid("must be after joined_from", field="joined_to")
    if "spent_above" in got:
        f = replace(f, spent_above=_int(got["spent_above"], "spent_above", low=0, high=MAX_MINOR))
    if "currency" in got:
        f = replace(f, currency=validate_currency(got["currency"]))
    if f.currency and f.spent_above is None:
        raise Invalid("goes with spent_above", field="currency")
    return f


def parse_sort(sort: str | None, order: str | None) -> Sort:
    key = (sort or "joined").strip()
    if key not in SORTS:
        raise Invalid(f"unknown sort {key!r}: one of {', '.join(SORTS)}", field="sort")
    direction = (order or "asc").strip()
    if direction not in ORDERS:
        raise Invalid("unknown order: asc or desc", field="order")
    return Sort(key, direction)


# ---------------------------------------------------------------- the cursor


def encode_cursor(sort: Sort, value: Any, member_id: int) -> str:
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps([sort.key, sort.order, value, member_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, sort: Sort) -> tuple[Any, int]:
    """(sort value, member id) from a token this sort made; anything else is a 422 on `after`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key, order, value, member_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise Invalid("not a cursor this list gave", field="after") from None
    if (key, order) != (sort.key, sort.order):
        raise Invalid("this cursor belongs to another sort: start again from the first page", field="after")
    if not isinstance(member_id, int) or isinstance(member_id, bool) or not 1 <= member_id < 2**63:
        raise Invalid("not a cursor this list gave", field="after")
    ok = {
        "name": lambda v: isinstance(v, str),
        "email": lambda v: isinstance(v, str),
        "total_spent": lambda v: isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63,
        "joined": lambda v: isinstance(v, str),
        "last_payment": lambda v: v is None or isinstance(v, str),
    }[key](value)
    if not ok:
        raise Invalid("not a cursor this list gave", field="after")
    if isinstance(value, str) and "\x00" in value:
        raise Invalid("not a cursor this list gave", field="after")
    if key in ("joined", "last_payment") and value is not None:
        try:
            value = Instant.parse(value).plain()
        except (TypeError, ValueError):
            raise Invalid("not a cursor this list gave", field="after") from None
    return value, member_id


def _cursor_value(sort: Sort, value: Any) -> ColumnElement[Any]:
    if sort.key == "last_payment":
        return func.coalesce(cast(literal(value, DateTime(timezone=True)), DateTime(timezone=True)), NEVER)
    return literal(value, SORTS[sort.key].type)


def _sort_value(sort: Sort, row: Any) -> Any:
    return {
        "name": row.name_key, "email": row.email_key, "joined": row.joined_at,
        "last_payment": row.last_payment_at, "total_spent": row.spent,
    }[sort.key]


# ---------------------------------------------------------------- conditions


def _escaped(q: str) -> str:
    return q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def conditions(session: AsyncSession, community_id: int, f: Filters, *, nested: bool = False) -> list[ColumnElement[bool]]:
    """The WHERE of the filtered directory (community scope included)."""
    where: list[ColumnElement[bool]] = [Member.community_id == community_id]
    if f.q and len(f.q) < TRIGRAM:
        # One or two characters: the start of the name or of the email (btree prefix indexes).
        start = _escaped(f.q) + "%"
        where.append(or_(Member.name_key.like(start, escape="\\"), Member.email_key.like(start, escape="\\")))
    elif f.q:
        # Three or more: anywhere in the name or the email (so also their start); a trigram index serves it.
        where.append(Member.search_key.like("%" + _escaped(f.q) + "%", escape="\\"))
    if f.offer is not None:
        where.append(Member.offer_ids.contains(cast([f.offer], ARRAY(BigInteger))))
    if f.status:
        where.append(Member.status == f.status)
    if f.tag:
        where.append(Member.tags.contains([f.tag]))
    if f.joined_from:
        where.append(Member.joined_at >= f.joined_from)
    if f.joined_to:
        where.append(Member.joined_at < f.joined_to)
    if f.spent_above is not None:
        currency = await session.scalar(select(Community.default_currency).where(Community.id == community_id))
        if f.currency is None or f.currency == (currency or "").upper():
            where.append(Member.spent > f.spent_above)
        else:
            where.append(cast(Member.totals[f.currency].astext, BigInteger) > f.spent_above)
    if f.segment:
        where.extend(await segment_conditions(session, community_id, f.segment, nested=nested))
    return where


async def segment_conditions(
    session: AsyncSession, community_id: int, segment: str, *, nested: bool = False
) -> list[ColumnElement[bool]]:
    if segment == "customers":
        return [Member.last_payment_at.is_not(None)]
    if segment == "affiliates":
        return [Member.user_id.in_(select(Affiliate.user_id).where(Affiliate.community_id == community_id))]
    if segment in BUILTIN_SEGMENTS:
        return [Member.status == segment]
    saved = await session.scalar(
        select(MemberSegment).where(MemberSegment.community_id == community_id, MemberSegment.id == int(segment))
    )
    if saved is None or nested:
        # A saved segment never names another (it is stored without one), so nesting ends here.
        raise Invalid("no such segment in this community", field="segment")
    where = await conditions(session, community_id, parse_filters(saved.filters), nested=True)
    return where[1:]


async def recount_due(session: AsyncSession, community_id: int) -> None:
    """Bring statuses whose end date has passed up to now (usually none: the expiry sweep
    recounts them as it goes). Rows another reader is recounting are skipped, not waited for."""
    await session.execute(select(func.members_recount_due(community_id)))


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class OfferRef:
    id: int
    title: str


@dataclass(frozen=True)
class Row:
    member_id: int
    user_id: int
    email: str
    name: str
    role: str | None
    status: str
    offers: list[OfferRef]
    total_spent: dict[str, int]
    joined_at: dt.datetime
    last_payment_at: dt.datetime | None
    tags: list[str]


@dataclass(frozen=True)
class DirectoryPage:
    rows: list[Row]
    next: str | None


COLUMNS = (
    Member.id, Member.user_id, User.email, User.name, Member.role, Member.status, Member.offer_ids,
    Member.totals, Member.joined_at, Member.last_payment_at, Member.tags, Member.name_key,
    Member.email_key, Member.spent,
)


# Which way a filtered page goes. Walking the sort's index and filtering as it goes reads about
# limit * members / matches index entries (the index carries what the filters read: migration
# 0012_members_speed, an index-only scan); filtering first (a bitmap of the matches, then a sort
# of them all) visits the table once per match, about WALK_PER_MATCH times an index entry's
# cost. So a filter is applied first only when it matches few members: matches ** 2 *
# WALK_PER_MATCH <= limit * members (under about 1,000 of 200,000 for a page of 50). Left to
# itself the planner walks the index for a rare status or tag too, and when the matches sit at
# the far end of the sort it reads most of the index (bench/members.py).
WALK_PER_MATCH = 10
# The same order through an expression no index provides: the planner then filters first.
_UNINDEXED: dict[str, Any] = {
    "name": lambda k: k.op("||")(literal("", Text)),
    "email": lambda k: k.op("||")(literal("", Text)),
    "joined": lambda k: k + text("interval '0'"),
    "last_payment": lambda k: k + text("interval '0'"),
    "total_spent": lambda k: k + literal(0, BigInteger),
}


async def statement(
    session: AsyncSession,
    community_id: int,
    f: Filters,
    sort: Sort,
    *,
    after: tuple[Any, int] | None = None,
    plan: bool = False,
    columns: Sequence[Any] = COLUMNS,
    joins: Sequence[tuple[Any, Any]] = (),
    limit: int | None = None,
) -> Select[Any]:
    """The filtered, sorted directory as one statement (pages add a limit; the export streams
    it). `plan`: for a page, choose between filtering first and walking the sort's index."""
    where = await conditions(session, community_id, f)
    key = SORTS[sort.key]
    order_key = key
    # The planner's guess for a search (trigrams) is poor both ways, and it already picks well
    # between the trigram index and the sort's index: a search alone is left to it; other
    # filters are judged without it.
    judged = await conditions(session, community_id, replace(f, q=None)) if f.q else where
    if plan and limit and len(judged) > 1:
        members, matches = await estimated_matches(session, community_id, judged)
        if matches * matches * WALK_PER_MATCH <= limit * members:
            order_key = _UNINDEXED[sort.key](key)
    position_ok: list[ColumnElement[bool]] = []
    if after is not None:
        position = tuple_(key, Member.id)
        mark = tuple_(_cursor_value(sort, after[0]), literal(after[1], BigInteger))
        position_ok.append(position > mark if sort.order == "asc" else position < mark)
    asc = sort.order == "asc"
    if limit is not None:
        # A page: the members table alone finds the page's ids (every sort key lives there),
        # then only those rows are joined to their users.
        page = (
            select(Member.id.label("member_id"), key.label("sort_key"))
            .where(*where, *position_ok)
            .order_by(*((order_key.asc(), Member.id.asc()) if asc else (order_key.desc(), Member.id.desc())))
            .limit(limit)
            .subquery("page")
        )
        query = (
            select(*columns)
            .select_from(page)
            .join(Member, Member.id == page.c.member_id)
            .join(User, User.id == Member.user_id)
        )
        if asc:
            return query.order_by(page.c.sort_key.asc(), page.c.member_id.asc())
        return query.order_by(page.c.sort_key.desc(), page.c.member_id.desc())
    query = select(*columns).join(User, User.id == Member.user_id)
    for target, on in joins:
        query = query.join(target, on)
    query = query.where(*where, *position_ok)
    if asc:
        return query.order_by(order_key.asc(), Member.id.asc())
    return query.order_by(order_key.desc(), Member.id.desc())


async def _plan(session: AsyncSession, query: Any) -> dict[str, Any]:
    """The planner's plan of a query (EXPLAIN, nothing executed)."""
    connection = await session.connection()
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or [])
    explained = (await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), params)).scalar()
    if isinstance(explained, str):
        explained = json.loads(explained)
    return explained[0]["Plan"]


async def estimated_rows(session: AsyncSession, query: Select[Any]) -> float:
    """The planner's estimate of the rows a query returns (EXPLAIN, nothing executed)."""
    return float((await _plan(session, query))["Plan Rows"])


async def estimated_matches(session: AsyncSession, community_id: int, where: Sequence[ColumnElement[bool]]) -> tuple[float, float]:
    """The planner's estimates of the community's members and of those `where` matches, in one
    EXPLAIN (each branch of a UNION ALL keeps its own estimate)."""
    everyone = select(literal(1)).select_from(Member).where(Member.community_id == community_id)
    matching = select(literal(1)).select_from(Member).where(*where)
    node = await _plan(session, everyone.union_all(matching))
    while len(node.get("Plans", [])) == 1:
        node = node["Plans"][0]
    branches = node.get("Plans", [])
    if len(branches) != 2:  # an unexpected plan shape: judge on the matches alone
        return float(node["Plan Rows"]), await estimated_rows(session, matching)
    return float(branches[0]["Plan Rows"]), float(branches[1]["Plan Rows"])


async def offer_titles(session: AsyncSession, community_id: int, ids: set[int] | None = None) -> dict[int, str]:
    query = select(Offer.id, Offer.title).where(Offer.community_id == community_id)
    if ids is not None:
        if not ids:
            return {}
        query = query.where(Offer.id.in_(ids))
    return {i: t for i, t in await session.execute(query)}


def _row(r: Any, titles: Mapping[int, str]) -> Row:
    return Row(
        member_id=r.id, user_id=r.user_id, email=r.email, name=r.name,
        role=r.role.value if r.role else None, status=r.status,
        offers=[OfferRef(i, titles.get(i, "")) for i in r.offer_ids or []],
        total_spent={k: int(v) for k, v in sorted((r.totals or {}).items())},
        joined_at=r.joined_at, last_payment_at=r.last_payment_at, tags=list(r.tags or []),
    )


async def directory(
    session: AsyncSession, community_id: int, f: Filters, sort: Sort, *, after: str | None, limit: int
) -> DirectoryPage:
    """One page of the directory: `after` is the previous page's `next`."""
    position = decode_cursor(after, sort) if after else None
    # A page reads 50 rows: starting parallel workers costs more than it saves.
    await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    await recount_due(session, community_id)
    query = await statement(session, community_id, f, sort, after=position, plan=True, limit=limit)
    rows = (await session.execute(query)).all()
    titles = await offer_titles(session, community_id, {i for r in rows for i in (r.offer_ids or [])})
    next_token = None
    if len(rows) == limit and rows:
        last = rows[-1]
        next_token = encode_cursor(sort, _sort_value(sort, last), last.id)
    return DirectoryPage([_row(r, titles) for r in rows], next_token)


async def count(session: AsyncSession, community_id: int, f: Filters) -> int:
    """How many members the filters select: read from the kept counts when the filters are none,
    one status, or one built-in segment but affiliates (a few rows); else counted."""
    counted = asdict(f)
    key = "all"
    if f.status and not f.segment:
        key = counted.pop("status")
    elif f.segment and f.segment in BUILTIN_SEGMENTS and f.segment != "affiliates" and not f.status:
        key = counted.pop("segment")
    if not any(counted.values()):
        return (await kept_counts(session, community_id)).get(key, 0)
    where = await conditions(session, community_id, f)
    return int(await session.scalar(select(func.count()).select_from(Member).where(*where)) or 0)


async def kept_counts(session: AsyncSession, community_id: int) -> dict[str, int]:
    """Members per key ('all', each status, 'customers': ever paid), as the trigger on `members`
    keeps them (members/models.py MemberCount); statuses whose end date passed are brought up
    to now first, as every directory read does."""
    await recount_due(session, community_id)
    rows = await session.execute(
        select(MemberCount.key, func.sum(MemberCount.n)).where(MemberCount.community_id == community_id).group_by(MemberCount.key)
    )
    return {key: int(n) for key, n in rows}


async def fold_counts(session: AsyncSession) -> int:
    """The cron's step: communities with many count rows get one row per key (their sums).
    Returns how many communities were folded."""
    return int(await session.scalar(select(func.member_counts_fold())) or 0)


async def member_row(session: AsyncSession, community_id: int, user_id: int) -> Row | None:
    await session.execute(select(func.members_recount(community_id, user_id)).where(
        exists().where(Member.community_id == community_id, Member.user_id == user_id, Member.status_until <= func.now())
    ))
    r = (
        await session.execute(
            select(*COLUMNS).join(User, User.id == Member.user_id)
            .where(Member.community_id == community_id, Member.user_id == user_id)
        )
    ).first()
    if r is None:
        return None
    return _row(r, await offer_titles(session, community_id, set(r.offer_ids or [])))


def selection(community_id: int, user_ids: Sequence[int]) -> list[ColumnElement[bool]]:
    return [Member.community_id == community_id, Member.user_id.in_(list(user_ids)) if user_ids else false()]


