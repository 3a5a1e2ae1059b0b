"""An origin per community for everything that carries owner code: which host answers which
path (the platform's, community A's, community B's), the URLs the product builds for offer
pages, the cookies each origin sees, and COMMUNITY_PAGES_URL at start-up."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from community.app import create_app
from community.billing.models import Checkout
from community.db import session_factory
from community.settings import Settings, SettingsError
from tests.checkout_helpers import (
    API,
    CSRF,
    community_origin,
    connect_stripe,
    make_group,
    offer_for_sale,
    submit_checkout,
)
from tests.conftest import Account, StripeFixture, create_community, running, sign_up
from tests.images import png_bytes
from tests.test_access import comp

PLATFORM = "http://testserver"
OWNER_CODE = '<script id="owner-code">window.ownerCode = 1;</script>'


@pytest.fixture
async def two(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], stripe_env: StripeFixture) -> dict[str, Any]:
    """Community A (a paid offer with a resell program and a picture, a free one, an affiliate)
    and community B (a free offer) of another owner."""
    await connect_stripe(client, owner, community["id"], stripe_env.sandbox)
    group = await make_group(client, owner, community["id"], "Workshop")
    paid = await offer_for_sale(
        client, owner, community["id"], groups=[group], title="Pro", checkout_code_head=OWNER_CODE,
        landing_page={"headline": "Pro"}, resell_enabled=True, resell_commission_bps=1000,
    )
    free = await offer_for_sale(client, owner, community["id"], groups=[group], title="Taster", pricing="free", amount=None, currency=None)
    upload = await client.put(
        f"{API}/communities/{community['id']}/offers/{paid['id']}/thumbnail", content=png_bytes(),
        headers={**owner.headers, "content-type": "image/png"},
    )
    assert upload.status_code == 200, upload.text
    affiliate = await sign_up(client, "ann@example.com")
    await comp(client, owner, community["id"], paid["id"], affiliate.email)
    link = await client.post(f"{API}/me/affiliates", json={"offer_id": paid["id"]}, headers=affiliate.headers)
    assert link.status_code == 201, link.text

    other_owner = await sign_up(client, "bob@example.com")
    b = await create_community(client, other_owner, "Bakers Club")
    b_group = await make_group(client, other_owner, b["id"], "Breads")
    b_offer = await offer_for_sale(client, other_owner, b["id"], groups=[b_group], title="Bread", pricing="free", amount=None, currency=None)
    a_slug, b_slug = community["slug"], b["slug"]
    return {
        "a": community, "b": b, "paid": paid, "free": free, "b_offer": b_offer, "link": link.json(), "affiliate": affiliate,
        "A": community_origin(a_slug), "B": community_origin(b_slug),
        "landing": f"/o/{a_slug}/{paid['slug']}", "free_page": f"/o/{a_slug}/{free['slug']}",
        "thumbnail": upload.json()["thumbnail_url"],
    }


def fresh(app: Litestar) -> httpx.AsyncClient:
    """A browser of its own: its own cookies, redirects not followed."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 5000)), base_url=PLATFORM)


async def fulfilled_free_checkout(app: Litestar, two: dict[str, Any], sessions) -> Checkout:
    async with fresh(app) as browser:
        done = await submit_checkout(browser, f"{two['A']}{two['free_page']}", email="taster@example.com")
        assert done.status_code == 303 and done.headers["location"].startswith(f"{PLATFORM}/checkout/"), done.text
    async with sessions() as session:
        return (await session.scalars(select(Checkout).where(Checkout.email == "taster@example.com"))).one()


def moved(response: httpx.Response, to: str) -> None:
    assert (response.status_code, response.headers.get("location")) == (308, to), (response.request.url, response.status_code, response.text[:200])
    assert "set-cookie" not in response.headers  # nothing set where the request did not belong


# ---------------------------------------------------------------- routing between the origins


