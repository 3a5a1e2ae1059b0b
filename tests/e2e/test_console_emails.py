"""Email settings in a real browser: the catalogue with a message switched off, a template
edited with a refusal next to its field, its preview with sample data, a staff choice, and the
delivery log. axe-core clean at desktop and phone widths; screenshots in /tmp/shots-catalogue/."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from tests.conftest import create_community, sign_up
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.e2e.test_console_access import log_in

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path("/tmp/shots-catalogue")


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}/{shot}")


async def test_an_owner_switches_edits_and_previews_emails(page: Page, http: httpx.AsyncClient) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    community = await create_community(http, owner, "Makers Guild")
    made = await http.post(f"/api/v1/communities/{community['id']}/offers", json={"title": "Workshop", "pricing": "free"}, headers=owner.headers)
    assert made.status_code == 201, made.text
    await log_in(page, owner.email)

    await page.goto(f"/dashboard/communities/{community['id']}")
    await page.get_by_role("link", name="Email settings").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Email settings")
    switch = page.get_by_label("Send “Trial ending”")
    await expect(switch).to_be_checked()
    await switch.uncheck()
    await page.get_by_role("button", name="Save which messages are sent").click()
    await expect(page.get_by_role("status")).to_contain_text("Email settings saved")
    await expect(page.get_by_label("Send “Trial ending”")).not_to_be_checked()
    await at_both_widths(page, "email settings", "catalogue")

    # Edit a message: a variable it does not offer is refused next to the body, nothing saved.
    await page.get_by_role("link", name="Cancellation confirmation").click()
    await expect(page.locator("#variables")).to_contain_text("offer_title")
    body = page.get_by_label("Body", exact=True)
    await body.fill("Goodbye {{ name }} from {{ favourite_colour }}")
    await page.get_by_role("button", name="Save").click()
    await expect(body).to_have_accessible_description(re.compile("favourite_colour"))
    await at_both_widths(page, "a refused template", "refused")

    # A preview of unsaved text, with sample data; then saved.
    await page.get_by_label("Subject", exact=True).fill("{{ offer_title }} ends on {{ ends_at }}")
    await body.fill("Goodbye {{ name }}, thank you for joining {{ community_name }}.")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#preview-subject")).to_have_text("Sample Membership ends on 31 December 2026, 00:00 UTC")
    await expect(page.locator("#preview-body")).to_have_text("Goodbye Ada Lovelace, thank you for joining Sample Community.")
    await expect(page.locator("#preview-title")).to_contain_text("not saved")
    await at_both_widths(page, "a message's preview", "preview")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("saved")
    await expect(page.locator("#preview-subject")).to_have_text("Sample Membership ends on 31 December 2026, 00:00 UTC")
    await page.get_by_role("button", name="Send me a test").click()
    await expect(page.get_by_role("status")).to_contain_text("A test was sent to olivia@example.com")
    await at_both_widths(page, "a message saved", "message")

    # Per offer, staff choices, the log.
    await page.goto(f"/dashboard/communities/{community['id']}/emails")
    await page.get_by_role("link", name="Emails for Workshop").click()
    await page.get_by_label("Trial ending (to members)").select_option("on")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Emails for Workshop saved")
    await expect(page.get_by_label("Trial ending (to members)")).to_have_value("on")
    await at_both_widths(page, "an offer's emails", "offer")
    await page.goto(f"/dashboard/communities/{community['id']}/emails/staff")
    await page.get_by_label("Recurring payment").uncheck()
    await page.get_by_role("button", name="Save for Olivia Owner").click()
    await expect(page.get_by_role("status")).to_contain_text("Staff emails for olivia@example.com saved")
    await expect(page.get_by_label("Recurring payment")).not_to_be_checked()
    await at_both_widths(page, "staff choices", "staff")
    await page.get_by_role("link", name="Delivery log").click()
    await expect(page.locator("#no-deliveries")).to_be_visible()
    await at_both_widths(page, "the delivery log", "log")
