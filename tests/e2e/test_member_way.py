"""The member's way in, in a real browser: from a purchase to the emailed link, a password, a
log-in with it, the community page and a post the owner wrote; the locked group's offer leading
to its landing page on the community's origin; changing the email through a link sent to the
new address; the resell-rights page with its copy button, at desktop and phone widths.

Every page visited is checked by axe-core, and the pages ran no inline script (the strict CSP
refused nothing, no script error)."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from community.settings import Settings
from tests.checkout_helpers import connect_stripe, make_group, offer_for_sale
from tests.conftest import Account, StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible
from tests.e2e.test_pages import PASSWORD, log_in, path_of
from tests.helpers import run_jobs

SHOTS = Path("/tmp/member-shots")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


async def inbox(settings: Settings, to: str) -> list[email.message.EmailMessage]:
    """Delivers what the outbox holds (the .eml files of the data dir) and reads the mail to `to`."""
    await run_jobs(settings)
    found = []
    for path in sorted((settings.data_dir / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            found.append(message)
    return found


def text_of(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def fits_a_phone(page: Page, where: str) -> None:
    """At a phone's width nothing makes the page scroll sideways."""
    await page.set_viewport_size(PHONE)
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{where}: {overflow}px wider than the phone"


def clean(page: Page) -> None:
    assert page.csp_violations == [], page.csp_violations  # type: ignore[attr-defined]
    assert page.script_errors == [], page.script_errors  # type: ignore[attr-defined]


async def write_post(http: httpx.AsyncClient, owner: Account, community_id: int, group_id: int, title: str, body: str) -> None:
    made = await http.post(
        f"/api/v1/communities/{community_id}/groups/{group_id}/posts", json={"title": title, "body": body}, headers=owner.headers
    )
    assert made.status_code == 201, made.text


