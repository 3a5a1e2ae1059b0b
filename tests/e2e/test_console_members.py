"""The members console in a real browser (issue 14), as an owner works: the directory (sort,
search, a filter, a segment), a member's page (a note added and edited, a tag added and removed),
and removing a member: their access goes and the directory no longer lists them. axe-core clean
at desktop and phone widths; screenshots in /tmp/shots-members/."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from tests.conftest import create_community, sign_up
from tests.e2e.conftest import assert_accessible
from tests.e2e.conftest import at_both_widths as check_both_widths
from tests.e2e.test_console_access import comp, free_offer, groups_of, log_in
from tests.test_access import make_group
from tests.test_members_directory import pay

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path("/tmp/shots-members")


async def at_both_widths(page: Page, where: str, shot: str) -> None:
    await check_both_widths(page, where, f"{SHOTS}/{shot}")


def names(page: Page):
    return page.locator("#members tbody tr td:nth-child(2) a")


async def test_an_owner_works_through_the_members_console(page: Page, http: httpx.AsyncClient, sessions) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    club = await create_community(http, owner, "Iron Club")
    cid = club["id"]
    yoga = await make_group(http, owner, cid, "Yoga")
    offer = await free_offer(http, owner, cid, "Yoga pass", [yoga])
    ann = await sign_up(http, "ann@example.com", name="Ann Archer")
    bob = await sign_up(http, "bob@example.com", name="Bob Baker")
    cat = await sign_up(http, "cat@example.com", name="Cat Cole")
    for person in (ann, bob, cat):
        await comp(http, owner, cid, offer["id"], person.email)
    async with sessions() as session, session.begin():
        await pay(session, cid, offer["id"], bob.id, 1999)
    assert await groups_of(http, ann, cid) == [yoga]

    # The directory, from the sidebar.
    await log_in(page, owner.email)
    await page.goto(f"/dashboard/communities/{cid}")
    await page.get_by_role("link", name="Members", exact=True).click()
    await expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()
    await expect(names(page)).to_have_count(4)
    await expect(page.locator(f'tr[data-user="{bob.id}"] .spent')).to_have_text("19.99 USD")
    await at_both_widths(page, "the members directory", "directory")

    # Sort by name, both ways.
    await page.locator("#sort-name").click()
    await expect(page).to_have_url(re.compile(r"sort=name"))
    await expect(names(page)).to_have_text(["Ann Archer", "Bob Baker", "Cat Cole", "Olivia Owner"])
    await page.locator("#sort-name").click()
    await expect(page).to_have_url(re.compile(r"order=desc"))
    await expect(names(page)).to_have_text(["Olivia Owner", "Cat Cole", "Bob Baker", "Ann Archer"])

    # Search, then a filter: the view is a link.
    await page.get_by_label("Search name or email").fill("BOB")
    await page.locator("#apply-filters").click()
    await expect(names(page)).to_have_text(["Bob Baker"])
    await page.get_by_label("Search name or email").fill("")
    await page.get_by_label("Spent above (USD)").fill("10")
    await page.locator("#apply-filters").click()
    await expect(page).to_have_url(re.compile(r"spent_above=10"))
    await expect(names(page)).to_have_text(["Bob Baker"])
    await expect(page.locator("#export-link")).to_have_attribute("href", re.compile(r"/members/export\?.*spent_above=10"))
    # A bad value: the refusal next to its field.
    await page.get_by_label("Spent above (USD)").fill("ten")
    await page.locator("#apply-filters").click()
    await expect(page.locator("#e-spent_above")).to_contain_text("must be an amount in USD")
    await assert_accessible(page, "a refused filter")

    # A segment: Customers (ever paid).
    await page.locator('[data-segment="customers"] a').first.click()
    await expect(page).to_have_url(re.compile(r"segment=customers"))
    await expect(names(page)).to_have_text(["Bob Baker"])

    # Save the view as a segment; bulk-tag the ticked members after a confirmation.
    await page.get_by_label("Save these filters as a segment: name").fill("Paying")
    await page.get_by_role("button", name="Save segment").click()
    await expect(page.locator(".flash")).to_contain_text("Saved the segment “Paying”")
    await expect(page.locator("#segments")).to_contain_text("Paying (1)")
    await page.goto(f"/dashboard/communities/{cid}/members")
    await page.get_by_label("Select bob@example.com").check()
    await page.get_by_label("Select cat@example.com").check()
    await page.get_by_label("Only the members ticked above").check()
    await page.get_by_label("Tag", exact=True).last.fill("spring")
    await page.locator("#bulk-review").click()
    await expect(page.locator("#touches")).to_contain_text("2 members")
    await at_both_widths(page, "a bulk tag's confirmation", "bulk-confirm")
    await page.locator("#confirm-bulk").click()
    await expect(page.locator(".flash")).to_contain_text("Added the tag “spring” to 2 members.")
    await expect(page.locator(f'tr[data-user="{bob.id}"]')).to_contain_text("spring")

    # A member's page: a note added and edited, a tag added and removed.
    await page.goto(f"/dashboard/communities/{cid}/members")
    await page.get_by_role("link", name="Ann Archer").click()
    await expect(page.get_by_role("heading", name="Ann Archer", level=1)).to_be_visible()
    await expect(page.locator("#contact")).to_have_attribute("href", "mailto:ann@example.com")
    await page.get_by_label("New note").fill("Asked about mats")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#notes .body")).to_have_text(["Asked about mats"])
    await page.locator("#notes").get_by_role("link", name=re.compile("^Edit the note")).click()
    await at_both_widths(page, "editing a note", "note-edit")
    await page.get_by_label("Note", exact=True).fill("Mats sent on Monday")
    await page.locator("#save-note").click()
    await expect(page.locator("#notes .body")).to_have_text(["Mats sent on Monday"])
    await expect(page.locator("#notes .hint")).to_contain_text("edited by Olivia Owner")
    await page.get_by_label("New tag").fill("VIP")
    await page.get_by_role("button", name="Add tag").click()
    await expect(page.locator('#tags [data-tag="VIP"]')).to_be_visible()
    await at_both_widths(page, "a member's page", "member")
    await page.get_by_role("button", name="Remove the tag VIP").click()
    await expect(page.locator("#no-tags")).to_be_visible()

    # Removing her: the confirmation says what happens; her access goes; the directory drops her.
    await page.locator("#remove-link").click()
    await expect(page.locator("#what-happens")).to_contain_text("Every membership is cancelled now: Yoga pass")
    await at_both_widths(page, "removing a member", "remove")
    await page.locator("#confirm-remove").click()
    await expect(page.locator(".flash")).to_contain_text("ann@example.com was removed from Iron Club")
    await expect(names(page)).to_have_count(3)
    await expect(page.locator(f'tr[data-user="{ann.id}"]')).to_have_count(0)
    gone = await http.get(f"/api/v1/communities/{cid}/me/groups", headers=ann.headers)
    assert gone.status_code == 404  # no longer a member: no group opens
    assert page.script_errors == [] and page.csp_violations == []  # type: ignore[attr-defined]
