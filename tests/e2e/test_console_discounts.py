"""A discount code that reaches its limit, in real browsers: the owner creates a code for one use
in the console (a refusal first, next to its field), a buyer pays with it through the real
checkout and the sandbox's payment page, the list then shows 1 / 1 and "used up", the code's
page shows who used it, and a second buyer typing it is refused in the API's words."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, Page, expect

from community.billing import service
from tests.checkout_helpers import connect_stripe, make_group, offer_for_sale
from tests.conftest import StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.e2e.test_console_access import log_in

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = "/tmp/shots-discounts"


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}/{shot}")


async def checkout_with_code(browser: Browser, live_server: LiveServer, url: str, email: str, code: str) -> Page:
    """A buyer in a browser of their own fills in the checkout page with the code and presses Pay."""
    context = await browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    buyer = await context.new_page()
    await buyer.goto(url)
    await buyer.get_by_label("Email").fill(email)
    await buyer.get_by_label("Name").fill(email.split("@")[0])
    await buyer.get_by_label("Discount code").fill(code)
    await buyer.locator("#pay").click()
    return buyer


async def test_a_code_that_reaches_its_limit(
    page: Page, browser: Browser, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    owner = await sign_up(http, "owner@example.com")
    community = await create_community(http, owner, "Potters")
    await connect_stripe(http, owner, community["id"], stripe_env.sandbox)
    group_id = await make_group(http, owner, community["id"], "Wheel throwing")
    offer = await offer_for_sale(http, owner, community["id"], groups=[group_id], title="Wheel course", amount=2900)
    checkout_url = f"{live_server.settings.pages_origin(community['slug'])}/o/{community['slug']}/{offer['slug']}/checkout"

    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{community['id']}")
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Discount codes").click()
    await expect(page.get_by_role("heading", name="No discount codes yet")).to_be_visible()
    await page.get_by_role("link", name="New discount code").first.click()

    # A percent code with no percent: refused next to the field, in the API's words.
    await page.get_by_label("Code", exact=True).fill("LAUNCH1")
    await page.get_by_label("Maximum uses").fill("1")
    await page.get_by_role("button", name="Create code").click()
    percent = page.get_by_label("Percent off")
    await expect(percent).to_have_accessible_description(re.compile("a percent code needs percent_bps"))
    await expect(page.get_by_label("Code", exact=True)).to_have_value("LAUNCH1")  # what was typed is kept
    await at_both_widths(page, "new code, refused", "form-refused")

    await percent.fill("20")
    await page.get_by_role("button", name="Create code").click()
    await expect(page.get_by_role("status")).to_contain_text("Discount code LAUNCH1 is created")
    await expect(page.locator("#code-state")).to_have_text("active")
    await expect(page.locator("#code-uses")).to_have_text("0 / 1")

    # A buyer pays with it through the real checkout: 29.00 - 20% = 23.20 at Stripe's page.
    buyer = await checkout_with_code(browser, live_server, checkout_url, "first@example.com", "launch1")
    await buyer.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))
    await expect(buyer.get_by_text(re.compile(r"23\.20"))).not_to_have_count(0)
    await buyer.locator("#pay-success").click()
    await buyer.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/communities/{community['id']}$"), timeout=15_000)
    await buyer.context.close()

    # The list: 1 / 1, used up.
    await page.get_by_role("link", name="Discount codes").first.click()
    row = page.locator("#codes tbody tr", has_text="LAUNCH1")
    await expect(row.locator(".uses")).to_have_text("1 / 1")
    await expect(row.locator(".state")).to_have_text("used up")
    await at_both_widths(page, "codes list", "list")

    # Its page: who used it, when, how much off, paid; it can be disabled, not deleted.
    await row.get_by_role("link", name="LAUNCH1").click()
    used = page.locator("#redemptions tbody tr")
    await expect(used).to_have_count(1)
    await expect(used).to_contain_text("first@example.com")
    await expect(used).to_contain_text("5.80 USD")
    await expect(used).to_contain_text("paid")
    await expect(page.locator("#delete-link")).to_have_count(0)
    await at_both_widths(page, "code page", "code")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Download its uses (CSV)").click()
    lines = (await (await download.value).path()).read_text().splitlines()
    assert lines[0].startswith("id,code,checkout_id,email") and len(lines) == 2
    assert "first@example.com" in lines[1] and ",redeemed,5.80,USD," in lines[1]

    await page.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Percent off")).to_have_value("20")  # the new form's template, checked above
    await page.get_by_role("link", name="Cancel").click()
    await page.get_by_role("link", name="Disable…").click()
    await expect(page.locator("#what-happens")).to_contain_text("Buyers can no longer use LAUNCH1")
    await at_both_widths(page, "disable confirmation", "disable")

    # A second buyer typing it is refused, in the API's words.
    second = await checkout_with_code(browser, live_server, checkout_url, "second@example.com", "LAUNCH1")
    await expect(second.locator("#error")).to_have_text(service.USED_UP)
    assert second.url.startswith(live_server.settings.pages_origin(community["slug"]))
    await second.context.close()
