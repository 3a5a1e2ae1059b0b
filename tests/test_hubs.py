"""Hubs and hub groups: create, rename, reorder, move, delete (with what they hold)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Account, create_community, sign_up

API = "/api/v1"


def field_of(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


class Hubs:
    """Calls on one community's hubs and groups as one person."""

    def __init__(self, client: httpx.AsyncClient, community: dict[str, Any], who: Account) -> None:
        self.client = client
        self.base = f"{API}/communities/{community['id']}"
        self.headers = who.headers

    async def request(self, method: str, url: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, self.base + url, json=body, headers=self.headers)

    async def hub(self, name: str, **fields: Any) -> dict[str, Any]:
        response = await self.request("POST", "/hubs", {"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    async def group(self, hub_id: int, name: str, **fields: Any) -> dict[str, Any]:
        response = await self.request("POST", f"/hubs/{hub_id}/groups", {"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    async def post(self, group_id: int, title: str = "Hello") -> dict[str, Any]:
        response = await self.request("POST", f"/groups/{group_id}/posts", {"title": title, "body": "text"})
        assert response.status_code == 201, response.text
        return response.json()

    async def listing(self) -> list[dict[str, Any]]:
        response = await self.request("GET", "/hubs")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def hubs(client: httpx.AsyncClient, community: dict[str, Any], owner: Account) -> Hubs:
    return Hubs(client, community, owner)


async def test_create_and_list_hubs_in_order(hubs: Hubs) -> None:
    first = await hubs.hub("Start Here", description="  Read me first  ")
    second = await hubs.hub("Courses", slug="all-courses")
    assert (first["slug"], first["position"], first["description"], first["groups"]) == ("start-here", 0, "Read me first", [])
    assert (second["slug"], second["position"]) == ("all-courses", 1)
    intro = await hubs.group(first["id"], "Introductions")
    rules = await hubs.group(first["id"], "House Rules", description="Be kind")
    assert (intro["hub_id"], intro["slug"], intro["position"]) == (first["id"], "introductions", 0)
    assert (rules["position"], rules["description"]) == (1, "Be kind")

    listing = await hubs.listing()
    assert [h["id"] for h in listing] == [first["id"], second["id"]]
    assert [g["id"] for g in listing[0]["groups"]] == [intro["id"], rules["id"]]
    assert listing[1]["groups"] == []

    one = await hubs.request("GET", f"/hubs/{first['id']}")
    assert one.status_code == 200
    assert [g["slug"] for g in one.json()["groups"]] == ["introductions", "house-rules"]
    group = await hubs.request("GET", f"/groups/{rules['id']}")
    assert group.json() == rules


async def test_hub_input_is_checked(hubs: Hubs) -> None:
    for body, field in [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"name": "Fine", "slug": "Not A Slug"}, "slug"),
        ({"name": "!!!"}, "slug"),
        ({"name": "Fine", "description": "x" * 5001}, "description"),
        ({"name": "Fine", "description": "nul \x00 inside"}, "description"),
        ({"name": "nul \x00 inside"}, "name"),
        ({"name": "Fine", "colour": "red"}, "colour"),
        ({"name": 7}, "name"),
    ]:
        response = await hubs.request("POST", "/hubs", body)
        assert response.status_code == 422, (body, response.text)
        assert field_of(response) == [field], (body, response.text)
    assert await hubs.listing() == []


async def test_hub_slugs_are_unique_within_a_community(
    client: httpx.AsyncClient, hubs: Hubs, owner: Account
) -> None:
    await hubs.hub("Courses")
    again = await hubs.request("POST", "/hubs", {"name": "Courses"})
    assert again.status_code == 409 and field_of(again) == ["slug"]
    # Another community has its own slugs.
    other = await create_community(client, owner, "Other Guild")
    assert (await Hubs(client, other, owner).hub("Courses"))["slug"] == "courses"


async def test_rename_a_hub(hubs: Hubs) -> None:
    hub = await hubs.hub("Courses")
    taken = await hubs.hub("Library")
    group = await hubs.group(hub["id"], "Week One")
    renamed = await hubs.request("PATCH", f"/hubs/{hub['id']}", {"name": "Classes", "description": "All of them"})
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert (body["name"], body["slug"], body["description"]) == ("Classes", "courses", "All of them")
    assert [g["id"] for g in body["groups"]] == [group["id"]]
    new_slug = await hubs.request("PATCH", f"/hubs/{hub['id']}", {"slug": "classes"})
    assert new_slug.json()["slug"] == "classes"
    clash = await hubs.request("PATCH", f"/hubs/{hub['id']}", {"slug": taken["slug"]})
    assert clash.status_code == 409 and field_of(clash) == ["slug"]
    blank = await hubs.request("PATCH", f"/hubs/{hub['id']}", {"name": ""})
    assert blank.status_code == 422 and field_of(blank) == ["name"]
    assert (await hubs.request("GET", f"/hubs/{hub['id']}")).json()["name"] == "Classes"
    assert (await hubs.request("PATCH", "/hubs/999999", {"name": "Nobody"})).status_code == 404


async def test_reorder_hubs(hubs: Hubs) -> None:
    a, b, c = [await hubs.hub(name) for name in ("Alpha", "Bravo", "Charlie")]
    response = await hubs.request("PUT", "/hubs/order", {"ids": [c["id"], a["id"], b["id"]]})
    assert response.status_code == 200, response.text
    assert [(h["id"], h["position"]) for h in response.json()] == [(c["id"], 0), (a["id"], 1), (b["id"], 2)]
    assert [h["id"] for h in await hubs.listing()] == [c["id"], a["id"], b["id"]]
    # A new hub goes last.
    d = await hubs.hub("Delta")
    assert d["position"] == 3


@pytest.mark.parametrize(
    "make_ids",
    [
        lambda ids: ids[:-1],  # one missing
        lambda ids: [*ids, ids[0]],  # one twice
        lambda ids: [ids[0], ids[0], ids[1]],  # right length, one twice
        lambda ids: [*ids, 999999],  # one that does not exist
        lambda ids: [],
    ],
    ids=["missing", "twice", "twice-same-length", "unknown", "empty"],
)
async def test_reorder_hubs_needs_every_id_once(hubs: Hubs, make_ids) -> None:
    ids = [(await hubs.hub(name))["id"] for name in ("Alpha", "Bravo", "Charlie")]
    response = await hubs.request("PUT", "/hubs/order", {"ids": make_ids(ids)})
    assert response.status_code == 422, response.text
    assert field_of(response) == ["ids"]
    assert [h["id"] for h in await hubs.listing()] == ids


async def test_reorder_groups(hubs: Hubs) -> None:
    hub = await hubs.hub("Courses")
    other_hub = await hubs.hub("Library")
    g1, g2, g3 = [await hubs.group(hub["id"], name) for name in ("One", "Two", "Three")]
    elsewhere = await hubs.group(other_hub["id"], "Elsewhere")
    url = f"/hubs/{hub['id']}/groups/order"
    response = await hubs.request("PUT", url, {"ids": [g3["id"], g1["id"], g2["id"]]})
    assert response.status_code == 200, response.text
    assert [(g["id"], g["position"]) for g in response.json()] == [(g3["id"], 0), (g1["id"], 1), (g2["id"], 2)]
    for ids in (
        [g1["id"], g2["id"]],
        [g1["id"], g2["id"], g3["id"], g3["id"]],
        [g1["id"], g2["id"], elsewhere["id"]],  # a group of another hub
        [g1["id"], g2["id"], g3["id"], elsewhere["id"]],
        ["a", "b"],
    ):
        bad = await hubs.request("PUT", url, {"ids": ids})
        assert bad.status_code == 422, (ids, bad.text)
        assert field_of(bad)[0].startswith("ids"), bad.text
    listing = await hubs.listing()
    assert [g["id"] for g in listing[0]["groups"]] == [g3["id"], g1["id"], g2["id"]]
    assert (await hubs.request("PUT", "/hubs/999999/groups/order", {"ids": []})).status_code == 404


async def test_group_slugs_are_unique_within_the_community(client: httpx.AsyncClient, hubs: Hubs, owner: Account) -> None:
    first = await hubs.hub("Courses")
    second = await hubs.hub("Library")
    await hubs.group(first["id"], "General")
    clash = await hubs.request("POST", f"/hubs/{second['id']}/groups", {"name": "General"})
    assert clash.status_code == 409 and field_of(clash) == ["slug"]
    same_hub = await hubs.request("POST", f"/hubs/{first['id']}/groups", {"name": "Other", "slug": "general"})
    assert same_hub.status_code == 409 and field_of(same_hub) == ["slug"]
    # A group may share a hub's slug, and another community has its own group slugs.
    assert (await hubs.group(second["id"], "Courses"))["slug"] == "courses"
    other_community = await create_community(client, owner, "Other Guild")
    other = Hubs(client, other_community, owner)
    assert (await other.group((await other.hub("Hub"))["id"], "General"))["slug"] == "general"
    # Renaming a group into a taken slug is refused too.
    library_group = await hubs.group(second["id"], "Reading")
    renamed = await hubs.request("PATCH", f"/groups/{library_group['id']}", {"slug": "general"})
    assert renamed.status_code == 409 and field_of(renamed) == ["slug"]
    # ... also while moving it to another hub (the move's reads once flushed the taken slug: a 500).
    for hub_id in (first["id"], 2**63 - 2):
        moved = await hubs.request("PATCH", f"/groups/{library_group['id']}", {"slug": "general", "hub_id": hub_id})
        assert moved.status_code in (409, 422) and field_of(moved) == (["slug"] if hub_id == first["id"] else ["hub_id"]), moved.text


async def test_rename_and_move_a_group(client: httpx.AsyncClient, hubs: Hubs, owner: Account) -> None:
    first = await hubs.hub("Courses")
    second = await hubs.hub("Library")
    group = await hubs.group(first["id"], "Week One")
    stays = await hubs.group(first["id"], "Week Two")
    await hubs.group(second["id"], "Shelf")
    renamed = await hubs.request("PATCH", f"/groups/{group['id']}", {"name": "Week 1", "description": "Start"})
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["slug"], renamed.json()["description"]) == ("Week 1", "week-one", "Start")

    moved = await hubs.request("PATCH", f"/groups/{group['id']}", {"hub_id": second["id"]})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["hub_id"], moved.json()["position"]) == (second["id"], 1)  # last in its new hub
    listing = await hubs.listing()
    assert [g["id"] for g in listing[0]["groups"]] == [stays["id"]]
    assert [g["name"] for g in listing[1]["groups"]] == ["Shelf", "Week 1"]
    # Moving to the hub it is in changes nothing.
    same = await hubs.request("PATCH", f"/groups/{group['id']}", {"hub_id": second["id"]})
    assert (same.json()["hub_id"], same.json()["position"]) == (second["id"], 1)

    # A hub of another community, or no hub at all: 422 naming hub_id, and nothing moves.
    other_community = await create_community(client, owner, "Other Guild")
    foreign_hub = await Hubs(client, other_community, owner).hub("Foreign")
    for hub_id in (foreign_hub["id"], 999999, 0, -1, 2**63):
        refused = await hubs.request("PATCH", f"/groups/{group['id']}", {"hub_id": hub_id, "name": "Moved?"})
        assert refused.status_code == 422, (hub_id, refused.text)
        assert field_of(refused) == ["hub_id"]
    unchanged = await hubs.request("GET", f"/groups/{group['id']}")
    assert (unchanged.json()["hub_id"], unchanged.json()["name"]) == (second["id"], "Week 1")


