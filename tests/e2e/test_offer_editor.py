"""Digital offers in the console, in a real browser: an owner creates each pricing model
through the editor and publishes it (a paid one refused until Stripe is connected through the
payments setup screen), then works through the editor's sections: a price below the minimum,
images, the confirmation email's preview, a custom-link destination, resell rights, custom
code, the landing page, and "View offer page" of a draft on the community's own origin with the
custom code running. Every screen is checked with axe-core, at desktop and a phone's width."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.conftest import Account, StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible
from tests.images import png_bytes

PASSWORD = "correct horse battery"
SHOTS = "/tmp/e2e-offers"
OWNER_CODE_HEAD = '<script>document.documentElement.dataset.ownerCode = "ran on " + location.host;</script>'
OWNER_CODE_BODY = '<p id="owner-widget">Chat with us</p>'


async def log_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))


async def owner_with_community(http: httpx.AsyncClient, name: str = "Iron Club") -> tuple[Account, dict[str, Any]]:
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    return owner, await create_community(http, owner, name)


def sidebar(page: Page):
    return page.get_by_role("navigation", name="Console")


def sections(page: Page):
    return page.get_by_role("navigation", name="Offer editor")


async def shot(page: Page, name: str, *, phone: bool = False) -> None:
    """A screenshot (desktop, and at a phone's width when asked), axe-checked at each width."""
    await page.screenshot(path=f"{SHOTS}-{name}.png", full_page=True)
    await assert_accessible(page, name)
    if phone:
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.screenshot(path=f"{SHOTS}-{name}-phone.png", full_page=True)
        await assert_accessible(page, f"{name} at a phone's width")
        await page.set_viewport_size({"width": 1280, "height": 900})


async def new_offer(page: Page, title: str, pricing: str, price: str | None = None, interval: str | None = None) -> None:
    await sidebar(page).get_by_role("link", name="Digital offers").click()
    await page.get_by_role("link", name="New offer").first.click()
    await page.get_by_label("Title").fill(title)
    await page.get_by_label(pricing, exact=True).check()
    if price is not None:
        await page.get_by_label(re.compile(r"^Price in")).fill(price)
    if interval is not None:
        await page.get_by_label("Billing interval (recurring offers)").select_option(label=interval)
    await page.get_by_role("button", name="Create offer").click()


async def publish(page: Page) -> None:
    await sections(page).get_by_role("link", name="Status").click()
    await page.get_by_role("button", name="Publish").click()


def console_clean(page: Page) -> None:
    assert page.script_errors == [], page.script_errors  # type: ignore[attr-defined]
    assert page.csp_violations == [], page.csp_violations  # type: ignore[attr-defined]


async def test_an_owner_creates_and_publishes_each_pricing_model(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    owner, club = await owner_with_community(http)
    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{club['id']}")
    await sidebar(page).get_by_role("link", name="Digital offers").click()
    await expect(page.get_by_role("heading", name="No offers yet")).to_be_visible()
    await shot(page, "list-empty")

    # A one-time pass: a price below Stripe's minimum is refused next to the price, in major units.
    await new_offer(page, "Weight Training pass", "One-time payment", "0.40")
    price = page.get_by_label(re.compile(r"^Price in"))
    await expect(price).to_have_accessible_description(re.compile(r"must be at least 0\.50 USD for USD"))
    await expect(page.get_by_label("Title")).to_have_value("Weight Training pass")
    await shot(page, "new-refused", phone=True)
    await price.fill("49")
    await page.get_by_role("button", name="Create offer").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Weight Training pass")
    await expect(page.get_by_role("status")).to_contain_text("is created as a draft")
    await expect(page.get_by_label("Price", exact=True)).to_have_value("49.00")
    await page.get_by_label("A pass: access for a number of days").check()
    await page.get_by_label("Days of access for a pass").fill("365")
    await page.get_by_label("Old price (optional)").fill("79.00")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Main information saved")
    await expect(page.get_by_label("Days of access for a pass")).to_have_value("365")
    await shot(page, "main-one-time", phone=True)

    # Publishing a paid offer before Stripe: refused, with why and where to fix it.
    await publish(page)
    refusal = page.locator("#status-refused")
    await expect(refusal).to_contain_text("a paid offer can be published once the community's Stripe account can take charges")
    await expect(page.get_by_role("button", name="Publish")).to_have_accessible_description(re.compile("Stripe account can take charges"))
    await shot(page, "publish-refused", phone=True)
    await refusal.get_by_role("link", name="Set up payments").click()
    await page.get_by_role("button", name="Connect with Stripe").click()
    await page.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))
    await page.locator("#complete-onboarding").click()
    await expect(page.get_by_role("heading", name="Ready to take payments")).to_be_visible()
    await sidebar(page).get_by_role("link", name="Digital offers").click()
    await page.get_by_role("link", name="Weight Training pass").click()
    await publish(page)
    await expect(page.locator("#offer-status")).to_have_text("Published")
    await expect(page.get_by_role("status")).to_contain_text("published: buyers can open its page")
    await shot(page, "status-published")

    # Free.
    await new_offer(page, "Open Day", "Free")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Open Day")
    await publish(page)
    await expect(page.locator("#offer-status")).to_have_text("Published")

    # Recurring, with a trial that needs no card.
    await new_offer(page, "Strength Club", "Recurring (subscription)", "15", "Monthly")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Strength Club")
    # Only the recurring model's fields show (offers.js); without script they all show.
    await expect(page.get_by_label("Days of access for a pass")).to_be_hidden()
    await page.get_by_label("Free trial days").fill("14")
    await page.get_by_label("A card is required to start the trial").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_label("Free trial days")).to_have_value("14")
    await expect(page.get_by_label("A card is required to start the trial")).not_to_be_checked()
    await shot(page, "main-recurring", phone=True)
    await publish(page)
    await expect(page.locator("#offer-status")).to_have_text("Published")

    # The list: status, price in major units with the interval, holders, revenue.
    await sidebar(page).get_by_role("link", name="Digital offers").click()
    rows = page.locator("#offers tbody tr")
    await expect(rows).to_have_count(3)
    club_row = rows.filter(has_text="Strength Club")
    await expect(club_row.locator(".price-cell")).to_contain_text("15.00 USD / month")
    await expect(club_row.locator(".price-cell")).to_contain_text("14-day free trial")
    await expect(rows.filter(has_text="Weight Training pass").locator(".price-cell")).to_contain_text("49.00 USD365-day pass")
    await expect(rows.filter(has_text="Open Day").locator(".price-cell")).to_have_text("Free")
    await expect(page.locator("#offers .holders")).to_have_text(["0", "0", "0"])
    await expect(page.get_by_role("link", name="Published (3)")).to_be_visible()
    await shot(page, "list", phone=True)

    # Each is live on the community's own origin.
    origin = live_server.settings.pages_origin(club["slug"])
    for slug in ("weight-training-pass", "open-day", "strength-club"):
        assert (await http.get(f"{origin}/o/{club['slug']}/{slug}/checkout")).status_code == 200, slug
    console_clean(page)