async def test_offer_pages_answer_only_on_their_communitys_origin(app: Litestar, two: dict[str, Any]) -> None:
    A, B = two["A"], two["B"]
    for path in (two["landing"], f"{two['landing']}/checkout", f"{two['landing']}?utm_source=mail&x=%2F"):
        async with fresh(app) as browser:
            moved(await browser.get(f"{PLATFORM}{path}"), f"{A}{path}")
            moved(await browser.get(f"{B}{path}"), f"{A}{path}")  # never on another community's origin
            page = await browser.get(f"{A}{path}")
            assert page.status_code == 200 and OWNER_CODE in page.text, path
    # The forms post where they were served; a post that went astray moves with its body (308).
    async with fresh(app) as browser:
        for host in (PLATFORM, B):
            moved(await browser.post(f"{host}{two['landing']}/checkout", data={"email": "x@example.com"}), f"{A}{two['landing']}/checkout")
            moved(await browser.post(f"{host}{two['landing']}/quote", json={"code": ""}), f"{A}{two['landing']}/quote")
        started = await submit_checkout(browser, f"{A}{two['landing']}", email="buyer@example.com")
        assert started.status_code == 303, started.text
    # A slug that cannot name a community moves nowhere: the app answers 404 on any host.
    async with fresh(app) as browser:
        for host in (PLATFORM, A):
            assert (await browser.get(f"{host}/o/Not_A_Slug/{two['paid']['slug']}")).status_code == 404


async def test_the_landing_page_links_to_checkout_on_its_origin_and_login_on_the_platform(app: Litestar, two: dict[str, Any]) -> None:
    async with fresh(app) as browser:
        landing = await browser.get(f"{two['A']}{two['landing']}")
        assert f'href="{two["A"]}{two["landing"]}/checkout"' in landing.text
        # A thumbnail is the platform's media, and media also answer on a community's origin.
        assert f'src="{two["thumbnail"]}"' in landing.text and two["thumbnail"].startswith(f"{PLATFORM}/media/")
        first = await submit_checkout(browser, f"{two['A']}{two['free_page']}", email="ann@example.com")
        assert first.status_code == 303
        again = await submit_checkout(browser, f"{two['A']}{two['free_page']}", email="ann@example.com")  # holds it now
        assert again.status_code == 409 and f'href="{PLATFORM}/login"' in again.text  # "log in" leads to the platform


async def test_thanks_moves_to_its_communitys_origin_after_a_lookup(app: Litestar, two: dict[str, Any], sessions) -> None:
    checkout = await fulfilled_free_checkout(app, two, sessions)
    path = f"/checkout/{checkout.token}/thanks"
    async with fresh(app) as browser:
        moved(await browser.get(f"{PLATFORM}{path}"), f"{two['A']}{path}")
        moved(await browser.get(f"{two['B']}{path}"), f"{two['A']}{path}")
        thanks = await browser.get(f"{two['A']}{path}")
        assert thanks.status_code == 200 and '"offer": "Taster"' in thanks.text
        for host in (PLATFORM, two["A"], two["B"]):  # a token that names nothing: 404 wherever it is asked
            assert (await browser.get(f"{host}/checkout/{'x' * 43}/thanks")).status_code == 404


async def test_completion_stays_on_the_platform_and_sends_to_thanks_on_the_community(app: Litestar, two: dict[str, Any]) -> None:
    async with fresh(app) as browser:
        done = await submit_checkout(browser, f"{two['A']}{two['free_page']}", email="new@example.com")
        completion_path = done.headers["location"].removeprefix(PLATFORM)
        moved(await browser.get(f"{two['A']}{completion_path}"), f"{PLATFORM}{completion_path}")
        completion = await browser.get(done.headers["location"])
        assert completion.status_code == 303 and "community_session" in completion.headers["set-cookie"]
        assert completion.headers["location"].startswith(f"{two['A']}/checkout/") and completion.headers["location"].endswith("/thanks")


async def test_resell_links_count_and_set_their_cookie_only_on_their_communitys_origin(app: Litestar, two: dict[str, Any]) -> None:
    code, offer_id = two["link"]["code"], two["paid"]["id"]
    async with fresh(app) as browser:
        moved(await browser.get(f"{PLATFORM}/r/{code}?utm_source=x"), f"{two['A']}/r/{code}?utm_source=x")
        moved(await browser.get(f"{two['B']}/r/{code}"), f"{two['A']}/r/{code}")
        for host in (PLATFORM, two["A"], two["B"]):
            assert (await browser.get(f"{host}/r/nosuchcode")).status_code == 404
        followed = await browser.get(f"{two['A']}/r/{code}")
        assert (followed.status_code, followed.headers["location"]) == (302, two["landing"])
        assert [c.split("=")[0] for c in followed.headers.get_list("set-cookie")] == ["community_vid", f"ref_{offer_id}"]
        assert all("Domain" not in c for c in followed.headers.get_list("set-cookie"))  # host-only
        # ?ref= on the landing page: only there, not on the platform on the way.
    async with fresh(app) as browser:
        moved(await browser.get(f"{PLATFORM}{two['landing']}?ref={code}"), f"{two['A']}{two['landing']}?ref={code}")
        landing = await browser.get(f"{two['A']}{two['landing']}?ref={code}")
        assert landing.status_code == 200 and f"ref_{offer_id}=" in landing.headers["set-cookie"]
        assert (await submit_checkout(browser, f"{two['A']}{two['landing']}", email="referred@example.com")).status_code == 303