async def test_deleting_a_hub_takes_its_groups_and_posts(hubs: Hubs, sessions) -> None:
    doomed = await hubs.hub("Doomed")
    kept = await hubs.hub("Kept")
    groups = [await hubs.group(doomed["id"], name) for name in ("One", "Two")]
    posts = [await hubs.post(g["id"]) for g in groups for _ in range(2)]
    kept_group = await hubs.group(kept["id"], "Safe")
    kept_post = await hubs.post(kept_group["id"])

    assert (await hubs.request("DELETE", f"/hubs/{doomed['id']}")).status_code == 204
    assert (await hubs.request("GET", f"/hubs/{doomed['id']}")).status_code == 404
    for group in groups:
        assert (await hubs.request("GET", f"/groups/{group['id']}")).status_code == 404
    for post in posts:
        assert (await hubs.request("GET", f"/posts/{post['id']}")).status_code == 404
    async with sessions() as session:
        left = {
            table: (await session.scalar(text(f"SELECT count(*) FROM {table}")))
            for table in ("hubs", "hub_groups", "posts")
        }
    assert left == {"hubs": 1, "hub_groups": 1, "posts": 1}
    assert (await hubs.request("GET", f"/posts/{kept_post['id']}")).status_code == 200
    assert (await hubs.request("DELETE", f"/hubs/{doomed['id']}")).status_code == 404


