"""Offers through the API: every field rule (a 4xx naming the field, nothing written), slugs,
PATCH semantics, status transitions, images and their public URLs, roles and isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from community.errors import Invalid
from community.offers import service
from tests.conftest import Account, create_community, sign_up
from tests.images import media_files, png_bytes

API = "/api/v1"


# ---------------------------------------------------------------- helpers


def field_of(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


class Offers:
    """Calls on one community's offers as one person."""

    def __init__(self, client: httpx.AsyncClient, community: dict[str, Any], who: Account) -> None:
        self.client = client
        self.community_id = community["id"]
        self.base = f"{API}/communities/{community['id']}/offers"
        self.headers = who.headers

    async def request(self, method: str, url: str = "", body: Any = None) -> httpx.Response:
        return await self.client.request(method, self.base + url, json=body, headers=self.headers)

    async def create(self, title: str = "Founding Membership", **fields: Any) -> dict[str, Any]:
        fields.setdefault("pricing", "free")
        response = await self.request("POST", "", {"title": title, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    async def get(self, offer_id: int) -> dict[str, Any]:
        response = await self.request("GET", f"/{offer_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def listing(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get(self.base, params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def upload(self, offer_id: int, slot: str, data: bytes, **kwargs: Any) -> httpx.Response:
        if "files" not in kwargs:
            kwargs.setdefault("content", data)
        return await self.client.put(f"{self.base}/{offer_id}/{slot}", headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


@pytest.fixture
def offers(client: httpx.AsyncClient, community: dict[str, Any], owner: Account) -> Offers:
    return Offers(client, community, owner)


async def enable_charges(sessions, community_id: int) -> None:
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE communities SET charges_enabled = true WHERE id = :id"), {"id": community_id})


async def hold(sessions, community_id: int, offer_id: int, user_id: int, status: str = "active") -> None:
    """Someone holds the offer (as a purchase, a claim or a comp would leave it)."""
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO entitlements (community_id, offer_id, user_id, source, status, note) "
                "VALUES (:c, :o, :u, 'comp', :s, '')"
            ),
            {"c": community_id, "o": offer_id, "u": user_id, "s": status},
        )


async def offer_rows(sessions) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        return [tuple(row) for row in (await session.execute(text("SELECT * FROM offers ORDER BY id"))).all()]


PAID = {"pricing": "one_time", "amount": 4900}
MONTHLY = {"pricing": "recurring", "amount": 1500, "interval_months": 1}


# ---------------------------------------------------------------- creating and reading


async def test_create_a_free_offer_with_defaults(offers: Offers, community: dict[str, Any]) -> None:
    offer = await offers.create("Founding Membership", description="  Join us  ")
    assert offer["slug"] == "founding-membership"
    assert offer["description"] == "Join us"
    assert (offer["status"], offer["pricing"], offer["amount"], offer["currency"]) == ("draft", "free", 0, "USD")
    assert offer["old_amount"] is offer["interval_months"] is offer["access_days"] is None
    assert offer["trial_days"] is offer["trial_requires_card"] is None  # only recurring offers have trials
    assert offer["landing_page"] == {"headline": "", "body": "", "call_to_action": "", "enabled": True}
    assert (offer["destination"], offer["destination_url"]) == ("platform", None)
    assert (offer["resell_enabled"], offer["resell_commission_bps"], offer["resell_commission_flat"]) == (False, None, None)
    assert offer["thumbnail_url"] is offer["cover_url"] is None
    assert offer["auto_tags"] == []
    assert offer["updated_at"] is None
    assert await offers.get(offer["id"]) == offer


async def test_create_paid_offers_with_every_field(client: httpx.AsyncClient, offers: Offers, owner: Account) -> None:
    full = {
        "slug": "annual-pass",
        "pricing": "one_time",
        "amount": 19900,
        "old_amount": 29900,
        "access_days": 365,
        "landing_page": {"headline": " The pass ", "body": "# Hello\n\n  * indented", "call_to_action": "Get it"},
        "checkout_code_head": "<script>track()</script>",
        "checkout_code_body": "<noscript>hi</noscript>",
        "confirmation_subject": "  Welcome aboard ",
        "confirmation_body": "Line one\nLine two",
        "destination": "custom_url",
        "destination_url": "https://thanks.example.com/welcome?from=pass#top",
        "resell_enabled": True,
        "resell_commission_bps": 2500,
        "resell_description": "Earn 25%",
        "auto_tags": ["  Annual ", "annual", "VIP", "vip ", "x" * 60],
    }
    offer = await offers.create("Annual Pass", **full)
    assert offer["slug"] == "annual-pass"
    assert (offer["amount"], offer["old_amount"], offer["access_days"], offer["currency"]) == (19900, 29900, 365, "USD")
    assert offer["landing_page"] == {"headline": "The pass", "body": "# Hello\n\n  * indented", "call_to_action": "Get it", "enabled": True}
    assert offer["confirmation_subject"] == "Welcome aboard"
    assert offer["checkout_code_head"] == full["checkout_code_head"]
    assert offer["destination_url"] == full["destination_url"]
    assert offer["auto_tags"] == ["Annual", "VIP", "x" * 60]  # trimmed, first spelling kept
    assert offer["resell_commission_bps"] == 2500

    monthly = await offers.create(
        "Monthly", pricing="recurring", amount=1500, interval_months=3, trial_days=14, trial_requires_card=False,
        resell_enabled=True, resell_commission_flat=1500,
    )  # fmt: skip
    assert (monthly["interval_months"], monthly["trial_days"], monthly["trial_requires_card"]) == (3, 14, False)
    assert monthly["access_days"] is None
    assert monthly["resell_commission_flat"] == 1500  # as much as the price, no more
    defaults = await offers.create("Monthly Basic", **MONTHLY)
    assert (defaults["trial_days"], defaults["trial_requires_card"]) == (0, True)

    # The currency defaults to the community's; each currency has its own minimum.
    yen_guild = await create_community(client, owner, "Yen Guild", default_currency="JPY")
    yen = Offers(client, yen_guild, owner)
    assert (await yen.create("Yen Pass", pricing="one_time", amount=50))["currency"] == "JPY"
    too_little = await yen.request("POST", "", {"title": "Cheap", "pricing": "one_time", "amount": 49})
    assert too_little.status_code == 422 and field_of(too_little) == ["amount"]
    assert "50 JPY" in too_little.json()["detail"]
    pounds = await offers.create("Pounds", pricing="one_time", amount=30, currency="gbp")
    assert pounds["currency"] == "GBP"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # title and slug
        ({"pricing": "free"}, "title"),
        ({"title": "", "pricing": "free"}, "title"),
        ({"title": "   ", "pricing": "free"}, "title"),
        ({"title": "x" * 201, "pricing": "free"}, "title"),
        ({"title": "nul \x00", "pricing": "free"}, "title"),
        ({"title": "Fine", "slug": "Not A Slug", "pricing": "free"}, "slug"),
        ({"title": "!!!", "pricing": "free"}, "slug"),
        ({"title": "Fine", "pricing": "free", "description": "x" * 20_001}, "description"),
        ({"title": "Fine", "pricing": "free", "description": "nul \x00"}, "description"),
        # pricing and amounts
        ({"title": "Fine"}, "pricing"),
        ({"title": "Fine", "pricing": "monthly"}, "pricing"),
        ({"title": "Fine", "pricing": "free", "amount": 100}, "amount"),
        ({"title": "Fine", "pricing": "one_time"}, "amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 0}, "amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 49}, "amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": -1}, "amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 100_000_000}, "amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 1.5}, "amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 500, "currency": "ZZZ"}, "currency"),
        ({"title": "Fine", "pricing": "one_time", "amount": 500, "currency": "dollars"}, "currency"),
        ({"title": "Fine", "pricing": "one_time", "amount": 250, "currency": "SEK"}, "amount"),  # SEK 3.00 minimum
        ({"title": "Fine", "pricing": "one_time", "amount": 1000, "old_amount": 1000}, "old_amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 1000, "old_amount": 900}, "old_amount"),
        ({"title": "Fine", "pricing": "one_time", "amount": 1000, "old_amount": 0}, "old_amount"),
        ({"title": "Fine", "pricing": "free", "old_amount": 900}, "old_amount"),
        # recurring
        ({"title": "Fine", "pricing": "recurring", "amount": 1000}, "interval_months"),
        ({"title": "Fine", "pricing": "recurring", "amount": 1000, "interval_months": 2}, "interval_months"),
        ({"title": "Fine", **MONTHLY, "trial_days": 366}, "trial_days"),
        ({"title": "Fine", **MONTHLY, "trial_days": -1}, "trial_days"),
        ({"title": "Fine", **MONTHLY, "trial_requires_card": "yes"}, "trial_requires_card"),
        ({"title": "Fine", **MONTHLY, "access_days": 30}, "access_days"),
        # one-time
        ({"title": "Fine", **PAID, "access_days": 0}, "access_days"),
        ({"title": "Fine", **PAID, "access_days": 3651}, "access_days"),
        ({"title": "Fine", **PAID, "interval_months": 1}, "interval_months"),
        ({"title": "Fine", **PAID, "trial_days": 7}, "trial_days"),
        ({"title": "Fine", **PAID, "trial_days": 0}, "trial_days"),
        ({"title": "Fine", **PAID, "trial_requires_card": False}, "trial_requires_card"),
        ({"title": "Fine", "pricing": "free", "access_days": 30}, "access_days"),
        ({"title": "Fine", "pricing": "free", "interval_months": 1}, "interval_months"),
        # landing page
        ({"title": "Fine", "pricing": "free", "landing_page": "text"}, "landing_page"),
        ({"title": "Fine", "pricing": "free", "landing_page": {"footer": "x"}}, "landing_page.footer"),
        ({"title": "Fine", "pricing": "free", "landing_page": {"headline": "x" * 201}}, "landing_page.headline"),
        ({"title": "Fine", "pricing": "free", "landing_page": {"headline": "two\nlines"}}, "landing_page.headline"),
        ({"title": "Fine", "pricing": "free", "landing_page": {"call_to_action": "x" * 81}}, "landing_page.call_to_action"),
        ({"title": "Fine", "pricing": "free", "landing_page": {"body": "x" * 50_001}}, "landing_page.body"),
        ({"title": "Fine", "pricing": "free", "landing_page": {"body": "nul \x00"}}, "landing_page.body"),
        # checkout code and the confirmation email
        ({"title": "Fine", "pricing": "free", "checkout_code_head": "x" * 50_001}, "checkout_code_head"),
        ({"title": "Fine", "pricing": "free", "checkout_code_body": "x" * 50_001}, "checkout_code_body"),
        ({"title": "Fine", "pricing": "free", "checkout_code_body": "nul \x00"}, "checkout_code_body"),
        ({"title": "Fine", "pricing": "free", "confirmation_subject": "Hi\r\nBcc: all@example.com"}, "confirmation_subject"),
        ({"title": "Fine", "pricing": "free", "confirmation_subject": "Hi\nthere"}, "confirmation_subject"),
        ({"title": "Fine", "pricing": "free", "confirmation_subject": "Hi\rthere"}, "confirmation_subject"),
        ({"title": "Fine", "pricing": "free", "confirmation_subject": "x" * 201}, "confirmation_subject"),
        ({"title": "Fine", "pricing": "free", "confirmation_body": "x" * 50_001}, "confirmation_body"),
        # destination
        ({"title": "Fine", "pricing": "free", "destination": "elsewhere"}, "destination"),
        ({"title": "Fine", "pricing": "free", "destination": "custom_url"}, "destination_url"),
        ({"title": "Fine", "pricing": "free", "destination_url": "https://example.com/"}, "destination_url"),
        # resell rights
        ({"title": "Fine", **PAID, "resell_enabled": True}, "resell_commission_bps"),
        ({"title": "Fine", **PAID, "resell_enabled": True, "resell_commission_bps": 1000, "resell_commission_flat": 100}, "resell_commission_flat"),
        ({"title": "Fine", **PAID, "resell_commission_bps": 1000, "resell_commission_flat": 100}, "resell_commission_flat"),
        ({"title": "Fine", **PAID, "resell_enabled": True, "resell_commission_bps": 0}, "resell_commission_bps"),
        ({"title": "Fine", **PAID, "resell_enabled": True, "resell_commission_bps": 10_001}, "resell_commission_bps"),
        ({"title": "Fine", **PAID, "resell_enabled": True, "resell_commission_flat": 0}, "resell_commission_flat"),
        ({"title": "Fine", **PAID, "resell_enabled": True, "resell_commission_flat": 4901}, "resell_commission_flat"),
        ({"title": "Fine", "pricing": "free", "resell_enabled": True, "resell_commission_bps": 1000}, "resell_enabled"),
        ({"title": "Fine", **PAID, "resell_description": "x" * 5001}, "resell_description"),
        ({"title": "Fine", **PAID, "resell_enabled": "yes"}, "resell_enabled"),
        # auto-tags
        ({"title": "Fine", "pricing": "free", "auto_tags": [f"tag {n}" for n in range(21)]}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["ok", ""]}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["ok", "   "]}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["x" * 61]}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["two\nlines"]}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["nul \x00"]}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": "vip"}, "auto_tags"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["ok", 1]}, "auto_tags.1"),
        ({"title": "Fine", "pricing": "free", "auto_tags": ["same"] * 101}, "auto_tags"),
        # not a field at all; status has its own routes
        ({"title": "Fine", "pricing": "free", "colour": "red"}, "colour"),
        ({"title": "Fine", "pricing": "free", "status": "published"}, "status"),
        ({"title": "Fine", "pricing": "free", "thumbnail": "abc.png"}, "thumbnail"),
    ],
)
async def test_every_rule_names_its_field_and_writes_nothing(offers: Offers, sessions, body: dict[str, Any], field: str) -> None:
    response = await offers.request("POST", "", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field_of(response) == [field], response.text
    assert await offer_rows(sessions) == []


# Destination URLs: the owner's thank-you page, where buyers are sent after paying.
GOOD_URLS = [
    "https://example.com",
    "https://thanks.example.com/a/b?x=1&y=%20z#frag",
    "HTTPS://Example.COM/Path",
    "https://example.com:8443/",
    "https://bücher.example/danke",
    "https://192.0.2.1/thanks",
    "http://localhost:8000/thanks",  # only outside production
    "http://127.0.0.1/thanks",
    "https://example.com/" + "a" * (2048 - len("https://example.com/")),
]
BAD_URLS = [
    "http://example.com/thanks",
    "ftp://example.com/file",
    "javascript:alert(1)",
    "data:text/html,hi",
    "example.com/thanks",
    "/thanks",
    "//example.com/thanks",
    "https://",
    "https:///path",
    "https:example.com",
    "https://user:secret@example.com/",
    "https://user@example.com/",
    "https://example.com@evil.example/",
    "https://example.com\\@evil.example/",
    "https://exa mple.com/",
    " https://example.com/",
    "https://example.com/ ",
    "https://example.com/\tx",
    "https://example.com/\nx",
    "https://example.com/\x7f",
    "https://example.com/\u202egnp.exe",  # a right-to-left override
    "https://example.com/\u200b",  # a zero-width space
    "https://example.com:99999/",
    "https://example.com:port/",
    "https://-example.com/",
    "https://exa%6dple.com/",
    "https://example.com/<script>",
    "http://localhost.evil.example/",
    "http://127.0.0.1.evil.example/",
    "https://example.com/" + "a" * 2048,
]


@pytest.mark.parametrize("url", GOOD_URLS)
async def test_destination_urls_accepted(offers: Offers, url: str) -> None:
    offer = await offers.create("Thanks", destination="custom_url", destination_url=url)
    assert offer["destination_url"] == url


@pytest.mark.parametrize("url", BAD_URLS)
async def test_destination_urls_refused(offers: Offers, sessions, url: str) -> None:
    response = await offers.request(
        "POST", "", {"title": "Thanks", "pricing": "free", "destination": "custom_url", "destination_url": url}
    )
    assert response.status_code == 422, (url, response.text)
    assert field_of(response) == ["destination_url"], response.text
    assert await offer_rows(sessions) == []


def test_plain_http_is_for_local_trials_only() -> None:
    for url in ("http://localhost:8000/thanks", "http://127.0.0.1/thanks", "http://[::1]/thanks"):
        assert service.clean_destination_url(url, allow_local_http=True) == url
        with pytest.raises(Invalid) as refused:
            service.clean_destination_url(url, allow_local_http=False)
        assert refused.value.field == "destination_url"
    assert service.clean_destination_url("https://localhost/x", allow_local_http=False) == "https://localhost/x"


def test_production_refuses_local_http(settings) -> None:
    """The API decides from the settings: production never allows plain http."""
    import dataclasses

    from litestar.datastructures import State

    from community.offers.api import allow_local_http

    assert allow_local_http(State({"settings": settings})) is True
    assert allow_local_http(State({"settings": dataclasses.replace(settings, env="production")})) is False
    assert allow_local_http(State({"settings": dataclasses.replace(settings, env="development")})) is True


async def test_slugs_are_unique_within_a_community(client: httpx.AsyncClient, offers: Offers, owner: Account) -> None:
    first = await offers.create("Founding Membership")
    again = await offers.request("POST", "", {"title": "Founding Membership", "pricing": "free"})
    assert again.status_code == 409 and field_of(again) == ["slug"]
    explicit = await offers.request("POST", "", {"title": "Other", "slug": "founding-membership", "pricing": "free"})
    assert explicit.status_code == 409 and field_of(explicit) == ["slug"]
    other = await offers.create("Other")
    renamed = await offers.request("PATCH", f"/{other['id']}", {"slug": first["slug"]})
    assert renamed.status_code == 409 and field_of(renamed) == ["slug"]
    assert (await offers.get(other["id"]))["slug"] == "other"
    # Another community has its own slugs.
    elsewhere = Offers(client, await create_community(client, owner, "Other Guild"), owner)
    assert (await elsewhere.create("Founding Membership"))["slug"] == "founding-membership"


# ---------------------------------------------------------------- changing


async def test_patch_changes_only_what_is_sent(offers: Offers) -> None:
    offer = await offers.create("Annual Pass", **PAID, old_amount=9900, access_days=365, auto_tags=["vip"])
    response = await offers.request("PATCH", f"/{offer['id']}", {"title": "The Annual Pass", "amount": 5900})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["title"], changed["slug"], changed["amount"]) == ("The Annual Pass", "annual-pass", 5900)
    assert (changed["old_amount"], changed["access_days"], changed["auto_tags"]) == (9900, 365, ["vip"])
    assert changed["updated_at"] is not None
    # null clears: no compare-at price, lifetime access.
    cleared = (await offers.request("PATCH", f"/{offer['id']}", {"old_amount": None, "access_days": None})).json()
    assert (cleared["old_amount"], cleared["access_days"]) == (None, None)
    # An empty PATCH changes nothing.
    same = await offers.request("PATCH", f"/{offer['id']}", {})
    assert same.status_code == 200 and same.json() == cleared
    # null is not a value for a field that cannot be empty.
    for body, field in [({"title": None}, "title"), ({"amount": None}, "amount"), ({"pricing": None}, "pricing")]:
        refused = await offers.request("PATCH", f"/{offer['id']}", body)
        assert refused.status_code == 422 and field_of(refused) == [field], refused.text
    assert await offers.get(offer["id"]) == cleared


