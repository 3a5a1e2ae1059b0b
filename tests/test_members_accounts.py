"""A member's page, notes and tags, and the account rules (issue 14): removing a member (Stripe
included), deleting an account that never paid, no moving a plan; managers read only; foreign
ids are not found."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from community.billing.models import Payment, Subscription
from community.offers.models import Entitlement
from tests.conftest import Account, create_community, sign_up
from tests.test_communities import API, base, field_of, staff_account
from tests.test_members_directory import listing, people
from tests.test_memberships import shop, subscribe  # noqa: F401 - shop is a fixture


async def test_member_page_notes_and_tags(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    ann = w["users"]["ann"]
    url = f"{base(community)}/members/{ann}"
    page = await client.get(url, headers=owner.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["member"]["email"] == "ann@example.com" and body["member"]["status"] == "active"
    assert [m["offer_title"] for m in body["memberships"]] == ["Pilates", "Yoga"]
    assert {p["payment"]["currency"] for p in body["payments"]} == {"USD", "EUR"}
    assert body["tags"] == [{"tag": "vip", "auto": False}, {"tag": "yogi", "auto": True}]  # Yoga's auto-tag

    # Notes: add, edit (the editor and time kept), delete.
    added = await client.post(f"{url}/notes", json={"body": "Asked about a refund"}, headers=owner.headers)
    assert added.status_code == 201, added.text
    note = added.json()
    assert note["author_id"] == owner.id and note["edited_at"] is None
    admin = await staff_account(client, community, owner, "admin@example.com", "admin")
    edited = await client.patch(f"{url}/notes/{note['id']}", json={"body": "Refund given"}, headers=admin.headers)
    assert edited.status_code == 200
    assert (edited.json()["body"], edited.json()["author_id"], edited.json()["edited_by_id"]) == ("Refund given", owner.id, admin.id)
    assert edited.json()["edited_at"] is not None
    assert [n["body"] for n in (await client.get(f"{url}/notes", headers=owner.headers)).json()] == ["Refund given"]
    empty = await client.post(f"{url}/notes", json={"body": "   "}, headers=owner.headers)
    assert empty.status_code == 422 and field_of(empty) == ["body"]

    # Tags: add (case-insensitive, the first spelling stays), remove (an auto-tag too).
    tags = await client.post(f"{url}/tags", json={"tag": "Mentor"}, headers=owner.headers)
    assert tags.status_code == 200 and [t["tag"] for t in tags.json()] == ["Mentor", "vip", "yogi"]
    assert [t["tag"] for t in (await client.post(f"{url}/tags", json={"tag": "VIP"}, headers=owner.headers)).json()] == ["Mentor", "vip", "yogi"]
    removed = await client.post(f"{url}/tags/remove", json={"tag": "YOGI"}, headers=owner.headers)
    assert [t["tag"] for t in removed.json()] == ["Mentor", "vip"]
    missing = await client.post(f"{url}/tags/remove", json={"tag": "nope"}, headers=owner.headers)
    assert missing.status_code == 404 and field_of(missing) == ["tag"]

    # Managers read, and change nothing.
    manager = await staff_account(client, community, owner, "manager@example.com", "manager")
    assert (await client.get(url, headers=manager.headers)).status_code == 200
    assert (await client.get(f"{url}/notes", headers=manager.headers)).status_code == 200
    for response in [
        await client.post(f"{url}/notes", json={"body": "x"}, headers=manager.headers),
        await client.patch(f"{url}/notes/{note['id']}", json={"body": "x"}, headers=manager.headers),
        await client.delete(f"{url}/notes/{note['id']}", headers=manager.headers),
        await client.post(f"{url}/tags", json={"tag": "x"}, headers=manager.headers),
        await client.post(f"{url}/tags/remove", json={"tag": "vip"}, headers=manager.headers),
        await client.post(f"{url}/remove", headers=manager.headers),
        await client.delete(f"{url}/account", headers=manager.headers),
    ]:
        assert response.status_code == 403, response.request.url
    # A note is found only under its member.
    other = w["users"]["bob"]
    assert (await client.delete(f"{base(community)}/members/{other}/notes/{note['id']}", headers=owner.headers)).status_code == 404
    assert (await client.delete(f"{url}/notes/{note['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"{url}/notes", headers=owner.headers)).json() == []


async def test_foreign_people_are_not_found(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other place")
    ann = w["users"]["ann"]
    h = other_owner.headers
    for response in [
        await client.get(f"{base(other)}/members/{ann}", headers=h),
        await client.get(f"{base(other)}/members/{ann}/notes", headers=h),
        await client.post(f"{base(other)}/members/{ann}/notes", json={"body": "x"}, headers=h),
        await client.get(f"{base(other)}/members/{ann}/tags", headers=h),
        await client.post(f"{base(other)}/members/{ann}/tags", json={"tag": "x"}, headers=h),
        await client.post(f"{base(other)}/members/{ann}/remove", headers=h),
        await client.delete(f"{base(other)}/members/{ann}/account", headers=h),
        await client.get(f"{base(community)}/members/{ann}", headers=h),  # not staff there
    ]:
        assert response.status_code == 404, (response.request.url, response.text)
    assert "ann@example.com" not in (await client.get(f"{base(other)}/members", headers=h)).text


async def test_deleting_an_account_only_without_purchases(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    url = f"{base(community)}/members"
    paid = await client.delete(f"{url}/{w['users']['ann']}/account", headers=owner.headers)
    assert paid.status_code == 409 and "purchases" in paid.json()["detail"]
    staff = await client.delete(f"{url}/{owner.id}/account", headers=owner.headers)
    assert staff.status_code == 409 and "staff" in staff.json()["detail"]
    trial = await client.delete(f"{url}/{w['users']['bob']}/account", headers=owner.headers)
    assert trial.status_code == 409 and "subscription" in trial.json()["detail"]
    # Someone who also belongs elsewhere is only removed from here.
    fay = w["users"]["fay"]
    async with sessions() as session, session.begin():
        other = await session.execute(text("INSERT INTO communities (name, slug, default_currency) VALUES ('O', 'o-place', 'USD') RETURNING id"))
        await session.execute(text("INSERT INTO members (community_id, user_id) VALUES (:c, :u)"), {"c": other.scalar(), "u": fay})
    elsewhere = await client.delete(f"{url}/{fay}/account", headers=owner.headers)
    assert elsewhere.status_code == 409 and "another community" in elsewhere.json()["detail"]
    async with sessions() as session, session.begin():
        await session.execute(text("DELETE FROM members WHERE user_id = :u AND community_id <> :c"), {"u": fay, "c": w["cid"]})
    assert (await client.delete(f"{url}/{fay}/account", headers=owner.headers)).status_code == 204
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM users WHERE id = :u"), {"u": fay})).scalar() == 0
    assert (await client.get(f"{url}/{fay}", headers=owner.headers)).status_code == 404


async def test_a_plan_never_moves_between_accounts(client, owner: Account, community, sessions) -> None:
    await people(sessions, community)
    async with sessions() as session:
        entitlement_id = (await session.scalars(select(Entitlement.id).order_by(Entitlement.id))).first()
    url = f"{base(community)}/entitlements/{entitlement_id}/transfer"
    refused = await client.post(url, headers=owner.headers)
    assert refused.status_code == 409 and "cannot move to another account" in refused.json()["detail"]
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other place")
    assert (await client.post(f"{base(other)}/entitlements/{entitlement_id}/transfer", headers=other_owner.headers)).status_code == 404


async def test_removing_a_member_cancels_at_stripe_and_keeps_history(client, owner: Account, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    community: dict[str, Any] = shop["community"]
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    url = f"{base(community)}/members"
    before = {r["email"]: r for r in await listing(client, community, owner)}
    assert before["member@example.com"]["status"] == "active"
    assert before["member@example.com"]["total_spent"] == {"USD": 1500}
    staff = await client.post(f"{url}/{owner.id}/remove", headers=owner.headers)
    assert staff.status_code == 409 and "staff" in staff.json()["detail"]

    removed = await client.post(f"{url}/{member.id}/remove", headers=owner.headers)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"user_id": member.id, "ended_entitlement_ids": [entitlement_id]}
    async with sessions() as session:
        subscription = await session.scalar(select(Subscription).where(Subscription.entitlement_id == entitlement_id))
        entitlement = await session.get(Entitlement, entitlement_id)
        payments = (await session.scalars(select(Payment).where(Payment.user_id == member.id))).all()
    assert subscription.status == "canceled"  # at Stripe, as Stripe answered
    assert entitlement.ends_at is not None and entitlement.status.value == "cancelled"
    assert len(payments) == 1  # history kept
    # Their place is gone: not in the directory, no member area, their own API answers 404.
    assert "member@example.com" not in {r["email"] for r in await listing(client, community, owner)}
    assert (await client.get(f"{API}/communities/{community['id']}/me/memberships", headers=member.headers)).status_code == 404
    assert (await client.post(f"{url}/{member.id}/remove", headers=owner.headers)).status_code == 404
