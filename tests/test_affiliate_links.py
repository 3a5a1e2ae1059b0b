"""Resell programs, part one: program settings on offers, enrolment, owners suspending and
reinstating, /r/{code} and ?ref= clicks (batched, a visitor's repeat within the hour counted
once, nothing lost on a graceful shutdown), the signed attribution cookie, the window and
last-click-wins at checkout, the attribution in the Stripe session, the affiliate's figures."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from community.affiliates.links import ClickRecorder, Target
from community.affiliates.models import Click
from community.app import create_app
from community.billing.models import Checkout
from tests.checkout_helpers import (
    API,
    CSRF,
    community_origin,
    connect_stripe,
    make_group,
    offer_for_sale,
    offer_path,
    submit_checkout,
)
from tests.conftest import Account, StripeFixture, running, sign_up
from tests.test_access import comp

PROGRAM = {
    "resell_enabled": True,
    "resell_commission_bps": 2000,
    "resell_description": "Earn 20% of every first payment",
    "landing_page": {"headline": "Pro", "body": "All the things"},
}
DAY = 86400


def visitor_client(app: Litestar, address: str = "198.51.100.9") -> httpx.AsyncClient:
    """A browser: its own address, cookies kept, redirects not followed."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 5000)), base_url="http://testserver")
    client.headers["user-agent"] = f"test-browser/{secrets.token_hex(4)}"  # a new visitor in each test
    return client


async def click_count(sessions, affiliate_id: int) -> int:
    async with sessions() as s:
        return await s.scalar(select(func.count()).select_from(Click).where(Click.affiliate_id == affiliate_id))


async def enrol(client: httpx.AsyncClient, account: Account, offer_id: int) -> dict[str, Any]:
    response = await client.post(f"{API}/me/affiliates", json={"offer_id": offer_id}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(autouse=True)
async def clicks_written(app: Litestar):
    """The session's app keeps one click buffer: each test's clicks are written before the
    next test empties the tables."""
    yield
    await app.state.clicks.flush()


@pytest.fixture
async def shop(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], stripe_env: StripeFixture) -> dict[str, Any]:
    """A published offer with a resell program, and two buyers of it enrolled as affiliates."""
    await connect_stripe(client, owner, community["id"], stripe_env.sandbox)
    group = await make_group(client, owner, community["id"], "Workshop")
    offer = await offer_for_sale(client, owner, community["id"], groups=[group], **PROGRAM)
    affiliates = []
    for name in ("ann", "ben"):
        account = await sign_up(client, f"{name}@example.com")
        await comp(client, owner, community["id"], offer["id"], f"{name}@example.com")
        affiliates.append((account, await enrol(client, account, offer["id"])))
    return {
        "community": community, "offer": offer, "group": group, "affiliates": affiliates,
        "origin": community_origin(community["slug"]),  # where its links and offer pages answer
        "path": offer_path(community, offer),  # the landing page there
        "page": f"/o/{community['slug']}/{offer['slug']}",  # the same, as a link's redirect names it
    }


async def checkout_of(sessions, email: str) -> Checkout:
    async with sessions() as s:
        return (await s.scalars(select(Checkout).where(Checkout.email == email))).one()


# ---------------------------------------------------------------- program settings