async def test_patch_is_checked_against_the_whole_offer(offers: Offers, sessions) -> None:
    offer = await offers.create("Pass", **PAID, old_amount=9900, resell_enabled=True, resell_commission_flat=4000)
    before = await offer_rows(sessions)
    for body, field in [
        ({"amount": 10_000}, "old_amount"),  # no longer below the compare-at price
        ({"amount": 3000}, "resell_commission_flat"),  # below the flat commission
        ({"amount": 0}, "amount"),
        ({"currency": "HUF"}, "amount"),  # 49.00 is under HUF's minimum
        ({"interval_months": 1}, "interval_months"),  # not a recurring offer
        ({"trial_days": 3}, "trial_days"),
        ({"pricing": "recurring"}, "interval_months"),  # recurring needs its interval
        ({"pricing": "recurring", "interval_months": 1, "access_days": 30}, "access_days"),
        ({"pricing": "free"}, "resell_enabled"),  # a free offer earns no commission
        ({"pricing": "free", "resell_enabled": False, "amount": 100}, "amount"),
        ({"resell_commission_bps": 1000}, "resell_commission_bps"),  # the flat one is still set
        ({"resell_commission_flat": None}, "resell_commission_bps"),  # enabled needs one
        ({"destination": "custom_url"}, "destination_url"),
        ({"destination_url": "https://example.com/"}, "destination_url"),  # destination is platform
        ({"landing_page": {"headline": "a\u0000b"}}, "landing_page.headline"),
    ]:
        response = await offers.request("PATCH", f"/{offer['id']}", body)
        assert response.status_code == 422, (body, response.text)
        assert field_of(response) == [field], (body, response.text)
    assert await offer_rows(sessions) == before


