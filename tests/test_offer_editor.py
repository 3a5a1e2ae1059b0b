"""The console's offer editor over HTTP (the browser walk is tests/e2e/test_offer_editor.py):
each section saves through the API's input and service, amounts typed in major units, every
refusal next to its field in the API's words, managers read, other communities see nothing."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Account, create_community, sign_up
from tests.images import png_bytes

API = "/api/v1"
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


async def log_in_pages(client: httpx.AsyncClient, who: Account) -> None:
    """A browser's session: the log-in form, CSRF token included."""
    page = await client.get("/login")
    token = CSRF.search(page.text).group(1)
    done = await client.post("/login", data={"_csrf_token": token, "email": who.email, "password": PASSWORD})
    assert done.status_code == 303, done.text


async def post_form(client: httpx.AsyncClient, url: str, **fields: Any) -> httpx.Response:
    page = await client.get(url if not url.endswith(("/remove", "/delete")) else url.rsplit("/", 1)[0])
    token = CSRF.search(page.text)
    assert token, f"{url} has a form"
    return await client.post(url, data={"_csrf_token": token.group(1), **fields})


def error_of(page: httpx.Response, field: str) -> str | None:
    """The refusal shown next to an input (the _forms.html macros give it the id e-{field})."""
    found = re.search(rf'<p class="field-error" id="e-{re.escape(field)}"[^>]*>([^<]*)</p>', page.text)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
async def console(client: httpx.AsyncClient, owner: Account, community: dict[str, Any]) -> str:
    await log_in_pages(client, owner)
    return f"/dashboard/communities/{community['id']}/offers"


async def api_offer(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], offer_id: int) -> dict[str, Any]:
    got = await client.get(f"{API}/communities/{community['id']}/offers/{offer_id}", headers=owner.headers)
    assert got.status_code == 200, got.text
    return got.json()


async def create(client: httpx.AsyncClient, console: str, **fields: str) -> int:
    made = await post_form(client, f"{console}/new", **fields)
    assert made.status_code == 303, made.text
    return int(made.headers["location"].rsplit("/", 1)[1])


async def test_creating_offers_reads_major_units_and_refuses_next_to_the_field(client, owner, community, console) -> None:
    below = await post_form(client, f"{console}/new", title="Yoga", pricing="one_time", amount="0.40")
    assert below.status_code == 422 and error_of(below, "amount") == "must be at least 0.50 USD for USD"
    assert 'value="Yoga"' in below.text  # what was typed stays
    for typed, message in (
        ("12.345 USD", "USD amounts have at most 2 decimals"),
        ("-5", "must not be negative"),
        ("twelve", "must be an amount in USD, like 12.50"),
        ("1000000", "must be at most 999999.99 USD"),
    ):
        refused = await post_form(client, f"{console}/new", title="Yoga", pricing="one_time", amount=typed)
        assert refused.status_code == 422 and error_of(refused, "amount") == message, typed
    untitled = await post_form(client, f"{console}/new", title="", pricing="free")
    assert untitled.status_code == 422 and error_of(untitled, "title")
    listed = await client.get(f"{API}/communities/{community['id']}/offers", headers=owner.headers)
    assert listed.json()["items"] == []  # nothing half-made

    offer_id = await create(client, console, title="Yoga", pricing="recurring", amount="15", interval_months="3")
    offer = await api_offer(client, owner, community, offer_id)
    assert (offer["amount"], offer["interval_months"], offer["status"]) == (1500, 3, "draft")
    free_id = await create(client, console, title="Open day", pricing="free", amount="99")  # a free offer's price is not read
    assert (await api_offer(client, owner, community, free_id))["amount"] == 0
    same = await post_form(client, f"{console}/new", title="Open Day", pricing="free")
    assert same.status_code == 409 and error_of(same, "slug") == "an offer with this slug exists in this community"
    other_slug = await create(client, console, title="Open Day", slug="open-day-2", pricing="free")
    assert (await api_offer(client, owner, community, other_slug))["slug"] == "open-day-2"
    moved = await post_form(client, f"{console}/{other_slug}", title="Open Day", slug="open-day", pricing="free", currency="USD")
    assert moved.status_code == 409 and error_of(moved, "slug") == "an offer with this slug exists in this community"
    kept = await post_form(client, f"{console}/{other_slug}", title="Open Day again", slug="", pricing="free", currency="USD")
    assert kept.status_code == 303 and (await api_offer(client, owner, community, other_slug))["slug"] == "open-day-2"