async def test_program_settings_have_defaults_and_bounds(client: httpx.AsyncClient, owner: Account, community: dict[str, Any]) -> None:
    base = f"{API}/communities/{community['id']}/offers"
    paid = {"title": "Pass", "pricing": "one_time", "amount": 4900, "resell_enabled": True, "resell_commission_bps": 1000}
    offer = (await client.post(base, json=paid, headers=owner.headers)).json()
    settings = {k: offer[k] for k in ("resell_earns", "resell_earn_months", "resell_window_days", "resell_hold_days", "resell_min_payout")}
    assert settings == {"resell_earns": "first", "resell_earn_months": None, "resell_window_days": 30, "resell_hold_days": 30, "resell_min_payout": 0}

    monthly = {"title": "Monthly", "pricing": "recurring", "amount": 1500, "interval_months": 1, "resell_enabled": True, "resell_commission_flat": 300}
    sub = await client.post(base, json={**monthly, "resell_earns": "months", "resell_earn_months": 6, "resell_window_days": 365, "resell_hold_days": 0, "resell_min_payout": 5000}, headers=owner.headers)
    assert sub.status_code == 201, sub.text
    assert (sub.json()["resell_earns"], sub.json()["resell_earn_months"], sub.json()["resell_window_days"]) == ("months", 6, 365)
    changed = await client.patch(f"{base}/{sub.json()['id']}", json={"resell_earns": "all"}, headers=owner.headers)
    assert (changed.json()["resell_earns"], changed.json()["resell_earn_months"]) == ("all", None)  # months mean nothing now

    for body, field in [
        ({**paid, "resell_window_days": 0}, "resell_window_days"),
        ({**paid, "resell_window_days": 366}, "resell_window_days"),
        ({**paid, "resell_hold_days": -1}, "resell_hold_days"),
        ({**paid, "resell_min_payout": -1}, "resell_min_payout"),
        ({**paid, "resell_earns": "sometimes"}, "resell_earns"),
        ({**paid, "resell_earns": "months", "resell_earn_months": 3}, "resell_earns"),  # a one-time offer has no months
        ({**monthly, "resell_earns": "months"}, "resell_earn_months"),
        ({**monthly, "resell_earns": "all", "resell_earn_months": 3}, "resell_earn_months"),
        ({**monthly, "resell_earns": "months", "resell_earn_months": 0}, "resell_earn_months"),
    ]:
        response = await client.post(base, json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], (body, response.text)


# ---------------------------------------------------------------- enrolment and owners


async def test_only_holders_opt_in_and_get_one_link(client: httpx.AsyncClient, owner: Account, shop: dict[str, Any], settings) -> None:
    account, mine = shop["affiliates"][0]
    assert mine["link"] == f"{community_origin(shop['community']['slug'])}/r/{mine['code']}"  # its community's origin
    assert mine["program_description"] == PROGRAM["resell_description"]
    assert (mine["status"], mine["clicks"], mine["sales"]) == ("active", 0, 0)
    zeros = dict.fromkeys(("sales", "rejected", "revenue", "pending", "approved", "paid", "reversed"), 0)
    assert mine["earnings"] == [{"currency": mine["currency"], **zeros}]  # nothing yet, in the offer's currency
    assert len(mine["days"]) == 30
    assert await enrol(client, account, shop["offer"]["id"]) == mine  # asking again: the same link
    assert mine["code"] != shop["affiliates"][1][1]["code"]

    stranger = await sign_up(client, "stranger@example.com")  # holds nothing
    response = await client.post(f"{API}/me/affiliates", json={"offer_id": shop["offer"]["id"]}, headers=stranger.headers)
    assert response.status_code == 404
    assert (await client.get(f"{API}/me/affiliates/{mine['id']}", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"{API}/me/affiliates", headers=stranger.headers)).json() == []

    # A program switched off takes no new affiliates.
    base = f"{API}/communities/{shop['community']['id']}"
    await client.patch(f"{base}/offers/{shop['offer']['id']}", json={"resell_enabled": False}, headers=owner.headers)
    await sign_up(client, "late@example.com")
    await comp(client, owner, shop["community"]["id"], shop["offer"]["id"], "late@example.com")
    late = (await client.post(f"{API}/auth/login", json={"email": "late@example.com", "password": "correct horse battery"})).json()
    response = await client.post(f"{API}/me/affiliates", json={"offer_id": shop["offer"]["id"]}, headers={"Authorization": f"Bearer {late['secret']}"})
    assert response.status_code == 409, response.text