async def test_patch_between_pricings(offers: Offers) -> None:
    offer = await offers.create("Club", **PAID, old_amount=9900, access_days=30)
    url = f"/{offer['id']}"
    # To recurring: the one-time fields go, the trial gets its defaults.
    recurring = (await offers.request("PATCH", url, {"pricing": "recurring", "interval_months": 12})).json()
    assert (recurring["pricing"], recurring["interval_months"], recurring["access_days"]) == ("recurring", 12, None)
    assert (recurring["trial_days"], recurring["trial_requires_card"], recurring["old_amount"]) == (0, True, 9900)
    trial = (await offers.request("PATCH", url, {"trial_days": 7, "trial_requires_card": False})).json()
    assert (trial["trial_days"], trial["trial_requires_card"]) == (7, False)
    reset = (await offers.request("PATCH", url, {"trial_days": None, "trial_requires_card": None})).json()
    assert (reset["trial_days"], reset["trial_requires_card"]) == (0, True)
    # To free: price, compare-at price and interval go.
    free = (await offers.request("PATCH", url, {"pricing": "free"})).json()
    assert (free["amount"], free["old_amount"], free["interval_months"], free["trial_days"]) == (0, None, None, None)
    # Back to paid needs a chargeable amount.
    refused = await offers.request("PATCH", url, {"pricing": "one_time"})
    assert refused.status_code == 422 and field_of(refused) == ["amount"]
    paid = (await offers.request("PATCH", url, {"pricing": "one_time", "amount": 2500, "access_days": 90})).json()
    assert (paid["amount"], paid["access_days"], paid["interval_months"]) == (2500, 90, None)


