"""Resell rights in a real browser, the issue's walk: an affiliate whose hold period is over has a
payable balance; the owner sees it, creates the payout run (after a page saying who gets how
much), marks the payout paid with the transfer reference (a blank one refused next to the
field), downloads its lines as CSV, and the balance is gone. Every screen on the way, and the
affiliates, suspend, commissions and report screens, pass axe-core at desktop and phone widths."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from tests.conftest import create_community, sign_up
from tests.e2e.conftest import LiveServer
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.helpers import run_jobs
from tests.test_commissions import PAID_AT, buy, make_program, set_program
from tests.test_payouts import approve

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path("/tmp/shots-resell")


async def log_in(page: Page, address: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).not_to_have_url(re.compile(r"/login"))


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}/{shot}")


async def test_a_payout_created_marked_paid_and_downloaded(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, sessions
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    cid = (await create_community(http, owner, "Makers Guild"))["id"]
    program = await make_program(http, sessions, cid, title="Pottery Pro")  # 30% of 10.00 USD a sale
    await set_program(sessions, program.offer_id, resell_min_payout=500)
    for n in range(2):
        await buy(sessions, program, buyer=await sign_up(http, f"buyer{n}@example.com"), paid_at=PAID_AT)
    await run_jobs(live_server.settings)  # the commissions, in their hold
    await approve(sessions)  # the hold's clock moved past its end: 6.00 USD payable
    base = f"/dashboard/communities/{cid}/resell"

    # The affiliates of each offer, with what they earned by ledger state.
    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}")
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Resell rights").click()
    await expect(page.get_by_role("heading", name="Resell rights", level=1)).to_be_visible()
    row = page.locator(f"#affiliates tr[data-affiliate='{program.affiliate_id}']")
    await expect(row).to_contain_text("aff@example.com")
    await expect(row).to_contain_text("Pottery Pro")
    await expect(row.locator(".sales")).to_have_text("2")
    await expect(row.locator(".earnings")).to_contain_text("Approved, owed 6.00 USD")
    await at_both_widths(page, "affiliates", "affiliates")
    await row.get_by_role("link", name=re.compile("Suspend")).click()
    await expect(page.locator("#what-happens")).to_contain_text("still leads to Pottery Pro")
    await at_both_widths(page, "suspend an affiliate", "suspend")
    await page.get_by_role("link", name="Cancel").click()

    # Balances: payable now, with the offer's minimum payout.
    await page.get_by_role("navigation", name="Resell rights").get_by_role("link", name="Balances").click()
    balance = page.locator(f"#balances tr[data-affiliate='{program.affiliate_id}']")
    await expect(balance.locator(".amount")).to_have_text("6.00 USD")
    await expect(balance).to_contain_text("5.00 USD")
    await at_both_widths(page, "balances", "balances")

    # The run: a page saying who will be paid how much, then create.
    await page.get_by_role("link", name="Create payout run…").click()
    await expect(page.get_by_role("heading", name="Create a payout run?")).to_be_visible()
    await expect(page.locator("#run-payees")).to_contain_text("aff@example.com")
    await expect(page.locator("#run-total")).to_have_text("In all: 6.00 USD.")
    await at_both_widths(page, "payout run", "payout-run")
    await page.get_by_role("button", name="Create 1 payout").click()
    await expect(page.locator(".flash")).to_contain_text("Created 1 payout (6.00 USD)")
    await at_both_widths(page, "payouts", "payouts")
    await page.locator("#payouts a", has_text="Payout").first.click()

    # Mark it paid: the reference is required, refused next to it in the API's words.
    await expect(page.locator("#payout-state")).to_have_text("To pay")
    await page.get_by_role("button", name="Mark paid").click()
    await expect(page.locator("#e-reference")).to_contain_text("length >= 1")
    await expect(page.get_by_label("Transfer reference")).to_have_attribute("aria-invalid", "true")
    await at_both_widths(page, "mark paid, refused", "payout-refused")
    await page.get_by_label("Transfer reference").fill("SEPA 2030-02-20")
    await page.get_by_role("button", name="Mark paid").click()
    await expect(page.locator(".flash")).to_contain_text("marked paid (SEPA 2030-02-20)")
    await expect(page.locator("#payout-state")).to_have_text("Paid")
    await expect(page.locator("#payout-reference")).to_have_text("SEPA 2030-02-20")
    await at_both_widths(page, "a paid payout", "payout-paid")

    # Its lines as CSV: each commission it paid, adding up to the payout.
    async with page.expect_download() as downloading:
        await page.locator("#lines-csv").click()
    download = await downloading.value
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    assert download.suggested_filename.endswith(".csv")
    assert [(r["email"], r["kind"], r["amount"], r["currency"]) for r in rows] == [("aff@example.com", "earned", "3.00", "USD")] * 2

    # The balance is gone; the money shows as paid.
    await page.goto(f"{base}/balances")
    await expect(page.locator("#no-balances")).to_be_visible()
    await page.goto(base)
    await expect(row.locator(".earnings")).to_contain_text("Paid 6.00 USD")
    await page.get_by_role("navigation", name="Resell rights").get_by_role("link", name="Commissions").click()
    await expect(page.locator("#commissions tbody tr")).to_have_count(2)
    await at_both_widths(page, "commissions", "commissions")
    await page.get_by_role("navigation", name="Resell rights").get_by_role("link", name="Report").click()
    await page.get_by_label("From (UTC day)").fill("2030-01-15")
    await page.get_by_label("To (UTC day, included)").fill("2030-01-15")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(f"#report-affiliate tr[data-affiliate='{program.affiliate_id}'] .paid")).to_have_text("6.00 USD")
    await at_both_widths(page, "report", "report")
    assert page.script_errors == [] and page.csp_violations == []  # type: ignore[attr-defined]
