"""Posts in hub groups: written and read by owners and admins (members come with offers)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account, sign_up

API = "/api/v1"


def field_of(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


@pytest.fixture
async def group(client: httpx.AsyncClient, owner: Account, community: dict[str, Any]) -> dict[str, Any]:
    base = f"{API}/communities/{community['id']}"
    hub = (await client.post(f"{base}/hubs", json={"name": "Courses"}, headers=owner.headers)).json()
    response = await client.post(f"{base}/hubs/{hub['id']}/groups", json={"name": "Week One"}, headers=owner.headers)
    assert response.status_code == 201
    return response.json()


def base_of(community: dict[str, Any]) -> str:
    return f"{API}/communities/{community['id']}"


async def write(client: httpx.AsyncClient, community: dict[str, Any], group: dict[str, Any], who: Account, title: str, body: str = "Some text") -> dict[str, Any]:
    response = await client.post(
        f"{base_of(community)}/groups/{group['id']}/posts", json={"title": title, "body": body}, headers=who.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def staff(client: httpx.AsyncClient, community: dict[str, Any], owner: Account, email: str, role: str) -> Account:
    account = await sign_up(client, email)
    response = await client.put(f"{base_of(community)}/staff", json={"email": email, "role": role}, headers=owner.headers)
    assert response.status_code == 200
    return account


async def test_write_and_read_a_post(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    post = await write(client, community, group, owner, "  Welcome  ", "Hello **everyone**\n")
    assert post["title"] == "Welcome"
    assert post["body"] == "Hello **everyone**\n"  # the body is kept as written
    assert (post["group_id"], post["author_id"], post["updated_at"]) == (group["id"], owner.id, None)
    read = await client.get(f"{base_of(community)}/posts/{post['id']}", headers=owner.headers)
    assert read.status_code == 200
    assert read.json() == post


async def test_posts_list_newest_first_in_keyset_pages(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]
) -> None:
    posts = [await write(client, community, group, owner, f"Post {i}") for i in range(7)]
    url = f"{base_of(community)}/groups/{group['id']}/posts"
    seen: list[dict[str, Any]] = []
    before = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"before": before} if before else {})
        page = await client.get(url, params=params, headers=owner.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(body["items"])
        pages += 1
        if body["next"] is None:
            break
        assert body["next"] == body["items"][-1]["id"]
        before = body["next"]
    assert pages == 3
    assert [p["title"] for p in seen] == [f"Post {i}" for i in reversed(range(7))]
    assert [p["id"] for p in seen] == [p["id"] for p in reversed(posts)]
    everything = (await client.get(url, headers=owner.headers)).json()
    assert len(everything["items"]) == 7 and everything["next"] is None
    # A page of exactly `limit` items points on; the page after it is empty.
    exact = (await client.get(url, params={"limit": 7}, headers=owner.headers)).json()
    assert exact["next"] == posts[0]["id"]
    assert (await client.get(url, params={"limit": 7, "before": exact["next"]}, headers=owner.headers)).json() == {
        "items": [],
        "next": None,
    }


async def test_posts_are_listed_per_group(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]
) -> None:
    hub_id = group["hub_id"]
    other = (
        await client.post(f"{base_of(community)}/hubs/{hub_id}/groups", json={"name": "Week Two"}, headers=owner.headers)
    ).json()
    mine = await write(client, community, group, owner, "In one")
    await write(client, community, other, owner, "In two")
    listed = (await client.get(f"{base_of(community)}/groups/{group['id']}/posts", headers=owner.headers)).json()
    assert [p["id"] for p in listed["items"]] == [mine["id"]]
    assert (await client.get(f"{base_of(community)}/groups/999999/posts", headers=owner.headers)).status_code == 404
    missing_group = await client.post(
        f"{base_of(community)}/groups/999999/posts", json={"title": "t", "body": "b"}, headers=owner.headers
    )
    assert missing_group.status_code == 404


async def test_post_page_limits(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    url = f"{base_of(community)}/groups/{group['id']}/posts"
    for params, field in [({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"before": "yesterday"}, "before"), ({"before": 10**19}, "before")]:
        response = await client.get(url, params=params, headers=owner.headers)
        assert 400 <= response.status_code < 500, (params, response.text)
        assert field_of(response) == [field], response.text


async def test_update_a_post(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    post = await write(client, community, group, owner, "Draft", "First words")
    url = f"{base_of(community)}/posts/{post['id']}"
    titled = await client.patch(url, json={"title": "Final"}, headers=owner.headers)
    assert titled.status_code == 200, titled.text
    assert (titled.json()["title"], titled.json()["body"]) == ("Final", "First words")
    assert titled.json()["updated_at"] is not None
    bodied = await client.patch(url, json={"body": "Better words"}, headers=owner.headers)
    assert (bodied.json()["title"], bodied.json()["body"]) == ("Final", "Better words")
    for body, field in [
        ({"title": "   "}, "title"),
        ({"title": ""}, "title"),
        ({"body": "  \n "}, "body"),
        ({"title": "x" * 201}, "title"),
        ({"body": "a\x00b"}, "body"),
        ({"author_id": 5}, "author_id"),
    ]:
        refused = await client.patch(url, json=body, headers=owner.headers)
        assert refused.status_code == 422, (body, refused.text)
        assert field_of(refused) == [field], body
    assert (await client.get(url, headers=owner.headers)).json()["body"] == "Better words"
    assert (await client.patch(f"{base_of(community)}/posts/999999", json={"title": "x"}, headers=owner.headers)).status_code == 404


async def test_bad_new_posts(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    url = f"{base_of(community)}/groups/{group['id']}/posts"
    for body, field in [
        ({"body": "text"}, "title"),
        ({"title": "t"}, "body"),
        ({"title": " ", "body": "text"}, "title"),
        ({"title": "t", "body": " "}, "body"),
        ({"title": "t\x00", "body": "text"}, "title"),
        ({"title": "t", "body": "x" * 100_001}, "body"),
    ]:
        response = await client.post(url, json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
        assert field_of(response) == [field], body
    assert (await client.get(url, headers=owner.headers)).json()["items"] == []


async def test_delete_a_post(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    post = await write(client, community, group, owner, "Short-lived")
    kept = await write(client, community, group, owner, "Kept")
    url = f"{base_of(community)}/posts/{post['id']}"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    listed = (await client.get(f"{base_of(community)}/groups/{group['id']}/posts", headers=owner.headers)).json()
    assert [p["id"] for p in listed["items"]] == [kept["id"]]


async def test_admins_write_and_read(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    admin = await staff(client, community, owner, "admin@example.com", "admin")
    post = await write(client, community, group, admin, "From the admin")
    assert post["author_id"] == admin.id
    owners = await write(client, community, group, owner, "From the owner")
    # An admin edits and deletes any post, not only their own.
    edited = await client.patch(f"{base_of(community)}/posts/{owners['id']}", json={"title": "Edited"}, headers=admin.headers)
    assert edited.status_code == 200 and edited.json()["author_id"] == owner.id
    listed = await client.get(f"{base_of(community)}/groups/{group['id']}/posts", headers=admin.headers)
    assert [p["title"] for p in listed.json()["items"]] == ["Edited", "From the admin"]
    assert (await client.delete(f"{base_of(community)}/posts/{post['id']}", headers=admin.headers)).status_code == 204


async def test_managers_cannot_read_or_write_posts(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]
) -> None:
    post = await write(client, community, group, owner, "Owners only")
    manager = await staff(client, community, owner, "manager@example.com", "manager")
    base = base_of(community)
    for method, url, body in [
        ("GET", f"/groups/{group['id']}/posts", None),
        ("POST", f"/groups/{group['id']}/posts", {"title": "t", "body": "b"}),
        ("GET", f"/posts/{post['id']}", None),
        ("PATCH", f"/posts/{post['id']}", {"title": "mine"}),
        ("DELETE", f"/posts/{post['id']}", None),
    ]:
        response = await client.request(method, base + url, json=body, headers=manager.headers)
        assert response.status_code == 403, (method, url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Owners only" not in response.text
    assert (await client.get(f"{base}/posts/{post['id']}", headers=owner.headers)).json()["title"] == "Owners only"


async def test_outsiders_get_404(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], group: dict[str, Any]) -> None:
    post = await write(client, community, group, owner, "Private")
    stranger = await sign_up(client, "stranger@example.com")
    base = base_of(community)
    for method, url in [("GET", f"/groups/{group['id']}/posts"), ("GET", f"/posts/{post['id']}"), ("DELETE", f"/posts/{post['id']}")]:
        response = await client.request(method, base + url, headers=stranger.headers)
        assert response.status_code == 404, (method, url)
    assert (await client.get(f"{base}/posts/{post['id']}", headers=owner.headers)).status_code == 200