async def test_destination_and_resell_changes(offers: Offers) -> None:
    offer = await offers.create("Pass", **PAID)
    url = f"/{offer['id']}"
    custom = (await offers.request("PATCH", url, {"destination": "custom_url", "destination_url": "https://example.com/thanks"})).json()
    assert (custom["destination"], custom["destination_url"]) == ("custom_url", "https://example.com/thanks")
    moved = (await offers.request("PATCH", url, {"destination_url": "https://example.org/merci"})).json()
    assert moved["destination_url"] == "https://example.org/merci"
    refused = await offers.request("PATCH", url, {"destination_url": None})
    assert refused.status_code == 422 and field_of(refused) == ["destination_url"]
    back = (await offers.request("PATCH", url, {"destination": "platform"})).json()
    assert (back["destination"], back["destination_url"]) == ("platform", None)

    # Switching commission kind: clear one, set the other, in one request.
    bps = (await offers.request("PATCH", url, {"resell_enabled": True, "resell_commission_bps": 3000})).json()
    assert (bps["resell_enabled"], bps["resell_commission_bps"]) == (True, 3000)
    flat = (await offers.request("PATCH", url, {"resell_commission_bps": None, "resell_commission_flat": 500})).json()
    assert (flat["resell_commission_bps"], flat["resell_commission_flat"]) == (None, 500)
    # Disabled resell rights keep their settings for later.
    off = (await offers.request("PATCH", url, {"resell_enabled": False})).json()
    assert (off["resell_enabled"], off["resell_commission_flat"]) == (False, 500)
    tags = (await offers.request("PATCH", url, {"auto_tags": [" Buyer ", "BUYER", "pass"]})).json()
    assert tags["auto_tags"] == ["Buyer", "pass"]