async def test_from_the_purchase_email_to_a_password_and_a_post(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    settings = live_server.settings
    owner = await sign_up(http, "studio-owner@example.com", name="Suki Studio")
    studio = await create_community(http, owner, "Sunrise Studio")
    await connect_stripe(http, owner, studio["id"], stripe_env.sandbox)
    yoga = await make_group(http, owner, studio["id"], "Morning yoga")
    weights = await make_group(http, owner, studio["id"], "Weight room")
    await write_post(http, owner, studio["id"], yoga, "Welcome to morning yoga", "Bring a mat.\nWe start at seven sharp.")
    await write_post(http, owner, studio["id"], weights, "Deadlift day", "Members of the weight room only.")
    offer = await offer_for_sale(http, owner, studio["id"], groups=[yoga], title="Morning Yoga", amount=2900)
    locked_offer = await offer_for_sale(
        http, owner, studio["id"], groups=[weights], title="Weight Training", amount=4500,
        landing_page={"headline": "Lift with us", "body": "Coached sessions, three times a week.", "call_to_action": "Join the weight room"},
    )
    origin = settings.pages_origin(studio["slug"])

    # A visitor buys on the community's own origin and pays on Stripe's page (the sandbox).
    await page.goto(f"{origin}/o/{studio['slug']}/{offer['slug']}")
    if await page.locator("#cta").count():  # without a landing page tab the offer opens on its checkout
        await page.locator("#cta").click()
    await page.get_by_label("Email").fill("bea@example.com")
    await page.get_by_label("Name").fill("Bea Buyer")
    await page.locator("#pay").click()
    await page.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))
    await page.locator("#pay-success").click()
    await page.wait_for_url(f"{live_server.url}/communities/{studio['id']}", timeout=15_000)
    page.csp_violations.clear()  # type: ignore[attr-defined] # owner pages and Stripe's are not ours to judge here

    # The purchase email: "log in and set a password", through a one-time link.
    (mail,) = [m for m in await inbox(settings, "bea@example.com") if "Morning Yoga" in m["Subject"]]
    body = text_of(mail)
    assert "set a password" in body
    link = re.search(r"https?://\S+/login/link/\S+", body).group(0)
    assert link.startswith(f"{live_server.url}/login/link/")

    # The link asks for a button (a mail scanner's prefetch spends nothing), then lands on the
    # account page, where choosing a password is the next step.
    await page.goto(link)
    await assert_accessible(page, "the login link's page")
    await page.get_by_role("button", name="Continue to your account").click()
    await expect(page).to_have_url(f"{live_server.url}/account")
    await expect(page.get_by_role("status")).to_contain_text("Choose a password")
    await expect(page.get_by_role("heading", name="Choose a password")).to_be_visible()
    await expect(page.get_by_label("Current password")).to_have_count(0)  # none to give yet
    await assert_accessible(page, "/account (no password yet)")
    await page.set_viewport_size(DESKTOP)
    await shot(page, "account-first-password")
    await page.get_by_label("New password").fill("short")
    await page.get_by_label("New password").evaluate("field => field.removeAttribute('minlength')")  # the server's rule, shown
    await page.get_by_role("button", name="Set password").click()
    await expect(page.get_by_label("New password")).to_have_accessible_description(re.compile("at least 10 characters"))
    await assert_accessible(page, "/account (refused password)")
    await page.get_by_label("New password").fill("sun salutation 108")
    await page.get_by_role("button", name="Set password").click()
    await expect(page.get_by_role("status")).to_contain_text("Your password is set")
    await expect(page.get_by_label("Current password")).to_be_visible()
    await fits_a_phone(page, "/account")
    await shot(page, "account-phone")
    await page.set_viewport_size(DESKTOP)

    # Log out, log in with the new password: the dashboard links the community.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await log_in(page, "bea@example.com", "sun salutation 108")
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("link", name="Open the console of Sunrise Studio")).to_have_count(0)  # a member, not staff
    await assert_accessible(page, "/dashboard (a member)")
    await page.get_by_role("link", name="Sunrise Studio", exact=True).click()

    # The community page: the group she opens, and the locked one with the offer that opens it.
    await expect(page).to_have_url(f"{live_server.url}/communities/{studio['id']}")
    await expect(page.get_by_role("navigation", name="Sunrise Studio").get_by_role("link", name="Groups")).to_have_attribute("aria-current", "page")
    await assert_accessible(page, "the community page")
    await shot(page, "community")
    await fits_a_phone(page, "the community page")
    await shot(page, "community-phone")
    await page.set_viewport_size(DESKTOP)
    await page.get_by_role("link", name="Morning yoga").click()

    # The group page: the owner's post, as written.
    await expect(page).to_have_url(f"{live_server.url}/communities/{studio['id']}/groups/{yoga}")
    post = page.get_by_role("article").filter(has_text="Welcome to morning yoga")
    await expect(post).to_contain_text("Bring a mat.")
    await expect(post).to_contain_text("We start at seven sharp.")
    assert "Bring a mat.\nWe start at seven sharp." in await post.locator(".post-body").inner_text()  # its lines kept
    await expect(post).to_contain_text("Suki Studio")
    await assert_accessible(page, "the group page")
    await shot(page, "group")
    await fits_a_phone(page, "the group page")
    await shot(page, "group-phone")
    await page.set_viewport_size(DESKTOP)

    # The locked group itself answers as the API does (403), with the offer that opens it.
    refused = await page.goto(f"/communities/{studio['id']}/groups/{weights}")
    assert refused is not None and refused.status == 403
    await expect(page.get_by_role("alert")).to_have_text("You have no access to this group.")
    await expect(page.get_by_text("Deadlift day")).to_have_count(0)
    await assert_accessible(page, "a locked group")
    await shot(page, "group-locked")

    # Its offer link leads to the landing page on the community's own origin.
    await page.goto(f"/communities/{studio['id']}")
    clean(page)
    await page.get_by_role("link", name="Weight Training").click()
    await expect(page).to_have_url(f"{origin}/o/{studio['slug']}/{locked_offer['slug']}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Lift with us")
    await expect(page.get_by_role("link", name="Join the weight room")).to_be_visible()

    # Billing is in the same navigation.
    await page.goto(f"/communities/{studio['id']}/billing")
    await expect(page.get_by_role("navigation", name="Sunrise Studio").get_by_role("link", name="Billing")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_role("heading", name="Morning Yoga")).to_be_visible()
    await assert_accessible(page, "the billing page")
    await fits_a_phone(page, "the billing page")
    await shot(page, "billing-phone")
    clean(page)


