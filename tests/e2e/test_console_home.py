"""The console's home in a real browser: an owner whose community has sold, refunded and comped
sees its numbers (equal to sums taken here from the ledger tables), the 90-day chart and its
table, and retries a failed background job; axe-core finds nothing serious at desktop and phone
widths."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import text

from community import jobs
from tests.checkout_helpers import (
    API,
    connect_stripe,
    deliver_and_process,
    offer_for_sale,
    submit_checkout,
)
from tests.conftest import StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible
from tests.e2e.test_console_access import comp, log_in
from tests.helpers import run_jobs
from tests.test_access import make_group

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path("/tmp/shots-home")


async def test_an_owner_reads_the_numbers_and_retries_a_failed_job(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture, sessions
) -> None:
    SHOTS.mkdir(exist_ok=True)
    settings = live_server.settings
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    community = await create_community(http, owner, "Weight Training Club")
    cid = community["id"]
    await connect_stripe(http, owner, cid, stripe_env.sandbox)
    group = await make_group(http, owner, cid, "Weights room")
    offer = await offer_for_sale(http, owner, cid, groups=[group], title="Weight Training", amount=4900)
    # A buyer pays 49.00 USD and is refunded 10.00 of it; a friend is given access.
    landing = f"{settings.pages_origin(community['slug'])}/o/{community['slug']}/{offer['slug']}"
    redirect = await submit_checkout(http, landing, email="bea@example.com", name="Bea Buyer")
    assert redirect.status_code == 303, redirect.text
    stripe_env.sandbox.pay(redirect.headers["location"].rstrip("/").split("/")[-1], outcome="success")
    await deliver_and_process(http, stripe_env, settings)
    payment = (await http.get(f"{API}/communities/{cid}/payments", headers=owner.headers)).json()["items"][0]
    refunded = await http.post(f"{API}/communities/{cid}/payments/{payment['id']}/refunds", json={"amount": 1000}, headers=owner.headers)
    assert refunded.status_code == 201, refunded.text
    await comp(http, owner, cid, offer["id"], "friend@example.com")
    async with sessions() as session, session.begin():
        job = await jobs.enqueue(session, "test.no_such_handler", community_id=cid)
    await run_jobs(settings)  # everything above runs; the job without a handler fails for good
    async with sessions() as session:
        net = await session.scalar(text(
            "SELECT sum(amount - refunded_amount - disputed_amount) FROM payments WHERE community_id = :c AND paid_at > now() - interval '1 day'"),
            {"c": cid})
        active = await session.scalar(text(
            "SELECT count(DISTINCT user_id) FROM entitlements WHERE community_id = :c AND (ends_at IS NULL OR ends_at > now())"), {"c": cid})
    assert (net, active) == (3900, 2)

    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}")
    glance = page.locator("#numbers")
    await expect(glance.locator("#n-active .value")).to_have_text(str(active))
    await expect(glance.locator("#n-new .value")).to_have_text("2")
    await expect(glance.locator("#n-revenue .value")).to_have_text("39.00 USD")
    await expect(glance.locator("#n-failing .value")).to_have_text("0")
    await expect(page.locator("#revenue-table tr[data-currency=USD] .net")).to_have_text("39.00 USD")
    chart = page.get_by_role("img", name=re.compile("Net revenue in USD and new members per day"))
    await expect(chart).to_be_visible()
    await expect(page.locator("#checklist li[data-done=yes]")).to_have_count(4)  # all set up: below the numbers
    await page.get_by_text("The numbers per day").click()
    today = page.locator("#days-table tbody tr").first
    await expect(today.locator(".new")).to_have_text("2")
    await expect(today.locator(".net")).to_have_text("39.00 USD")
    await expect(page.locator("#days-table tbody tr")).to_have_count(90)
    for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await assert_accessible(page, f"console home with numbers ({width})")
        # Nothing wider than the screen: long tables scroll inside their own box.
        assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        await page.screenshot(path=str(SHOTS / f"home-{width}.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)

    failed = page.locator(f"#failed-jobs li[data-job='{job.id}']")
    await expect(failed).to_contain_text("test.no_such_handler")
    await failed.get_by_role("button", name=re.compile("Retry")).click()
    await expect(page).to_have_url(re.compile(rf"/dashboard/communities/{cid}$"))
    await expect(page.get_by_role("status")).to_contain_text(f"Job {job.id} (test.no_such_handler) will run again shortly")
    await expect(page.locator("#no-failed-jobs")).to_be_visible()
    await assert_accessible(page, "console home after a retry")
    await page.screenshot(path=str(SHOTS / "home-retried.png"), full_page=True)