async def test_everything_else_asked_for_on_a_community_origin_moves_to_the_platform(app: Litestar, two: dict[str, Any]) -> None:
    cid = two["a"]["id"]
    async with fresh(app) as browser:
        for origin in (two["A"], two["B"]):
            for path in ("/", "/login", "/signup", "/dashboard", f"/dashboard/communities/{cid}", f"/communities/{cid}",
                         f"/communities/{cid}/billing", "/affiliates", f"{API}/me", f"{API}/communities?x=1", "/schema"):
                moved(await browser.get(f"{origin}{path}"), f"{PLATFORM}{path}")
            for path in ("/logout", "/login", f"/communities/{cid}/billing/1/cancel", f"{API}/auth/login"):
                moved(await browser.post(f"{origin}{path}", data={"x": "1"}), f"{PLATFORM}{path}")
            # Our static files and the offers' media answer on every origin.
            assert (await browser.get(f"{origin}/static/site.css")).status_code == 200
            media = await browser.get(two["thumbnail"].replace(PLATFORM, origin))
            assert media.status_code == 200 and media.headers["content-type"] == "image/png"
        for path in ("/login", "/static/checkout.js", two["thumbnail"].removeprefix(PLATFORM)):
            assert (await browser.get(f"{PLATFORM}{path}")).status_code == 200, path


async def test_a_session_cookie_on_a_community_origin_is_never_read_or_set_there(app: Litestar, two: dict[str, Any], sessions) -> None:
    """A sibling community's code (under one parent domain) can set a cookie for the parent: say
    the platform session of an account of its own, to make visitors buy for it. The pages
    never read it, and never set it back."""
    async with fresh(app) as attacker:
        token = CSRF.search((await attacker.get("/login")).text).group(1)
        mallory = await sign_up(attacker, "mallory@example.com")
        login = await attacker.post("/login", data={"_csrf_token": token, "email": "mallory@example.com", "password": "correct horse battery"})
        assert login.status_code in (302, 303)
        tossed = attacker.cookies["community_session-0"] if "community_session-0" in attacker.cookies else attacker.cookies["community_session"]
    async with fresh(app) as victim:
        page = await victim.get(f"{two['A']}{two['landing']}/checkout")
        csrf = CSRF.search(page.text).group(1)
        cookie = f"community_csrf={victim.cookies['community_csrf']}; community_session={tossed}; community_session-0={tossed}"
        sent = await victim.post(
            f"{two['A']}{two['landing']}/checkout", data={"_csrf_token": csrf, "email": "victim@example.com"},
            headers={"cookie": cookie},
        )
        assert sent.status_code == 303 and "community_session" not in sent.headers.get("set-cookie", "")
        landing = await victim.get(f"{two['A']}{two['landing']}", headers={"cookie": cookie})
        assert "community_session" not in landing.headers.get("set-cookie", "")
    async with sessions() as session:
        checkout = (await session.scalars(select(Checkout).where(Checkout.email == "victim@example.com"))).one()
    assert checkout.viewer_id is None and checkout.user_id != mallory.id  # bought as the form says, not as mallory