async def test_price_model_is_fixed_once_someone_holds_the_offer(offers: Offers, sessions, owner: Account) -> None:
    offer = await offers.create("Monthly", **MONTHLY)
    await hold(sessions, offers.community_id, offer["id"], owner.id)
    before = await offer_rows(sessions)
    for body, field in [
        ({"pricing": "one_time"}, "pricing"),
        ({"currency": "EUR"}, "currency"),
        ({"interval_months": 12}, "interval_months"),
    ]:
        response = await offers.request("PATCH", f"/{offer['id']}", body)
        assert response.status_code == 409, (body, response.text)
        assert field_of(response) == [field]
    assert await offer_rows(sessions) == before
    # The price itself may change (for new buyers); so may everything else.
    changed = await offers.request("PATCH", f"/{offer['id']}", {"amount": 1900, "currency": "USD", "title": "Monthly Club"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["amount"] == 1900


# ---------------------------------------------------------------- status


async def test_status_transitions(offers: Offers, sessions, owner: Account) -> None:
    offer = await offers.create("Free Community")
    url = f"/{offer['id']}"

    async def move(action: str, expected: str) -> None:
        response = await offers.request("POST", f"{url}/{action}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == expected

    await move("publish", "published")  # a free offer publishes without Stripe
    await move("publish", "published")  # asking again changes nothing
    await move("unpublish", "draft")
    await move("unpublish", "draft")
    await move("archive", "archived")
    await move("publish", "published")  # back on sale
    await hold(sessions, offers.community_id, offer["id"], owner.id)
    refused = await offers.request("POST", f"{url}/unpublish")
    assert refused.status_code == 409 and field_of(refused) == ["status"]
    assert "archive" in refused.json()["detail"]
    await move("archive", "archived")  # no new sales; holders keep what they have
    refused = await offers.request("POST", f"{url}/unpublish")
    assert refused.status_code == 409 and field_of(refused) == ["status"]
    assert (await offers.get(offer["id"]))["status"] == "archived"
    await move("publish", "published")


async def test_a_paid_offer_is_published_once_charges_are_enabled(offers: Offers, sessions) -> None:
    one_time = await offers.create("Pass", **PAID)
    monthly = await offers.create("Club", **MONTHLY)
    before = await offer_rows(sessions)
    for offer in (one_time, monthly):
        refused = await offers.request("POST", f"/{offer['id']}/publish")
        assert refused.status_code == 409, refused.text
        assert field_of(refused) == ["status"]
        assert "Stripe" in refused.json()["detail"]
    assert await offer_rows(sessions) == before
    await enable_charges(sessions, offers.community_id)
    for offer in (one_time, monthly):
        published = await offers.request("POST", f"/{offer['id']}/publish")
        assert published.status_code == 200 and published.json()["status"] == "published"


async def test_delete_only_what_nobody_holds(offers: Offers, sessions, owner: Account) -> None:
    kept = await offers.create("Held")
    gone = await offers.create("Unsold")
    await hold(sessions, offers.community_id, kept["id"], owner.id, status="refunded")  # ended, still a holding
    refused = await offers.request("DELETE", f"/{kept['id']}")
    assert refused.status_code == 409 and field_of(refused) == ["offer_id"]
    assert "archive it instead" in refused.json()["detail"]
    assert (await offers.get(kept["id"]))["status"] == "draft"
    deleted = await offers.request("DELETE", f"/{gone['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await offers.request("GET", f"/{gone['id']}")).status_code == 404
    assert (await offers.request("DELETE", f"/{gone['id']}")).status_code == 404


# ---------------------------------------------------------------- listing, roles, isolation


async def test_list_in_keyset_pages(offers: Offers) -> None:
    made = [await offers.create(f"Offer {n}") for n in range(5)]
    await offers.request("POST", f"/{made[1]['id']}/publish")
    await offers.request("POST", f"/{made[3]['id']}/publish")
    first = await offers.listing(limit=2)
    assert [o["id"] for o in first["items"]] == [made[0]["id"], made[1]["id"]]
    assert first["next"] == made[1]["id"]
    assert set(first["items"][0]) >= {"id", "title", "slug", "status", "pricing", "amount", "currency", "thumbnail_url"}
    assert "checkout_code_head" not in first["items"][0]  # the list stays light
    second = await offers.listing(limit=2, after=first["next"])
    third = await offers.listing(limit=2, after=second["next"])
    assert [o["id"] for o in second["items"] + third["items"]] == [o["id"] for o in made[2:]]
    assert third["next"] is None
    published = await offers.listing(status="published")
    assert [o["id"] for o in published["items"]] == [made[1]["id"], made[3]["id"]]
    assert (await offers.client.get(offers.base, params={"status": "sold"}, headers=offers.headers)).status_code in (400, 422)


async def test_managers_read_and_only_owners_and_admins_write(
    client: httpx.AsyncClient, offers: Offers, community: dict[str, Any], owner: Account, sessions, settings
) -> None:
    offer = await offers.create("Pass", **PAID)
    people = {}
    for email, role in (("manager@example.com", "manager"), ("admin@example.com", "admin")):
        people[role] = Offers(client, community, await sign_up(client, email))
        response = await client.put(
            f"{API}/communities/{community['id']}/staff", json={"email": email, "role": role}, headers=owner.headers
        )
        assert response.status_code == 200, response.text
    manager, admin = people["manager"], people["admin"]
    assert (await manager.get(offer["id"]))["title"] == "Pass"
    assert [o["id"] for o in (await manager.listing())["items"]] == [offer["id"]]
    before, files = await offer_rows(sessions), media_files(settings)
    for method, url, body in [
        ("POST", "", {"title": "Mine", "pricing": "free"}),
        ("PATCH", f"/{offer['id']}", {"title": "Mine"}),
        ("POST", f"/{offer['id']}/publish", None),
        ("POST", f"/{offer['id']}/archive", None),
        ("POST", f"/{offer['id']}/unpublish", None),
        ("DELETE", f"/{offer['id']}", None),
        ("DELETE", f"/{offer['id']}/thumbnail", None),
    ]:
        response = await manager.request(method, url, body)
        assert response.status_code == 403, (method, url, response.text)
    upload = await manager.upload(offer["id"], "thumbnail", png_bytes())
    assert upload.status_code == 403, upload.text
    assert await offer_rows(sessions) == before and media_files(settings) == files
    assert (await admin.request("PATCH", f"/{offer['id']}", {"title": "By the admin"})).status_code == 200
    # Someone with no place in the community learns nothing.
    stranger = Offers(client, community, await sign_up(client, "stranger@example.com"))
    assert (await stranger.request("GET", f"/{offer['id']}")).status_code == 404
    assert (await stranger.request("GET")).status_code == 404


async def test_another_communitys_offer_answers_404_and_changes_nothing(
    client: httpx.AsyncClient, offers: Offers, owner: Account, sessions, settings
) -> None:
    mine = await offers.create("Mine", **PAID)
    await offers.upload(mine["id"], "thumbnail", png_bytes())
    intruder = await sign_up(client, "intruder@example.com")
    theirs = Offers(client, await create_community(client, intruder, "Intruders"), intruder)
    before, files = await offer_rows(sessions), media_files(settings)
    for method, url, body in [
        ("GET", f"/{mine['id']}", None),
        ("PATCH", f"/{mine['id']}", {"title": "Taken"}),
        ("POST", f"/{mine['id']}/publish", None),
        ("POST", f"/{mine['id']}/archive", None),
        ("POST", f"/{mine['id']}/unpublish", None),
        ("DELETE", f"/{mine['id']}/thumbnail", None),
        ("DELETE", f"/{mine['id']}", None),
    ]:
        response = await theirs.request(method, url, body)
        assert response.status_code == 404, (method, url, response.text)
        assert "Mine" not in response.text
    for slot in ("thumbnail", "cover"):
        response = await theirs.upload(mine["id"], slot, png_bytes())
        assert response.status_code == 404, response.text
    assert (await theirs.listing())["items"] == []
    assert await offer_rows(sessions) == before and media_files(settings) == files
