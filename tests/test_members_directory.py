"""The members directory (issue 14): statuses and totals kept by the database, every sort both
ways, search and filters, keyset pages that stay stable while members join, the 422s, segments,
bulk tagging and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import httpx
from sqlalchemy import text, update

from community.accounts import service as accounts
from community.billing import service as billing
from community.billing.models import Payment, Subscription
from community.offers.models import (
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    Offer,
    Pricing,
)
from tests.conftest import Account, create_community, sign_up
from tests.test_communities import base, field_of, staff_account
from workers.settings import fold_member_counts

NOW = dt.datetime.now(dt.UTC)


async def add_person(session, cid: int, email: str, name: str, *, joined: dt.datetime | None = None) -> int:
    user_id = (
        await session.execute(text("INSERT INTO users (email, name) VALUES (:e, :n) RETURNING id"), {"e": email, "n": name})
    ).scalar_one()
    member = await accounts.join(session, community_id=cid, user_id=user_id)
    if joined is not None:
        member.joined_at = joined
    return user_id


async def hold(session, cid: int, offer_id: int, user_id: int, *, status=EntitlementStatus.active, ends_at=None) -> Entitlement:
    e = Entitlement(community_id=cid, offer_id=offer_id, user_id=user_id, source=EntitlementSource.comp, status=status, ends_at=ends_at)
    session.add(e)
    await session.flush()
    return e


async def pay(session, cid: int, offer_id: int, user_id: int, amount: int, *, currency: str = "USD", at: dt.datetime | None = None) -> Payment:
    return await billing.record_payment(
        session, community_id=cid, user_id=user_id, offer_id=offer_id, entitlement_id=None, checkout_id=None,
        kind="purchase", amount=amount, discount_amount=0, currency=currency, stripe_account_id="acct_x",
        stripe_payment_intent_id=f"pi_{user_id}_{amount}_{currency}_{at}", paid_at=at,
    )


async def people(sessions, community: dict[str, Any]) -> dict[str, Any]:
    """Six members in every status, with offers, payments, a refund, a chargeback and tags."""
    cid = community["id"]
    async with sessions() as session, session.begin():
        offer = Offer(community_id=cid, title="Yoga", slug="yoga", pricing=Pricing.free, currency="USD", auto_tags=["yogi"])
        other = Offer(community_id=cid, title="Pilates", slug="pilates", pricing=Pricing.free, currency="USD")
        session.add_all([offer, other])
        await session.flush()
        u = {}
        u["ann"] = await add_person(session, cid, "ann@example.com", "Ann Active", joined=NOW - dt.timedelta(days=50))
        u["bob"] = await add_person(session, cid, "bob@shop.test", "bob Trial", joined=NOW - dt.timedelta(days=40))
        u["cat"] = await add_person(session, cid, "cat@example.com", "Cat Late", joined=NOW - dt.timedelta(days=30))
        u["dan"] = await add_person(session, cid, "dan@example.com", "Dan Leaving", joined=NOW - dt.timedelta(days=20))
        u["eve"] = await add_person(session, cid, "eve@example.com", "Eve Ended", joined=NOW - dt.timedelta(days=10))
        u["fay"] = await add_person(session, cid, "fay@example.com", "Fay Free", joined=NOW - dt.timedelta(days=5))
        await hold(session, cid, offer.id, u["ann"])
        await hold(session, cid, other.id, u["ann"], status=EntitlementStatus.expired, ends_at=NOW - dt.timedelta(days=1))
        trial = await hold(session, cid, offer.id, u["bob"])
        session.add(Subscription(
            community_id=cid, entitlement_id=trial.id, user_id=u["bob"], offer_id=offer.id, stripe_account_id="acct_x",
            stripe_subscription_id="sub_bob", status="trialing", currency="USD",
        ))
        await hold(session, cid, other.id, u["cat"], status=EntitlementStatus.past_due, ends_at=NOW + dt.timedelta(days=3))
        await hold(session, cid, offer.id, u["dan"], status=EntitlementStatus.cancelled, ends_at=NOW + dt.timedelta(days=9))
        await hold(session, cid, offer.id, u["eve"], status=EntitlementStatus.refunded, ends_at=NOW - dt.timedelta(days=2))
        await pay(session, cid, offer.id, u["ann"], 5000, at=NOW - dt.timedelta(days=3))
        await pay(session, cid, offer.id, u["ann"], 2000, currency="EUR", at=NOW - dt.timedelta(days=2))
        refunded = await pay(session, cid, offer.id, u["cat"], 3000, at=NOW - dt.timedelta(days=7))
        disputed = await pay(session, cid, offer.id, u["dan"], 4000, at=NOW - dt.timedelta(days=1))
        await pay(session, cid, offer.id, u["eve"], 1000, at=NOW - dt.timedelta(days=9))
        await session.execute(update(Payment).where(Payment.id == refunded.id).values(refunded_amount=1000))
        await session.execute(update(Payment).where(Payment.id == disputed.id).values(disputed_amount=4000))
        await session.execute(
            text("UPDATE members SET tags = :t WHERE community_id = :c AND user_id = :u"), {"t": ["vip", "yogi"], "c": cid, "u": u["ann"]}
        )
        await session.execute(text("UPDATE members SET tags = :t WHERE community_id = :c AND user_id = :u"), {"t": ["vip"], "c": cid, "u": u["fay"]})
    return {"users": u, "offer": offer.id, "other": other.id, "cid": cid}


async def listing(client: httpx.AsyncClient, community, owner: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{base(community)}/members", params={"limit": 100, **params}, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_rows_show_status_totals_offers_and_tags(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    rows = {r["email"]: r for r in await listing(client, community, owner)}
    assert {e: r["status"] for e, r in rows.items()} == {
        owner.email: "none", "ann@example.com": "active", "bob@shop.test": "trialing", "cat@example.com": "past_due",
        "dan@example.com": "cancelled", "eve@example.com": "ended", "fay@example.com": "none",
    }
    ann = rows["ann@example.com"]
    # Net per currency, as billing.total_spent computes it.
    assert ann["total_spent"] == {"EUR": 2000, "USD": 5000}
    async with sessions() as session:
        assert ann["total_spent"] == await billing.total_spent(session, community_id=w["cid"], user_id=w["users"]["ann"])
    assert rows["cat@example.com"]["total_spent"] == {"USD": 2000}  # refund taken off
    assert rows["dan@example.com"]["total_spent"] == {"USD": 0}  # chargeback held
    assert [o["title"] for o in ann["offers"]] == ["Yoga", "Pilates"]
    assert ann["tags"] == ["vip", "yogi"] and ann["role"] is None
    assert rows[owner.email]["role"] == "owner" and rows[owner.email]["last_payment_at"] is None

    # The summary follows later changes: a refund, an entitlement ending, a rename.
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE payments SET refunded_amount = 5000 WHERE user_id = :u AND currency = 'USD'"), {"u": w["users"]["ann"]}
        )
        await session.execute(text("UPDATE entitlements SET ends_at = now(), status = 'cancelled' WHERE user_id = :u"), {"u": w["users"]["ann"]})
        await session.execute(text("UPDATE users SET name = 'Anna Z' WHERE id = :u"), {"u": w["users"]["ann"]})
    rows = {r["email"]: r for r in await listing(client, community, owner)}
    assert rows["ann@example.com"]["total_spent"] == {"EUR": 2000, "USD": 0}
    assert rows["ann@example.com"]["status"] == "ended" and rows["ann@example.com"]["name"] == "Anna Z"
    # A status whose end date passes changes with no write: the next reader recounts it.
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE entitlements SET ends_at = now() + interval '1 second' WHERE user_id = :u"), {"u": w["users"]["dan"]})
    async with sessions() as session:
        assert (await session.execute(text("SELECT status FROM members WHERE user_id = :u"), {"u": w["users"]["dan"]})).scalar() == "cancelled"
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE members SET status_until = now() - interval '1 second' WHERE user_id = :u"), {"u": w["users"]["dan"]})
        await session.execute(text("ALTER TABLE entitlements DISABLE TRIGGER members_recount"))
        await session.execute(text("UPDATE entitlements SET ends_at = now() - interval '1 second' WHERE user_id = :u"), {"u": w["users"]["dan"]})
        await session.execute(text("ALTER TABLE entitlements ENABLE TRIGGER members_recount"))
    rows = {r["email"]: r for r in await listing(client, community, owner, status="ended")}
    assert "dan@example.com" in rows


async def test_every_sort_both_ways(client, owner: Account, community, sessions) -> None:
    await people(sessions, community)
    everyone = await listing(client, community, owner)
    keys = {
        "name": lambda r: (r["name"].lower(), r["id"]),
        "email": lambda r: (r["email"].lower(), r["id"]),
        "joined": lambda r: (r["joined_at"], r["id"]),
        "last_payment": lambda r: (r["last_payment_at"] or "", r["id"]),
        "total_spent": lambda r: (r["total_spent"].get("USD", 0), r["id"]),
    }
    for sort, key in keys.items():
        for order in ("asc", "desc"):
            got = await listing(client, community, owner, sort=sort, order=order)
            assert [r["id"] for r in got] == [r["id"] for r in sorted(everyone, key=key, reverse=order == "desc")], (sort, order)
    # Default: oldest first.
    assert [r["email"] for r in everyone][:2] == ["ann@example.com", "bob@shop.test"]


async def test_search_and_filters(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)

    async def emails(**params: Any) -> set[str]:
        return {r["email"] for r in await listing(client, community, owner, **params)}

    assert await emails(q="CAT") == {"cat@example.com"}  # prefix, any case
    assert await emails(q="shop") == {"bob@shop.test"}  # contains, in the email
    assert await emails(q="leav") == {"dan@example.com"}  # contains, in the name
    assert await emails(q="%") == set()  # no wildcard
    assert await emails(q="da") == {"dan@example.com"}  # one or two characters: the start only
    assert await emails(q="an") == {"ann@example.com"}  # not "Dan", where "an" is inside
    assert await emails(offer=w["other"]) == {"ann@example.com", "cat@example.com"}
    assert await emails(status="trialing") == {"bob@shop.test"}
    assert await emails(tag="vip") == {"ann@example.com", "fay@example.com"}
    assert await emails(segment="customers") == {"ann@example.com", "cat@example.com", "dan@example.com", "eve@example.com"}
    assert await emails(segment="past_due") == {"cat@example.com"}
    assert await emails(spent_above=1000) == {"ann@example.com", "cat@example.com"}
    assert await emails(spent_above=1999, currency="eur") == {"ann@example.com"}
    joined = await emails(joined_from=(NOW - dt.timedelta(days=35)).isoformat(), joined_to=(NOW - dt.timedelta(days=15)).isoformat())
    assert joined == {"cat@example.com", "dan@example.com"}
    assert await emails(tag="vip", status="none") == {"fay@example.com"}


async def test_unknown_or_bad_parameters_are_422_naming_them(client, owner: Account, community, sessions) -> None:
    await people(sessions, community)
    url = f"{base(community)}/members"
    first = (await client.get(url, params={"limit": 2, "sort": "name"}, headers=owner.headers)).json()
    cases = [
        ({"sortt": "name"}, "sortt"),
        ({"filter": "x"}, "filter"),
        ({"sort": "age"}, "sort"),
        ({"order": "up"}, "order"),
        ({"status": "gold"}, "status"),
        ({"segment": "vips"}, "segment"),
        ({"segment": "999999"}, "segment"),
        ({"offer": "x"}, "offer"),
        ({"joined_from": "2026-01-01"}, "joined_from"),
        ({"spent_above": "-1"}, "spent_above"),
        ({"spent_above": "5", "currency": "ZZZ"}, "currency"),
        ({"after": first["next"], "sort": "email"}, "after"),  # a cursor of another sort
        ({"after": "not-a-cursor"}, "after"),
    ]
    for params, field in cases:
        response = await client.get(url, params=params, headers=owner.headers)
        assert response.status_code == 422, (params, response.text)
        assert field_of(response) == [field], (params, response.text)
    export = await client.get(f"{url}/export", params={"colour": "red"}, headers=owner.headers)
    assert export.status_code == 422 and field_of(export) == ["colour"]


async def test_pages_stay_stable_while_members_join(client, owner: Account, community, sessions) -> None:
    cid = community["id"]
    async with sessions() as session, session.begin():
        for i in range(9):
            await add_person(session, cid, f"p{i}@example.com", f"Person {chr(ord('b') + 2 * i)}")
    for sort, order in [("name", "asc"), ("name", "desc"), ("joined", "desc"), ("total_spent", "desc"), ("email", "asc")]:
        before = {r["user_id"] for r in await listing(client, community, owner)}
        seen: list[int] = []
        after = None
        n = 0
        while True:
            params = {"limit": 3, "sort": sort, "order": order} | ({"after": after} if after else {})
            page = (await client.get(f"{base(community)}/members", params=params, headers=owner.headers)).json()
            seen += [r["user_id"] for r in page["items"]]
            # Between pages, people join whose names sort before and after the cursor.
            async with sessions() as session, session.begin():
                for name in ("Aaron", "Person c2", "Zed"):
                    n += 1
                    await add_person(session, cid, f"{sort}{order}{n}@example.com", name)
            after = page["next"]
            if after is None:
                break
        assert len(seen) == len(set(seen)), (sort, order)  # nobody twice
        assert before <= set(seen), (sort, order)  # nobody who was there skipped


async def test_segments_counts_saved_segments_and_bulk_tags(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    url = f"{base(community)}/segments"
    counts = {s["key"]: s["count"] for s in (await client.get(url, headers=owner.headers)).json()}
    assert counts == {"customers": 4, "active": 1, "trialing": 1, "past_due": 1, "cancelled": 1, "ended": 1, "affiliates": 0}

    saved = await client.post(url, json={"name": "Big spenders", "filters": {"spent_above": 1500, "tag": "vip"}}, headers=owner.headers)
    assert saved.status_code == 201, saved.text
    assert saved.json()["count"] == 1 and saved.json()["filters"] == {"spent_above": 1500, "tag": "vip"}
    key = saved.json()["key"]
    assert [r["email"] for r in await listing(client, community, owner, segment=key)] == ["ann@example.com"]
    assert (await client.post(url, json={"name": "big SPENDERS", "filters": {}}, headers=owner.headers)).status_code == 409
    bad = await client.post(url, json={"name": "x", "filters": {"status": "gold"}}, headers=owner.headers)
    assert bad.status_code == 422 and field_of(bad) == ["status"]

    # Bulk: a tag for a segment, then off a selection, in one statement each.
    bulk = f"{base(community)}/members/bulk-tags"
    added = await client.post(bulk, json={"tag": "Customer", "action": "add", "segment": "customers"}, headers=owner.headers)
    assert added.status_code == 200 and added.json() == {"changed": 4}
    again = await client.post(bulk, json={"tag": "customer", "action": "add", "segment": "customers"}, headers=owner.headers)
    assert again.json() == {"changed": 0}  # tags are case-insensitive: the first spelling stays
    assert {r["email"] for r in await listing(client, community, owner, tag="Customer")} == {
        "ann@example.com", "cat@example.com", "dan@example.com", "eve@example.com"
    }
    removed = await client.post(bulk, json={"tag": "CUSTOMER", "action": "remove", "user_ids": [w["users"]["ann"], w["users"]["cat"]]}, headers=owner.headers)
    assert removed.json() == {"changed": 2}
    assert {r["email"] for r in await listing(client, community, owner, tag="Customer")} == {"dan@example.com", "eve@example.com"}
    by_filters = await client.post(bulk, json={"tag": "q", "action": "add", "filters": {"q": "fay"}}, headers=owner.headers)
    assert by_filters.json() == {"changed": 1}

    # Ids of people who are no members here: 404, nothing changes.
    stranger = await sign_up(client, "stranger@example.com")
    foreign = await client.post(bulk, json={"tag": "x", "action": "add", "user_ids": [w["users"]["ann"], stranger.id]}, headers=owner.headers)
    assert foreign.status_code == 404 and field_of(foreign) == ["user_ids"]
    assert await listing(client, community, owner, tag="x") == []

    # Managers read segments but change nothing.
    manager = await staff_account(client, community, owner, "manager@example.com", "manager")
    assert (await client.get(url, headers=manager.headers)).status_code == 200
    assert (await client.post(url, json={"name": "Mine", "filters": {}}, headers=manager.headers)).status_code == 403
    assert (await client.post(bulk, json={"tag": "m", "action": "add", "segment": "active"}, headers=manager.headers)).status_code == 403
    assert (await client.delete(f"{url}/{key}", headers=manager.headers)).status_code == 403
    # Another community's segment is not found here.
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other place")
    assert (await client.delete(f"{base(other)}/segments/{key}", headers=other_owner.headers)).status_code == 404
    assert (await client.get(f"{base(other)}/members", params={"segment": key}, headers=other_owner.headers)).status_code == 422
    assert (await client.delete(f"{url}/{key}", headers=owner.headers)).status_code == 204


async def test_export_streams_the_filtered_directory(client, owner: Account, community, sessions) -> None:
    await people(sessions, community)
    response = await client.get(f"{base(community)}/members/export", params={"segment": "customers", "sort": "email"}, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["email"] for r in rows] == ["ann@example.com", "cat@example.com", "dan@example.com", "eve@example.com"]
    ann = rows[0]
    assert (ann["total_spent"], ann["currency"], ann["other_totals"]) == ("50.00", "USD", "20.00 EUR")
    assert ann["offers"] == "Yoga; Pilates" and ann["tags"] == "vip; yogi" and ann["status"] == "active"
    # A cell a spreadsheet would run as a formula is quoted (exports.safe_cell's rule, in SQL).
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE users SET name = '=HYPERLINK(\"x\")' WHERE email = 'cat@example.com'"))
    response = await client.get(f"{base(community)}/members/export", params={"q": "cat@"}, headers=owner.headers)
    assert [r["name"] for r in csv.DictReader(io.StringIO(response.text))] == ["'=HYPERLINK(\"x\")"]
    bad = await client.get(f"{base(community)}/members/export", params={"segment": "nope"}, headers=owner.headers)
    assert bad.status_code == 422 and field_of(bad) == ["segment"]


async def true_counts(session, cid: int) -> dict[str, int]:
    """Counted the slow way, over every member row."""
    rows = (await session.execute(text("SELECT status, count(*) FROM members WHERE community_id = :c GROUP BY status"), {"c": cid})).all()
    counts = {status: n for status, n in rows}
    counts["all"] = sum(counts.values())
    counts["customers"] = await session.scalar(
        text("SELECT count(*) FROM members WHERE community_id = :c AND last_payment_at IS NOT NULL"), {"c": cid}
    )
    return {k: n for k, n in counts.items() if n}


async def test_kept_counts_follow_every_change(client, owner: Account, community, sessions) -> None:
    """The directory's total and the built-in segments' counts are read from counts a trigger keeps
    (a few rows, not a count over 200,000 members): they equal a real count after joins, payments,
    status changes, an end date passing, removals, and a whole community's deletion."""
    p = await people(sessions, community)
    cid, u = p["cid"], p["users"]
    other = await create_community(client, owner, "Elsewhere")

    async def check() -> None:
        async with sessions() as session, session.begin():
            from community.members import directory

            kept = {k: n for k, n in (await directory.kept_counts(session, cid)).items() if n}
            assert kept == await true_counts(session, cid)
            assert await directory.count(session, cid, directory.Filters()) == kept["all"]
            assert await directory.count(session, cid, directory.Filters(status="active")) == kept.get("active", 0)

    await check()

    async with sessions() as session, session.begin():
        g = await add_person(session, cid, "gus@example.com", "Gus New")
        await hold(session, cid, p["offer"], g)
        await pay(session, cid, p["offer"], u["fay"], 700, at=NOW)  # Fay becomes a customer
        await session.execute(  # Cat's past-due access ends in the past: the next read recounts her
            update(Entitlement).where(Entitlement.user_id == u["cat"]).values(ends_at=NOW - dt.timedelta(minutes=1))
        )
        await accounts.join(session, community_id=other["id"], user_id=u["ann"])  # another community's count
    await check()
    removed = await client.post(f"{base(community)}/members/{u['dan']}/remove", headers=owner.headers)
    assert removed.status_code in (200, 204), removed.text
    await check()
    async with sessions() as session, session.begin():
        await session.execute(text("DELETE FROM communities WHERE id = :c"), {"c": other["id"]})
        assert await session.scalar(text("SELECT count(*) FROM member_counts WHERE community_id = :c"), {"c": other["id"]}) == 0
    await check()

    # The fold (a cron) sums a community's change rows into one per key; the counts stay.
    async with sessions() as session, session.begin():
        rows_before = await session.scalar(text("SELECT count(*) FROM member_counts WHERE community_id = :c"), {"c": cid})
        assert await session.scalar(text("SELECT member_counts_fold(4)")) == 1
        keys = await session.scalar(text("SELECT count(DISTINCT key) FROM member_counts WHERE community_id = :c"), {"c": cid})
        assert await session.scalar(text("SELECT count(*) FROM member_counts WHERE community_id = :c"), {"c": cid}) == keys < rows_before
    await check()
    assert await fold_member_counts({"sessions": sessions}) == 0  # the cron: nothing left to fold


async def test_kept_counts_under_concurrent_changes(community, sessions) -> None:
    """Twenty transactions at once, each a member joining, holding an offer and paying: none
    waits on another for the counts (they only add rows), and the counts add up."""
    import asyncio

    from community.members import directory

    cid = community["id"]
    async with sessions() as session, session.begin():
        offer = Offer(community_id=cid, title="Yoga", slug="yoga", pricing=Pricing.free, currency="USD")
        session.add(offer)
    started = asyncio.Event()

    async def one(n: int) -> None:
        async with sessions() as session, session.begin():
            user_id = await add_person(session, cid, f"c{n}@example.com", f"C{n}")
            await started.wait()  # all twenty transactions open at once
            await hold(session, cid, offer.id, user_id)
            await pay(session, cid, offer.id, user_id, 100 + n, at=NOW)

    tasks = [asyncio.create_task(one(n)) for n in range(20)]
    await asyncio.sleep(0.2)
    started.set()
    await asyncio.gather(*tasks)
    async with sessions() as session, session.begin():
        kept = {k: n for k, n in (await directory.kept_counts(session, cid)).items() if n}
        assert kept == await true_counts(session, cid)
        assert (kept["active"], kept["customers"]) == (20, 20)