async def test_the_checkout_pages_price_preview_answers_on_its_origin(app: Litestar, owner: Account, two: dict[str, Any]) -> None:
    async with fresh(app) as browser:
        created = await browser.post(
            f"{API}/communities/{two['a']['id']}/discount-codes", json={"code": "HALF", "kind": "percent", "percent_bps": 5000},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        page = await browser.get(f"{two['A']}{two['landing']}/checkout")
        token = CSRF.search(page.text).group(1)
        quote = await browser.post(f"{two['A']}{two['landing']}/quote", json={"code": "HALF"}, headers={"x-csrftoken": token})
        assert quote.status_code == 200 and quote.json()["amount_due"] == 2450, quote.text
        unknown = await browser.post(f"{two['A']}{two['landing']}/quote", json={"code": "nope"}, headers={"x-csrftoken": token})
        assert unknown.status_code == 422 and unknown.json()["detail"], unknown.text
        assert (await browser.post(f"{two['A']}{two['landing']}/quote", json={"code": "HALF"})).status_code == 403  # no CSRF token


# ---------------------------------------------------------------- URLs the product builds


async def test_urls_the_api_and_pages_build_are_on_the_communitys_origin(
    client: httpx.AsyncClient, two: dict[str, Any], stripe_env: StripeFixture, sessions
) -> None:
    code = two["link"]["code"]
    assert two["link"]["link"] == f"{two['A']}/r/{code}"  # the affiliate's link, from the API
    mine = await client.get(f"{API}/me/affiliates/{two['link']['id']}", headers=two["affiliate"].headers)
    assert mine.json()["link"] == f"{two['A']}/r/{code}"
    started = await submit_checkout(client, f"{two['A']}{two['landing']}", email="stripe@example.com")
    async with sessions() as session:
        checkout = (await session.scalars(select(Checkout).where(Checkout.email == "stripe@example.com"))).one()
    sent = stripe_env.sandbox.get(checkout.stripe_session_id)
    assert started.headers["location"].startswith(stripe_env.sandbox.url)
    assert sent["cancel_url"] == f"{two['A']}{two['landing']}/checkout"  # back to the community's origin
    assert sent["success_url"] == f"{PLATFORM}/checkout/{checkout.token}/complete?session_id={{CHECKOUT_SESSION_ID}}"


async def test_the_demo_sells_on_its_communitys_origin(client: httpx.AsyncClient, settings: Settings, stripe_env: StripeFixture) -> None:
    from community import demo

    logins = await demo.seed(settings, stripe_env.sandbox.complete_onboarding)
    origin = settings.pages_origin(demo.DEMO_SLUG)
    assert origin == f"http://{demo.DEMO_SLUG}.localhost" and logins.offer_paths
    assert all(url.startswith(f"{origin}/o/{demo.DEMO_SLUG}/") for url in logins.offer_paths)
    banner = demo.banner(settings, logins)
    assert f"Offer pages: {origin}" in banner and "http://{community}.localhost" in banner
    for url in logins.offer_paths:
        assert (await client.get(url)).status_code in (200, 302), url
        assert url in banner


# ---------------------------------------------------------------- cookies on https


async def test_on_https_every_cookie_is_host_prefixed_and_a_tossed_plain_one_counts_for_nothing(
    settings: Settings, sessions, two: dict[str, Any]
) -> None:
    """__Host- cookies carry no Domain, so no sibling host can set them: a CSRF or attribution
    cookie that another community's code set for the shared parent domain is not read."""
    secure = dataclasses.replace(settings, base_url="https://testserver", pages_url="https://{community}.offers.example.net")
    A = f"https://{two['a']['slug']}.offers.example.net"
    code, offer_id = two["link"]["code"], two["paid"]["id"]
    async with running(create_app(secure)) as app:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.30", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as browser:
            link = await browser.get(f"{A}/r/{code}")
            set_cookies = link.headers.get_list("set-cookie")
            assert [c.split("=")[0] for c in set_cookies] == ["__Host-community_vid", f"__Host-ref_{offer_id}"]
            page = await browser.get(f"{A}{two['landing']}/checkout")
            csrf_cookie = page.headers["set-cookie"]
            assert csrf_cookie.startswith("__Host-community_csrf=")
            for cookie in [*set_cookies, csrf_cookie]:
                assert "Secure" in cookie and "Path=/" in cookie and "domain" not in cookie.lower()
            token = CSRF.search(page.text).group(1)
            attributed = await browser.post(f"{A}{two['landing']}/checkout", data={"_csrf_token": token, "email": "https@example.com"})
            assert attributed.status_code == 303, attributed.text

            # What a sibling could toss: plain-named cookies with values it got from its own visits.
            plain = (
                f"community_csrf={browser.cookies['__Host-community_csrf']}; "
                f"ref_{offer_id}={browser.cookies[f'__Host-ref_{offer_id}']}"
            )
            refused = await browser.post(
                f"{A}{two['landing']}/checkout", data={"_csrf_token": token, "email": "tossed@example.com"},
                headers={"cookie": plain},
            )
            assert refused.status_code == 403  # its CSRF cookie is not ours
            with_ours = await browser.post(
                f"{A}{two['landing']}/checkout", data={"_csrf_token": token, "email": "tossed@example.com"},
                headers={"cookie": f"{plain}; __Host-community_csrf={browser.cookies['__Host-community_csrf']}"},
            )
            assert with_ours.status_code == 303, with_ours.text
            login = await browser.get("/login")
            assert login.headers["set-cookie"].startswith("__Host-community_csrf=")
    async with sessions() as session:
        by_email = {c.email: c for c in await session.scalars(select(Checkout))}
    assert by_email["https@example.com"].affiliate_id == two["link"]["id"]
    assert by_email["tossed@example.com"].affiliate_id is None  # a plain ref_ cookie attributes nothing


# ---------------------------------------------------------------- COMMUNITY_PAGES_URL at start-up


def test_the_default_pattern_is_the_platforms_port_on_localhost(tmp_path: Path) -> None:
    settings = Settings.from_env({"COMMUNITY_DATA_DIR": str(tmp_path)})
    assert settings.pages_origin("makers-guild") == "http://makers-guild.localhost:8000"
    moved_port = Settings.from_env({"COMMUNITY_DATA_DIR": str(tmp_path), "COMMUNITY_BASE_URL": "http://127.0.0.1:9100/"})
    assert moved_port.pages_origin("a") == "http://a.localhost:9100"
    assert dataclasses.replace(settings, base_url="http://127.0.0.1:5123").pages_origin("a") == "http://a.localhost:5123"
    pages = settings.pages
    assert pages.slug_of("makers-guild.localhost:8000") == "makers-guild"
    assert pages.slug_of("Makers-Guild.LOCALHOST:8000") == "makers-guild"  # host names are case-insensitive
    for host in ("127.0.0.1:8000", "localhost:8000", "a.localhost:8001", "a.b.localhost:8000", "a--b.localhost:8000", "-a.localhost:8000", ""):
        assert pages.slug_of(host) is None, host
    given = Settings.from_env({"COMMUNITY_DATA_DIR": str(tmp_path), "COMMUNITY_PAGES_URL": "http://S-{community}.Pages.test:8000/"})
    assert given.pages_origin("a") == "http://s-a.pages.test:8000"
    assert given.pages.slug_of("s-a.pages.test:8000") == "a" and given.pages.slug_of("a.pages.test:8000") is None


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("https://offers.example.net", "{community}"),  # one origin for every community
        ("http://offers.example.net/{community}", "origin only"),
        ("http://{community}.a.test/pages", "origin only"),
        ("http://{community}.{community}.test", "exactly once"),
        ("http://a.test:{community}", "host name"),
        ("http://a.test:{community}0", "host name"),
        ("ftp://{community}.a.test", "http(s)"),
        ("{community}.a.test", "http(s)"),
        ("http://user@{community}.a.test", "origin only"),
        ("http://{community}-and-a-long-tail.a.test", "valid host name"),
        ("http://{community}_x.a.test", "valid host name"),
        ("http://10.0.0.{community}", "valid host name"),
        ("http://{community}.a.test:70000", "port"),
        ("https://{community}.a.test", "scheme of COMMUNITY_BASE_URL"),  # the platform is http here
        ("http://{community}:8000", "valid host name"),  # slug 123 would be the address 0.0.0.123
    ],
)
def test_an_unusable_pattern_is_refused_naming_the_variable(tmp_path: Path, pattern: str, says: str) -> None:
    env = {"COMMUNITY_DATA_DIR": str(tmp_path), "COMMUNITY_PAGES_URL": pattern, "COMMUNITY_BASE_URL": "http://localhost:8000"}
    with pytest.raises(SettingsError, match="COMMUNITY_PAGES_URL") as refused:
        Settings.from_env(env)
    assert says in str(refused.value)