async def test_owners_list_suspend_and_reinstate(client: httpx.AsyncClient, owner: Account, shop: dict[str, Any]) -> None:
    base = f"{API}/communities/{shop['community']['id']}/affiliates"
    listed = (await client.get(base, headers=owner.headers)).json()
    assert [a["email"] for a in listed["items"]] == ["ann@example.com", "ben@example.com"]
    ann = listed["items"][0]
    suspended = await client.post(f"{base}/{ann['id']}/suspend", headers=owner.headers)
    assert (suspended.json()["status"], suspended.json()["suspended_at"] is not None) == ("suspended", True)
    assert [a["id"] for a in (await client.get(f"{base}?status=suspended", headers=owner.headers)).json()["items"]] == [ann["id"]]
    reinstated = await client.post(f"{base}/{ann['id']}/reinstate", headers=owner.headers)
    assert (reinstated.json()["status"], reinstated.json()["suspended_at"]) == ("active", None)
    # An affiliate (a buyer, not staff) may not.
    account, _ = shop["affiliates"][0]
    assert (await client.post(f"{base}/{ann['id']}/suspend", headers=account.headers)).status_code == 403


# ---------------------------------------------------------------- links and clicks


async def test_a_link_counts_a_click_and_sets_a_signed_cookie(app: Litestar, sessions, shop: dict[str, Any]) -> None:
    _, ann = shop["affiliates"][0]
    async with visitor_client(app) as browser:
        response = await browser.get(f"{shop['origin']}/r/{ann['code']}", headers={"referer": "https://blog.example/post"})
        assert response.status_code == 302
        assert response.headers["location"] == shop["page"]  # the landing page (it has one), on this origin
        cookie = browser.cookies.get(f"ref_{shop['offer']['id']}")
        assert cookie and cookie.startswith(f"{ann['id']}.{shop['offer']['id']}.")
        set_cookies = response.headers.get_list("set-cookie")
        assert [c.split("=")[0] for c in set_cookies] == ["community_vid", f"ref_{shop['offer']['id']}"]
        assert all("HttpOnly" in c and "SameSite=Lax" in c for c in set_cookies)  # no session, no CSRF cookie
        assert (await browser.get("/r/nosuchcode")).status_code == 404
    assert await click_count(sessions, ann["id"]) == 0  # buffered, not written by the request
    await app.state.clicks.flush()
    async with sessions() as s:
        row = (await s.scalars(select(Click).where(Click.affiliate_id == ann["id"]))).one()
    assert (row.offer_id, row.community_id, row.referrer) == (shop["offer"]["id"], shop["community"]["id"], "https://blog.example/post")
    assert row.user_agent.startswith("test-browser/") and len(row.visitor_hash) == len(row.ip_hash) == 32
    assert "198.51.100.9" not in row.ip_hash


async def test_ref_on_the_landing_page_counts_like_a_link(app: Litestar, sessions, shop: dict[str, Any], client, owner) -> None:
    _, ann = shop["affiliates"][0]
    async with visitor_client(app) as browser:
        page = await browser.get(f"{shop['path']}?ref={ann['code']}")
        assert page.status_code == 200
        assert browser.cookies.get(f"ref_{shop['offer']['id']}", "").startswith(f"{ann['id']}.")
        # A code of another offer on this page counts nothing.
        other = await offer_for_sale(client, owner, shop["community"]["id"], groups=[shop["group"]], title="Other")
        other_page = await browser.get(f"{offer_path(shop['community'], other)}?ref={ann['code']}")
        assert other_page.status_code in (200, 302)
        assert browser.cookies.get(f"ref_{other['id']}") is None
    await app.state.clicks.flush()
    assert await click_count(sessions, ann["id"]) == 1


async def test_repeated_clicks_within_an_hour_count_once(app: Litestar, sessions, shop: dict[str, Any]) -> None:
    (_, ann), (_, ben) = shop["affiliates"]
    async with visitor_client(app) as browser, visitor_client(app, "198.51.100.10") as cookieless:
        for _ in range(3):
            assert (await browser.get(f"{shop['origin']}/r/{ann['code']}")).status_code == 302
            cookieless.cookies.clear()  # refuses cookies: known by address and browser
            assert (await cookieless.get(f"{shop['origin']}/r/{ann['code']}")).status_code == 302
        await browser.get(f"{shop['origin']}/r/{ben['code']}")  # another link is another click
    await app.state.clicks.flush()
    assert await click_count(sessions, ann["id"]) == 2
    assert await click_count(sessions, ben["id"]) == 1


