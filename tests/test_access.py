"""Derived access, offer group edits (with grandfathering), entitlement transitions, and the
access-change runs that log and email the differences."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from community.offers import runs
from community.offers.models import Offer, OfferStatus, Pricing
from tests.conftest import Account, sign_up
from tests.helpers import run_jobs

API = "/api/v1"


async def make_offer(sessions, community_id: int, title: str, **fields: Any) -> int:
    async with sessions() as session, session.begin():
        offer = Offer(
            community_id=community_id,
            title=title,
            slug=title.lower().replace(" ", "-"),
            pricing=fields.pop("pricing", Pricing.free),
            currency="USD",
            status=fields.pop("status", OfferStatus.published),
            **fields,
        )
        session.add(offer)
        await session.flush()
        return offer.id


async def make_group(client: httpx.AsyncClient, owner: Account, community_id: int, name: str) -> int:
    base = f"{API}/communities/{community_id}"
    hubs = (await client.get(f"{base}/hubs", headers=owner.headers)).json()
    hub_id = hubs[0]["id"] if hubs else (await client.post(f"{base}/hubs", json={"name": "Main"}, headers=owner.headers)).json()["id"]
    response = await client.post(f"{base}/hubs/{hub_id}/groups", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def edit(client, owner, community_id, offer_id, *, add=(), remove=(), mode="everyone") -> httpx.Response:
    return await client.put(
        f"{API}/communities/{community_id}/offers/{offer_id}/groups",
        json={"add": list(add), "remove": list(remove), "mode": mode},
        headers=owner.headers,
    )


async def comp(client, owner, community_id, offer_id, email, **extra) -> dict[str, Any]:
    response = await client.post(
        f"{API}/communities/{community_id}/entitlements", json={"email": email, "offer_id": offer_id, **extra}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def my_groups(client, account: Account, community_id: int) -> list[int]:
    response = await client.get(f"{API}/communities/{community_id}/me/groups", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["group_ids"]


async def log(sessions) -> list[tuple[int, int, str]]:
    async with sessions() as session:
        rows = await session.execute(text("SELECT user_id, group_id, change FROM access_log ORDER BY id"))
        return [tuple(r) for r in rows]


@pytest.fixture
async def setup(client, owner, community, sessions):
    cid = community["id"]
    g1 = await make_group(client, owner, cid, "Lounge")
    g2 = await make_group(client, owner, cid, "Workshop")
    offer = await make_offer(sessions, cid, "Membership")
    buyer = await sign_up(client, "buyer@example.com")
    return cid, g1, g2, offer, buyer


async def test_an_edit_reaches_existing_buyers_when_it_commits(client, owner, sessions, setup, settings) -> None:
    cid, g1, g2, offer, buyer = setup
    assert (await edit(client, owner, cid, offer, add=[g1])).status_code == 200
    await comp(client, owner, cid, offer, buyer.email)
    assert await my_groups(client, buyer, cid) == [g1]

    # No job has run: the very next request already sees the edit.
    await run_jobs(settings)
    assert (await edit(client, owner, cid, offer, add=[g2])).status_code == 200
    assert await my_groups(client, buyer, cid) == [g1, g2]
    await run_jobs(settings)
    assert (await edit(client, owner, cid, offer, remove=[g1])).status_code == 200
    assert await my_groups(client, buyer, cid) == [g2]
    await run_jobs(settings)
    assert await log(sessions) == [(buyer.id, g1, "gained"), (buyer.id, g2, "gained"), (buyer.id, g1, "lost")]
    mails = sorted((settings.data_dir / "mail").glob("access-*.eml"))
    assert mails, "access emails were sent"

    # Running the runs again changes nothing: no second log row, no second email.
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE access_runs SET state = 'pending', cursor = 0, done = 0"))
        await session.execute(text("UPDATE outbox SET state = 'pending', generation = generation + 1 WHERE name = 'offers.access_run'"))
    before = await log(sessions)
    await run_jobs(settings)
    assert await log(sessions) == before


async def test_a_group_held_through_two_offers_is_not_lost_when_one_drops_it(client, owner, sessions, setup, settings) -> None:
    cid, g1, _, offer, buyer = setup
    other = await make_offer(sessions, cid, "Bundle")
    await edit(client, owner, cid, offer, add=[g1])
    await edit(client, owner, cid, other, add=[g1])
    await comp(client, owner, cid, offer, buyer.email)
    await comp(client, owner, cid, other, buyer.email)
    await run_jobs(settings)
    await edit(client, owner, cid, offer, remove=[g1])
    await run_jobs(settings)
    assert await my_groups(client, buyer, cid) == [g1]
    assert await log(sessions) == [(buyer.id, g1, "gained")]


async def test_two_entitlements_of_one_offer_are_one_member_to_a_run(client, owner, sessions, setup, settings) -> None:
    """A run looks at a member once, and asks whether they have the group now through any of
    their entitlements, not only the first of the offer's it meets."""
    cid, g1, g2, offer, buyer = setup
    await edit(client, owner, cid, offer, add=[g1])
    await comp(client, owner, cid, offer, buyer.email)  # the older entitlement
    await run_jobs(settings)
    async with sessions() as session:
        first_run = await session.scalar(text("SELECT max(id) FROM access_runs"))
    await edit(client, owner, cid, offer, add=[g2])  # a run for the offer's holders, left pending
    await edit(client, owner, cid, offer, remove=[g2])
    await edit(client, owner, cid, offer, add=[g2], mode="new_buyers_only")  # not for the older one
    await comp(client, owner, cid, offer, buyer.email)  # the newer one reaches g2
    async with sessions() as session:
        pending = list((await session.scalars(text("SELECT id FROM access_runs WHERE id > :r ORDER BY id"), {"r": first_run})).all())
    # The newer entitlement's own run first: it logs g2 gained. Then the offer's runs, which meet
    # the older entitlement first: it does not grant g2, the newer one does, so nothing changed.
    for run_id in [pending[-1], *pending[:-1]]:
        await runs.process_run(sessions, run_id)
    assert await my_groups(client, buyer, cid) == [g1, g2]
    assert await log(sessions) == [(buyer.id, g1, "gained"), (buyer.id, g2, "gained")]

    await edit(client, owner, cid, offer, remove=[g1])  # both entitlements lose it: one event
    await run_jobs(settings)
    assert await log(sessions) == [(buyer.id, g1, "gained"), (buyer.id, g2, "gained"), (buyer.id, g1, "lost")]


