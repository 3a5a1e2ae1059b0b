"""What the console asks the API before and after an edit of an offer's groups: the preview
(a dry run that counts the holders who would gain or lose each group by effective access),
the run an edit starts (its id in the answer), and an offer's holders (keyset pages)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.conftest import sign_up
from tests.helpers import run_jobs
from tests.test_access import API, comp, edit, make_group, make_offer, my_groups


async def preview(client, account, cid, offer_id, **body: Any):
    return await client.post(f"{API}/communities/{cid}/offers/{offer_id}/groups/preview", json=body, headers=account.headers)


def impacts(response) -> dict[int, tuple[str, int, int, int]]:
    assert response.status_code == 200, response.text
    return {g["group_id"]: (g["change"], g["gaining"], g["losing"], g["keeping"]) for g in response.json()["groups"]}


async def rows(sessions, sql: str) -> list[tuple]:
    async with sessions() as session:
        return [tuple(r) for r in await session.execute(text(sql))]


async def test_the_preview_counts_who_gains_and_loses_by_effective_access(client, owner, community, sessions, settings) -> None:
    cid = community["id"]
    weights, yoga, lounge = [await make_group(client, owner, cid, name) for name in ("Weight Training", "Yoga", "Lounge")]
    offer = await make_offer(sessions, cid, "Weight Training")
    bundle = await make_offer(sessions, cid, "Bundle")
    assert (await edit(client, owner, cid, offer, add=[weights, lounge])).status_code == 200
    assert (await edit(client, owner, cid, bundle, add=[lounge, yoga])).status_code == 200
    ann, ben, cat = [await sign_up(client, f"{n}@example.com") for n in ("ann", "ben", "cat")]
    await comp(client, owner, cid, offer, ann.email)
    await comp(client, owner, cid, offer, ben.email)
    await comp(client, owner, cid, offer, ben.email)  # two entitlements of one offer: still one holder
    await comp(client, owner, cid, bundle, ben.email)  # Ben reaches Lounge and Yoga through the bundle too
    await comp(client, owner, cid, bundle, cat.email)  # Cat does not hold the offer: never counted
    ended = await comp(client, owner, cid, offer, "gone@example.com")
    assert (await client.post(f"{API}/communities/{cid}/entitlements/{ended['id']}/end", json={"status": "cancelled"}, headers=owner.headers)).status_code == 200
    await run_jobs(settings)
    log_before = await rows(sessions, "SELECT id FROM access_log")
    links_before = await rows(sessions, "SELECT offer_id, group_id, entitlement_ids::text FROM offer_groups ORDER BY 1, 2")
    runs_before = await rows(sessions, "SELECT id FROM access_runs")

    # For everyone: Ann gains Yoga, Ben already has it; removing Lounge loses Ann only (Ben keeps
    # it through the bundle); removing Weight Training loses both.
    everyone = await preview(client, owner, cid, offer, add=[yoga], remove=[lounge, weights])
    assert everyone.json()["holders"] == 2 and everyone.json()["mode"] == "everyone"
    assert impacts(everyone) == {
        yoga: ("add", 1, 0, 1),
        lounge: ("remove", 0, 1, 1),
        weights: ("remove", 0, 2, 0),
    }
    # Listed as the hubs list them (position), names included.
    assert [g["name"] for g in everyone.json()["groups"]] == ["Weight Training", "Yoga", "Lounge"]

    # New buyers only: nobody's access changes now; those who open the group now keep it.
    grandfathered = await preview(client, owner, cid, offer, add=[yoga], remove=[lounge], mode="new_buyers_only")
    assert impacts(grandfathered) == {yoga: ("add", 0, 0, 1), lounge: ("remove", 0, 0, 2)}

    # A dry run: nothing was written, no run started.
    assert await rows(sessions, "SELECT id FROM access_log") == log_before
    assert await rows(sessions, "SELECT offer_id, group_id, entitlement_ids::text FROM offer_groups ORDER BY 1, 2") == links_before
    assert await rows(sessions, "SELECT id FROM access_runs") == runs_before

    # The preview is what the edit then does: the run logs exactly those changes.
    changed = await edit(client, owner, cid, offer, add=[yoga], remove=[lounge, weights])
    assert changed.status_code == 200
    await run_jobs(settings)
    logged = await rows(sessions, "SELECT user_id, group_id, change FROM access_log WHERE id > "
                        f"{max([r[0] for r in log_before] or [0])} ORDER BY user_id, group_id")
    assert sorted(logged) == sorted([
        (ann.id, yoga, "gained"), (ann.id, lounge, "lost"), (ann.id, weights, "lost"), (ben.id, weights, "lost"),
    ])


async def test_the_preview_after_a_new_buyers_only_add_counts_the_existing_buyers_as_gaining(client, owner, community, sessions) -> None:
    cid = community["id"]
    yoga = await make_group(client, owner, cid, "Yoga")
    offer = await make_offer(sessions, cid, "Membership")
    old = await sign_up(client, "old@example.com")
    await comp(client, owner, cid, offer, old.email)
    await edit(client, owner, cid, offer, add=[yoga], mode="new_buyers_only")
    new = await sign_up(client, "new@example.com")
    await comp(client, owner, cid, offer, new.email)
    assert await my_groups(client, old, cid) == [] and await my_groups(client, new, cid) == [yoga]
    # Now giving Yoga to everyone reaches the old buyer only; the new one has it.
    assert impacts(await preview(client, owner, cid, offer, add=[yoga])) == {yoga: ("add", 1, 0, 1)}
    # Removing it would take it from the new buyer only.
    assert impacts(await preview(client, owner, cid, offer, remove=[yoga])) == {yoga: ("remove", 0, 1, 0)}


async def test_the_preview_refuses_what_the_edit_refuses_and_managers_may_ask(client, owner, community, sessions) -> None:
    cid = community["id"]
    yoga = await make_group(client, owner, cid, "Yoga")
    offer = await make_offer(sessions, cid, "Membership")
    both = await preview(client, owner, cid, offer, add=[yoga], remove=[yoga])
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "remove"
    unknown = await preview(client, owner, cid, offer, add=[987654])
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "add"
    bad_mode = await preview(client, owner, cid, offer, add=[yoga], mode="some")
    assert bad_mode.status_code == 422 and bad_mode.json()["errors"][0]["field"] == "mode"
    assert (await preview(client, owner, cid, 987654, add=[yoga])).status_code == 404
    nothing = await preview(client, owner, cid, offer)
    assert nothing.json() == {"mode": "everyone", "holders": 0, "groups": []}

    await sign_up(client, "manny@example.com")
    made = await client.put(f"{API}/communities/{cid}/staff", json={"email": "manny@example.com", "role": "manager"}, headers=owner.headers)
    assert made.status_code in (200, 201), made.text
    manny = await client.post(f"{API}/auth/login", json={"email": "manny@example.com", "password": "correct horse battery"})
    headers = {"Authorization": f"Bearer {manny.json()['secret']}"}
    read = await client.post(f"{API}/communities/{cid}/offers/{offer}/groups/preview", json={"add": [yoga]}, headers=headers)
    assert read.status_code == 200, read.text
    change = await client.put(f"{API}/communities/{cid}/offers/{offer}/groups", json={"add": [yoga]}, headers=headers)
    assert change.status_code == 403
    member = await sign_up(client, "member@example.com")
    await comp(client, owner, cid, offer, member.email)
    assert (await preview(client, member, cid, offer, add=[yoga])).status_code == 403


async def test_an_edit_for_everyone_names_its_run_and_new_buyers_only_starts_none(client, owner, community, sessions, settings) -> None:
    cid = community["id"]
    yoga = await make_group(client, owner, cid, "Yoga")
    pilates = await make_group(client, owner, cid, "Pilates")
    offer = await make_offer(sessions, cid, "Membership")
    buyer = await sign_up(client, "buyer@example.com")
    await comp(client, owner, cid, offer, buyer.email)
    await run_jobs(settings)

    changed = await edit(client, owner, cid, offer, add=[yoga])
    run_id = changed.headers["access-run-id"]
    run = (await client.get(f"{API}/communities/{cid}/access-runs/{run_id}", headers=owner.headers)).json()
    assert run["state"] == "pending" and run["cause"] == "Membership: groups edited"
    await run_jobs(settings)
    run = (await client.get(f"{API}/communities/{cid}/access-runs/{run_id}", headers=owner.headers)).json()
    assert run["state"] == "done" and run["total"] == run["done"] == 1

    quiet = await edit(client, owner, cid, offer, add=[pilates], mode="new_buyers_only")
    assert quiet.status_code == 200 and "access-run-id" not in quiet.headers
    assert [g["group_id"] for g in quiet.json()] == [yoga, pilates]


async def test_an_offers_holders_newest_first_in_keyset_pages(client, owner, community, sessions) -> None:
    cid = community["id"]
    offer = await make_offer(sessions, cid, "Membership")
    other = await make_offer(sessions, cid, "Other")
    made = [await comp(client, owner, cid, offer, f"h{i}@example.com") for i in range(5)]
    await comp(client, owner, cid, other, "elsewhere@example.com")
    ended = made[1]["id"]
    assert (await client.post(f"{API}/communities/{cid}/entitlements/{ended}/end", json={"status": "expired"}, headers=owner.headers)).status_code == 200
    url = f"{API}/communities/{cid}/offers/{offer}/entitlements"

    first = (await client.get(url, params={"limit": 2}, headers=owner.headers)).json()
    assert [h["email"] for h in first["items"]] == ["h4@example.com", "h3@example.com"]
    second = (await client.get(url, params={"limit": 2, "after": first["next"]}, headers=owner.headers)).json()
    third = (await client.get(url, params={"limit": 2, "after": second["next"]}, headers=owner.headers)).json()
    assert [h["email"] for h in second["items"] + third["items"]] == ["h2@example.com", "h1@example.com", "h0@example.com"]
    assert third["next"] is None
    holder = first["items"][0]
    assert holder["source"] == "comp" and holder["status"] == "active" and holder["live"] is True
    assert holder["entitlement_id"] == made[4]["id"] and holder["ends_at"] is None

    current = (await client.get(url, params={"live": "true"}, headers=owner.headers)).json()
    assert ended not in [h["entitlement_id"] for h in current["items"]] and len(current["items"]) == 4
    over = (await client.get(url, params={"live": "false"}, headers=owner.headers)).json()
    assert [(h["entitlement_id"], h["status"], h["live"]) for h in over["items"]] == [(ended, "expired", False)]
    refused = await client.get(url, params={"live": "maybe"}, headers=owner.headers)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "live", refused.text
    assert (await client.get(f"{API}/communities/{cid}/offers/987654/entitlements", headers=owner.headers)).status_code == 404


async def test_dates_without_a_time_zone_are_refused_naming_the_field(client, owner, community, sessions) -> None:
    cid = community["id"]
    offer = await make_offer(sessions, cid, "Membership")
    given = await client.post(
        f"{API}/communities/{cid}/entitlements",
        json={"email": "x@example.com", "offer_id": offer, "ends_at": "2099-01-01T00:00:00"},
        headers=owner.headers,
    )
    assert given.status_code == 422 and given.json()["errors"][0]["field"] == "ends_at", given.text
    entitlement = await comp(client, owner, cid, offer, "x@example.com")
    reopened = await client.post(
        f"{API}/communities/{cid}/entitlements/{entitlement['id']}/reopen", json={"ends_at": "2099-01-01T00:00:00"}, headers=owner.headers
    )
    assert reopened.status_code == 422 and reopened.json()["errors"][0]["field"] == "ends_at", reopened.text