async def test_an_hour_later_the_same_visitor_counts_again_and_workers_agree(app: Litestar, engine, sessions, shop: dict[str, Any]) -> None:
    """Two recorders stand for two worker processes: each has its own memory, and the flush
    still writes a visitor's repeat within the hour only once."""
    _, ann = shop["affiliates"][0]
    target = Target(ann["id"], shop["community"]["id"], shop["offer"]["id"], shop["page"], 30, shop["community"]["slug"])
    one, two = ClickRecorder(), ClickRecorder()
    one.start(engine)
    two.start(engine)
    try:
        start = time.time() - 7200
        assert one.record(target, "v" * 32, "a" * 32, "ua", "", start)
        assert not one.record(target, "v" * 32, "a" * 32, "ua", "", start + 3599)
        assert one.record(target, "v" * 32, "a" * 32, "ua", "", start + 3600)
        await one.flush()
        assert two.record(target, "v" * 32, "a" * 32, "ua", "", start + 3700)  # the other worker has not seen it
        await two.flush()
    finally:
        await one.stop()
        await two.stop()
    assert await click_count(sessions, ann["id"]) == 2


async def test_a_graceful_shutdown_loses_no_click(settings, sessions, shop: dict[str, Any]) -> None:
    _, ann = shop["affiliates"][0]
    app = create_app(settings)
    async with running(app):
        for n in range(40):
            async with visitor_client(app, f"192.0.2.{n + 1}") as browser:
                assert (await browser.get(f"{shop['origin']}/r/{ann['code']}")).status_code == 302
        assert app.state.clicks.pending > 0  # still in memory when the shutdown begins
    assert await click_count(sessions, ann["id"]) == 40


async def test_clicks_are_written_within_a_second_without_a_flush_call(app: Litestar, sessions, shop: dict[str, Any]) -> None:
    """What a crash can lose: at most the clicks of the last flush interval."""
    import asyncio

    _, ann = shop["affiliates"][0]
    async with visitor_client(app) as browser:
        await browser.get(f"{shop['origin']}/r/{ann['code']}")
    deadline = time.monotonic() + 1.5
    while await click_count(sessions, ann["id"]) == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await click_count(sessions, ann["id"]) == 1


# ---------------------------------------------------------------- attribution at checkout


async def test_the_last_click_wins_and_travels_to_stripe(app: Litestar, sessions, shop: dict[str, Any], stripe_env: StripeFixture) -> None:
    (_, ann), (_, ben) = shop["affiliates"]
    async with visitor_client(app) as browser:
        await browser.get(f"{shop['origin']}/r/{ann['code']}")
        await browser.get(f"{shop['origin']}/r/{ben['code']}")
        response = await submit_checkout(browser, shop["path"], email="buyer@example.com", name="Buyer")
        assert response.status_code == 303, response.text
    checkout = await checkout_of(sessions, "buyer@example.com")
    assert checkout.affiliate_id == ben["id"]
    assert abs(checkout.affiliate_clicked_at.timestamp() - time.time()) < 60
    metadata = stripe_env.sandbox.get(checkout.stripe_session_id)["metadata"]
    assert metadata["affiliate_id"] == str(ben["id"])
    assert metadata["affiliate_clicked_at"] == str(int(checkout.affiliate_clicked_at.timestamp()))


@pytest.mark.parametrize(
    ("age_seconds", "attributed"),
    [(30 * DAY - 60, True), (30 * DAY + 60, False), (-60, True), (-3600, False)],  # inside, past the window, small skew, future
)
async def test_the_window_edges(app: Litestar, sessions, shop: dict[str, Any], age_seconds: int, attributed: bool) -> None:
    _, ann = shop["affiliates"][0]
    offer_id = shop["offer"]["id"]
    value = app.state.affiliate_keys.attribution_value(ann["id"], offer_id, time.time() - age_seconds)
    async with visitor_client(app) as browser:
        browser.cookies.set(f"ref_{offer_id}", value)
        assert (await submit_checkout(browser, shop["path"], email="buyer@example.com")).status_code == 303
    assert (await checkout_of(sessions, "buyer@example.com")).affiliate_id == (ann["id"] if attributed else None)