async def test_the_editor_sections_and_view_offer_page_of_a_draft(
    page: Page, context: BrowserContext, http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    owner, club = await owner_with_community(http, "Yoga Loft")
    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{club['id']}/offers")
    await new_offer(page, "Yoga Membership", "Recurring (subscription)", "20", "Every 3 months")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Yoga Membership")
    base = page.url

    # Thumbnail and cover: upload, preview, remove.
    await sections(page).get_by_role("link", name="Thumbnail and cover").click()
    await expect(page.locator("#thumbnail-none")).to_be_visible()
    await page.get_by_label("Upload a thumbnail").set_input_files(files=[{"name": "notes.txt", "mimeType": "image/png", "buffer": b"not an image"}])
    await page.get_by_role("button", name="Upload thumbnail").click()
    await expect(page.get_by_label("Upload a thumbnail")).to_have_accessible_description(re.compile("must be a PNG, JPEG or WebP image"))
    await page.get_by_label("Upload a thumbnail").set_input_files(files=[{"name": "t.png", "mimeType": "image/png", "buffer": png_bytes(8, 8)}])
    await page.get_by_role("button", name="Upload thumbnail").click()
    await expect(page.get_by_role("status")).to_contain_text("Thumbnail uploaded")
    await expect(page.get_by_role("img", name="Current thumbnail")).to_be_visible()
    await page.wait_for_function("() => document.getElementById('thumbnail-preview').naturalWidth === 8")  # the uploaded image, loaded
    await page.get_by_label("Upload a cover image").set_input_files(files=[{"name": "c.png", "mimeType": "image/png", "buffer": png_bytes(40, 10)}])
    await page.get_by_role("button", name="Upload cover image").click()
    await expect(page.get_by_role("img", name="Current cover image")).to_be_visible()
    await shot(page, "images", phone=True)
    await page.get_by_role("button", name="Remove thumbnail").click()
    await expect(page.get_by_role("status")).to_contain_text("Thumbnail removed")
    await expect(page.locator("#thumbnail-none")).to_be_visible()
    await expect(page.get_by_role("img", name="Current cover image")).to_be_visible()

    # Confirmation email: the variables, and a preview rendered with sample values.
    await sections(page).get_by_role("link", name="Confirmation email").click()
    await expect(page.locator(".variables")).to_contain_text("{{ buyer_name }}")
    await expect(page.locator("#email-preview")).to_contain_text("Your purchase of Yoga Membership")
    await page.get_by_label("Subject").fill("Welcome to {{ community_name }}, {{ buyer_name }}")
    await page.get_by_label("Body", exact=True).fill("You paid {{ amount }} for {{ offer_title }}.\nOpen it: {{ access_url }}")
    await page.get_by_role("button", name="Preview without saving").click()
    preview = page.locator("#email-preview")
    await expect(preview).to_contain_text("Welcome to Yoga Loft, Alex Sample")
    await expect(preview).to_contain_text("You paid 20.00 USD for Yoga Membership.")
    await shot(page, "email-preview", phone=True)
    await page.get_by_label("Subject").fill("Hello {{ buyer_name")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_label("Subject")).to_have_accessible_description(re.compile("is not a valid template"))
    await page.get_by_label("Subject").fill("Welcome, {{ buyer_name }}")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Confirmation email saved")
    await expect(preview).to_contain_text("Welcome, Alex Sample")

    # Purchase destination: a custom link, checked by the service.
    await sections(page).get_by_role("link", name="Purchase destination").click()
    await expect(page.get_by_label("Link address")).to_be_hidden()
    await page.get_by_label("Redirect users to a custom link").check()
    await page.get_by_label("Link address").fill("http://example.com/welcome")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_label("Link address")).to_have_accessible_description(re.compile("must use https://"))
    await page.get_by_label("Link address").fill("https://example.com/welcome")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Purchase destination saved")
    await expect(page.get_by_label("Redirect users to a custom link")).to_be_checked()
    await expect(page.get_by_label("Link address")).to_have_value("https://example.com/welcome")
    await shot(page, "destination")

    # Resell rights: a percent, shown back as a percent.
    await sections(page).get_by_role("link", name="Resell rights").click()
    await page.get_by_label("Buyers can resell this offer").check()
    await page.get_by_label("Percent of each payment (%)").fill("12.5")
    await page.get_by_label("The payments of the first months of a subscription").check()
    await page.get_by_label("Number of months that earn").fill("6")
    await page.get_by_label("Minimum payout (USD)").fill("25")
    await page.get_by_label("Program description").fill("Share your love of yoga.")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Resell rights saved")
    await expect(page.get_by_label("Percent of each payment (%)")).to_have_value("12.5")
    await expect(page.get_by_label("Minimum payout (USD)")).to_have_value("25.00")
    await expect(page.get_by_label("Amount per payment (USD)")).to_be_hidden()
    await shot(page, "resell", phone=True)

    # Custom code, with what it can do and where it runs.
    await sections(page).get_by_role("link", name="Custom code").click()
    await expect(page.locator("#code-explained")).to_contain_text("only on this offer's landing, checkout and thank-you pages")
    await page.get_by_label("Code in the page's head").fill(OWNER_CODE_HEAD)
    await page.get_by_label("Code at the end of the page's body").fill(OWNER_CODE_BODY)
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Custom code saved")
    await expect(page.get_by_label("Code in the page's head")).to_have_value(OWNER_CODE_HEAD)
    assert await page.evaluate("document.documentElement.dataset.ownerCode") is None  # not run in the console
    await shot(page, "code")

    # The landing page tab, with a preview of its body.
    await sections(page).get_by_role("link", name="Landing page").click()
    await page.get_by_label("Headline").fill("Breathe, stretch, belong")
    await page.get_by_label("Body", exact=True).fill("**Classes** every day.\n\n- beginners\n- advanced")
    await page.get_by_label("Button text").fill("Join the loft")
    await page.get_by_role("button", name="Preview without saving").click()
    await expect(page.locator("#landing-preview strong")).to_have_text("Classes")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Landing page saved")
    await shot(page, "landing", phone=True)
    console_clean(page)

    # View offer page: the draft, on the community's own origin, its custom code running.
    async with context.expect_page() as opened:
        await page.get_by_role("link", name=re.compile("View offer page")).click()
    buyer_view = await opened.value
    await buyer_view.wait_for_load_state()
    origin = live_server.settings.pages_origin(club["slug"])
    assert buyer_view.url.startswith(f"{origin}/o/{club['slug']}/yoga-membership?preview=")
    await expect(buyer_view.get_by_role("heading", level=1)).to_have_text("Breathe, stretch, belong")
    await expect(buyer_view.locator("#preview-bar")).to_contain_text("Preview of a draft offer")
    await expect(buyer_view.locator("#owner-widget")).to_have_text("Chat with us")
    assert await buyer_view.evaluate("document.documentElement.dataset.ownerCode") == f"ran on {httpx.URL(origin).netloc.decode()}"
    await expect(buyer_view.locator(".price")).to_contain_text("20.00 USD / 3 months")
    await buyer_view.screenshot(path=f"{SHOTS}-view-landing.png", full_page=True)
    await assert_accessible(buyer_view, "the draft's landing page, previewed")
    await buyer_view.get_by_role("link", name="Join the loft").click()
    await expect(buyer_view.get_by_role("button", name="Pay")).to_be_disabled()
    await expect(buyer_view.locator("#owner-widget")).to_be_visible()
    await buyer_view.screenshot(path=f"{SHOTS}-view-checkout.png", full_page=True)
    await assert_accessible(buyer_view, "the draft's checkout page, previewed")
    # The token is the preview's alone: without it the draft is not there.
    assert (await http.get(f"{origin}/o/{club['slug']}/yoga-membership")).status_code == 404
    await buyer_view.close()

    # Back in the console: the list shows the draft with its price.
    await page.goto(base.rsplit("/", 1)[0])
    await expect(page.locator("#offers .price-cell")).to_contain_text("20.00 USD / 3 months")

    # Nobody ever held it: it can be deleted, after a confirmation that says what goes.
    await page.get_by_role("link", name="Yoga Membership").click()
    await sections(page).get_by_role("link", name="Status").click()
    await page.get_by_role("link", name="Delete…").click()
    await expect(page.get_by_text("Nobody has ever held this offer")).to_be_visible()
    await shot(page, "delete-confirm")
    await page.get_by_role("button", name="Delete the offer").click()
    await expect(page.get_by_role("status")).to_contain_text("“Yoga Membership” is deleted")
    await expect(page.get_by_role("heading", name="No offers yet")).to_be_visible()
    console_clean(page)


