"""Hubs, groups and posts in the owner's console, in a real browser: an owner builds and
rearranges hubs and groups, writes, edits and deletes a post, and deletes a group a member
reaches through an offer (the confirmation says so, the access run then logs it); a manager
reads it all and changes nothing; members never see the console."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import text

from tests.conftest import Account, create_community, sign_up
from tests.e2e.conftest import LiveServer, assert_accessible
from tests.e2e.test_pages import log_in
from tests.helpers import run_jobs

API = "/api/v1"
SHOTS = "/tmp/e2e-hubs"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


async def looked_at(page: Page, name: str) -> None:
    """axe-core finds nothing serious at a desktop's and at a phone's width; a screenshot of each."""
    await assert_accessible(page, name)
    await page.screenshot(path=f"{SHOTS}-{name}.png", full_page=True)
    await page.set_viewport_size(PHONE)
    await assert_accessible(page, f"{name} at a phone's width")
    await page.screenshot(path=f"{SHOTS}-{name}-phone.png", full_page=True)
    await page.set_viewport_size(DESKTOP)


async def api(http: httpx.AsyncClient, who: Account, method: str, url: str, body: Any = None) -> Any:
    response = await http.request(method, f"{API}{url}", json=body, headers=who.headers)
    assert response.status_code < 300, (method, url, response.text)
    return response.json() if response.content else None


async def layout(http: httpx.AsyncClient, who: Account, cid: int) -> list[tuple[str, list[str]]]:
    """The hubs and groups in order, as the API lists them."""
    return [(h["name"], [g["name"] for g in h["groups"]]) for h in await api(http, who, "GET", f"/communities/{cid}/hubs")]


async def hub_headings(page: Page) -> list[str]:
    return await page.locator("section.hub h2").all_inner_texts()


async def test_an_owner_arranges_hubs_and_groups_writes_posts_and_deletes_a_group_someone_holds(
    page: Page, http: httpx.AsyncClient, live_server: LiveServer, sessions
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "olivia@example.com", name="Olivia Owner")
    club = await create_community(http, owner, "Strength Club")
    cid = club["id"]
    base = f"/dashboard/communities/{cid}"
    await log_in(page, owner.email)

    await page.goto(f"{base}/hubs")
    await expect(page.locator("#no-hubs")).to_be_visible()
    await looked_at(page, "hubs-empty")

    # Two hubs; a refused one says why next to its field and keeps what was typed.
    await page.get_by_label("Hub name").fill("Courses")
    await page.get_by_label("Description (optional)").fill("Self-paced classes")
    await page.get_by_role("button", name="Add hub").click()
    await expect(page.get_by_role("status")).to_contain_text("Hub Courses created")
    await page.get_by_label("Hub name").fill("Courses again")
    await page.get_by_label("Address (optional)").fill("courses")
    async with page.expect_response(lambda r: r.request.method == "POST") as refused:
        await page.get_by_role("button", name="Add hub").click()
    assert (await refused.value).status == 409
    await expect(page.get_by_label("Address (optional)")).to_have_accessible_description(
        re.compile("a hub with this slug exists in this community")
    )
    await expect(page.get_by_label("Hub name")).to_have_value("Courses again")
    await looked_at(page, "hubs-refused")
    await page.get_by_label("Hub name").fill("Coaching")
    await page.get_by_label("Address (optional)").fill("")
    await page.get_by_role("button", name="Add hub").click()
    await expect(page.get_by_role("status")).to_contain_text("Hub Coaching created")
    assert await hub_headings(page) == ["Courses", "Coaching"]

    # Groups, each from its hub's "Add a group" link.
    for name in ("Yoga", "Weights", "Nutrition"):
        await page.get_by_role("link", name="Add a group to Courses").click()
        if name == "Yoga":
            await looked_at(page, "group-new")
        await page.get_by_label("Group name").fill(name)
        await page.get_by_role("button", name="Create group").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(name)
        await page.get_by_role("navigation", name="Console").get_by_role("link", name="Hubs and groups").click()
    assert await layout(http, owner, cid) == [("Courses", ["Yoga", "Weights", "Nutrition"]), ("Coaching", [])]

    # Rename a hub.
    await page.get_by_role("link", name="Edit hub Courses").click()
    await expect(page.get_by_label("Hub name")).to_have_value("Courses")
    await looked_at(page, "hub-settings")
    await page.get_by_label("Hub name").fill("Classes")
    await page.get_by_role("button", name="Save hub").click()
    await expect(page.get_by_role("status")).to_contain_text("Hub Classes saved")
    assert await hub_headings(page) == ["Classes", "Coaching"]

    # Reorder with the buttons (no script): a hub, then a group.
    await page.get_by_role("button", name="Move Coaching up").click()
    await expect(page.get_by_role("status")).to_contain_text("New order saved")
    assert await hub_headings(page) == ["Coaching", "Classes"]
    await expect(page.get_by_role("button", name="Move Coaching up")).to_have_count(0)  # first already
    await page.get_by_role("button", name="Move Nutrition up").click()
    await expect(page.get_by_role("status")).to_contain_text("New order saved")
    assert await layout(http, owner, cid) == [("Coaching", []), ("Classes", ["Yoga", "Nutrition", "Weights"])]
    await looked_at(page, "hubs")

    # Move a group to the other hub.
    await page.get_by_role("link", name="Edit group Weights").click()
    await looked_at(page, "group-settings")
    await page.get_by_label("Hub", exact=True).select_option(label="Coaching")
    await page.get_by_role("button", name="Save group").click()
    await expect(page.get_by_role("status")).to_contain_text("Group Weights saved and moved to Coaching")
    assert await layout(http, owner, cid) == [("Coaching", ["Weights"]), ("Classes", ["Yoga", "Nutrition"])]

    # Write, edit and delete a post in Yoga.
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Hubs and groups").click()
    await page.get_by_role("link", name="Yoga", exact=True).click()
    await expect(page.locator("#no-posts")).to_be_visible()
    await page.get_by_role("button", name="Publish post").click()  # nothing typed: refused, in the API's words
    await expect(page.get_by_label("Title")).to_have_accessible_description(re.compile("length >= 1"))
    await page.get_by_label("Title").fill("Welcome")
    await page.get_by_label("Text").fill("Breathe in.\nBreathe out.")
    await page.get_by_role("button", name="Publish post").click()
    await expect(page.get_by_role("status")).to_contain_text("Post Welcome published in Yoga")
    post = page.locator("article.post")
    await expect(post).to_have_count(1)
    await expect(post.locator(".post-body")).to_have_text("Breathe in.\nBreathe out.")
    await expect(post).to_contain_text("by Olivia Owner")
    await looked_at(page, "group")
    await page.get_by_role("link", name="Edit post Welcome").click()
    await looked_at(page, "post-edit")
    await page.get_by_label("Title").fill("Welcome, everyone")
    await page.get_by_role("button", name="Save post").click()
    await expect(page.get_by_role("status")).to_contain_text("Post Welcome, everyone saved")
    await expect(post.get_by_role("heading")).to_have_text("Welcome, everyone")
    await expect(post).to_contain_text("edited")
    await page.get_by_role("link", name="Delete post Welcome, everyone").click()
    await expect(page.get_by_text("This cannot be undone")).to_be_visible()
    await looked_at(page, "post-delete")
    await page.get_by_role("button", name="Delete post").click()
    await expect(page.get_by_role("status")).to_contain_text("Post Welcome, everyone deleted")
    await expect(page.locator("#no-posts")).to_be_visible()

    # A member reaches Nutrition through an offer (set up through the API).
    nutrition = next(g for h in await api(http, owner, "GET", f"/communities/{cid}/hubs") for g in h["groups"] if g["name"] == "Nutrition")
    offer = await api(http, owner, "POST", f"/communities/{cid}/offers", {"title": "Meal plan", "pricing": "free"})
    await api(http, owner, "PUT", f"/communities/{cid}/offers/{offer['id']}/groups", {"add": [nutrition["id"]]})
    member = await sign_up(http, "mia@example.com", name="Mia Member")
    await api(http, owner, "POST", f"/communities/{cid}/entitlements", {"email": member.email, "offer_id": offer["id"]})
    await api(http, owner, "POST", f"/communities/{cid}/groups/{nutrition['id']}/posts", {"title": "Eat well", "body": "Greens."})
    await run_jobs(live_server.settings)  # the grant's run logs "gained"
    assert nutrition["id"] in (await api(http, member, "GET", f"/communities/{cid}/me/groups"))["group_ids"]

    # Deleting it says who loses access and what else goes, before it happens.
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Hubs and groups").click()
    await page.get_by_role("link", name="Delete group Nutrition").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Delete the group Nutrition?")
    members = page.locator("#deletion [data-what=members]")
    await expect(members).to_have_attribute("data-count", "1")
    await expect(members).to_contain_text("1 member loses access")
    await expect(page.locator("#deletion [data-what=posts]")).to_contain_text("1 post is deleted")
    await expect(page.locator("#deletion [data-what=offers]")).to_contain_text("1 offer stops granting it: Meal plan")
    await looked_at(page, "group-delete")
    await page.get_by_role("button", name="Delete group").click()
    await expect(page.get_by_role("status")).to_contain_text("Group Nutrition deleted. 1 member lost access")
    assert await layout(http, owner, cid) == [("Coaching", ["Weights"]), ("Classes", ["Yoga"])]
    assert nutrition["id"] not in (await api(http, member, "GET", f"/communities/{cid}/me/groups"))["group_ids"]
    await run_jobs(live_server.settings)
    await run_jobs(live_server.settings)  # the deletion's job starts the access run, which runs next
    async with sessions() as session:
        logged = (
            await session.execute(
                text("SELECT change::text, group_name FROM access_log WHERE user_id = :u AND group_id = :g ORDER BY id"),
                {"u": member.id, "g": nutrition["id"]},
            )
        ).all()
    assert [tuple(row) for row in logged] == [("gained", "Nutrition"), ("lost", "Nutrition")]

    # A hub goes with its groups, and says so.
    await page.get_by_role("link", name="Delete hub Coaching").click()
    await expect(page.locator("#deletion [data-what=groups]")).to_contain_text("Its 1 group goes with it: Weights")
    await expect(page.locator("#deletion [data-what=members]")).to_contain_text("Nobody loses access")
    await looked_at(page, "hub-delete")
    await page.get_by_role("button", name="Delete hub").click()
    await expect(page.get_by_role("status")).to_contain_text("Hub Coaching deleted with its groups. Nobody lost access")
    assert await layout(http, owner, cid) == [("Classes", ["Yoga"])]
    assert page.csp_violations == [] and page.script_errors == []  # type: ignore[attr-defined]


async def test_a_manager_reads_hubs_and_groups_and_members_never_see_the_console(
    page: Page, http: httpx.AsyncClient, browser_context_factory
) -> None:
    await page.set_viewport_size(DESKTOP)
    owner = await sign_up(http, "own@example.com", name="Own")
    club = await create_community(http, owner, "Readers")
    cid = club["id"]
    base = f"/dashboard/communities/{cid}"
    hub = await api(http, owner, "POST", f"/communities/{cid}/hubs", {"name": "Library", "description": "Books"})
    group = await api(http, owner, "POST", f"/communities/{cid}/hubs/{hub['id']}/groups", {"name": "Poetry"})
    await api(http, owner, "POST", f"/communities/{cid}/groups/{group['id']}/posts", {"title": "A sonnet", "body": "Fourteen lines"})
    manager = await sign_up(http, "manny@example.com", name="Manny")
    await api(http, owner, "PUT", f"/communities/{cid}/staff", {"email": manager.email, "role": "manager"})
    before = await layout(http, owner, cid)

    await log_in(page, manager.email)
    await page.goto(f"{base}/hubs")
    await expect(page.locator("section.hub h2")).to_have_text(["Library"])
    await expect(page.get_by_text("Books")).to_be_visible()
    await expect(page.get_by_text("You can read everything here; owners and admins change it.")).to_be_visible()
    for button in ("Add hub",):
        await expect(page.get_by_role("button", name=button)).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("^Move"))).to_have_count(0)
    await expect(page.get_by_role("link", name=re.compile("^(Edit|Delete|Add a group)"))).to_have_count(0)
    await looked_at(page, "manager-hubs")

    # The group: its posts as the API lets a manager read them (through an offer only).
    await page.get_by_role("link", name="Poetry").click()
    await expect(page.locator("#posts-refused")).to_contain_text("you have no access to this group")
    await expect(page.get_by_text("A sonnet")).to_have_count(0)
    await expect(page.get_by_role("button", name="Publish post")).to_have_count(0)
    await looked_at(page, "manager-group")
    offer = await api(http, owner, "POST", f"/communities/{cid}/offers", {"title": "Poetry pass", "pricing": "free"})
    await api(http, owner, "PUT", f"/communities/{cid}/offers/{offer['id']}/groups", {"add": [group["id"]]})
    await api(http, owner, "POST", f"/communities/{cid}/entitlements", {"email": manager.email, "offer_id": offer["id"]})
    await page.reload()
    await expect(page.locator("article.post h3")).to_have_text(["A sonnet"])
    await expect(page.get_by_role("link", name=re.compile("^(Edit|Delete)"))).to_have_count(0)

    # Editing screens refuse a manager, and so do the forms, even with a valid CSRF token.
    for path in ("/hubs/{h}/settings", "/groups/{g}/settings", "/hubs/{h}/groups/new", "/groups/{g}/delete", "/hubs/{h}/delete"):
        response = await page.goto(base + path.format(h=hub["id"], g=group["id"]))
        assert response is not None and response.status == 403, path
    await page.goto(f"{base}/hubs")
    token = await page.locator("input[name=_csrf_token]").first.get_attribute("value")
    for path, form in [
        ("/hubs", {"name": "Mine"}),
        ("/hubs/order", {"ids": str(hub["id"])}),
        (f"/hubs/{hub['id']}/settings", {"name": "Mine"}),
        (f"/hubs/{hub['id']}/groups/new", {"name": "Mine"}),
        (f"/groups/{group['id']}/settings", {"name": "Mine"}),
        (f"/groups/{group['id']}/posts", {"title": "Mine", "body": "Mine"}),
        (f"/groups/{group['id']}/delete", {}),
        (f"/hubs/{hub['id']}/delete", {}),
    ]:
        response = await page.request.post(base + path, form={**form, "_csrf_token": token or ""}, max_redirects=0)
        assert response.status == 403, (path, response.status)
    assert await layout(http, owner, cid) == before
    assert page.csp_violations == [] and page.script_errors == []  # type: ignore[attr-defined]

    # A member (who holds the offer) never sees the console; an outsider is told nothing exists.
    member = await sign_up(http, "mia@example.com", name="Mia")
    await api(http, owner, "POST", f"/communities/{cid}/entitlements", {"email": member.email, "offer_id": offer["id"]})
    await sign_up(http, "out@example.com", name="Out")
    for email_address, status in (("mia@example.com", 403), ("out@example.com", 404)):
        other = await (await browser_context_factory()).new_page()
        await log_in(other, email_address)
        for path in ("/hubs", f"/groups/{group['id']}"):
            response = await other.goto(base + path)
            assert response is not None and response.status == status, (email_address, path)
            await expect(other.get_by_text("Poetry")).to_have_count(0)


async def test_stale_orders_and_foreign_ids_change_nothing(page: Page, http: httpx.AsyncClient) -> None:
    owner = await sign_up(http, "own@example.com", name="Own")
    club = await create_community(http, owner, "Mine")
    cid = club["id"]
    base = f"/dashboard/communities/{cid}"
    first = await api(http, owner, "POST", f"/communities/{cid}/hubs", {"name": "First"})
    await api(http, owner, "POST", f"/communities/{cid}/hubs", {"name": "Second"})
    stranger = await sign_up(http, "stranger@example.com")
    theirs = await create_community(http, stranger, "Theirs")
    their_hub = await api(http, stranger, "POST", f"/communities/{theirs['id']}/hubs", {"name": "Theirs"})
    their_group = await api(http, stranger, "POST", f"/communities/{theirs['id']}/hubs/{their_hub['id']}/groups", {"name": "Theirs"})

    await log_in(page, owner.email)
    await page.goto(f"{base}/hubs")
    # Someone adds a hub after this page was drawn: the order it posts no longer lists every hub.
    await api(http, owner, "POST", f"/communities/{cid}/hubs", {"name": "Third"})
    await page.get_by_role("button", name="Move Second up").click()
    await expect(page.locator(".flash.error")).to_contain_text("The order was not saved: must list every hub of this container exactly once")
    assert await layout(http, owner, cid) == [("First", []), ("Second", []), ("Third", [])]
    await assert_accessible(page, "hubs after a stale order")

    # A rename refused keeps what was typed, says why next to the field, and names the hub as saved.
    await page.get_by_role("link", name="Edit hub Second").click()
    await page.get_by_label("Hub name").fill("Renamed")
    await page.get_by_label("Address").fill("first")
    await page.get_by_role("button", name="Save hub").click()
    await expect(page.get_by_label("Address")).to_have_accessible_description(re.compile("a hub with this slug exists"))
    await expect(page.get_by_label("Hub name")).to_have_value("Renamed")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Edit hub Second")
    await assert_accessible(page, "hub settings, refused")
    assert await layout(http, owner, cid) == [("First", []), ("Second", []), ("Third", [])]

    # Another community's hub or group is not found here, read or written.
    for path in (f"/hubs/{their_hub['id']}/settings", f"/groups/{their_group['id']}", f"/groups/{their_group['id']}/delete"):
        response = await page.goto(base + path)
        assert response is not None and response.status == 404, path
    await page.goto(f"{base}/hubs")
    token = await page.locator("input[name=_csrf_token]").first.get_attribute("value")
    for path, form in [
        (f"/groups/{their_group['id']}/delete", {}),
        (f"/hubs/{their_hub['id']}/delete", {}),
        (f"/groups/{their_group['id']}/settings", {"name": "Taken"}),
        (f"/groups/{their_group['id']}/posts", {"title": "Mine", "body": "Mine"}),
        (f"/hubs/{their_hub['id']}/groups/order", {"ids": str(their_group["id"])}),
    ]:
        response = await page.request.post(base + path, form={**form, "_csrf_token": token or ""}, max_redirects=0)
        assert response.status == 404, (path, response.status)
    # Moving a group to another community's hub is refused next to the field, in the API's words.
    group = await api(http, owner, "POST", f"/communities/{cid}/hubs/{first['id']}/groups", {"name": "Mine"})
    response = await page.request.post(
        f"{base}/groups/{group['id']}/settings",
        form={"name": "Mine", "slug": "mine", "description": "", "hub_id": str(their_hub["id"]), "_csrf_token": token or ""},
        max_redirects=0,
    )
    assert response.status == 422 and "no such hub in this community" in await response.text()
    assert await layout(http, stranger, theirs["id"]) == [("Theirs", ["Theirs"])]
    assert await layout(http, owner, cid) == [("First", ["Mine"]), ("Second", []), ("Third", [])]

    # A long group pages its posts, newest first.
    for n in range(1, 23):
        await api(http, owner, "POST", f"/communities/{cid}/groups/{group['id']}/posts", {"title": f"Post {n}", "body": "."})
    await page.goto(f"{base}/groups/{group['id']}")
    titles = page.locator("article.post h3")
    await expect(titles).to_have_count(20)
    await expect(titles.first).to_have_text("Post 22")
    await page.get_by_role("link", name="Older posts").click()
    await expect(titles).to_have_text(["Post 2", "Post 1"])
    await expect(page.get_by_role("link", name="Older posts")).to_have_count(0)
    await assert_accessible(page, "older posts")
    await page.get_by_role("link", name="Newest posts").click()
    await expect(titles.first).to_have_text("Post 22")
    assert page.csp_violations == [] and page.script_errors == []  # type: ignore[attr-defined]
