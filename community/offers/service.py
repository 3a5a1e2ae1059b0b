"""Offers: create, read, change, publish / archive / unpublish, delete, and their images.

Every rule between an offer's fields is checked on the offer as it would be after the change
(its current values overlaid with the given ones), so a PATCH can never leave an offer that a
create would refuse. Writes lock the offer row first: two edits at once cannot each pass the
checks on the old row and together leave an inconsistent one, and a status change or a delete
waits for any purchase being written for the offer (the entitlement's foreign key holds a key
share lock on the offer row) and then sees it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.db import flush_or_conflict, get_in_community, utcnow
from community.errors import Conflict, Invalid, check_storable
from community.hubs import service as hubs
from community.mail.owner_templates import check_template
from community.money import check_chargeable, validate_currency
from community.offers.models import (
    Destination,
    Entitlement,
    Offer,
    OfferStatus,
    Pricing,
)
from community.offers.storage import Storage

SLUG_TAKEN = "an offer with this slug exists in this community"
HELD = "people hold this offer"

MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_SLOTS = ("thumbnail", "cover")

URL_MAX = 2048
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
TAGS_MAX = 20
TAG_MAX = 60

# What the API may set; everything else (status, images, ids, times) has its own path.
FIELDS = (
    "title", "slug", "description", "pricing", "amount", "currency", "old_amount",
    "interval_months", "trial_days", "trial_requires_card", "access_days", "landing_page",
    "checkout_code_head", "checkout_code_body", "confirmation_subject", "confirmation_body",
    "destination", "destination_url", "resell_enabled", "resell_commission_bps",
    "resell_commission_flat", "resell_description", "resell_earns", "resell_earn_months",
    "resell_window_days", "resell_hold_days", "resell_min_payout", "auto_tags",
)  # fmt: skip

DEFAULTS: dict[str, Any] = {
    "description": "",
    "amount": 0,
    "old_amount": None,
    "interval_months": None,
    "trial_days": 0,
    "trial_requires_card": True,
    "access_days": None,
    "landing_page": {},
    "checkout_code_head": "",
    "checkout_code_body": "",
    "confirmation_subject": "",
    "confirmation_body": "",
    "destination": Destination.platform,
    "destination_url": None,
    "resell_enabled": False,
    "resell_commission_bps": None,
    "resell_commission_flat": None,
    "resell_description": "",
    "resell_earns": "first",
    "resell_earn_months": None,
    "resell_window_days": 30,
    "resell_hold_days": 30,
    "resell_min_payout": 0,
    "auto_tags": [],
}

# Price fields and the pricings they belong to; on any other pricing they hold their default.
APPLIES = {
    Pricing.free: frozenset(),
    Pricing.one_time: frozenset({"old_amount", "access_days"}),
    Pricing.recurring: frozenset({"old_amount", "interval_months", "trial_days", "trial_requires_card"}),
}
PRICE_FIELDS = frozenset().union(*APPLIES.values())

# Billing relies on these staying put once someone bought the offer: a new price model is a
# new offer.
LOCKED_WHEN_HELD = ("pricing", "currency", "interval_months")


# ---------------------------------------------------------------- field rules


def _one_line(value: str, field: str) -> str:
    """Text that ends up in a header or a single line (email subject): no line breaks or
    other control characters."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise Invalid("must be one line, without line breaks or control characters", field=field)
    return value.strip()


def clean_destination_url(url: str, *, allow_local_http: bool) -> str:
    """Buyers are sent here after paying, so it is checked when saved, never trusted later."""
    field = "destination_url"
    if len(url) > URL_MAX:
        raise Invalid(f"at most {URL_MAX} characters", field=field)
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp") for ch in url):
        raise Invalid("must not contain spaces or control characters", field=field)
    # Browsers read a backslash as a slash in http(s) URLs: refused so what we check is what runs.
    if any(ch in url for ch in '\\<>"{}|^`'):
        raise Invalid("contains a character a URL may not hold unescaped", field=field)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not parts.netloc or not parts.hostname or scheme not in ("http", "https"):
        raise Invalid("must be an absolute https:// URL", field=field)
    if "@" in parts.netloc:
        raise Invalid("must not hold a user name or password", field=field)
    try:
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise Invalid("has an invalid port", field=field) from None
    if not re.fullmatch(r"[\w.-]+|[0-9a-f:.]+", parts.hostname) or parts.hostname.startswith((".", "-")):
        raise Invalid("has an invalid host name", field=field)
    if scheme == "http" and not (allow_local_http and parts.hostname in LOCAL_HOSTS):
        raise Invalid("must use https://", field=field)
    return url


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    seen: set[str] = set()
    for tag in tags:
        value = _one_line(check_storable(tag, "auto_tags"), "auto_tags")
        if not 1 <= len(value) <= TAG_MAX:
            raise Invalid(f"each tag has 1 to {TAG_MAX} characters", field="auto_tags")
        if value.casefold() not in seen:  # the first spelling wins
            seen.add(value.casefold())
            cleaned.append(value)
    if len(cleaned) > TAGS_MAX:
        raise Invalid(f"at most {TAGS_MAX} tags", field="auto_tags")
    return cleaned