async def test_the_editor_works_without_javascript(browser, http: httpx.AsyncClient, live_server: LiveServer) -> None:
    """Every field shows (nothing is hidden by script) and plain forms save. (axe-core is a
    script itself: these pages are checked with it in the tests above.)"""
    owner, club = await owner_with_community(http, "Plain Club")
    ctx = await browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = await ctx.new_page()
        await log_in(page, owner.email)
        await page.goto(f"/dashboard/communities/{club['id']}/offers/new")
        await page.get_by_label("Title").fill("Monthly Circle")
        await page.get_by_label("Recurring (subscription)").check()
        await page.get_by_label(re.compile(r"^Price in")).fill("9.90")
        await page.get_by_label("Billing interval (recurring offers)").select_option(label="Every 6 months")
        await page.get_by_role("button", name="Create offer").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Monthly Circle")
        await expect(page.get_by_label("Days of access for a pass")).to_be_visible()  # no script hides it
        await page.get_by_label("Free trial days").fill("30")
        await page.get_by_label("Days of access for a pass").fill("12")  # another model's field: ignored, as the page says
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("Main information saved")
        await expect(page.get_by_label("Free trial days")).to_have_value("30")
        await expect(page.get_by_label("Days of access for a pass")).to_have_value("")
        await expect(page.get_by_label("Billing interval")).to_have_value("6")
        await sections(page).get_by_role("link", name="Purchase destination").click()
        await expect(page.get_by_label("Link address")).to_be_visible()
        await sections(page).get_by_role("link", name="Resell rights").click()
        await expect(page.get_by_label("Amount per payment (USD)")).to_be_visible()
        await page.screenshot(path=f"{SHOTS}-resell-no-js.png", full_page=True)
    finally:
        await ctx.close()
