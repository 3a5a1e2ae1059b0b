"""Discount codes, the owner's side: create, read, change, delete, and the redemption counts.

A code is valid from `starts_at` (inclusive) to `ends_at` (exclusive). Its use is counted from
the redemptions table, never from a counter kept beside it: a redemption counts while it is
`redeemed`, or `reserved` (the buyer is at Stripe, or may still pay there). A reservation is
released only once Stripe has said its session can no longer be paid (expired, or its delayed
payment failed), never by our clock: a payment made just before the session's expiry may be
announced days later, and must find its use still held. Every rule between a
code's fields is checked on the code as it would be after the change, so a PATCH can never
leave a code that a create would refuse.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.billing.models import (
    AppliesTo,
    DiscountCode,
    DiscountCodeOffer,
    DiscountDuration,
    DiscountKind,
    DiscountRedemption,
    RedemptionState,
)
from community.db import flush_or_conflict, get_in_community, utcnow
from community.errors import Conflict, Invalid
from community.hubs import service as hubs
from community.money import validate_currency
from community.offers.models import Offer

CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,40}")
CODE_RULE = "3 to 40 characters: letters A-Z, digits, underscores and dashes"
CODE_TAKEN = "a discount code with this name exists in this community (codes ignore case)"
MAX_AMOUNT = 99_999_999  # as offers: Stripe takes at most eight digits of minor units
MAX_OFFERS = 200
MAX_MONTHS = 36

FIELDS = (
    "code", "kind", "percent_bps", "amount_off", "currency", "applies_to", "offer_ids", "starts_at",
    "ends_at", "max_redemptions", "per_customer_limit", "duration", "duration_months", "active",
)  # fmt: skip


def normalize_code(code: str) -> str:
    """How codes are compared: case-insensitively, ignoring surrounding spaces."""
    return code.strip().lower()


def normalize_email(email: str) -> str:
    return email.strip().lower()


COUNTING = (RedemptionState.redeemed, RedemptionState.reserved)


def counting():
    """The redemptions that count against a code's limits: paid ones, and those whose checkout
    may still be paid (released ones, whose session Stripe closed, do not)."""
    return DiscountRedemption.state.in_(COUNTING)


# ---------------------------------------------------------------- rules


def _settle(current: Mapping[str, Any], given: Mapping[str, Any], *, default_currency: str) -> dict[str, Any]:
    """The code's fields after applying `given` to `current`, or the first rule broken."""
    unknown = set(given) - set(FIELDS)
    if unknown:
        raise TypeError(f"not discount code fields: {sorted(unknown)}")
    v = dict(current)

    if "code" in given:
        code = given["code"].strip()
        if not CODE_PATTERN.fullmatch(code):
            raise Invalid(f"a code has {CODE_RULE}", field="code")
        v["code"] = code

    # The value: a percentage or a fixed amount, never both.
    if "kind" in given:
        v["kind"] = DiscountKind(given["kind"])
    kind = v["kind"]
    for name in ("percent_bps", "amount_off", "currency"):
        if name in given:
            v[name] = given[name]
    if kind == DiscountKind.percent:
        for name in ("amount_off", "currency"):
            if given.get(name) is not None:
                raise Invalid("applies only to amount codes", field=name)
            v[name] = None
        if v["percent_bps"] is None:
            raise Invalid("a percent code needs percent_bps (100 = 1%, 10000 = 100%)", field="percent_bps")
        if not 1 <= v["percent_bps"] <= 10_000:
            raise Invalid("must be between 1 and 10000 (100 = 1%)", field="percent_bps")
    else:
        if given.get("percent_bps") is not None:
            raise Invalid("applies only to percent codes", field="percent_bps")
        v["percent_bps"] = None
        if v["amount_off"] is None:
            raise Invalid("an amount code needs amount_off (in minor units)", field="amount_off")
        if not 1 <= v["amount_off"] <= MAX_AMOUNT:
            raise Invalid(f"must be between 1 and {MAX_AMOUNT} minor units", field="amount_off")
        v["currency"] = validate_currency(v["currency"] or default_currency)

    # Which offers.
    if "applies_to" in given:
        v["applies_to"] = AppliesTo(given["applies_to"])
    if "offer_ids" in given:
        v["offer_ids"] = list(dict.fromkeys(given["offer_ids"] or []))
    if v["applies_to"] == AppliesTo.all:
        if "offer_ids" in given and v["offer_ids"]:
            raise Invalid("list offers only with applies_to \"offers\"", field="offer_ids")
        v["offer_ids"] = []
    else:
        if not v["offer_ids"]:
            raise Invalid("name at least one offer (or apply the code to all offers)", field="offer_ids")
        if len(v["offer_ids"]) > MAX_OFFERS:
            raise Invalid(f"at most {MAX_OFFERS} offers", field="offer_ids")

    # When.
    for name in ("starts_at", "ends_at"):
        if name in given:
            value = given[name]
            if value is not None and value.tzinfo is None:
                raise Invalid("give a time zone (e.g. 2026-01-31T00:00:00Z)", field=name)
            v[name] = value
    if v["starts_at"] is None:
        v["starts_at"] = utcnow()
    if v["ends_at"] is not None and v["ends_at"] <= v["starts_at"]:
        if "ends_at" not in given:  # a PATCH moved the start past the end it kept
            raise Invalid("must be before ends_at", field="starts_at")
        raise Invalid("must be after starts_at", field="ends_at")

    # How often.
    for name in ("max_redemptions", "per_customer_limit"):
        if name in given:
            value = given[name]
            if value is not None and not 1 <= value <= 2**31 - 1:
                raise Invalid("must be at least 1 (or null for no limit)", field=name)
            v[name] = value

    # How long, on a recurring offer.
    if "duration" in given:
        v["duration"] = DiscountDuration(given["duration"])
    if "duration_months" in given:
        v["duration_months"] = given["duration_months"]
    if v["duration"] == DiscountDuration.repeating:
        if v["duration_months"] is None:
            raise Invalid("a repeating discount needs duration_months (1 to 36)", field="duration_months")
        if not 1 <= v["duration_months"] <= MAX_MONTHS:
            raise Invalid(f"must be between 1 and {MAX_MONTHS}", field="duration_months")
    else:
        if given.get("duration_months") is not None:
            raise Invalid("applies only to repeating discounts", field="duration_months")
        v["duration_months"] = None

    if "active" in given:
        v["active"] = bool(given["active"])
    return v