async def test_a_pass_stops_at_its_end_without_any_job(client, owner, sessions, setup, settings) -> None:
    cid, g1, _, offer, buyer = setup
    await edit(client, owner, cid, offer, add=[g1])
    held = await comp(client, owner, cid, offer, buyer.email, ends_at="2099-01-01T00:00:00Z")
    assert await my_groups(client, buyer, cid) == [g1]
    await run_jobs(settings)  # the start is logged
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE entitlements SET ends_at = now() - interval '1 second' WHERE id = :id"), {"id": held["id"]})
    assert await my_groups(client, buyer, cid) == []  # at ends_at, before any job

    await run_jobs(settings)
    from community.offers.tasks import sweep_expired

    async with sessions() as session, session.begin():
        assert await sweep_expired(session) == 1
    async with sessions() as session, session.begin():
        assert await sweep_expired(session) == 0  # idempotent
    await run_jobs(settings)
    assert await log(sessions) == [(buyer.id, g1, "gained"), (buyer.id, g1, "lost")]
    detail = (await client.get(f"{API}/communities/{cid}/entitlements/{held['id']}", headers=owner.headers)).json()
    assert detail["status"] == "expired" and detail["live"] is False
    assert [e["reason"] for e in detail["history"]] == ["started (comp)", "access period ended"]


async def test_ended_entitlements_never_reach_groups_added_later(client, owner, sessions, setup, settings) -> None:
    cid, g1, g2, offer, buyer = setup
    await edit(client, owner, cid, offer, add=[g1])
    held = await comp(client, owner, cid, offer, buyer.email)
    ended = await client.post(
        f"{API}/communities/{cid}/entitlements/{held['id']}/end", json={"status": "refunded"}, headers=owner.headers
    )
    assert ended.status_code == 200 and ended.json()["live"] is False
    await edit(client, owner, cid, offer, add=[g2])
    assert await my_groups(client, buyer, cid) == []
    reopened = await client.post(f"{API}/communities/{cid}/entitlements/{held['id']}/reopen", json={}, headers=owner.headers)
    assert reopened.status_code == 200
    assert await my_groups(client, buyer, cid) == [g1, g2]