async def test_main_information_saves_each_pricing_model(client, owner, community, console) -> None:
    offer_id = await create(client, console, title="Weights", pricing="one_time", amount="49")
    main = f"{console}/{offer_id}"
    page = await client.get(main)
    assert page.status_code == 200 and 'value="49.00"' in page.text and "At least 0.50 USD" in page.text

    saved = await post_form(
        client, main, title="Weights pass", description="A year of lifting", pricing="one_time", currency="USD",
        amount="99.50", old_amount="120", access="days", access_days="365",
        interval_months="1", trial_days="7",  # another model's fields: ignored
    )
    assert saved.status_code == 303
    offer = await api_offer(client, owner, community, offer_id)
    assert (offer["title"], offer["amount"], offer["old_amount"], offer["access_days"]) == ("Weights pass", 9950, 12000, 365)
    assert offer["interval_months"] is None and offer["trial_days"] is None

    no_days = await post_form(client, main, title="Weights pass", pricing="one_time", currency="USD", amount="99.50", access="days", access_days="")
    assert no_days.status_code == 422 and error_of(no_days, "access_days") == "enter how many days a pass lasts"
    old_below = await post_form(client, main, title="Weights pass", pricing="one_time", currency="USD", amount="99.50", old_amount="50", access="lifetime")
    assert old_below.status_code == 422 and error_of(old_below, "old_amount") == "the compare-at price must be above the amount"

    monthly = await post_form(
        client, main, title="Weights club", pricing="recurring", currency="EUR", amount="15", interval_months="1",
        trial_days="14", access="days", access_days="30",
    )
    assert monthly.status_code == 303
    offer = await api_offer(client, owner, community, offer_id)
    assert (offer["pricing"], offer["currency"], offer["amount"], offer["trial_days"], offer["trial_requires_card"]) == ("recurring", "EUR", 1500, 14, False)
    assert offer["access_days"] is None and offer["old_amount"] is None
    too_long = await post_form(client, main, title="Weights club", pricing="recurring", currency="EUR", amount="15", interval_months="1", trial_days="400")
    assert too_long.status_code == 422 and "365" in error_of(too_long, "trial_days")

    free = await post_form(client, main, title="Weights club", pricing="free", currency="EUR", amount="15")
    assert free.status_code == 303
    assert (await api_offer(client, owner, community, offer_id))["amount"] == 0
    yen = await post_form(client, main, title="Weights club", pricing="one_time", currency="JPY", amount="49.5", access="lifetime")
    assert yen.status_code == 422 and error_of(yen, "amount") == "JPY amounts have no decimals"


async def test_resell_rights_in_percent_or_major_units(client, owner, community, console) -> None:
    offer_id = await create(client, console, title="Course", pricing="recurring", amount="30", interval_months="1")
    resell = f"{console}/{offer_id}/resell"
    common = {"resell_window_days": "30", "resell_hold_days": "14", "resell_description": "Share it"}
    saved = await post_form(
        client, resell, resell_enabled="on", commission_kind="percent", resell_commission_bps="12.5",
        resell_commission_flat="3", resell_earns="months", resell_earn_months="6", resell_min_payout="25", **common,
    )
    assert saved.status_code == 303
    offer = await api_offer(client, owner, community, offer_id)
    assert (offer["resell_commission_bps"], offer["resell_commission_flat"], offer["resell_earn_months"]) == (1250, None, 6)
    assert (offer["resell_min_payout"], offer["resell_hold_days"]) == (2500, 14)
    page = await client.get(resell)
    assert 'value="12.5"' in page.text and 'value="25.00"' in page.text

    flat = await post_form(client, resell, resell_enabled="on", commission_kind="amount", resell_commission_flat="40", resell_earns="all", **common)
    assert flat.status_code == 422 and error_of(flat, "resell_commission_flat") == "the flat commission cannot exceed the offer's amount"
    none = await post_form(client, resell, resell_enabled="on", commission_kind="percent", resell_commission_bps="", resell_earns="all", **common)
    assert none.status_code == 422 and "resell rights need a commission" in error_of(none, "resell_commission_bps")
    over = await post_form(client, resell, resell_enabled="on", commission_kind="percent", resell_commission_bps="101", resell_earns="all", **common)
    assert over.status_code == 422 and error_of(over, "resell_commission_bps") == "must be between 0.01% and 100%"
    ok = await post_form(client, resell, resell_enabled="on", commission_kind="amount", resell_commission_flat="4.99", resell_earns="all", **common)
    assert ok.status_code == 303
    offer = await api_offer(client, owner, community, offer_id)
    assert (offer["resell_commission_bps"], offer["resell_commission_flat"], offer["resell_earns"]) == (None, 499, "all")


