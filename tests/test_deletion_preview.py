"""Before deleting a group or a hub, the API says what goes: how many members lose access (those
who open it through an offer now; owners and admins open everything and lose nothing), its
posts, and the offers that stop granting it. The number is the one the access run then logs."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import Account, create_community, sign_up
from tests.helpers import run_jobs
from tests.test_access import comp, edit, make_offer, my_groups

API = "/api/v1"


async def hub(client: httpx.AsyncClient, owner: Account, cid: int, name: str) -> int:
    response = await client.post(f"{API}/communities/{cid}/hubs", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def group(client: httpx.AsyncClient, owner: Account, cid: int, hub_id: int, name: str) -> int:
    response = await client.post(f"{API}/communities/{cid}/hubs/{hub_id}/groups", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def write(client: httpx.AsyncClient, owner: Account, cid: int, group_id: int, title: str) -> None:
    response = await client.post(
        f"{API}/communities/{cid}/groups/{group_id}/posts", json={"title": title, "body": "text"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text


async def staff(client: httpx.AsyncClient, owner: Account, cid: int, email: str, role: str) -> Account:
    account = await sign_up(client, email)
    response = await client.put(f"{API}/communities/{cid}/staff", json={"email": email, "role": role}, headers=owner.headers)
    assert response.status_code == 200, response.text
    return account


async def preview(client: httpx.AsyncClient, who: Account, cid: int, what: str) -> dict[str, Any]:
    response = await client.get(f"{API}/communities/{cid}/{what}/deletion-preview", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def lost(sessions, group_id: int) -> set[int]:
    async with sessions() as session:
        rows = await session.scalars(
            text("SELECT user_id FROM access_log WHERE group_id = :g AND change = 'lost'"), {"g": group_id}
        )
        return set(rows.all())


async def test_a_group_preview_counts_who_reaches_it_through_an_offer_now(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], sessions, settings
) -> None:
    cid = community["id"]
    courses = await hub(client, owner, cid, "Courses")
    yoga = await group(client, owner, cid, courses, "Yoga")
    other = await group(client, owner, cid, courses, "Weights")
    membership = await make_offer(sessions, cid, "Membership")
    bundle = await make_offer(sessions, cid, "Bundle")
    unrelated = await make_offer(sessions, cid, "Weights only")
    await edit(client, owner, cid, membership, add=[yoga, other])
    await edit(client, owner, cid, bundle, add=[yoga])
    await edit(client, owner, cid, unrelated, add=[other])
    for title in ("One", "Two"):
        await write(client, owner, cid, yoga, title)
    await write(client, owner, cid, other, "Elsewhere")

    # Who opens Yoga through an offer now, and who does not count:
    ann = await sign_up(client, "ann@example.com")  # through one offer
    await comp(client, owner, cid, membership, ann.email)
    bob = await sign_up(client, "bob@example.com")  # through two offers: one person
    await comp(client, owner, cid, membership, bob.email)
    await comp(client, owner, cid, bundle, bob.email)
    manny = await staff(client, owner, cid, "manny@example.com", "manager")  # managers reach groups through offers
    await comp(client, owner, cid, bundle, manny.email)
    ada = await staff(client, owner, cid, "ada@example.com", "admin")  # admins open everything: not counted
    await comp(client, owner, cid, bundle, ada.email)
    cy = await sign_up(client, "cy@example.com")  # only the other group
    await comp(client, owner, cid, unrelated, cy.email)
    dee = await sign_up(client, "dee@example.com")  # held it; it ended
    held = await comp(client, owner, cid, membership, dee.email)
    ended = await client.post(f"{API}/communities/{cid}/entitlements/{held['id']}/end", json={"status": "cancelled"}, headers=owner.headers)
    assert ended.status_code == 200 and ended.json()["live"] is False, ended.text
    # A "new buyers only" addition: Eve bought before it and never had Yoga.
    late = await make_offer(sessions, cid, "Late")
    eve = await sign_up(client, "eve@example.com")
    await comp(client, owner, cid, late, eve.email)
    await edit(client, owner, cid, late, add=[yoga], mode="new_buyers_only")
    assert yoga not in await my_groups(client, eve, cid)
    await run_jobs(settings)

    seen = await preview(client, owner, cid, f"groups/{yoga}")
    assert seen == {
        "groups": [{"id": yoga, "name": "Yoga"}],
        "members_losing_access": 3,  # Ann, Bob, Manny
        "posts": 2,
        "offers": [{"id": bundle, "title": "Bundle"}, {"id": late, "title": "Late"}, {"id": membership, "title": "Membership"}],
    }
    # Managers read it too (it changes nothing), as they read the group.
    assert await preview(client, manny, cid, f"groups/{yoga}") == seen

    # The number is the people who then lose it: the access run logs exactly them.
    assert (await client.delete(f"{API}/communities/{cid}/groups/{yoga}", headers=owner.headers)).status_code == 204
    await run_jobs(settings)
    await run_jobs(settings)  # the deletion's job starts a run, which runs next
    await run_jobs(settings)  # and the run's emails go after it
    assert {ann.id, bob.id, manny.id} <= await lost(sessions, yoga)
    assert not ({cy.id, dee.id, eve.id} & await lost(sessions, yoga))
    # The log and the email name the group that went, though its row is gone.
    async with sessions() as session:
        names = set((await session.scalars(text("SELECT group_name FROM access_log WHERE group_id = :g"), {"g": yoga})).all())
        run_id = await session.scalar(text("SELECT max(run_id) FROM access_log WHERE group_id = :g AND change = 'lost'"), {"g": yoga})
    assert names == {"Yoga"}
    email = (settings.data_dir / "mail" / f"access-run-{run_id}-access_lost-{ann.id}.eml").read_text()
    assert "Yoga" in email and "(deleted group)" not in email
    for person in (ann, bob, manny):
        assert yoga not in await my_groups(client, person, cid)
    assert other in await my_groups(client, ann, cid)


async def test_a_hub_preview_adds_up_its_groups_counting_each_person_once(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], sessions
) -> None:
    cid = community["id"]
    doomed = await hub(client, owner, cid, "Doomed")
    kept = await hub(client, owner, cid, "Kept")
    first = await group(client, owner, cid, doomed, "First")
    second = await group(client, owner, cid, doomed, "Second")
    safe = await group(client, owner, cid, kept, "Safe")
    offer = await make_offer(sessions, cid, "Everything")
    safe_only = await make_offer(sessions, cid, "Safe only")
    await edit(client, owner, cid, offer, add=[first, second])
    await edit(client, owner, cid, safe_only, add=[safe])
    for g, title in ((first, "a"), (second, "b"), (second, "c"), (safe, "d")):
        await write(client, owner, cid, g, title)
    for email in ("one@example.com", "two@example.com"):
        await sign_up(client, email)
        await comp(client, owner, cid, offer, email)
    await sign_up(client, "three@example.com")
    await comp(client, owner, cid, safe_only, "three@example.com")

    assert await preview(client, owner, cid, f"hubs/{doomed}") == {
        "groups": [{"id": first, "name": "First"}, {"id": second, "name": "Second"}],
        "members_losing_access": 2,
        "posts": 3,
        "offers": [{"id": offer, "title": "Everything"}],
    }
    empty = await hub(client, owner, cid, "Empty")
    assert await preview(client, owner, cid, f"hubs/{empty}") == {
        "groups": [], "members_losing_access": 0, "posts": 0, "offers": []
    }


async def test_a_preview_is_for_staff_of_the_community_only(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], sessions
) -> None:
    cid = community["id"]
    courses = await hub(client, owner, cid, "Courses")
    yoga = await group(client, owner, cid, courses, "Yoga")
    offer = await make_offer(sessions, cid, "Membership")
    await edit(client, owner, cid, offer, add=[yoga])
    buyer = await sign_up(client, "buyer@example.com")
    await comp(client, owner, cid, offer, buyer.email)
    stranger = await sign_up(client, "stranger@example.com")
    theirs = await create_community(client, stranger, "Elsewhere")
    their_hub = await hub(client, stranger, theirs["id"], "Theirs")
    their_group = await group(client, stranger, theirs["id"], their_hub, "Theirs")

    for what in (f"groups/{yoga}", f"hubs/{courses}"):
        url = f"{API}/communities/{cid}/{what}/deletion-preview"
        assert (await client.get(url, headers=buyer.headers)).status_code == 403  # a member: no staff role
        assert (await client.get(url, headers=stranger.headers)).status_code == 404
        assert (await client.get(url)).status_code == 401
    # Another community's ids name nothing here; an impossible id is a 404 too.
    for what in (f"groups/{their_group}", f"hubs/{their_hub}", "groups/0", "hubs/99999999999999999999"):
        response = await client.get(f"{API}/communities/{cid}/{what}/deletion-preview", headers=owner.headers)
        assert response.status_code == 404, (what, response.text)
    # Reading it changed nothing.
    assert yoga in await my_groups(client, buyer, cid)
