"""The server-rendered pages in a real browser, as a user meets them: sign-up, log-in, log-out,
login links, the dashboard and a community's page; plus the cookie, CSRF and CSP guarantees
those pages rely on, checked against the live server."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Mapping
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, Response, expect

from community.settings import Settings
from tests.conftest import Account, create_community, sign_up
from tests.e2e.conftest import LiveServer
from tests.helpers import run_jobs

PASSWORD = "correct horse battery"
SESSION_COOKIE = "community_session"
CSRF_COOKIE = "community_csrf"
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


def path_of(page: Page) -> str:
    return httpx.URL(page.url).path


async def session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    return next((c for c in await context.cookies() if c["name"] == SESSION_COOKIE), None)


async def log_in(page: Page, email_address: str, password: str = PASSWORD) -> Response:
    """Fill in and send the log-in form; returns the response to the POST."""
    await page.goto("/login")
    await page.get_by_label("Email").fill(email_address)
    await page.get_by_label("Password").fill(password)
    async with page.expect_response(lambda r: r.request.method == "POST" and httpx.URL(r.url).path == "/login") as posted:
        await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
    return await posted.value


def assert_page_is_clean(html: str, where: str) -> None:
    """Nothing the strict CSP would refuse: no inline script, event handler or style attribute."""
    assert not INLINE_SCRIPT.search(html), f"inline <script> on {where}"
    assert not INLINE_HANDLER.search(html), f"inline event handler on {where}"
    assert not INLINE_STYLE.search(html), f"inline style attribute on {where}"


def assert_strict_csp(headers: Mapping[str, str], where: str) -> None:
    csp = headers.get("content-security-policy")
    assert csp, f"no Content-Security-Policy on {where}"
    directives = {d.split()[0]: d.split()[1:] for d in (part.strip() for part in csp.split(";")) if d}
    assert directives.get("script-src") == ["'self'"], f"{where}: {csp}"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, f"{where}: {csp}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{where}: {csp}"


# ---------------------------------------------------------------- sign-up, log-in, log-out


async def test_sign_up_lands_on_the_dashboard_and_log_out_returns_to_login(page: Page, context: BrowserContext) -> None:
    await page.goto("/")
    await page.get_by_role("link", name="Sign up").click()
    assert path_of(page) == "/signup"

    await page.get_by_label("Name").fill("Grace Hopper")
    await page.get_by_label("Email").fill("grace@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()

    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello Grace Hopper")
    await expect(page.get_by_text("You do not belong to any community yet")).to_be_visible()
    await expect(page.get_by_role("link", name="Create a community")).to_be_visible()
    logged_in = await session_cookie(context)
    assert logged_in is not None

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    # Litestar clears a cookie session by overwriting the cookie with "null".
    cleared = await session_cookie(context)
    assert cleared is None or cleared["value"] == "null"

    # Logged out for real: the dashboard sends the visitor back to the log-in page, even with
    # the old cookie put back (the session it held was ended on the server).
    await page.goto("/dashboard")
    assert path_of(page) == "/login"
    await context.add_cookies([logged_in])
    await page.goto("/dashboard")
    assert path_of(page) == "/login"
    assert page.script_errors == [] and page.csp_violations == []  # type: ignore[attr-defined]


async def test_sign_up_errors_are_shown_on_the_form(page: Page, http: httpx.AsyncClient) -> None:
    await sign_up(http, "taken@example.com", name="Taken")
    await page.goto("/signup")
    await page.get_by_label("Name").fill("Someone Else")
    await page.get_by_label("Email").fill("Taken@Example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await page.wait_for_load_state()

    assert path_of(page) == "/signup"
    await expect(page.get_by_role("alert")).to_contain_text("correct the field")
    # The refusal, in the API's words, is next to the field it is about (and read with it).
    await expect(page.get_by_label("Email")).to_have_accessible_description(re.compile("already exists"))
    # What the user typed is kept, except the password.
    await expect(page.get_by_label("Name")).to_have_value("Someone Else")
    await expect(page.get_by_label("Email")).to_have_value("Taken@Example.com")
    await expect(page.get_by_label("Password")).to_have_value("")


async def test_wrong_password_is_refused_then_the_right_one_shows_communities(
    page: Page, http: httpx.AsyncClient, context: BrowserContext
) -> None:
    ada = await sign_up(http, "ada@example.com", name="Ada Lovelace")
    guild = await create_community(http, ada, "Analytical Engines")
    hub = await _create(http, ada, f"/api/v1/communities/{guild['id']}/hubs", name="Workshop", description="Build things")
    await _create(http, ada, f"/api/v1/communities/{guild['id']}/hubs/{hub['id']}/groups", name="Punched cards")
    await _create(http, ada, f"/api/v1/communities/{guild['id']}/hubs/{hub['id']}/groups", name="Mill and store")
    await _create(http, ada, f"/api/v1/communities/{guild['id']}/hubs", name="Library")

    refused = await log_in(page, "ada@example.com", "not the password")
    assert refused.status == 401
    assert path_of(page) == "/login"
    await expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    await expect(page.get_by_label("Email")).to_have_value("ada@example.com")
    assert await session_cookie(context) is None

    accepted = await log_in(page, "ada@example.com")
    assert accepted.status in (302, 303)
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello Ada Lovelace")
    link = page.get_by_role("link", name="Analytical Engines", exact=True)
    await expect(link).to_be_visible()
    await expect(page.get_by_role("listitem").filter(has=link)).to_contain_text("owner")
    await page.screenshot(path="/tmp/e2e-dashboard.png", full_page=True)

    await page.get_by_role("link", name="Open the console of Analytical Engines").click()
    await expect(page).to_have_url(re.compile(rf"/dashboard/communities/{guild['id']}$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Analytical Engines")
    await expect(page.locator("[data-step=groups]")).to_contain_text("2 hubs, 2 groups")
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Hubs and groups").click()
    # The hubs in order (the screen also has its "Add a hub" form for owners).
    await expect(page.locator("section.hub").get_by_role("heading", level=2)).to_have_text(["Workshop", "Library"])
    await expect(page.get_by_text("Build things")).to_be_visible()
    await expect(page.get_by_role("link", name="Punched cards", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Mill and store", exact=True)).to_be_visible()
    await expect(page.get_by_text("No groups yet.")).to_be_visible()  # the Library hub
    await page.get_by_role("link", name="Dashboard").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    assert page.script_errors == [] and page.csp_violations == []  # type: ignore[attr-defined]


async def _create(http: httpx.AsyncClient, owner: Account, path: str, **fields: Any) -> dict[str, Any]:
    response = await http.post(path, json=fields, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


# ---------------------------------------------------------------- login links


async def test_login_link_from_the_email_logs_in_once(
    page: Page, http: httpx.AsyncClient, settings: Settings, live_server: LiveServer
) -> None:
    await sign_up(http, "linda@example.com", name="Linda Link")
    await page.goto("/login")
    await page.get_by_role("link", name="Email me a login link").click()
    assert path_of(page) == "/login/link"
    await page.get_by_label("Email").fill("linda@example.com")
    await page.get_by_role("button", name="Email me a link").click()
    await expect(page.get_by_role("status")).to_contain_text("a login link is on its way")
    assert path_of(page) == "/login/link"

    await run_jobs(settings)
    mails = list((settings.data_dir / "mail").glob("*.eml"))
    assert len(mails) == 1
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "linda@example.com"
    body = message.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+/login/link/\S+", body).group(0)
    assert link.startswith(live_server.url + "/login/link/"), link  # built from the configured base URL

    # Opening the link does not log in by itself (mail scanners prefetch links): a button does.
    await page.goto(link)
    assert path_of(page) == httpx.URL(link).path
    await page.goto("/dashboard")
    assert path_of(page) == "/login"
    await page.goto(link)
    await page.get_by_role("button", name="Continue to your account").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello Linda Link")

    # The link works once: a second use explains itself and offers a new one.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto(link)
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Continue to your account").click()
    assert (await posted.value).status == 401
    await expect(page.get_by_role("alert")).to_contain_text("invalid, used or expired")
    await page.get_by_role("link", name="Get a new link").click()
    assert path_of(page) == "/login/link"


async def test_login_link_for_an_unknown_address_says_the_same(page: Page, settings: Settings) -> None:
    await page.goto("/login/link")
    await page.get_by_label("Email").fill("nobody@example.com")
    await page.get_by_role("button", name="Email me a link").click()
    await expect(page.get_by_role("status")).to_contain_text("If an account exists for nobody@example.com")
    await run_jobs(settings)
    assert list((settings.data_dir / "mail").glob("*.eml")) == []


# ---------------------------------------------------------------- session cookie


async def test_session_cookie_is_httponly_lax_and_replaced_at_login(
    page: Page, context: BrowserContext, browser_context_factory, http: httpx.AsyncClient
) -> None:
    await sign_up(http, "victim@example.com", name="Victor Victim")
    await sign_up(http, "mallory@example.com", name="Mallory Attacker")

    # The attacker gets a real session cookie of their own...
    attacker = await browser_context_factory()
    attacker_page = await attacker.new_page()
    await log_in(attacker_page, "mallory@example.com")
    await expect(attacker_page.get_by_role("heading", level=1)).to_have_text("Hello Mallory Attacker")
    planted = await session_cookie(attacker)
    assert planted is not None
    assert planted["httpOnly"] is True
    assert planted["sameSite"] == "Lax"
    assert planted["path"] == "/"

    # ...and plants it in the victim's browser before the victim logs in.
    await page.goto("/login")
    await context.add_cookies([{**planted}])
    await page.get_by_label("Email").fill("victim@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello Victor Victim")

    after = await session_cookie(context)
    assert after is not None
    assert after["value"] != planted["value"]
    assert after["httpOnly"] is True and after["sameSite"] == "Lax"
    # The planted cookie never reaches the victim's account; the session it held was ended.
    await attacker_page.goto("/dashboard")
    assert path_of(attacker_page) == "/login"

    # Scripts cannot read it.
    assert SESSION_COOKIE not in await page.evaluate("document.cookie")

    # A second log-in gets yet another value.
    await page.get_by_role("button", name="Log out").click()
    await log_in(page, "victim@example.com")
    again = await session_cookie(context)
    assert again is not None and again["value"] not in (after["value"], planted["value"])


# ---------------------------------------------------------------- CSRF


def _csrf_token(html: str) -> str:
    match = re.search(r'name="_csrf_token"\s+value="([^"]+)"', html) or re.search(r'value="([^"]+)"\s+name="_csrf_token"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


async def test_form_posts_without_the_csrf_token_are_refused(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    await sign_up(http, "csrf@example.com", name="Cee")
    form = {"email": "csrf@example.com", "password": PASSWORD}

    # No CSRF cookie and no token at all.
    async with httpx.AsyncClient(base_url=live_server.url) as fresh:
        refused = await fresh.post("/login", data=form)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert SESSION_COOKIE not in refused.cookies

    # The CSRF cookie from the form page, but the token left out of the form.
    login_page = await http.get("/login")
    assert login_page.status_code == 200
    assert CSRF_COOKIE in http.cookies
    token = _csrf_token(login_page.text)
    for path, data in [
        ("/login", form),
        ("/signup", {"email": "new@example.com", "password": PASSWORD, "name": "New"}),
        ("/login/link", {"email": "csrf@example.com"}),
        ("/logout", {}),
    ]:
        response = await http.post(path, data=data)
        assert response.status_code == 403, (path, response.status_code)
        assert SESSION_COOKIE not in response.cookies
        # A wrong token is no better than none.
        wrong = await http.post(path, data={**data, "_csrf_token": token[:-4] + "AAAA"})
        assert wrong.status_code == 403, (path, wrong.status_code)
    assert (await http.post("/api/v1/auth/login", json={"email": "new@example.com", "password": PASSWORD})).status_code == 401

    # With the token the same form works.
    accepted = await http.post("/login", data={**form, "_csrf_token": token})
    assert accepted.status_code in (302, 303)
    assert accepted.headers["location"].endswith("/dashboard")
    assert SESSION_COOKIE in accepted.cookies
    dashboard = await http.get("/dashboard")
    assert dashboard.status_code == 200 and "Hello Cee" in dashboard.text

    # Logged in, a log-out without the token is refused too: the session survives.
    assert (await http.post("/logout", data={})).status_code == 403
    assert (await http.get("/dashboard")).status_code == 200


# ---------------------------------------------------------------- headers on every page


async def test_every_page_sends_a_strict_csp_and_runs_no_inline_script(
    page: Page, http: httpx.AsyncClient, settings: Settings
) -> None:
    # User-controlled text that would run, were it not escaped.
    owner = await sign_up(http, "csp@example.com", name="Cecilia <img src=x onerror=alert(1)>")
    guild = await create_community(http, owner, "Header <script>alert(2)</script> Checkers")
    await _create(http, owner, f"/api/v1/communities/{guild['id']}/hubs", name="Main <b onclick=alert(3)>hub</b>")

    seen: list[tuple[str, int]] = []

    async def visit(path: str) -> None:
        response = await page.goto(path)
        assert response is not None
        final = httpx.URL(response.url).path
        assert response.headers.get("content-type", "").startswith("text/html"), path
        assert_strict_csp(response.headers, final)
        assert_page_is_clean(await response.text(), final)
        # The stylesheet loads from 'self' and applies: the CSP does not break the page.
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(245, 247, 250)", (final, background)
        seen.append((final, response.status))

    for path in ["/", "/login", "/signup", "/login/link", "/login/link/not-a-real-token", "/no/such/page"]:
        await visit(path)

    refused = await log_in(page, "csp@example.com", "wrong password!")
    assert refused.status == 401
    assert_strict_csp(refused.headers, "/login (401)")
    assert_page_is_clean(await refused.text(), "/login (401)")

    # Pages that answer with an error keep the headers too.
    await page.goto("/login/link/not-a-real-token")
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Continue to your account").click()
    assert (await posted.value).status == 401
    assert_strict_csp((await posted.value).headers, "/login/link/<token> (401)")

    await log_in(page, "csp@example.com")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello Cecilia <img src=x onerror=alert(1)>")
    await expect(page.get_by_role("link", name="Header <script>alert(2)</script> Checkers", exact=True)).to_be_visible()
    for path in ["/dashboard", f"/dashboard/communities/{guild['id']}", "/dashboard/communities/999999", "/"]:
        await visit(path)

    assert ("/dashboard", 200) in seen and ("/no/such/page", 404) in seen and ("/dashboard/communities/999999", 404) in seen
    assert page.csp_violations == [], page.csp_violations  # type: ignore[attr-defined]
    assert page.script_errors == []  # type: ignore[attr-defined]

    # Without a browser: the CSRF refusal and a redirect carry the policy as well.
    refused_post = await http.post("/login", data={"email": "x@example.com", "password": "whatever12"})
    assert refused_post.status_code == 403
    assert_strict_csp(refused_post.headers, "/login (403)")
    assert_page_is_clean(refused_post.text, "/login (403)")
    for response in [refused_post, await http.get("/dashboard")]:
        assert response.headers.get("x-content-type-options") == "nosniff"


# ---------------------------------------------------------------- tenant isolation


async def test_another_communitys_page_is_a_readable_404(page: Page, http: httpx.AsyncClient) -> None:
    alice = await sign_up(http, "alice@example.com", name="Alice")
    theirs = await create_community(http, alice, "Alice's Secret Club")
    await _create(http, alice, f"/api/v1/communities/{theirs['id']}/hubs", name="Hidden hub")
    bob = await sign_up(http, "bob@example.com", name="Bob")
    mine = await create_community(http, bob, "Bob's Place")

    await log_in(page, "bob@example.com")
    await expect(page.get_by_role("link", name="Bob's Place", exact=True)).to_be_visible()
    await expect(page.get_by_text("Alice's Secret Club")).to_have_count(0)

    response = await page.goto(f"/dashboard/communities/{theirs['id']}")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    await expect(page.get_by_text("community not found")).to_be_visible()
    await expect(page.get_by_role("link", name="Back to the start")).to_be_visible()
    html = await page.content()
    assert "Alice's Secret Club" not in html and "Hidden hub" not in html
    for name in ["Alice's Secret Club", "Hidden hub"]:
        assert name.replace("'", "&#39;") not in html
    theirs_text = await page.locator("main").inner_text()

    # Exactly what a community that does not exist looks like: its existence is not revealed.
    missing = await page.goto("/dashboard/communities/987654")
    assert missing is not None and missing.status == 404
    assert await page.locator("main").inner_text() == theirs_text

    # Bob's own community still opens.
    own = await page.goto(f"/dashboard/communities/{mine['id']}")
    assert own is not None and own.status == 200
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Bob's Place")
