"""Payments in the console, in a real browser, as the help pages tell owners to work: "open the
order, Issue refund, enter the amount: the member is refunded but keeps the membership", then a
second refund that also ends their access. An affiliate brought the sale: their commission is
reduced in proportion each time; the payment's totals, the member's access and their own
membership follow. The Cancel now and End at a date steps are shown from the payment page. Every
page is axe-clean at desktop and phone widths."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import select, update

from community.billing.models import Checkout
from tests.checkout_helpers import (
    connect_stripe,
    deliver_and_process,
    offer_for_sale,
    submit_checkout,
)
from tests.conftest import StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.e2e.test_console_access import DESKTOP, log_in
from tests.helpers import run_jobs
from tests.test_access import make_group
from tests.test_checkout import can_open, session_id_of
from tests.test_commissions import add_affiliate, set_program

API = "/api/v1"
SHOTS = "/tmp/shots-payments/payments"


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}-{shot}")


async def settle(http: httpx.AsyncClient, stripe_env: StripeFixture, settings) -> None:
    """Stripe's events delivered and processed, then the jobs they queued (commissions)."""
    await deliver_and_process(http, stripe_env, settings)
    await run_jobs(settings)


async def commission(http: httpx.AsyncClient, owner, cid: int) -> tuple[int, int]:
    """(amount, reversed) of the one commission, as the API tells the owner."""
    response = await http.get(f"{API}/communities/{cid}/affiliates/commissions", headers=owner.headers)
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    return item["amount"], item["reversed_amount"]


async def membership(http: httpx.AsyncClient, buyer, cid: int) -> dict:
    response = await http.get(f"{API}/communities/{cid}/me/memberships", headers=buyer.headers)
    assert response.status_code == 200, response.text
    [held] = response.json()
    return held