async def test_deleting_a_group_takes_its_posts(hubs: Hubs, sessions) -> None:
    hub = await hubs.hub("Courses")
    group = await hubs.group(hub["id"], "Gone")
    other = await hubs.group(hub["id"], "Stays")
    post = await hubs.post(group["id"])
    other_post = await hubs.post(other["id"])
    assert (await hubs.request("DELETE", f"/groups/{group['id']}")).status_code == 204
    assert (await hubs.request("GET", f"/posts/{post['id']}")).status_code == 404
    assert (await hubs.request("GET", f"/posts/{other_post['id']}")).status_code == 200
    assert (await hubs.request("DELETE", f"/groups/{group['id']}")).status_code == 404
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM posts")) == 1


async def test_managers_read_hubs_but_do_not_shape_them(
    client: httpx.AsyncClient, hubs: Hubs, community: dict[str, Any], owner: Account
) -> None:
    hub = await hubs.hub("Courses")
    group = await hubs.group(hub["id"], "Week One")
    await sign_up(client, "manager@example.com")
    assert (
        await client.put(
            f"{hubs.base}/staff", json={"email": "manager@example.com", "role": "manager"}, headers=owner.headers
        )
    ).status_code == 200
    login = await client.post(f"{API}/auth/login", json={"email": "manager@example.com", "password": "correct horse battery"})
    manager = Hubs(client, community, Account(id=0, email="manager@example.com", token=login.json()["secret"]))

    assert (await manager.request("GET", "/hubs")).status_code == 200
    assert (await manager.request("GET", f"/hubs/{hub['id']}")).status_code == 200
    assert (await manager.request("GET", f"/groups/{group['id']}")).status_code == 200
    for method, url, body in [
        ("POST", "/hubs", {"name": "Mine"}),
        ("PATCH", f"/hubs/{hub['id']}", {"name": "Mine"}),
        ("PUT", "/hubs/order", {"ids": [hub["id"]]}),
        ("DELETE", f"/hubs/{hub['id']}", None),
        ("POST", f"/hubs/{hub['id']}/groups", {"name": "Mine"}),
        ("PUT", f"/hubs/{hub['id']}/groups/order", {"ids": [group["id"]]}),
        ("PATCH", f"/groups/{group['id']}", {"name": "Mine"}),
        ("DELETE", f"/groups/{group['id']}", None),
    ]:
        response = await manager.request(method, url, body)
        assert response.status_code == 403, (method, url, response.text)
    listing = await hubs.listing()
    assert [(h["name"], [g["name"] for g in h["groups"]]) for h in listing] == [("Courses", ["Week One"])]


