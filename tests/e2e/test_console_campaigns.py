"""Campaigns in a real browser, as an owner works: write one to the active members (Markdown,
a variable), see how many it reaches and the preview, send it after the confirmation, the job
delivers it through a local SMTP server, and the campaign's page shows each member's status.
axe-core clean at desktop and phone widths; screenshots in /tmp/shots-campaigns/."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from community.settings import Settings
from tests.conftest import create_community, sign_up
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.e2e.test_console_access import comp, free_offer, log_in
from tests.helpers import run_jobs
from tests.test_access import make_group
from tests.test_email import SmtpServer, smtp_server  # noqa: F401 - the aiosmtpd fixture

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path("/tmp/shots-campaigns")


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}/{shot}")


async def test_an_owner_writes_sends_and_follows_a_campaign(
    page: Page, http: httpx.AsyncClient, settings: Settings, smtp_server: SmtpServer  # noqa: F811
) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    club = await create_community(http, owner, "Iron Club")
    cid = club["id"]
    offer = await free_offer(http, owner, cid, "Yoga pass", [await make_group(http, owner, cid, "Yoga")])
    for email, name in (("ann@example.com", "Ann Archer"), ("bob@example.com", "Bob Baker"), ("cat@example.com", "Cat Cole")):
        await sign_up(http, email, name=name)
        await comp(http, owner, cid, offer["id"], email)
    await run_jobs(settings)  # their access runs and "access gained" messages (as files), before the campaign

    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}")
    await page.get_by_role("link", name="Campaigns", exact=True).click()
    await expect(page.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    await page.locator("#new-campaign").click()
    await page.get_by_label("To").select_option("active")
    await page.get_by_label("Subject").fill("New classes for {{ name }}")
    await page.get_by_label("Markdown (bold, links, lists)").check()
    await page.get_by_label("Message").fill("Hello {{ name ")
    await page.locator("#save-campaign").click()
    await expect(page.locator("#e-body")).to_contain_text("is not a template that renders")
    await at_both_widths(page, "the campaign form with a refusal", "form")
    await page.get_by_label("Message").fill("Hello {{ name }},\n\n**Yoga** starts on Monday in {{ community_name }}.")
    await page.locator("#save-campaign").click()

    # The draft: its audience and the preview.
    await expect(page.locator("#audience")).to_contain_text("it would reach 3")
    await expect(page.locator("#preview-subject")).to_have_text("New classes for Olivia Owner")
    await expect(page.locator("#preview-html strong")).to_have_text("Yoga")
    await at_both_widths(page, "a draft with its audience and preview", "draft")

    await page.locator("#send-campaign").click()
    await expect(page.locator("#send-summary")).to_contain_text("It goes now to 3 members")
    await at_both_widths(page, "the send confirmation", "send")
    await page.locator("#confirm-send").click()
    await expect(page.locator("#campaign-state")).to_have_text("Sending")
    await expect(page.locator("#counts")).to_contain_text("Queued: 3")

    await asyncio.wait_for(run_jobs(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_server.port}", campaign_rate=0)), 60)
    assert sorted(m["To"] for m in smtp_server.inbox.messages()) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    await page.reload()
    await expect(page.locator("#campaign-state")).to_have_text("Sent")
    await expect(page.locator("#counts")).to_contain_text("Sent: 3")
    await expect(page.locator("#recipients tbody tr")).to_have_count(3)
    await at_both_widths(page, "a sent campaign with each recipient's status", "sent")

    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Campaigns").click()
    await expect(page.locator("#campaigns tbody tr")).to_have_count(1)
    await at_both_widths(page, "the campaigns list", "list")