async def test_a_partial_refund_that_keeps_access_then_one_that_ends_it(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture, sessions
) -> None:
    await page.set_viewport_size(DESKTOP)
    settings = live_server.settings
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    club = await create_community(http, owner, "Iron Club")
    cid = club["id"]
    await connect_stripe(http, owner, cid, stripe_env.sandbox)
    stripe_env.drain()
    weights = await make_group(http, owner, cid, "Weight Training")
    offer = await offer_for_sale(http, owner, cid, groups=[weights], title="Weight Training", amount=10000)
    # A 30% resell program and an affiliate whose link the buyer came through.
    await set_program(sessions, offer["id"], resell_enabled=True, resell_commission_bps=3000, resell_hold_days=30)
    ali = await sign_up(http, "ali@example.com")
    affiliate_id = await add_affiliate(sessions, cid, offer["id"], ali.id)

    bea = await sign_up(http, "bea@example.com", name="Bea Buyer")
    path = f"{settings.pages_origin(club['slug'])}/o/{club['slug']}/{offer['slug']}"
    started = await submit_checkout(http, path, email=bea.email, name="Bea Buyer")
    async with sessions() as session, session.begin():
        checkout_id = await session.scalar(select(Checkout.id).order_by(Checkout.id.desc()).limit(1))
        await session.execute(
            update(Checkout).where(Checkout.id == checkout_id).values(
                affiliate_id=affiliate_id, affiliate_clicked_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            )
        )
    stripe_env.sandbox.pay(session_id_of(started), outcome="success")
    await settle(http, stripe_env, settings)
    assert await commission(http, owner, cid) == (3000, 0)  # 30% of 100.00
    assert await can_open(http, cid, weights, bea.headers)

    # The owner finds the payment: Payments in the sidebar, filtered by the buyer's email.
    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}")
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Payments", exact=True).click()
    await expect(page.get_by_role("heading", name="Payments", exact=True)).to_be_visible()
    await page.get_by_label("Buyer's email contains").fill("BEA@")
    await page.get_by_role("button", name="Show payments").click()
    await expect(page).to_have_url(re.compile(r"email=BEA%40"))
    rows = page.locator("#payments tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Bea Buyer")
    await expect(rows.first.locator(".amount")).to_have_text("100.00 USD")
    await expect(page.locator("#download-csv")).to_have_attribute("href", re.compile(r"payments\.csv\?email=BEA%40"))
    await at_both_widths(page, "the payments list", "list")

    # The order: amounts, the buyer, the refund form with what happens.
    await rows.first.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", name="100.00 USD from Bea Buyer")).to_be_visible()
    await expect(page.locator("#paid")).to_have_text("100.00 USD")
    await expect(page.locator("#net")).to_contain_text("100.00 USD")
    await expect(page.get_by_label("Amount to refund (USD)")).to_have_value("100.00")
    await expect(page.locator("#refund-what-happens")).to_contain_text("keeps their membership unless you tick")
    await expect(page.locator("#refund-what-happens")).to_contain_text("commission on it is reduced in proportion")
    await at_both_widths(page, "the payment page", "payment")

    # Issue refund, enter the amount: refunded, the membership kept.
    await page.get_by_label("Amount to refund (USD)").fill("30.00")
    await page.get_by_label("Reason (optional)").fill("late delivery")
    await page.get_by_role("button", name="Refund").click()
    await expect(page.locator(".flash")).to_contain_text("Refund of 30.00 USD")
    await settle(http, stripe_env, settings)
    await page.reload()
    await expect(page.locator("#refunded")).to_have_text("30.00 USD")
    await expect(page.locator("#net")).to_contain_text("70.00 USD")
    await expect(page.locator("#refunds tbody tr")).to_have_count(1)
    await expect(page.locator("#refunds tbody tr").first).to_contain_text("succeeded")
    await expect(page.locator("#refunds tbody tr").first).to_contain_text("olivia@example.com")
    await expect(page.locator("#membership-status")).to_have_text("active")
    await expect(page.get_by_label("Amount to refund (USD)")).to_have_value("70.00")
    assert await commission(http, owner, cid) == (3000, 900)  # reduced by 30%
    assert await can_open(http, cid, weights, bea.headers)
    assert (await membership(http, bea, cid))["live"] is True
    spent = await http.get(f"{API}/communities/{cid}/me/total-spent", headers=bea.headers)
    assert spent.json() == {"totals": {"USD": 7000}}

    # Cancel now and End at a date: each says what it does before anything happens.
    await page.locator("#cancel-now-link").click()
    await expect(page.locator("#what-happens")).to_contain_text("Access ends now")
    await at_both_widths(page, "the cancel now confirmation", "cancel-now")
    await page.get_by_role("link", name="Keep it").click()
    await expect(page.locator("#status")).to_have_text("active")
    await page.go_back()
    await page.go_back()
    await page.locator("#end-at-date-link").click()
    await expect(page.get_by_label("At a date")).to_be_checked()
    await expect(page.locator("#what-happens")).to_contain_text("access continues until the date you give")
    await assert_accessible(page, "the end form")
    await page.go_back()

    # A second refund that also ends their access.
    await page.reload()
    await page.get_by_label("Amount to refund (USD)").fill("20.00")
    await page.get_by_label("Also end their access").check()
    await page.get_by_role("button", name="Refund").click()
    await expect(page.locator(".flash")).to_contain_text("Refund of 20.00 USD")
    await settle(http, stripe_env, settings)
    await page.reload()
    await expect(page.locator("#refunded")).to_have_text("50.00 USD")
    await expect(page.locator("#net")).to_contain_text("50.00 USD")
    await expect(page.locator("#refunds tbody tr")).to_have_count(2)
    await expect(page.locator("#refunds tbody tr").nth(1)).to_contain_text("ends their access")
    await expect(page.locator("#membership-status")).to_have_text("refunded")
    await expect(page.locator("#membership")).to_contain_text("no access")
    assert await commission(http, owner, cid) == (3000, 1500)  # reduced by half in all
    assert not await can_open(http, cid, weights, bea.headers)
    assert (await membership(http, bea, cid))["live"] is False
    await assert_accessible(page, "the payment page after two refunds")
    await page.screenshot(path=f"{SHOTS}-payment-refunded.png", full_page=True)

    # The list shows it partly refunded; the member's entitlement page tells the history.
    await page.goto(f"/dashboard/communities/{cid}/payments?status=partially_refunded")
    await expect(page.locator("#payments tbody tr")).to_have_count(1)
    await expect(page.locator("#payments .refunded")).to_have_text("50.00 USD")
    await page.locator("#payments tbody tr").first.get_by_role("link").first.click()
    await page.locator("#entitlement-link").click()
    await expect(page.locator("#history")).to_contain_text("refunded")
    await at_both_widths(page, "the entitlement page", "entitlement")
