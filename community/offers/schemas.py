"""Offers in and out. Shapes and bounds here; the rules between fields live in the service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from community.mail.owner_templates import CONFIRMATION_VARIABLES
from community.money import MAX_AMOUNT
from community.offers.models import Offer, Pricing
from community.offers.storage import Storage

CODE_MAX = 50_000

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=60, description="Lowercase letters, digits, dashes.")]
Description = Annotated[str, msgspec.Meta(max_length=20_000)]
PricingIn = Literal["free", "one_time", "recurring"]
Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="Minor units (cents).")]
OldAmount = Annotated[
    int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="Compare-at price in minor units; above `amount`.")
]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3, description="ISO 4217 code.")]
Interval = Literal[1, 3, 6, 12]
TrialDays = Annotated[int, msgspec.Meta(ge=0, le=365)]
AccessDays = Annotated[int, msgspec.Meta(ge=1, le=3650, description="One-time offers: null is lifetime access.")]
Code = Annotated[str, msgspec.Meta(max_length=CODE_MAX)]
_TEMPLATE_HELP = (
    "A Jinja2 template (sandboxed); empty uses the default. Variables: "
    + "; ".join(f"{{{{ {name} }}}}: {meaning}" for name, meaning in CONFIRMATION_VARIABLES.items())
)
Subject = Annotated[str, msgspec.Meta(max_length=200, description="One line. " + _TEMPLATE_HELP)]
EmailBody = Annotated[str, msgspec.Meta(max_length=50_000, description=_TEMPLATE_HELP)]
DestinationIn = Literal["platform", "custom_url"]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Bps = Annotated[int, msgspec.Meta(ge=1, le=10_000, description="Commission in basis points (100 = 1%).")]
Flat = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="Commission in minor units per payment.")]
ProgramDescription = Annotated[str, msgspec.Meta(max_length=5000)]
Earns = Literal["first", "all", "months"]
EarnMonths = Annotated[int, msgspec.Meta(ge=1, le=120, description="With earns=months: how many months of a subscription earn.")]
WindowDays = Annotated[int, msgspec.Meta(ge=1, le=365, description="Days after a click in which a purchase is attributed to it.")]
HoldDays = Annotated[int, msgspec.Meta(ge=0, le=365, description="Days a commission waits (refunds, disputes) before it can be paid.")]
MinPayout = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT, description="Smallest payout in minor units of the offer's currency.")]
# The service trims, bounds (1-60) and de-duplicates the tags; this only bounds the input.
Tags = Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=100)]


class LandingPage(msgspec.Struct, forbid_unknown_fields=True):
    """The offer's public page: a headline, a body in Markdown, the button's words. Buyers see
    it before checkout while it is enabled and has some text; otherwise the offer's link goes
    straight to checkout (turning it off keeps the text for later)."""

    headline: Annotated[str, msgspec.Meta(max_length=200)] = ""
    body: Annotated[str, msgspec.Meta(max_length=50_000)] = ""
    call_to_action: Annotated[str, msgspec.Meta(max_length=80)] = ""
    enabled: bool = True


class OfferCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A field left out (or null) takes its default; one that does not apply to the pricing
    must be left out (or null)."""

    title: Title
    pricing: PricingIn
    slug: Slug | None = None
    description: Description | None = None
    amount: Amount | None = None
    currency: Currency | None = None  # the community's default currency
    old_amount: OldAmount | None = None
    interval_months: Interval | None = None
    trial_days: TrialDays | None = None
    trial_requires_card: bool | None = None
    access_days: AccessDays | None = None
    landing_page: LandingPage | None = None
    checkout_code_head: Code | None = None
    checkout_code_body: Code | None = None
    confirmation_subject: Subject | None = None
    confirmation_body: EmailBody | None = None
    destination: DestinationIn | None = None
    destination_url: Url | None = None
    resell_enabled: bool | None = None
    resell_commission_bps: Bps | None = None
    resell_commission_flat: Flat | None = None
    resell_description: ProgramDescription | None = None
    resell_earns: Earns | None = None
    resell_earn_months: EarnMonths | None = None
    resell_window_days: WindowDays | None = None
    resell_hold_days: HoldDays | None = None
    resell_min_payout: MinPayout | None = None
    auto_tags: Tags | None = None


class OfferUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change (landing_page is replaced as a whole); null clears a
    nullable field (old_amount, access_days (lifetime), destination_url, a commission) or
    resets a trial setting to its default."""

    title: Title | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    pricing: PricingIn | UnsetType = UNSET
    amount: Amount | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    old_amount: OldAmount | None | UnsetType = UNSET
    interval_months: Interval | None | UnsetType = UNSET
    trial_days: TrialDays | None | UnsetType = UNSET
    trial_requires_card: bool | None | UnsetType = UNSET
    access_days: AccessDays | None | UnsetType = UNSET
    landing_page: LandingPage | UnsetType = UNSET
    checkout_code_head: Code | UnsetType = UNSET
    checkout_code_body: Code | UnsetType = UNSET
    confirmation_subject: Subject | UnsetType = UNSET
    confirmation_body: EmailBody | UnsetType = UNSET
    destination: DestinationIn | UnsetType = UNSET
    destination_url: Url | None | UnsetType = UNSET
    resell_enabled: bool | UnsetType = UNSET
    resell_commission_bps: Bps | None | UnsetType = UNSET
    resell_commission_flat: Flat | None | UnsetType = UNSET
    resell_description: ProgramDescription | UnsetType = UNSET
    resell_earns: Earns | UnsetType = UNSET
    resell_earn_months: EarnMonths | None | UnsetType = UNSET
    resell_window_days: WindowDays | UnsetType = UNSET
    resell_hold_days: HoldDays | UnsetType = UNSET
    resell_min_payout: MinPayout | UnsetType = UNSET
    auto_tags: Tags | UnsetType = UNSET


def given(data: OfferCreate | OfferUpdate) -> dict[str, Any]:
    """The fields the caller set, as plain values for the service."""
    # On create, null means "the default"; on update, only UNSET means "not sent".
    missing = None if isinstance(data, OfferCreate) else UNSET
    values = {}
    for name in data.__struct_fields__:
        value = getattr(data, name)
        if value is missing:
            continue
        values[name] = msgspec.to_builtins(value) if isinstance(value, LandingPage) else value
    return values


class OfferSummary(msgspec.Struct):
    id: int
    title: str
    slug: str
    status: str
    pricing: str
    amount: int
    currency: str
    old_amount: int | None
    interval_months: int | None
    access_days: int | None
    thumbnail_url: str | None
    holders: int  # people who hold it now (access running)
    created_at: dt.datetime


class OfferOut(msgspec.Struct):
    id: int
    title: str
    slug: str
    description: str
    status: str
    pricing: str
    amount: int
    currency: str
    old_amount: int | None
    interval_months: int | None
    trial_days: int | None  # null unless recurring
    trial_requires_card: bool | None  # null unless recurring
    access_days: int | None
    thumbnail_url: str | None
    cover_url: str | None
    landing_page: LandingPage
    checkout_code_head: str
    checkout_code_body: str
    confirmation_subject: str
    confirmation_body: str
    destination: str
    destination_url: str | None
    resell_enabled: bool
    resell_commission_bps: int | None
    resell_commission_flat: int | None
    resell_description: str
    resell_earns: str
    resell_earn_months: int | None
    resell_window_days: int
    resell_hold_days: int
    resell_min_payout: int
    auto_tags: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime | None


def _url(storage: Storage, key: str | None) -> str | None:
    return storage.url(key) if key else None


def offer_summary(offer: Offer, storage: Storage, holders: int) -> OfferSummary:
    return OfferSummary(
        id=offer.id,
        title=offer.title,
        slug=offer.slug,
        status=offer.status.value,
        pricing=offer.pricing.value,
        amount=offer.amount,
        currency=offer.currency,
        old_amount=offer.old_amount,
        interval_months=offer.interval_months,
        access_days=offer.access_days,
        thumbnail_url=_url(storage, offer.thumbnail),
        holders=holders,
        created_at=offer.created_at,
    )


def offer_out(offer: Offer, storage: Storage) -> OfferOut:
    recurring = offer.pricing == Pricing.recurring
    page = offer.landing_page or {}
    return OfferOut(
        id=offer.id,
        title=offer.title,
        slug=offer.slug,
        description=offer.description,
        status=offer.status.value,
        pricing=offer.pricing.value,
        amount=offer.amount,
        currency=offer.currency,
        old_amount=offer.old_amount,
        interval_months=offer.interval_months,
        trial_days=offer.trial_days if recurring else None,
        trial_requires_card=offer.trial_requires_card if recurring else None,
        access_days=offer.access_days,
        thumbnail_url=_url(storage, offer.thumbnail),
        cover_url=_url(storage, offer.cover),
        landing_page=LandingPage(
            headline=page.get("headline", ""),
            body=page.get("body", ""),
            call_to_action=page.get("call_to_action", ""),
            enabled=page.get("enabled", True),
        ),
        checkout_code_head=offer.checkout_code_head,
        checkout_code_body=offer.checkout_code_body,
        confirmation_subject=offer.confirmation_subject,
        confirmation_body=offer.confirmation_body,
        destination=offer.destination.value,
        destination_url=offer.destination_url,
        resell_enabled=offer.resell_enabled,
        resell_commission_bps=offer.resell_commission_bps,
        resell_commission_flat=offer.resell_commission_flat,
        resell_description=offer.resell_description,
        resell_earns=offer.resell_earns,
        resell_earn_months=offer.resell_earn_months,
        resell_window_days=offer.resell_window_days,
        resell_hold_days=offer.resell_hold_days,
        resell_min_payout=offer.resell_min_payout,
        auto_tags=list(offer.auto_tags),
        created_at=offer.created_at,
        updated_at=offer.updated_at,
    )