async def _check_offers(session: AsyncSession, community_id: int, values: Mapping[str, Any]) -> None:
    """Listed offers are this community's, and a fixed amount is in their currency."""
    ids = values["offer_ids"]
    if not ids:
        return
    rows = (
        await session.execute(
            select(Offer.id, Offer.currency).where(Offer.community_id == community_id, Offer.id.in_(ids))
        )
    ).all()
    found = {row.id: row.currency for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise Invalid(f"no such offer in this community: {missing[0]}", field="offer_ids")
    if values["kind"] == DiscountKind.amount:
        for offer_id in ids:
            if found[offer_id] != values["currency"]:
                raise Invalid(
                    f"a fixed discount in {values['currency']} cannot apply to offer {offer_id}, "
                    f"priced in {found[offer_id]}",
                    field="currency",
                )


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class Counts:
    redeemed: int = 0
    reserved: int = 0  # reservations that still count (their checkout may still be paid)


    @property
    def used(self) -> int:
        """What counts against max_redemptions: paid uses and the checkouts still holding one."""
        return self.redeemed + self.reserved


class CodeState(enum.StrEnum):
    """Where a code stands now, from its fields and its counts (`code_state`)."""

    active = "active"  # buyers can use it now
    scheduled = "scheduled"  # its start is still ahead
    expired = "expired"  # its end has passed
    used_up = "used_up"  # its maximum uses are taken (paid, or held by a checkout)
    disabled = "disabled"  # deactivated by staff (active: false)


class _Window(Protocol):
    active: bool
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    max_redemptions: int | None


def code_state(code: _Window, counts: Counts, now: dt.datetime) -> CodeState:
    """The one answer the API, the console and the CSV give: disabled first (staff turned it
    off), then expired, used up, scheduled; else active. The checkout refuses a code in any
    state but active (service.quote)."""
    if not code.active:
        return CodeState.disabled
    if code.ends_at is not None and now >= code.ends_at:
        return CodeState.expired
    if code.max_redemptions is not None and counts.used >= code.max_redemptions:
        return CodeState.used_up
    if now < code.starts_at:
        return CodeState.scheduled
    return CodeState.active


async def get_code(session: AsyncSession, community_id: int, code_id: int, *, lock: bool = False) -> DiscountCode:
    return await get_in_community(session, DiscountCode, community_id, code_id, what="discount code", lock=lock)


async def find_code(session: AsyncSession, community_id: int, code: str, *, lock: bool = False) -> DiscountCode | None:
    """The community's code spelt `code` in any case (through the unique lower(code) index)."""
    query = select(DiscountCode).where(
        DiscountCode.community_id == community_id, func.lower(DiscountCode.code) == normalize_code(code)
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def offer_ids_of(session: AsyncSession, code_ids: Sequence[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {i: [] for i in code_ids}
    if code_ids:
        rows = await session.execute(
            select(DiscountCodeOffer.code_id, DiscountCodeOffer.offer_id)
            .where(DiscountCodeOffer.code_id.in_(code_ids))
            .order_by(DiscountCodeOffer.code_id, DiscountCodeOffer.offer_id)
        )
        for code_id, offer_id in rows:
            result[code_id].append(offer_id)
    return result


async def offer_titles(session: AsyncSession, community_id: int, offer_ids: Sequence[int]) -> dict[int, str]:
    """The titles of this community's offers among `offer_ids` (for showing which offers a code is for)."""
    if not offer_ids:
        return {}
    rows = await session.execute(
        select(Offer.id, Offer.title).where(Offer.community_id == community_id, Offer.id.in_(set(offer_ids)))
    )
    return {row.id: row.title for row in rows}


async def counts_of(session: AsyncSession, code_ids: Sequence[int]) -> dict[int, Counts]:
    """Redeemed and reserved redemptions per code, in one grouped query."""
    result = {i: Counts() for i in code_ids}
    if code_ids:
        rows = await session.execute(
            select(
                DiscountRedemption.code_id,
                func.count().filter(DiscountRedemption.state == RedemptionState.redeemed),
                func.count().filter(DiscountRedemption.state == RedemptionState.reserved),
            )
            .where(DiscountRedemption.code_id.in_(code_ids))
            .group_by(DiscountRedemption.code_id)
        )
        for code_id, redeemed, reserved in rows:
            result[code_id] = Counts(redeemed=redeemed, reserved=reserved)
    return result


async def list_codes(session: AsyncSession, community_id: int, *, after: int | None, limit: int) -> list[DiscountCode]:
    query = select(DiscountCode).where(DiscountCode.community_id == community_id).order_by(DiscountCode.id).limit(limit)
    if after is not None:
        query = query.where(DiscountCode.id > after)
    return list((await session.scalars(query)).all())


async def list_redemptions(
    session: AsyncSession, community_id: int, code_id: int, *, after: int | None, limit: int
) -> list[DiscountRedemption]:
    """A code's redemptions, newest first."""
    await get_code(session, community_id, code_id)
    query = (
        select(DiscountRedemption)
        .where(DiscountRedemption.community_id == community_id, DiscountRedemption.code_id == code_id)
        .order_by(DiscountRedemption.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(DiscountRedemption.id < after)
    return list((await session.scalars(query)).all())


# ---------------------------------------------------------------- writing


EMPTY: dict[str, Any] = {
    "code": "",
    "kind": DiscountKind.percent,
    "percent_bps": None,
    "amount_off": None,
    "currency": None,
    "applies_to": AppliesTo.all,
    "offer_ids": [],
    "starts_at": None,
    "ends_at": None,
    "max_redemptions": None,
    "per_customer_limit": None,
    "duration": DiscountDuration.once,
    "duration_months": None,
    "active": True,
}


async def _set_offers(session: AsyncSession, community_id: int, code_id: int, offer_ids: list[int]) -> None:
    await session.execute(delete(DiscountCodeOffer).where(DiscountCodeOffer.code_id == code_id))
    session.add_all(DiscountCodeOffer(code_id=code_id, offer_id=o, community_id=community_id) for o in offer_ids)


async def create_code(session: AsyncSession, community_id: int, fields: Mapping[str, Any]) -> DiscountCode:
    if "code" not in fields or "kind" not in fields:
        raise TypeError("a discount code needs its code and kind")
    community = await hubs.get_community(session, community_id)
    values = _settle(EMPTY, fields, default_currency=community.default_currency)
    await _check_offers(session, community_id, values)
    offer_ids = values.pop("offer_ids")
    code = DiscountCode(community_id=community_id, **values)
    session.add(code)
    await flush_or_conflict(session, field="code", message=CODE_TAKEN)
    await _set_offers(session, community_id, code.id, offer_ids)
    await session.flush()
    return code


async def update_code(
    session: AsyncSession, community_id: int, code_id: int, fields: Mapping[str, Any]
) -> DiscountCode:
    """Change the given fields (offer_ids is replaced as a whole). Terms already reserved or
    redeemed keep the amount they were given; the change applies from the next checkout."""
    code = await get_code(session, community_id, code_id, lock=True)
    community = await hubs.get_community(session, community_id)
    current = {name: getattr(code, name) for name in FIELDS if name != "offer_ids"}
    current["offer_ids"] = (await offer_ids_of(session, [code.id]))[code.id]
    values = _settle(current, fields, default_currency=community.default_currency)
    await _check_offers(session, community_id, values)
    offer_ids = values.pop("offer_ids")
    changed = {name: value for name, value in values.items() if value != current[name]}
    offers_changed = offer_ids != current["offer_ids"]
    if offers_changed:
        await _set_offers(session, community_id, code.id, offer_ids)
    if changed or offers_changed:
        for name, value in changed.items():
            setattr(code, name, value)
        code.updated_at = utcnow()
        await flush_or_conflict(session, field="code", message=CODE_TAKEN)
    return code


async def delete_code(session: AsyncSession, community_id: int, code_id: int) -> None:
    """Delete a code nobody used; once redeemed (or while a buyer holds it at Stripe) it can
    only be deactivated, so the ledger keeps saying which code a payment used."""
    code = await get_code(session, community_id, code_id, lock=True)  # reservations wait for this
    counts = (await counts_of(session, [code.id]))[code.id]
    if counts.redeemed:
        raise Conflict("this code has been redeemed: deactivate it instead (active: false)", field="code_id")
    if counts.reserved:
        raise Conflict("a buyer is checking out with this code: deactivate it instead (active: false)", field="code_id")
    await session.delete(code)  # its offer links and released reservations go with it
    await session.flush()

