"""A visitor buys an offer in a real browser: landing page -> checkout page -> the sandbox's
hosted payment page -> our completion route -> thanks (custom code) -> the community page
showing the new group."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.checkout_helpers import connect_stripe, make_group, offer_for_sale
from tests.conftest import StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer

OWNER_CODE_HEAD = '<script>document.documentElement.dataset.ownerCode = "ran";</script>'
OWNER_CODE_BODY = '<div id="owner-widget">Questions? Chat with us</div>'


async def test_a_visitor_buys_an_offer_and_lands_in_the_community(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    owner = await sign_up(http, "shop-owner@example.com")
    community = await create_community(http, owner, "Woodworkers")
    await connect_stripe(http, owner, community["id"], stripe_env.sandbox)
    group_id = await make_group(http, owner, community["id"], "Joinery masterclass")
    offer = await offer_for_sale(
        http, owner, community["id"], groups=[group_id], title="Joinery", amount=2900, old_amount=3900,
        landing_page={"headline": "Master joinery", "body": "Six **hands-on** lessons.", "call_to_action": "Buy now"},
        checkout_code_head=OWNER_CODE_HEAD, checkout_code_body=OWNER_CODE_BODY,
    )

    origin = live_server.settings.pages_origin(community["slug"])  # the community's own origin
    await page.goto(f"{origin}/o/{community['slug']}/{offer['slug']}")
    await expect(page.get_by_role("heading", name="Master joinery")).to_be_visible()
    await expect(page.locator(".old-price")).to_have_text("39.00 USD")
    await page.get_by_role("link", name="Buy now").click()

    await expect(page.locator("#pay")).to_have_text("Pay")
    assert page.url.startswith(f"{origin}/o/")  # the checkout page is on the community's origin too
    assert await page.evaluate("document.documentElement.dataset.ownerCode") == "ran"  # custom code ran here
    await expect(page.locator("#owner-widget")).to_be_visible()
    await page.get_by_label("Email").fill("visitor@example.com")
    await page.get_by_label("Name").fill("Vera Visitor")
    await page.locator("#pay").click()

    await page.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))  # Stripe's hosted page (the sandbox)
    await page.locator("#pay-success").click()

    # Back to us, the thanks step (custom code with the purchase), then on to the community.
    await page.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/communities/{community['id']}$"), timeout=15_000)
    await expect(page.locator("li.group")).to_have_text(re.compile("Joinery masterclass"))
    assert await page.evaluate("document.documentElement.dataset.ownerCode") is None  # not on the member page
    assert "owner-widget" not in await page.content()