async def test_the_window_is_the_offers_current_one(app: Litestar, client, owner, sessions, shop: dict[str, Any]) -> None:
    _, ann = shop["affiliates"][0]
    offer_id = shop["offer"]["id"]
    await client.patch(f"{API}/communities/{shop['community']['id']}/offers/{offer_id}", json={"resell_window_days": 1}, headers=owner.headers)
    value = app.state.affiliate_keys.attribution_value(ann["id"], offer_id, time.time() - 2 * DAY)
    async with visitor_client(app) as browser:
        browser.cookies.set(f"ref_{offer_id}", value)
        await submit_checkout(browser, shop["path"], email="buyer@example.com")
    assert (await checkout_of(sessions, "buyer@example.com")).affiliate_id is None


async def test_forged_or_foreign_cookies_attribute_nothing(app: Litestar, client, owner, sessions, shop: dict[str, Any]) -> None:
    (_, ann), (_, ben) = shop["affiliates"]
    offer_id = shop["offer"]["id"]
    keys = app.state.affiliate_keys
    other = await offer_for_sale(client, owner, shop["community"]["id"], groups=[shop["group"]], title="Other", **PROGRAM)
    genuine = keys.attribution_value(ann["id"], offer_id, time.time())
    forged = genuine.replace(f"{ann['id']}.", f"{ben['id']}.", 1)  # another affiliate, the same signature
    for n, value in enumerate([forged, "garbage", keys.attribution_value(ann["id"], other["id"], time.time())]):
        async with visitor_client(app) as browser:
            browser.cookies.set(f"ref_{offer_id}", value)
            await submit_checkout(browser, shop["path"], email=f"buyer{n}@example.com")
        assert (await checkout_of(sessions, f"buyer{n}@example.com")).affiliate_id is None, value


async def test_a_suspended_affiliates_link_still_leads_to_the_offer(app: Litestar, client, owner, sessions, shop: dict[str, Any]) -> None:
    """It redirects and the checkout still says whose link it was: the commission (rejected,
    with its reason) is decided when the payment comes."""
    _, ann = shop["affiliates"][0]
    await client.post(f"{API}/communities/{shop['community']['id']}/affiliates/{ann['id']}/suspend", headers=owner.headers)
    async with visitor_client(app) as browser:
        response = await browser.get(f"{shop['origin']}/r/{ann['code']}")
        assert (response.status_code, response.headers["location"]) == (302, shop["page"])
        assert (await submit_checkout(browser, shop["path"], email="buyer@example.com")).status_code == 303
    assert (await checkout_of(sessions, "buyer@example.com")).affiliate_id == ann["id"]
    mine = await client.get(f"{API}/me/affiliates/{ann['id']}", headers=shop["affiliates"][0][0].headers)
    assert mine.json()["status"] == "suspended"


# ---------------------------------------------------------------- the affiliate's figures


async def test_the_affiliate_sees_clicks_per_day_and_a_chart(app: Litestar, client, sessions, shop: dict[str, Any]) -> None:
    account, ann = shop["affiliates"][0]
    for n in range(3):
        async with visitor_client(app, f"192.0.2.{n + 1}") as browser:
            await browser.get(f"{shop['origin']}/r/{ann['code']}")
    await app.state.clicks.flush()
    mine = (await client.get(f"{API}/me/affiliates/{ann['id']}", headers=account.headers)).json()
    assert (mine["clicks"], mine["sales"], mine["conversion_rate"]) == (3, 0, 0.0)
    assert mine["days"][-1]["clicks"] == 3 and sum(d["clicks"] for d in mine["days"]) == 3
    assert [p["id"] for p in (await client.get(f"{API}/me/affiliates", headers=account.headers)).json()] == [ann["id"]]

    async with visitor_client(app) as browser:
        token = CSRF.search((await browser.get("/login")).text).group(1)
        login = await browser.post("/login", data={"_csrf_token": token, "email": "ann@example.com", "password": "correct horse battery"})
        assert login.status_code in (302, 303), login.text
        page = await browser.get(f"/affiliates/{ann['id']}")
        assert page.status_code == 200, page.text
        assert ann["link"] in page.text and "<svg" in page.text and 'id="clicks">3<' in page.text
        programs = await browser.get("/affiliates")
        assert f'href="/affiliates/{ann["id"]}"' in programs.text