def _clean_landing_page(page: Mapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in page.items():
        if name == "enabled":
            cleaned[name] = bool(value)
            continue
        check_storable(value, f"landing_page.{name}")
        cleaned[name] = value if name == "body" else _one_line(value, f"landing_page.{name}")
    return cleaned


def shows_landing_page(page: Mapping[str, Any] | None) -> bool:
    """Buyers see an offer's landing page (its `landing_page`) before checkout while it is on
    and has something to show; otherwise its link goes straight to checkout."""
    page = page or {}
    return bool(page.get("enabled", True)) and any(page.get(name) for name in ("headline", "body", "call_to_action"))


def _settle(current: Mapping[str, Any], given: Mapping[str, Any], *, allow_local_http: bool) -> dict[str, Any]:
    """The offer's fields after applying `given` to `current`, or the first rule broken."""
    unknown = set(given) - set(FIELDS)
    if unknown:
        raise TypeError(f"not offer fields: {sorted(unknown)}")
    v = dict(current)

    if "title" in given:
        v["title"] = hubs.clean_name(given["title"], "title")
    if "slug" in given or not v["slug"]:
        v["slug"] = hubs.clean_slug(given.get("slug"), v["title"])
    if "description" in given:
        v["description"] = hubs.clean_description(given["description"])

    # Pricing.
    if "pricing" in given:
        v["pricing"] = Pricing(given["pricing"])
    if "currency" in given:
        v["currency"] = validate_currency(given["currency"])
    pricing = v["pricing"]
    for name in sorted(PRICE_FIELDS - APPLIES[pricing]):
        if given.get(name) is not None:
            raise Invalid(f"does not apply to {pricing.value} offers", field=name)
        v[name] = DEFAULTS[name]
    for name in APPLIES[pricing] & given.keys():
        # null clears old_amount / access_days (lifetime); a trial setting goes back to its default
        v[name] = DEFAULTS[name] if given[name] is None else given[name]
    if "amount" in given:
        v["amount"] = given["amount"]
    if pricing == Pricing.free:
        if v["amount"] != 0 and "amount" in given:
            raise Invalid("a free offer's amount is 0", field="amount")
        v["amount"] = 0
    else:
        check_chargeable(v["amount"], v["currency"], "amount")
    if pricing == Pricing.recurring and v["interval_months"] is None:
        raise Invalid("recurring offers need a billing interval: 1, 3, 6 or 12 months", field="interval_months")
    if v["old_amount"] is not None and v["old_amount"] <= v["amount"]:
        raise Invalid("the compare-at price must be above the amount", field="old_amount")

    # What buyers see and get.
    if "landing_page" in given:
        v["landing_page"] = _clean_landing_page(given["landing_page"])
    for name in ("checkout_code_head", "checkout_code_body", "confirmation_body"):
        if name in given:
            v[name] = check_storable(given[name], name)
    if "confirmation_subject" in given:
        v["confirmation_subject"] = _one_line(check_storable(given["confirmation_subject"], "confirmation_subject"), "confirmation_subject")
    for name in ("confirmation_subject", "confirmation_body"):
        if name in given:
            check_template(v[name], name)
    if "destination" in given:
        v["destination"] = Destination(given["destination"])
    if v["destination"] == Destination.platform:
        if given.get("destination_url") is not None:
            raise Invalid("applies only when destination is custom_url", field="destination_url")
        v["destination_url"] = None
    else:
        if given.get("destination_url") is not None:
            v["destination_url"] = clean_destination_url(given["destination_url"], allow_local_http=allow_local_http)
        elif "destination_url" in given:
            v["destination_url"] = None
        if v["destination_url"] is None:
            raise Invalid("a custom_url destination needs the URL", field="destination_url")

    # Resell rights.
    for name in ("resell_enabled", "resell_commission_bps", "resell_commission_flat", "resell_earns",
                 "resell_earn_months", "resell_window_days", "resell_hold_days", "resell_min_payout"):
        if name in given:
            v[name] = given[name]
    if "resell_description" in given:
        v["resell_description"] = hubs.clean_description(given["resell_description"], "resell_description")
    bps, flat = v["resell_commission_bps"], v["resell_commission_flat"]
    if bps is not None and flat is not None:
        field = "resell_commission_flat" if "resell_commission_flat" in given else "resell_commission_bps"
        raise Invalid("give a commission in basis points or a flat amount, not both", field=field)
    if v["resell_enabled"]:
        if pricing == Pricing.free:
            raise Invalid("a free offer earns no commission to share", field="resell_enabled")
        if bps is None and flat is None:
            raise Invalid("resell rights need a commission: resell_commission_bps or resell_commission_flat", field="resell_commission_bps")
        if flat is not None and flat > v["amount"]:
            raise Invalid("the flat commission cannot exceed the offer's amount", field="resell_commission_flat")
    _check_earns(v, given, pricing)

    if "auto_tags" in given:
        v["auto_tags"] = _clean_tags(given["auto_tags"])
    return v


def _check_earns(v: dict[str, Any], given: Mapping[str, Any], pricing: Pricing) -> None:
    """Which payments earn: "months" (the first N months of a subscription) needs N and a
    recurring offer; N means nothing otherwise."""
    if v["resell_earns"] == "months":
        if pricing != Pricing.recurring:
            raise Invalid("only a subscription has months to count: use first or all", field="resell_earns")
        if v["resell_earn_months"] is None:
            raise Invalid("earns=months needs resell_earn_months", field="resell_earn_months")
    elif v["resell_earn_months"] is not None:
        if "resell_earn_months" in given:
            raise Invalid("applies only when resell_earns is months", field="resell_earn_months")
        v["resell_earn_months"] = None


def image_type(data: bytes, field: str) -> str:
    """The image's type, judged by its first bytes (never by a file name or a declared type)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise Invalid(f"an image may be at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB", field=field)
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return "image/webp"
    raise Invalid("must be a PNG, JPEG or WebP image", field=field)


# ---------------------------------------------------------------- reading


async def get_offer(session: AsyncSession, community_id: int, offer_id: int, *, lock: bool = False) -> Offer:
    # FOR UPDATE (not NO KEY UPDATE): it must conflict with the key share an entitlement
    # insert takes on the offer.
    return await get_in_community(session, Offer, community_id, offer_id, what="offer", lock=lock)


async def list_offers(
    session: AsyncSession, community_id: int, *, after: int | None, limit: int, status: OfferStatus | None = None
) -> list[Offer]:
    query = select(Offer).where(Offer.community_id == community_id).order_by(Offer.id).limit(limit)
    if after is not None:
        query = query.where(Offer.id > after)
    if status is not None:
        query = query.where(Offer.status == status)
    return list((await session.scalars(query)).all())


async def status_counts(session: AsyncSession, community_id: int) -> dict[OfferStatus, int]:
    """How many of the community's offers are in each status (every status named)."""
    rows = await session.execute(
        select(Offer.status, func.count()).where(Offer.community_id == community_id).group_by(Offer.status)
    )
    return {status: 0 for status in OfferStatus} | dict(rows.all())


async def has_holders(session: AsyncSession, community_id: int, offer_id: int) -> bool:
    """Anyone ever got this offer (whatever the entitlement's state now)."""
    return bool(
        await session.scalar(
            select(exists().where(Entitlement.community_id == community_id, Entitlement.offer_id == offer_id))
        )
    )


async def holder_counts(session: AsyncSession, community_id: int, offer_ids: Collection[int]) -> dict[int, int]:
    """How many people hold each offer now (entitlements whose access runs: ends_at null or
    ahead); every offer asked about is named, 0 when nobody holds it."""
    if not offer_ids:
        return {}
    now = utcnow()
    rows = await session.execute(
        select(Entitlement.offer_id, func.count())
        .where(
            Entitlement.community_id == community_id,
            Entitlement.offer_id.in_(list(offer_ids)),
            or_(Entitlement.ends_at.is_(None), Entitlement.ends_at > now),
        )
        .group_by(Entitlement.offer_id)
    )
    return {offer_id: 0 for offer_id in offer_ids} | {offer_id: count for offer_id, count in rows}


# ---------------------------------------------------------------- writing


async def create_offer(
    session: AsyncSession, community_id: int, fields: Mapping[str, Any], *, allow_local_http: bool
) -> Offer:
    """A new draft offer. `fields` holds the fields the caller gave (title and pricing at least)."""
    community = await hubs.get_community(session, community_id)
    current = {**DEFAULTS, "title": "", "slug": "", "pricing": Pricing(fields["pricing"]), "currency": community.default_currency}
    values = _settle(current, fields, allow_local_http=allow_local_http)
    offer = Offer(community_id=community_id, status=OfferStatus.draft, **values)
    session.add(offer)
    await flush_or_conflict(session, field="slug", message=SLUG_TAKEN)
    return offer


async def update_offer(
    session: AsyncSession, community_id: int, offer_id: int, fields: Mapping[str, Any], *, allow_local_http: bool
) -> Offer:
    """Change the given fields; the offer must satisfy every rule afterwards."""
    offer = await get_offer(session, community_id, offer_id, lock=True)
    current = {name: getattr(offer, name) for name in FIELDS}
    values = _settle(current, fields, allow_local_http=allow_local_http)
    changed = {name: value for name, value in values.items() if value != current[name]}
    for name in LOCKED_WHEN_HELD:
        if name in changed and await has_holders(session, community_id, offer.id):
            raise Conflict(f"{HELD}: its {name} cannot change; create a new offer instead", field=name)
    if changed:
        for name, value in changed.items():
            setattr(offer, name, value)
        offer.updated_at = utcnow()
        await flush_or_conflict(session, field="slug", message=SLUG_TAKEN)
    return offer


async def set_status(session: AsyncSession, community_id: int, offer_id: int, status: OfferStatus) -> Offer:
    """Publish, archive (no new sales; holders keep their access) or take back to draft (only
    while nobody holds it). Asking for the status the offer has changes nothing."""
    offer = await get_offer(session, community_id, offer_id, lock=True)
    if offer.status == status:
        return offer
    if status == OfferStatus.published and offer.pricing != Pricing.free:
        community = await hubs.get_community(session, community_id)
        if not community.charges_enabled:
            raise Conflict(
                "a paid offer can be published once the community's Stripe account can take charges",
                field="status",
            )
    if status == OfferStatus.draft and await has_holders(session, community_id, offer.id):
        raise Conflict(f"{HELD}: archive it instead", field="status")
    offer.status = status
    offer.updated_at = utcnow()
    await session.flush()
    return offer


async def delete_offer(session: AsyncSession, community_id: int, offer_id: int) -> list[str]:
    """Delete an offer nobody ever held. Answers the image keys to drop from storage once the
    deletion is committed (not before: a rolled-back delete must keep its images)."""
    offer = await get_offer(session, community_id, offer_id, lock=True)
    if await has_holders(session, community_id, offer.id):
        raise Conflict(f"{HELD}: archive it instead", field="offer_id")
    keys = [key for key in (offer.thumbnail, offer.cover) if key]
    await session.delete(offer)  # its group links go with it (ON DELETE CASCADE)
    await session.flush()
    return keys


async def set_image(
    session: AsyncSession, storage: Storage, community_id: int, offer_id: int, slot: str, data: bytes
) -> tuple[Offer, str | None]:
    """Store a new thumbnail or cover. Answers the offer and the key it replaced, which the
    caller drops from storage after the commit."""
    if slot not in IMAGE_SLOTS:
        raise ValueError(slot)
    offer = await get_offer(session, community_id, offer_id, lock=True)
    key = await storage.put(data, image_type(data, slot))
    old = getattr(offer, slot)
    setattr(offer, slot, key)
    offer.updated_at = utcnow()
    await session.flush()
    return offer, old


async def clear_image(session: AsyncSession, community_id: int, offer_id: int, slot: str) -> str | None:
    """Remove a thumbnail or cover; answers the key to drop after the commit."""
    if slot not in IMAGE_SLOTS:
        raise ValueError(slot)
    offer = await get_offer(session, community_id, offer_id, lock=True)
    old = getattr(offer, slot)
    if old is not None:
        setattr(offer, slot, None)
        offer.updated_at = utcnow()
        await session.flush()
    return old