async def test_outsiders_get_404(client: httpx.AsyncClient, hubs: Hubs, community: dict[str, Any]) -> None:
    hub = await hubs.hub("Courses")
    stranger = await sign_up(client, "stranger@example.com")
    as_stranger = Hubs(client, community, stranger)
    assert (await as_stranger.request("GET", "/hubs")).status_code == 404
    assert (await as_stranger.request("GET", f"/hubs/{hub['id']}")).status_code == 404
    assert (await as_stranger.request("POST", "/hubs", {"name": "Sneaky"})).status_code == 404


@pytest.mark.parametrize("bad_id", ["0", "-1", str(2**63), "99999999999999999999"])
async def test_impossible_ids_in_the_path_answer_404(hubs: Hubs, bad_id: str) -> None:
    hub = await hubs.hub("Courses")
    group = await hubs.group(hub["id"], "Week One")
    for method, url in [
        ("GET", f"/hubs/{bad_id}"),
        ("PATCH", f"/hubs/{bad_id}"),
        ("DELETE", f"/hubs/{bad_id}"),
        ("GET", f"/groups/{bad_id}"),
        ("DELETE", f"/groups/{bad_id}"),
        ("GET", f"/groups/{bad_id}/posts"),
        ("GET", f"/posts/{bad_id}"),
        ("DELETE", f"/staff/{bad_id}"),
    ]:
        body = {"name": "x"} if method == "PATCH" else None
        response = await hubs.request(method, url, body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await hubs.request("GET", f"/groups/{group['id']}")).status_code == 200