async def test_changing_the_email_through_a_link_sent_to_the_new_address(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    settings = live_server.settings
    await sign_up(http, "old@example.com", name="Otto Old")
    await sign_up(http, "taken@example.com", name="Someone")
    await log_in(page, "old@example.com")
    await page.get_by_role("link", name="Otto Old").click()  # the header's name leads to the account
    await expect(page).to_have_url(f"{live_server.url}/account")
    await assert_accessible(page, "/account")
    email_form = page.locator("#email-section")

    # A taken address is refused next to its field, in the API's words.
    await email_form.get_by_label("New email").fill("taken@example.com")
    await email_form.get_by_label("Your password").fill(PASSWORD)
    await email_form.get_by_role("button", name="Send confirmation link").click()
    await expect(email_form.get_by_label("New email")).to_have_accessible_description(re.compile("already exists"))
    await assert_accessible(page, "/account (taken address)")

    await email_form.get_by_label("New email").fill("new@example.com")
    await email_form.get_by_label("Your password").fill(PASSWORD)
    await email_form.get_by_role("button", name="Send confirmation link").click()
    await expect(page.get_by_role("status")).to_contain_text("We sent a link to new@example.com")
    await expect(page.locator("#current-email")).to_have_text("old@example.com")  # not before the link
    await expect(page.locator("#pending-email")).to_contain_text("new@example.com")
    await shot(page, "account-email-pending")

    (sent,) = await inbox(settings, "new@example.com")
    link = re.search(r"https?://\S+/account/email/\S+", text_of(sent)).group(0)
    await page.goto(link)  # opening the link changes nothing by itself
    await expect(page.locator("#new-email")).to_have_text("new@example.com")
    await assert_accessible(page, "the email confirmation page")
    await shot(page, "email-confirm")
    await page.goto("/account")
    await expect(page.locator("#current-email")).to_have_text("old@example.com")
    await page.goto(link)
    await page.get_by_role("button", name="Confirm the new email").click()
    await expect(page).to_have_url(f"{live_server.url}/account")
    await expect(page.get_by_role("status")).to_contain_text("Your email is now new@example.com")
    await expect(page.locator("#current-email")).to_have_text("new@example.com")
    (told,) = await inbox(settings, "old@example.com")
    assert "changed from old@example.com to new@example.com" in text_of(told)

    # The link works once.
    await page.goto(link)
    await expect(page.get_by_role("alert")).to_contain_text("invalid, used or expired")

    # The new address logs in; the old one no longer does.
    await page.get_by_role("button", name="Log out").click()
    refused = await log_in(page, "old@example.com")
    assert refused.status == 401
    await log_in(page, "new@example.com")
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    clean(page)


async def test_the_resell_rights_page_with_its_copy_button(
    page: Page, browser: Browser, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    owner = await sign_up(http, "crafts-owner@example.com")
    crafts = await create_community(http, owner, "Paper Crafts")
    await connect_stripe(http, owner, crafts["id"], stripe_env.sandbox)
    group = await make_group(http, owner, crafts["id"], "Origami circle")
    offer = await offer_for_sale(
        http, owner, crafts["id"], groups=[group], title="Origami Club", amount=3000,
        resell_enabled=True, resell_commission_bps=2000, resell_description="Share the club with friends who fold.",
    )
    await sign_up(http, "fold@example.com", name="Fiona Folder")
    comped = await http.post(
        f"/api/v1/communities/{crafts['id']}/entitlements", json={"email": "fold@example.com", "offer_id": offer["id"]}, headers=owner.headers
    )
    assert comped.status_code == 201, comped.text

    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    await log_in(page, "fold@example.com")
    await page.goto(f"/communities/{crafts['id']}")
    nav = page.get_by_role("navigation", name="Paper Crafts")
    await nav.get_by_role("link", name="Resell rights").click()
    await expect(page).to_have_url(f"{live_server.url}/affiliates")
    await assert_accessible(page, "/affiliates")
    await page.get_by_role("button", name="Get my link for Origami Club").click()
    await expect(page).to_have_url(re.compile(r"/affiliates/\d+$"))

    link_field = page.get_by_label("Share this link")
    link = await link_field.input_value()
    assert link.startswith(live_server.settings.pages_origin(crafts["slug"]) + "/r/"), link
    await expect(page.get_by_role("navigation", name="Paper Crafts").get_by_role("link", name="Resell rights")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_text("You earn 20% of the first payment of each buyer you send.")).to_be_visible()
    await expect(page.locator("#clicks")).to_have_text("0")
    await expect(page.get_by_role("img", name=re.compile("Clicks \\(bars\\) and sales"))).to_be_visible()
    await page.get_by_role("button", name="Copy link").click()
    await expect(page.locator("#link-copied")).to_have_text("Copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == link
    await assert_accessible(page, "the resell-rights page")
    await page.set_viewport_size(DESKTOP)
    await shot(page, "affiliate")
    await fits_a_phone(page, "the resell-rights page")
    await expect(page.get_by_role("button", name="Copy link")).to_be_visible()
    await assert_accessible(page, "the resell-rights page (phone)")
    await shot(page, "affiliate-phone")
    clean(page)

    # Without JavaScript the link is plain text to select: no button that would do nothing.
    bare = await browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        plain = await bare.new_page()
        await log_in(plain, "fold@example.com")
        await plain.goto(httpx.URL(page.url).path)
        await expect(plain.get_by_label("Share this link")).to_have_value(link)
        await expect(plain.get_by_role("button", name="Copy link")).to_have_count(0)
        assert path_of(plain).startswith("/affiliates/")
    finally:
        await bare.close()