async def test_links_live_on_their_communitys_origin(settings, sessions, shop: dict[str, Any]) -> None:
    """With a COMMUNITY_PAGES_URL pattern, a link asked for on the platform moves to its
    community's origin, where its cookie is set and where checkout reads it."""
    import dataclasses

    _, ann = shop["affiliates"][0]
    pages = f"http://{shop['community']['slug']}.pages.testserver"
    patterned = dataclasses.replace(settings, pages_url="http://{community}.pages.testserver")
    async with running(create_app(patterned)) as app, visitor_client(app) as browser:
        moved = await browser.get(f"/r/{ann['code']}?utm_source=news")
        assert (moved.status_code, moved.headers["location"]) == (308, f"{pages}/r/{ann['code']}?utm_source=news")
        assert "set-cookie" not in moved.headers  # nothing set on the platform's origin
        followed = await browser.get(moved.headers["location"])
        assert (followed.status_code, followed.headers["location"]) == (302, shop["page"])
        assert (await submit_checkout(browser, f"{pages}{shop['page']}", email="far@example.com")).status_code == 303
    assert (await checkout_of(sessions, "far@example.com")).affiliate_id == ann["id"]
    assert await click_count(sessions, ann["id"]) == 1  # written by that app's shutdown


async def test_odd_cookies_and_codes_are_ignored_not_errors(app: Litestar, sessions, shop: dict[str, Any]) -> None:
    """A browser can hold any bytes in a cookie, and any text can follow /r/ or ?ref=: none of
    it attributes, and none of it is a server error."""
    offer_id = shop["offer"]["id"]
    for n, value in enumerate(["1.2.3.\u00e9\u00e9".encode(), b"1.2.3." + b"x" * 4000]):
        async with visitor_client(app) as browser:
            page = await browser.get(f"{shop['path']}/checkout")
            token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
            jar = "; ".join(f"{name}={kept}" for name, kept in browser.cookies.items()).encode()
            response = await browser.post(
                f"{shop['path']}/checkout", data={"_csrf_token": token, "email": f"odd{n}@example.com"},
                headers=[(b"cookie", jar + f"; ref_{offer_id}=".encode() + value)],  # raw bytes, as a browser may send
            )
            assert response.status_code == 303, response.text
        assert (await checkout_of(sessions, f"odd{n}@example.com")).affiliate_id is None
    async with visitor_client(app) as browser:
        for code in ["%00", "a%00b", "%C3%A9", "x" * 300]:
            assert (await browser.get(f"/r/{code}")).status_code == 404, code
            assert (await browser.get(f"{shop['path']}?ref={code}")).status_code == 200, code


async def test_joining_with_an_odd_offer_id_is_refused_not_an_error(app: Litestar, client, owner, shop: dict[str, Any]) -> None:
    """The join form's offer id is whatever the browser posts: digits Python's isdigit knows but
    int() refuses ("²"), or more digits than int() will read, answer 422 like any other."""
    await sign_up(client, "cat@example.com")
    async with visitor_client(app) as browser:
        token = CSRF.search((await browser.get("/login")).text).group(1)  # type: ignore[union-attr]
        login = await browser.post("/login", data={"_csrf_token": token, "email": "cat@example.com", "password": "correct horse battery"})
        assert login.status_code in (302, 303), login.text
        for odd in ["\u00b2", "9" * 5000, "0"]:
            response = await browser.post("/affiliates/join", data={"_csrf_token": token, "offer_id": odd})
            assert response.status_code == 422, (odd[:10], response.status_code)