def test_an_unusable_pattern_stops_the_app_too(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="COMMUNITY_PAGES_URL"):
        create_app(dataclasses.replace(settings, pages_url="http://pages.testserver"))


def _production(tmp_path: Path, **given: str) -> dict[str, str]:
    from community.settings import PRODUCTION_REQUIRED

    env = {name: "x" * 40 for name in PRODUCTION_REQUIRED}
    env.update(COMMUNITY_ENV="production", COMMUNITY_DATA_DIR=str(tmp_path), COMMUNITY_BASE_URL="https://app.example.com")
    env.update(given)
    return env


def test_production_needs_the_pattern(tmp_path: Path) -> None:
    env = _production(tmp_path)
    del env["COMMUNITY_PAGES_URL"]
    with pytest.raises(SettingsError, match="COMMUNITY_PAGES_URL"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("base", "pattern"),
    [
        ("https://app.example.com", "https://{community}.example.com"),
        ("https://app.example.com", "https://{community}.offers.example.com"),
        ("https://example.com", "https://{community}.pages.example.com"),
        ("https://app.example.co.uk", "https://{community}.example.co.uk"),  # co.uk is the suffix: example.co.uk the site
        ("https://app.example.com", "https://{community}.EXAMPLE.com"),
    ],
)
def test_production_refuses_pages_on_the_platforms_site(tmp_path: Path, base: str, pattern: str) -> None:
    with pytest.raises(SettingsError, match="COMMUNITY_PAGES_URL") as refused:
        Settings.from_env(_production(tmp_path, COMMUNITY_BASE_URL=base, COMMUNITY_PAGES_URL=pattern))
    assert "registrable domain" in str(refused.value) and "github.io" in str(refused.value)


