"""The owner's console in a real browser: a new owner's first hour, from sign-up to a published
paid offer, through Stripe's onboarding (the sandbox's) and the checklist on the console's home."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.conftest import StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible

PASSWORD = "correct horse battery"


def path_of(page: Page) -> str:
    return httpx.URL(page.url).path


async def test_a_new_owners_first_hour_from_sign_up_to_a_published_paid_offer(
    page: Page, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    await page.goto("/signup")
    await assert_accessible(page, "sign-up")
    await page.get_by_label("Name").fill("Olivia Owner")
    await page.get_by_label("Email").fill("olivia@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello Olivia Owner")
    await assert_accessible(page, "dashboard")

    await page.get_by_role("link", name="Create a community").click()
    await expect(page.get_by_label("Support email")).to_have_value("olivia@example.com")
    await page.get_by_label("Name", exact=True).fill("Weight Training Club")
    await page.get_by_label("Web address (optional)").fill("Not A Slug!")
    await page.get_by_role("button", name="Create community").click()
    # Refused next to its field, in the API's words; what was typed is kept.
    slug = page.get_by_label("Web address (optional)")
    await expect(slug).to_have_accessible_description(re.compile("lowercase letters, digits and single dashes"))
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Weight Training Club")
    await assert_accessible(page, "new community, refused")

    await slug.fill("")
    await page.get_by_label("Currency").select_option("EUR")
    await page.get_by_role("button", name="Create community").click()
    await expect(page).to_have_url(re.compile(r"/dashboard/communities/\d+$"))
    await expect(page.get_by_role("status")).to_contain_text("Weight Training Club is ready")
    steps = page.locator("#checklist li")
    await expect(steps).to_have_count(4)
    await expect(page.locator("#checklist li[data-done=yes]")).to_have_count(0)
    await assert_accessible(page, "console home")
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path="/tmp/e2e-console-home-phone.png", full_page=True)
    await assert_accessible(page, "console home at a phone's width")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Connect Stripe: to Stripe's onboarding (the sandbox) and back.
    await page.locator("[data-step=stripe]").get_by_role("link", name="Set up payments").click()
    await expect(page.locator("#stripe-status")).to_have_attribute("data-state", "none")
    await assert_accessible(page, "payments setup")
    await page.get_by_role("button", name="Connect with Stripe").click()
    await page.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))
    await page.locator("#complete-onboarding").click()
    await page.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/dashboard/communities/\d+/stripe$"))
    await expect(page.get_by_role("heading", name="Ready to take payments")).to_be_visible()
    console = page.get_by_role("navigation", name="Console")
    await console.get_by_role("link", name="Home").click()
    await expect(page.locator("[data-step=stripe]")).to_have_attribute("data-done", "yes")

    # A hub and a group, an offer that grants the group, published: the rest of the checklist.
    await page.locator("[data-step=groups]").get_by_role("link", name="Open hubs and groups").click()
    await page.get_by_label("Hub name").fill("Training")
    await page.get_by_role("button", name="Add hub").click()
    await page.get_by_role("link", name="Add a group to Training").click()
    await page.get_by_label("Group name").fill("Weights room")
    await page.get_by_role("button", name="Create group").click()
    await console.get_by_role("link", name="Digital offers").click()
    await page.get_by_role("link", name="New offer").first.click()
    await page.get_by_label("Title").fill("Weight Training")
    await page.get_by_label("One-time payment", exact=True).check()
    await page.get_by_label(re.compile(r"^Price in")).fill("49")
    await page.get_by_role("button", name="Create offer").click()
    editor = page.get_by_role("navigation", name="Offer editor")
    await editor.get_by_role("link", name="Community permissions").click()
    await page.get_by_label("Weights room").check()
    await page.get_by_role("button", name="Save").click()  # nobody holds it yet: saved at once
    await expect(page.get_by_label("Weights room")).to_be_checked()
    await editor.get_by_role("link", name="Status").click()
    await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#offer-status")).to_have_text("Published")
    await assert_accessible(page, "offer status")
    # "View offer page": the page a buyer sees, on the community's own origin.
    async with page.context.expect_page() as opened:
        await page.get_by_role("link", name="View offer page").click()
    landing = await opened.value
    await landing.wait_for_load_state()
    assert httpx.URL(landing.url).host.endswith(".localhost"), landing.url
    await expect(landing.get_by_text("49.00 EUR")).to_be_visible()
    await landing.close()
    await console.get_by_role("link", name="Home").click()
    await expect(page.locator("#checklist li[data-done=yes]")).to_have_count(4)
    await expect(page.get_by_role("heading", name="All set up")).to_be_visible()

    # Disconnecting says what will happen before it happens.
    await console.get_by_role("link", name="Payments setup").click()
    await page.get_by_role("link", name="Disconnect…").click()
    await expect(page.get_by_text("Paid offers stop selling at once")).to_be_visible()
    await assert_accessible(page, "disconnect confirmation")
    await page.get_by_role("button", name="Disconnect Stripe").click()
    await expect(page.locator("#stripe-status")).to_have_attribute("data-state", "none")
    assert page.script_errors == [] and page.csp_violations == []  # type: ignore[attr-defined]


async def test_the_console_is_for_staff_and_managers_only_read(page: Page, http: httpx.AsyncClient) -> None:
    owner = await sign_up(http, "own@example.com", name="Own")
    club = await create_community(http, owner, "Readers")
    await sign_up(http, "manny@example.com", name="Manny")
    made = await http.put(f"/api/v1/communities/{club['id']}/staff", json={"email": "manny@example.com", "role": "manager"}, headers=owner.headers)
    assert made.status_code in (200, 201), made.text
    await sign_up(http, "outsider@example.com", name="Out")

    # Not logged in: to the log-in page, and back to the console after it.
    await page.goto(f"/dashboard/communities/{club['id']}/stripe")
    assert path_of(page) == "/login"
    await page.get_by_label("Email").fill("manny@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(rf"/dashboard/communities/{club['id']}/stripe$"))
    await expect(page.get_by_text("Owners and admins connect and disconnect Stripe.")).to_be_visible()
    await expect(page.get_by_role("button", name="Connect with Stripe")).to_have_count(0)
    refused = await page.goto(f"/dashboard/communities/{club['id']}/stripe/disconnect")
    assert refused is not None and refused.status == 403

    # Someone with no place in the community: the console does not reveal it exists.
    await page.goto("/dashboard")
    await page.get_by_role("button", name="Log out").click()
    await page.goto("/login")
    await page.get_by_label("Email").fill("outsider@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    hidden = await page.goto(f"/dashboard/communities/{club['id']}")
    assert hidden is not None and hidden.status == 404