async def test_grandfathered_edits_keep_existing_buyers_as_they_were(client, owner, sessions, setup, settings) -> None:
    cid, g1, g2, offer, early = setup
    await edit(client, owner, cid, offer, add=[g1])
    await comp(client, owner, cid, offer, early.email)

    assert (await edit(client, owner, cid, offer, add=[g2], remove=[g1], mode="new_buyers_only")).status_code == 200
    assert await my_groups(client, early, cid) == [g1]  # kept the removed group, not given the new one

    late = await sign_up(client, "late@example.com")
    await comp(client, owner, cid, offer, late.email)
    assert await my_groups(client, late, cid) == [g2]

    granted = (await client.get(f"{API}/communities/{cid}/offers/{offer}/groups", headers=owner.headers)).json()
    assert {(g["group_id"], g["everyone"]) for g in granted} == {(g1, False), (g2, False)}

    # "Everyone" again: the new group reaches the early buyer too.
    await edit(client, owner, cid, offer, add=[g2])
    assert await my_groups(client, early, cid) == [g1, g2]


async def test_a_foreign_group_cannot_be_attached(client, owner, sessions, setup) -> None:
    cid, _, _, offer, _ = setup
    stranger = await sign_up(client, "stranger@example.com")
    other = (await client.post(f"{API}/communities", json={"name": "Elsewhere"}, headers=stranger.headers)).json()
    foreign_group = await make_group(client, stranger, other["id"], "Theirs")
    response = await edit(client, owner, cid, offer, add=[foreign_group])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "add"
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM offer_groups"))).scalar() == 0


async def test_a_deleted_group_is_logged_as_lost(client, owner, sessions, setup, settings) -> None:
    cid, g1, _, offer, buyer = setup
    await edit(client, owner, cid, offer, add=[g1])
    await comp(client, owner, cid, offer, buyer.email)
    await run_jobs(settings)
    assert (await client.delete(f"{API}/communities/{cid}/groups/{g1}", headers=owner.headers)).status_code == 204
    await run_jobs(settings)
    await run_jobs(settings)  # the deletion job starts a run, which runs next
    assert await log(sessions) == [(buyer.id, g1, "gained"), (buyer.id, g1, "lost")]


async def test_posts_need_access(client, owner, sessions, setup) -> None:
    cid, g1, g2, offer, buyer = setup
    post = await client.post(f"{API}/communities/{cid}/groups/{g1}/posts", json={"title": "Hi", "body": "Welcome"}, headers=owner.headers)
    await comp(client, owner, cid, offer, buyer.email)
    assert (await client.get(f"{API}/communities/{cid}/groups/{g1}/posts", headers=buyer.headers)).status_code == 403
    await edit(client, owner, cid, offer, add=[g1])
    listed = await client.get(f"{API}/communities/{cid}/groups/{g1}/posts", headers=buyer.headers)
    assert listed.status_code == 200 and [p["title"] for p in listed.json()["items"]] == ["Hi"]
    assert (await client.get(f"{API}/communities/{cid}/posts/{post.json()['id']}", headers=buyer.headers)).status_code == 200
    assert (await client.get(f"{API}/communities/{cid}/groups/{g2}/posts", headers=buyer.headers)).status_code == 403


