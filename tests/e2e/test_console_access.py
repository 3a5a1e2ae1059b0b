"""The offer's community permissions and giving access by hand, in a real browser, as the help
pages tell owners to work: a Weight Training offer, add the Yoga group for everyone who holds
it, and an existing buyer then opens a Yoga post; a change for new buyers only; a removal that
says who loses what; comping, ending (now, at a date), reopening and the history; managers
read only."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.checkout_helpers import connect_stripe, offer_for_sale
from tests.conftest import Account, StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.helpers import run_jobs
from tests.test_access import make_group

API = "/api/v1"
PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = "/tmp/e2e-access"


async def log_in(page: Page, address: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).not_to_have_url(re.compile(r"/login"))


async def groups_of(http: httpx.AsyncClient, account: Account, cid: int) -> list[int]:
    response = await http.get(f"{API}/communities/{cid}/me/groups", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["group_ids"]


async def comp(http: httpx.AsyncClient, owner: Account, cid: int, offer_id: int, address: str) -> dict[str, Any]:
    response = await http.post(f"{API}/communities/{cid}/entitlements", json={"email": address, "offer_id": offer_id}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def free_offer(http: httpx.AsyncClient, owner: Account, cid: int, title: str, groups: list[int]) -> dict[str, Any]:
    created = await http.post(f"{API}/communities/{cid}/offers", json={"title": title, "pricing": "free"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    offer = created.json()
    if groups:
        linked = await http.put(f"{API}/communities/{cid}/offers/{offer['id']}/groups", json={"add": groups}, headers=owner.headers)
        assert linked.status_code == 200, linked.text
    return offer


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}-{shot}")


def watch(page: Page) -> Page:
    """Record CSP violations and script errors on a page opened by the test itself (the `page`
    fixture records its own)."""
    page.csp_violations = []  # type: ignore[attr-defined]
    page.script_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.csp_violations.append(m.text) if "Content Security Policy" in m.text else None)  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.script_errors.append(str(exc)))  # type: ignore[attr-defined]
    return page


def clean(page: Page) -> None:
    assert page.script_errors == [], page.script_errors  # type: ignore[attr-defined]
    assert page.csp_violations == [], page.csp_violations  # type: ignore[attr-defined]


def mails_to(live_server: LiveServer, address: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted((live_server.settings.data_dir / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            found.append(message)
    return found


async def test_the_help_pages_example_add_yoga_for_everyone_who_holds_weight_training(
    page: Page, context: BrowserContext, browser_context_factory, http: httpx.AsyncClient, live_server: LiveServer,
    stripe_env: StripeFixture,
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    club = await create_community(http, owner, "Iron Club")
    cid = club["id"]
    await connect_stripe(http, owner, cid, stripe_env.sandbox)
    weights = await make_group(http, owner, cid, "Weight Training")
    yoga = await make_group(http, owner, cid, "Yoga")
    offer = await offer_for_sale(http, owner, cid, groups=[weights], title="Weight Training", amount=2900)
    post = await http.post(f"{API}/communities/{cid}/groups/{yoga}/posts", json={"title": "Sun salutation", "body": "Twelve poses."}, headers=owner.headers)
    assert post.status_code == 201, post.text
    post_url = f"{API}/communities/{cid}/posts/{post.json()['id']}"

    # A member buys Weight Training through the sandbox checkout, logged in to their account.
    bea = await sign_up(http, "bea@example.com", name="Bea Buyer")
    buyer = watch(await (await browser_context_factory()).new_page())
    await log_in(buyer, bea.email)
    await buyer.goto(f"{live_server.settings.pages_origin(club['slug'])}/o/{club['slug']}/{offer['slug']}/checkout")
    await buyer.get_by_label("Email").fill(bea.email)
    await buyer.get_by_label("Name").fill("Bea Buyer")
    await buyer.locator("#pay").click()
    await buyer.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))
    await buyer.locator("#pay-success").click()
    await buyer.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/communities/{cid}$"), timeout=15_000)
    await expect(buyer.locator(f"li.group[data-group='{weights}']")).to_be_visible()
    await expect(buyer.locator(f"li.group[data-group='{yoga}']")).to_have_count(0)
    assert (await http.get(post_url, headers=bea.headers)).status_code == 403
    await run_jobs(live_server.settings)  # the purchase's own run: Bea gained Weight Training

    # The owner opens the offer's community permissions and adds Yoga.
    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/permissions")
    await expect(page.get_by_role("heading", name="Community permissions")).to_be_visible()
    await expect(page.locator("#holders-count")).to_contain_text("1 person holds this offer now")
    await expect(page.get_by_label("Weight Training")).to_be_checked()
    await expect(page.get_by_label("Yoga")).not_to_be_checked()
    await expect(page.get_by_role("navigation", name="Offer editor").get_by_role("link", name="Community permissions")).to_have_attribute("aria-current", "page")
    await at_both_widths(page, "community permissions", "permissions")
    await page.get_by_label("Yoga").check()
    await page.get_by_role("button", name="Save").click()

    # Saving asks first, with the numbers; nothing is chosen for the owner.
    await expect(page.get_by_role("heading", name="Save this change?")).to_be_visible()
    await expect(page.locator("#change-summary")).to_have_text(re.compile(r"Add:\s*Yoga"))
    await expect(page.locator("#mode-everyone-what")).to_contain_text("1 holder gains Yoga")
    await expect(page.locator("#mode-new-what")).to_contain_text("keep exactly what they open today")
    await at_both_widths(page, "the confirmation", "confirm")
    await page.get_by_role("button", name="Save the change").click()
    await expect(page.get_by_role("group", name="Who is the change for?")).to_have_accessible_description(re.compile("choose who the change is for"))
    assert (await http.get(post_url, headers=bea.headers)).status_code == 403  # nothing saved yet
    await page.get_by_label("Everyone who holds it").check()
    await page.get_by_role("button", name="Save the change").click()

    # The run's page follows its progress by itself until it is done.
    await expect(page).to_have_url(re.compile(rf"/offers/{offer['id']}/permissions/runs/\d+$"))
    await expect(page.get_by_role("status")).to_contain_text("Saved for everyone who holds the offer")
    await expect(page.locator("#run")).to_have_attribute("data-state", "pending")
    assert await page.locator("meta[http-equiv=refresh]").count() == 1
    await page.screenshot(path=f"{SHOTS}-run-pending.png", full_page=True)
    assert (await http.get(post_url, headers=bea.headers)).status_code == 200  # access changed at the save
    await run_jobs(live_server.settings)
    await run_jobs(live_server.settings)  # the run's emails
    await expect(page.locator("#run")).to_have_attribute("data-state", "done", timeout=10_000)
    await expect(page.locator("#run-count")).to_contain_text("1 of 1 checked")
    assert await page.locator("meta[http-equiv=refresh]").count() == 0
    await at_both_widths(page, "the finished run", "run")

    # The existing buyer opens the Yoga group and its post, in the browser.
    await buyer.reload()
    await expect(buyer.locator(f"li.group[data-group='{yoga}']")).to_contain_text("Yoga")
    await buyer.locator(f"li.group[data-group='{yoga}']").get_by_role("link", name="Yoga").click()
    await expect(buyer.get_by_role("heading", name="Sun salutation")).to_be_visible()
    await expect(buyer.locator(".post-body")).to_contain_text("Twelve poses.")
    assert sorted(await groups_of(http, bea, cid)) == sorted([weights, yoga])
    opened = await http.get(post_url, headers=bea.headers)
    assert opened.status_code == 200 and opened.json()["title"] == "Sun salutation"
    told = [m for m in mails_to(live_server, bea.email) if "Yoga" in m["Subject"]]
    assert len(told) == 1 and "You now have access to Yoga" in told[0]["Subject"]

    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/permissions")
    await expect(page.get_by_label("Yoga")).to_be_checked()
    clean(page)
    clean(buyer)


async def test_a_change_for_new_buyers_only_leaves_existing_holders_as_they_were(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "owen@example.com", name="Owen Owner")
    cid = (await create_community(http, owner, "Studio"))["id"]
    weights = await make_group(http, owner, cid, "Weight Training")
    pilates = await make_group(http, owner, cid, "Pilates")
    offer = await free_offer(http, owner, cid, "Weight Training", [weights])
    ann = await sign_up(http, "ann@example.com")
    bob = await sign_up(http, "bob@example.com")
    await comp(http, owner, cid, offer["id"], ann.email)
    await run_jobs(live_server.settings)

    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/permissions")
    await page.get_by_label("Pilates").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#mode-everyone-what")).to_contain_text("1 holder gains Pilates")
    await page.get_by_label("New buyers only").check()
    await page.get_by_role("button", name="Save the change").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved for new buyers only")
    await expect(page).to_have_url(re.compile(rf"/offers/{offer['id']}/permissions$"))
    await expect(page.get_by_label("Pilates")).to_be_checked()
    await expect(page.get_by_label("Pilates")).to_have_accessible_description(re.compile("Some holders only"))
    await at_both_widths(page, "permissions after a new-buyers-only change", "permissions-partial")
    assert await groups_of(http, ann, cid) == [weights]  # the existing holder gains nothing

    # A new buyer (given the offer from its holders list) gets Pilates.
    await page.get_by_role("navigation", name="Offer editor").get_by_role("link", name="Holders").click()
    await page.get_by_role("link", name="Give this offer to someone").click()
    await page.get_by_label("Email").fill(bob.email)
    await page.get_by_role("button", name="Give access").click()
    await expect(page.get_by_role("status")).to_contain_text("bob@example.com now holds Weight Training")
    assert sorted(await groups_of(http, bob, cid)) == sorted([weights, pilates])
    assert await groups_of(http, ann, cid) == [weights]

    # Giving it to everyone later reaches the one who did not have it.
    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/permissions")
    await page.get_by_role("link", name="Give it to everyone who holds the offer…").click()
    await expect(page.locator("#mode-everyone-what")).to_contain_text("1 holder gains Pilates (1 already opens it)")
    clean(page)


async def test_a_removal_says_who_loses_what_and_spares_those_who_keep_it_elsewhere(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "rita@example.com", name="Rita Owner")
    cid = (await create_community(http, owner, "Makers"))["id"]
    lounge = await make_group(http, owner, cid, "Lounge")
    workshop = await make_group(http, owner, cid, "Workshop")
    offer = await free_offer(http, owner, cid, "Membership", [lounge, workshop])
    bundle = await free_offer(http, owner, cid, "Bundle", [lounge])
    ann = await sign_up(http, "ann@example.com")
    ben = await sign_up(http, "ben@example.com")
    await comp(http, owner, cid, offer["id"], ann.email)
    await comp(http, owner, cid, offer["id"], ben.email)
    await comp(http, owner, cid, bundle["id"], ben.email)
    await run_jobs(live_server.settings)

    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/permissions")
    await page.get_by_label("Lounge").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#change-summary")).to_have_text(re.compile(r"Remove:\s*Lounge"))
    await expect(page.locator("#mode-everyone-what")).to_contain_text("1 holder loses Lounge (1 keeps it through another offer)")
    await expect(page.locator("#mode-new-what")).to_contain_text("do not open Lounge")
    await page.get_by_label("Everyone who holds it").check()
    await page.get_by_role("button", name="Save the change").click()
    await run_jobs(live_server.settings)
    await expect(page.locator("#run")).to_have_attribute("data-state", "done", timeout=10_000)
    await expect(page.locator("#run-count")).to_contain_text("2 of 2 checked")
    assert await groups_of(http, ann, cid) == [workshop]
    assert sorted(await groups_of(http, ben, cid)) == sorted([lounge, workshop])
    await run_jobs(live_server.settings)
    assert [m["Subject"] for m in mails_to(live_server, ann.email) if "ended" in m["Subject"]] == ["Your access to Lounge in Makers has ended"]
    assert [m["Subject"] for m in mails_to(live_server, ben.email) if "ended" in m["Subject"]] == []
    clean(page)


async def test_comp_end_now_end_at_a_date_reopen_and_the_history(page: Page, http: httpx.AsyncClient, live_server: LiveServer) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "gail@example.com", name="Gail Owner")
    cid = (await create_community(http, owner, "Gym"))["id"]
    weights = await make_group(http, owner, cid, "Weight Training")
    offer = await free_offer(http, owner, cid, "Weight Training", [weights])

    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/holders")
    await expect(page.locator("#no-holders")).to_be_visible()
    await at_both_widths(page, "holders, none", "holders-empty")
    await page.get_by_role("link", name="Give this offer to someone").click()
    await at_both_widths(page, "give form", "give")
    # A refusal shows next to its field, in the API's words, keeping what was typed.
    await page.get_by_label("Email").fill("carl@example.com")
    await page.get_by_label("Access until (UTC, optional)").fill("2020-01-01T10:00")
    await page.get_by_role("button", name="Give access").click()
    await expect(page.get_by_label("Access until (UTC, optional)")).to_have_accessible_description(re.compile("must be in the future"))
    await expect(page.get_by_label("Email")).to_have_value("carl@example.com")
    await assert_accessible(page, "give form, refused")
    await page.get_by_label("Access until (UTC, optional)").fill("")
    await page.get_by_label("Note (optional)").fill("Guest coach")
    await page.get_by_role("button", name="Give access").click()

    # The entitlement's page: who, what, since when, its history.
    await expect(page.get_by_role("status")).to_contain_text("carl@example.com now holds Weight Training")
    await expect(page.locator("#status")).to_have_text("active")
    await expect(page.locator("#ends-at")).to_have_text("no end date")
    await expect(page.locator("#history tbody tr")).to_have_count(1)
    await expect(page.locator("#history")).to_contain_text("started (comp)")
    await expect(page.get_by_text("Guest coach")).to_be_visible()
    entitlement_url = page.url
    await at_both_widths(page, "entitlement", "entitlement")

    # End at a date: asked for the date, then access runs until it.
    await page.get_by_role("link", name="End access…").click()
    await expect(page.locator("#what-happens")).to_contain_text("stops opening what Weight Training grants (Weight Training)")
    await at_both_widths(page, "end form", "end")
    await page.get_by_label("At a date").check()
    await page.get_by_role("button", name="End access").click()
    await expect(page.get_by_label("Date and time (UTC)")).to_have_accessible_description(re.compile("give the date and time"))
    await page.get_by_label("Date and time (UTC)").fill("2030-01-01T10:00")
    await page.get_by_label("Expired (no email)").check()
    await page.get_by_role("button", name="End access").click()
    await expect(page.get_by_role("status")).to_contain_text("Access ends on 01 Jan 2030, 10:00 UTC")
    await expect(page.locator("#ends-at")).to_have_text("01 Jan 2030, 10:00 UTC")
    await expect(page.locator("#status")).to_have_text("expired")

    # End now: no access any more.
    await page.get_by_role("link", name="End access…").click()
    await page.get_by_label("Reason (optional)").fill("left the gym")
    await page.get_by_role("button", name="End access").click()
    await expect(page.get_by_role("status")).to_contain_text("Access ended now")
    await expect(page.locator("#status")).to_contain_text("cancelled")
    await expect(page.get_by_role("link", name="End access…")).to_have_count(0)

    # Reopen, until a date.
    await page.get_by_role("link", name="Reopen…").click()
    await at_both_widths(page, "reopen form", "reopen")
    await page.get_by_label("Access until (UTC, optional)").fill("2031-06-30T00:00")
    await page.get_by_role("button", name="Reopen access").click()
    await expect(page.get_by_role("status")).to_contain_text("Reopened: access runs again until 30 Jun 2031, 00:00 UTC")
    await expect(page.locator("#status")).to_have_text("active")
    history = page.locator("#history tbody tr")
    await expect(history).to_have_count(4)
    await expect(history.nth(2)).to_contain_text("left the gym")
    await expect(history.nth(3)).to_contain_text("reopened")

    # The holders list leads to it; its filters split current and ended holdings.
    await page.goto(f"/dashboard/communities/{cid}/offers/{offer['id']}/holders")
    await expect(page.locator("#current-count")).to_have_text("1 person holds this offer now.")
    row = page.locator("#holders tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("carl@example.com")
    await expect(row).to_contain_text("given by staff")
    await at_both_widths(page, "holders", "holders")
    await page.get_by_role("link", name="Ended").click()
    await expect(page.locator("#no-holders")).to_have_text("No ended holdings.")
    await page.get_by_role("link", name="Current").click()
    await page.get_by_role("link", name="carl@example.com").click()
    assert page.url == entitlement_url
    clean(page)


async def test_managers_read_permissions_holders_and_entitlements_but_change_nothing(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "own@example.com", name="Own")
    cid = (await create_community(http, owner, "Readers"))["id"]
    weights = await make_group(http, owner, cid, "Weight Training")
    yoga = await make_group(http, owner, cid, "Yoga")
    offer = await free_offer(http, owner, cid, "Weight Training", [weights])
    held = await comp(http, owner, cid, offer["id"], "member@example.com")
    await sign_up(http, "manny@example.com", name="Manny")
    made = await http.put(f"{API}/communities/{cid}/staff", json={"email": "manny@example.com", "role": "manager"}, headers=owner.headers)
    assert made.status_code in (200, 201), made.text
    base = f"/dashboard/communities/{cid}"

    await log_in(page, "manny@example.com")
    await page.goto(f"{base}/offers/{offer['id']}/permissions")
    await expect(page.locator("#read-only")).to_have_text("Owners and admins change the community permissions.")
    await expect(page.locator(f"li[data-group='{weights}']")).to_contain_text("Granted")
    await expect(page.locator(f"li[data-group='{yoga}']")).to_contain_text("Not granted")
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)
    await at_both_widths(page, "permissions, read only", "permissions-manager")
    await page.goto(f"{base}/offers/{offer['id']}/holders")
    await expect(page.locator("#holders tbody tr")).to_have_count(1)
    await expect(page.get_by_role("link", name="Give this offer to someone")).to_have_count(0)
    await page.get_by_role("link", name="member@example.com").click()
    await expect(page.locator("#read-only")).to_be_visible()
    await expect(page.get_by_role("link", name="End access…")).to_have_count(0)
    await assert_accessible(page, "entitlement, read only")

    for form_page in (f"/offers/{offer['id']}/permissions/confirm?add={yoga}", f"/offers/{offer['id']}/holders/give",
                      f"/entitlements/{held['id']}/end", f"/entitlements/{held['id']}/reopen"):
        refused = await page.goto(base + form_page)
        assert refused is not None and refused.status == 403, form_page
    await page.goto(f"{base}/offers/{offer['id']}/permissions")
    token = await page.locator("input[name=_csrf_token]").first.get_attribute("value")
    for action, form in (
        (f"/offers/{offer['id']}/permissions", {"group": str(yoga)}),
        (f"/offers/{offer['id']}/permissions/apply", {"add": str(yoga), "mode": "everyone"}),
        (f"/offers/{offer['id']}/holders/give", {"email": "x@example.com"}),
        (f"/entitlements/{held['id']}/end", {"when": "now", "status": "cancelled"}),
    ):
        response = await page.request.post(base + action, form={"_csrf_token": token or "", **form}, max_redirects=0)
        assert response.status == 403, (action, response.status)
    linked = await http.get(f"{API}/communities/{cid}/offers/{offer['id']}/groups", headers=owner.headers)
    assert [g["group_id"] for g in linked.json()] == [weights]
    still = await http.get(f"{API}/communities/{cid}/entitlements/{held['id']}", headers=owner.headers)
    assert still.json()["live"] is True
    clean(page)