async def test_destination_email_code_and_landing_sections(client, owner, community, console) -> None:
    offer_id = await create(client, console, title="Club", pricing="free")
    base = f"{console}/{offer_id}"

    not_https = await post_form(client, f"{base}/destination", custom_link="on", destination_url="ftp://example.com/x")
    assert not_https.status_code == 422 and error_of(not_https, "destination_url") == "must be an absolute https:// URL"
    missing = await post_form(client, f"{base}/destination", custom_link="on", destination_url="")
    assert missing.status_code == 422 and error_of(missing, "destination_url") == "a custom_url destination needs the URL"
    assert (await post_form(client, f"{base}/destination", custom_link="on", destination_url="https://example.com/welcome")).status_code == 303
    offer = await api_offer(client, owner, community, offer_id)
    assert (offer["destination"], offer["destination_url"]) == ("custom_url", "https://example.com/welcome")
    assert (await post_form(client, f"{base}/destination", destination_url="https://example.com/welcome")).status_code == 303
    assert (await api_offer(client, owner, community, offer_id))["destination"] == "platform"

    broken = await post_form(client, f"{base}/email", confirmation_subject="Hi {{ buyer_name", confirmation_body="")
    assert broken.status_code == 422 and error_of(broken, "confirmation_subject").startswith("is not a valid template")
    preview = await post_form(client, f"{base}/email", action="preview", confirmation_subject="Welcome, {{ buyer_name }}", confirmation_body="You joined {{ offer_title }} in {{ community_name }}.")
    assert preview.status_code == 200 and "Welcome, Alex Sample" in preview.text and "You joined Club in" in preview.text
    assert (await api_offer(client, owner, community, offer_id))["confirmation_subject"] == ""  # a preview saves nothing
    escaped = await post_form(client, f"{base}/email", action="preview", confirmation_subject="x", confirmation_body="<b>{{ offer_title }}</b> {{ ''.__class__ }}")
    assert "&lt;b&gt;Club&lt;/b&gt;" in escaped.text and "<b>Club</b>" not in escaped.text

    assert (await post_form(client, f"{base}/code", checkout_code_head="<script>window.x=1</script>", checkout_code_body="<p>hi</p>")).status_code == 303
    assert (await api_offer(client, owner, community, offer_id))["checkout_code_head"] == "<script>window.x=1</script>"
    code_page = await client.get(f"{base}/code")
    assert "&lt;script&gt;window.x=1&lt;/script&gt;" in code_page.text and "<script>window.x=1" not in code_page.text

    two_lines = await post_form(client, f"{base}/landing", **{"landing_page.enabled": "on", "landing_page.headline": "a\nb"})
    assert two_lines.status_code == 422 and error_of(two_lines, "landing_page.headline")
    shown = await post_form(client, f"{base}/landing", action="preview", **{"landing_page.body": "**Strong** <script>x()</script>"})
    assert "<strong>Strong</strong>" in shown.text and "<script>x()" not in shown.text
    saved = await post_form(client, f"{base}/landing", **{"landing_page.headline": "Join", "landing_page.body": "Body", "landing_page.call_to_action": "Go"})
    assert saved.status_code == 303
    assert (await api_offer(client, owner, community, offer_id))["landing_page"] == {"headline": "Join", "body": "Body", "call_to_action": "Go", "enabled": False}