@pytest.mark.parametrize(
    ("base", "pattern"),
    [
        ("https://app.example.com", "https://{community}.example-pages.net"),
        ("https://app.example.com", "https://{community}.offers.example.net"),
        ("https://example.com", "https://{community}.github.io"),  # github.io is on the Public Suffix List
        ("https://app.example.github.io", "https://{community}.github.io"),  # so these are two sites
        ("https://app.example.co.uk", "https://{community}.other.co.uk"),
    ],
)
def test_production_takes_pages_on_a_site_of_their_own(tmp_path: Path, base: str, pattern: str) -> None:
    settings = Settings.from_env(_production(tmp_path, COMMUNITY_BASE_URL=base, COMMUNITY_PAGES_URL=pattern))
    assert settings.pages_origin("a").startswith("https://a.")
    assert settings.cookie_prefix == "__Host-"


def test_development_allows_pages_beside_the_platform(tmp_path: Path) -> None:
    """Only production insists on another site (a developer's machine has one domain)."""
    settings = Settings.from_env({
        "COMMUNITY_DATA_DIR": str(tmp_path), "COMMUNITY_BASE_URL": "https://app.example.com",
        "COMMUNITY_PAGES_URL": "https://{community}.pages.example.com",
    })
    assert settings.pages_origin("a") == "https://a.pages.example.com"


@pytest.mark.parametrize("production", [False, True])
def test_no_community_may_get_the_platforms_own_host(tmp_path: Path, production: bool) -> None:
    env = _production(tmp_path) if production else {"COMMUNITY_DATA_DIR": str(tmp_path)}
    env.update(COMMUNITY_BASE_URL="https://app.github.io", COMMUNITY_PAGES_URL="https://{community}.github.io")
    with pytest.raises(SettingsError, match="COMMUNITY_PAGES_URL would give a community the platform's own host"):
        Settings.from_env(env)


async def test_the_demo_has_a_subscriber_and_a_discounted_purchase_once(settings: Settings, stripe_env: StripeFixture, engine) -> None:
    """With the sandbox, the demo seeds a trialing Pro subscriber and a Beginner course bought
    with DEMO20, so the console's payments and discount codes have something to show; a second
    start does not buy the course again."""
    from community import demo
    from community.billing.models import DiscountRedemption, Payment

    for _ in range(2):
        logins = await demo.seed(settings, stripe_env.sandbox.complete_onboarding, stripe_env.sandbox)
    assert logins.renewal is not None and demo.DEMO_BUYER[0] in logins.people
    async with session_factory(engine)() as session:
        paid = (await session.execute(select(Payment.amount, Payment.discount_amount))).all()
        redeemed = await session.scalar(select(func.count()).select_from(DiscountRedemption).where(DiscountRedemption.state == "redeemed"))
    assert paid == [(3920, 980)]  # 49.00 less 20%, once; the trial has not charged yet
    assert redeemed == 1