async def test_a_run_killed_half_way_resumes_and_ends_identical(client, owner, sessions, setup, settings, monkeypatch) -> None:
    cid, g1, _, offer, _ = setup
    buyers = [await sign_up(client, f"b{i}@example.com") for i in range(5)]
    for buyer in buyers:
        await comp(client, owner, cid, offer, buyer.email)
    await run_jobs(settings)
    await edit(client, owner, cid, offer, add=[g1])
    monkeypatch.setattr(runs, "BATCH_SIZE", 2)
    calls = {"n": 0}
    real_next_batch = runs._reconcile_next_batch

    async def crash_on_second_batch(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return await real_next_batch(*args)

    monkeypatch.setattr(runs, "_reconcile_next_batch", crash_on_second_batch)
    async with sessions() as session:
        run_id = (await session.execute(text("SELECT max(id) FROM access_runs"))).scalar()
    with pytest.raises(RuntimeError):
        await runs.process_run(sessions, run_id)
    progress = (await client.get(f"{API}/communities/{cid}/access-runs/{run_id}", headers=owner.headers)).json()
    assert progress["state"] == "running" and progress["done"] == 2 and progress["total"] == 5
    assert progress["percent_done"] == 40.0

    monkeypatch.setattr(runs, "_reconcile_next_batch", real_next_batch)
    await runs.process_run(sessions, run_id)
    assert sorted(await log(sessions)) == sorted((b.id, g1, "gained") for b in buyers)
    done = (await client.get(f"{API}/communities/{cid}/access-runs/{run_id}", headers=owner.headers)).json()
    assert done["state"] == "done" and done["percent_done"] == 100.0


async def test_free_offers_are_claimed_once(client, owner, sessions, setup) -> None:
    cid, g1, _, offer, buyer = setup
    await edit(client, owner, cid, offer, add=[g1])
    claimed = await client.post(f"{API}/offers/{offer}/claim", headers=buyer.headers)
    assert claimed.status_code == 201, claimed.text
    assert await my_groups(client, buyer, cid) == [g1]
    again = await client.post(f"{API}/offers/{offer}/claim", headers=buyer.headers)
    assert again.status_code == 409
    members = (await client.get(f"{API}/communities/{cid}/groups/{g1}/members", headers=owner.headers)).json()
    assert [(m["user_id"], m["email"]) for m in members["items"]] == [(buyer.id, buyer.email)]
    assert members["next"] is None



async def test_concurrent_edits_end_in_the_last_state_with_one_consistent_log(client, owner, sessions, setup, settings) -> None:
    import asyncio

    cid, g1, g2, offer, buyer = setup
    await edit(client, owner, cid, offer, add=[g1])
    await comp(client, owner, cid, offer, buyer.email)
    await run_jobs(settings)
    for _ in range(3):
        responses = await asyncio.gather(
            edit(client, owner, cid, offer, add=[g2]),
            edit(client, owner, cid, offer, remove=[g2]),
            edit(client, owner, cid, offer, add=[g2]),
        )
        assert all(r.status_code == 200 for r in responses)
    # Edits queue on the offer's row lock: the state is the last committed one, and every
    # reader agrees with what the last response said.
    last_state = [g["group_id"] for g in (await client.get(f"{API}/communities/{cid}/offers/{offer}/groups", headers=owner.headers)).json()]
    assert sorted(await my_groups(client, buyer, cid)) == sorted(last_state)
    await run_jobs(settings)
    entries = [(g, change) for u, g, change in await log(sessions) if g == g2]
    # Never two "gained" (or two "lost") in a row, and the last entry is the truth.
    assert all(a[1] != b[1] for a, b in itertools.pairwise(entries))
    assert (entries[-1][1] == "gained") == (g2 in last_state) if entries else g2 not in last_state


async def test_the_access_check_answers_in_one_statement(client, owner, sessions, setup) -> None:
    cid, g1, g2, offer, buyer = setup
    url = f"{API}/communities/{cid}/groups/{g1}/access"
    assert (await client.get(url, headers=buyer.headers)).status_code == 404  # not a member yet
    await comp(client, owner, cid, offer, buyer.email)
    assert (await client.get(url, headers=buyer.headers)).json() == {"allowed": False}
    await edit(client, owner, cid, offer, add=[g1])
    assert (await client.get(url, headers=buyer.headers)).json() == {"allowed": True}
    assert (await client.get(url, headers=owner.headers)).json() == {"allowed": True}  # owners always
    assert (await client.get(f"{API}/communities/{cid}/groups/{g2}/access", headers=buyer.headers)).json() == {"allowed": False}
    assert (await client.get(f"{API}/communities/{cid}/groups/999999/access", headers=buyer.headers)).status_code == 404
    assert (await client.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await client.get(url)).status_code == 401