async def test_images_upload_preview_and_remove(client, owner, community, console) -> None:
    offer_id = await create(client, console, title="Pictured", pricing="free")
    images = f"{console}/{offer_id}/images"
    token = CSRF.search((await client.get(images)).text).group(1)
    wrong = await client.post(f"{images}/thumbnail", data={"_csrf_token": token}, files={"thumbnail": ("x.gif", b"GIF89a....", "image/png")})
    assert wrong.status_code == 422 and error_of(wrong, "thumbnail") == "must be a PNG, JPEG or WebP image"
    done = await client.post(f"{images}/thumbnail", data={"_csrf_token": token}, files={"thumbnail": ("t.png", png_bytes(), "image/png")})
    assert done.status_code == 303, done.text
    url = (await api_offer(client, owner, community, offer_id))["thumbnail_url"]
    assert url and url in (await client.get(images)).text
    assert (await client.get(url)).content == png_bytes()
    no_token = await client.post(f"{images}/cover", files={"cover": ("c.png", png_bytes(), "image/png")})
    assert no_token.status_code == 403  # CSRF on the upload form too
    removed = await client.post(f"{images}/thumbnail/remove", data={"_csrf_token": token})
    assert removed.status_code == 303
    assert (await api_offer(client, owner, community, offer_id))["thumbnail_url"] is None


async def test_status_rules_are_explained_when_refused(client, owner, community, console) -> None:
    offer_id = await create(client, console, title="Paid", pricing="one_time", amount="10")
    status = f"{console}/{offer_id}/status"
    refused = await post_form(client, status, status="published")
    assert refused.status_code == 409
    assert error_of(refused, "status") == "a paid offer can be published once the community's Stripe account can take charges"
    assert f'href="/dashboard/communities/{community["id"]}/stripe" id="setup-payments"' in refused.text
    free_id = await create(client, console, title="Free", pricing="free")
    assert (await post_form(client, f"{console}/{free_id}/status", status="published")).status_code == 303
    assert (await api_offer(client, owner, community, free_id))["status"] == "published"
    assert (await post_form(client, f"{console}/{free_id}/status", status="archived")).status_code == 303
    assert (await post_form(client, f"{console}/{free_id}/status", status="draft")).status_code == 303
    assert (await api_offer(client, owner, community, free_id))["status"] == "draft"

    confirm = await client.get(f"{console}/{free_id}/delete")
    assert "Nobody has ever held this offer" in confirm.text
    gone = await post_form(client, f"{console}/{free_id}/delete")
    assert gone.status_code == 303 and gone.headers["location"] == console
    assert (await client.get(f"{API}/communities/{community['id']}/offers/{free_id}", headers=owner.headers)).status_code == 404


async def test_managers_read_and_strangers_see_nothing(client, owner, community, console) -> None:
    offer_id = await create(client, console, title="Guarded", pricing="free")
    await sign_up(client, "manny@example.com")
    made = await client.put(f"{API}/communities/{community['id']}/staff", json={"email": "manny@example.com", "role": "manager"}, headers=owner.headers)
    assert made.status_code in (200, 201)
    stranger = await sign_up(client, "stranger@example.com")
    elsewhere = await create_community(client, stranger, "Elsewhere")

    client.cookies.clear()
    await log_in_pages(client, Account(0, "manny@example.com", ""))
    listing = await client.get(console)
    assert listing.status_code == 200 and "Guarded" in listing.text and "New offer" not in listing.text
    page = await client.get(f"{console}/{offer_id}")
    assert page.status_code == 200 and "<fieldset class=\"plain\" disabled>" in page.text
    token = CSRF.search(page.text).group(1)
    refused = await client.post(f"{console}/{offer_id}", data={"_csrf_token": token, "title": "Mine", "pricing": "free", "currency": "USD"})
    assert refused.status_code == 403
    assert (await client.get(f"{console}/new")).status_code == 403

    client.cookies.clear()
    await log_in_pages(client, stranger)
    assert (await client.get(console)).status_code == 404
    assert (await client.get(f"{console}/{offer_id}")).status_code == 404
    # Their own community's console does not reach the offer through its id either.
    assert (await client.get(f"/dashboard/communities/{elsewhere['id']}/offers/{offer_id}")).status_code == 404
    assert (await client.get(f"/dashboard/communities/{elsewhere['id']}/offers/{offer_id}/preview")).status_code == 404
