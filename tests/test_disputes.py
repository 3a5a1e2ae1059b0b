"""Disputes through the local Stripe sandbox, every status Stripe has at API version 2026-10-28:
inquiries (no money held), chargebacks (held until won), lost ones and their appeals (held during
the appeal, given back when won on appeal), prevented ones; duplicate, concurrent and
out-of-order deliveries; the notices staff get. Access is never changed by a dispute."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from community.billing import disputes
from community.billing.models import Dispute, Payment, Refund
from tests import test_checkout
from tests.checkout_helpers import API, deliver_and_process
from tests.conftest import sign_up
from tests.helpers import run_jobs
from tests.test_checkout import can_open
from tests.test_refunds import base, buy, count, mail_to, read, run_all_jobs, spent

shop = test_checkout.shop  # the fixture: a community with a connected Stripe account and a group to sell

# Dispute.Status in Stripe's published types for this API version (npm stripe@23.1.0).
PUBLISHED_STATUSES = {
    "warning_needs_response", "warning_under_review", "warning_closed", "needs_response", "under_review",
    "appeal_needs_response", "appeal_under_review", "won", "lost", "prevented",
}


def test_every_published_status_is_known_to_hold_money_or_not() -> None:
    assert disputes.HOLDING | disputes.HOLDS_NOTHING == PUBLISHED_STATUSES
    assert not disputes.HOLDING & disputes.HOLDS_NOTHING
    assert disputes.HOLDING == {"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"}


def charge_of(stripe_env, payment) -> str:
    return stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]


async def dispute_row(sessions, stripe_id: str) -> Dispute:
    async with sessions() as session:
        return await session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == stripe_id))


async def test_disputes_hold_money_until_won_and_keep_it_when_lost(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    charge_id = stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]
    opened = stripe_env.sandbox.dispute(charge_id)
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, payment)
    assert (shown["disputed_amount"], shown["net_amount"]) == (4900, 0)
    assert await spent(sessions, shop, buyer.id) == {"USD": 0}
    stripe_env.sandbox.close_dispute(opened["id"], won=True)
    await deliver_and_process(client, stripe_env, settings)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 0
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}

    second = stripe_env.sandbox.dispute(charge_id, amount=1500)
    stripe_env.sandbox.close_dispute(second["id"], won=False)
    await deliver_and_process(client, stripe_env, settings)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 1500
    assert await spent(sessions, shop, buyer.id) == {"USD": 3400}
    async with sessions() as session:
        rows = {d.stripe_dispute_id: (d.status, d.closed_at is not None) for d in await session.scalars(select(Dispute))}
    assert rows == {opened["id"]: ("won", True), second["id"]: ("lost", True)}


async def test_dispute_deliveries_duplicated_concurrent_or_closed_first_end_the_same(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=2500)
    charge_id = stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]
    opened = stripe_env.sandbox.dispute(charge_id)
    stripe_env.sandbox.close_dispute(opened["id"], won=False)
    deliveries = [d for d in stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint) if d.type.startswith("charge.dispute")]
    # Stripe withdraws a chargeback's amount when it opens (funds_withdrawn), then it closes.
    assert [d.type for d in deliveries] == ["charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed"]
    route = f"{API}/webhooks/stripe/connect"
    for delivery in reversed(deliveries):  # closed before created
        await asyncio.gather(*(client.post(route, content=delivery.payload, headers=delivery.headers) for _ in range(3)))
        await run_jobs(settings)
    assert await count(sessions, Dispute) == 1
    async with sessions() as session:
        dispute = await session.scalar(select(Dispute))
        assert (dispute.status, dispute.amount) == ("lost", 2500)
        assert (await session.get(Payment, payment["id"])).disputed_amount == 2500
    assert await spent(sessions, shop, buyer.id) == {"USD": 0}



async def deliver_each(client, deliveries, times: int) -> None:
    for delivery in deliveries:
        answers = await asyncio.gather(*(client.post(f"{API}/webhooks/stripe/connect", content=delivery.payload, headers=delivery.headers) for _ in range(times)))
        assert all(a.status_code == 200 for a in answers)


async def test_staff_hear_once_when_a_dispute_opens_and_once_when_it_closes(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    cid = shop["community"]["id"]
    for address, role in (("admin@example.com", "admin"), ("manager@example.com", "manager")):
        await sign_up(client, address)
        added = await client.put(f"{API}/communities/{cid}/staff", json={"email": address, "role": role}, headers=owner.headers)
        assert added.status_code == 200, added.text
    charge_id = stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]
    opened = stripe_env.sandbox.dispute(charge_id, amount=3000, reason="product_not_received")
    due_by = dt.datetime.fromtimestamp(opened["evidence_details"]["due_by"], dt.UTC).strftime("%d %B %Y")
    created = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    assert [d.type for d in created] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    await deliver_each(client, created, 3)
    await run_all_jobs(settings)
    await deliver_each(client, created, 1)  # Stripe's retry, later
    await run_all_jobs(settings)
    notices = await mail_to(settings, "dispute opened")
    assert sorted(to for to, _, _ in notices) == ["admin@example.com", owner.email]  # owners and admins, once each
    for _to, subject, body in notices:
        assert "30.00 USD" in subject and "buyer" in subject and "is held" in body
        for shown in (buyer.email, "49.00 USD", f"payment {payment['id']}", opened["id"], "product not received", due_by):
            assert shown in body, (shown, body)
    assert await mail_to(settings, "dispute won") == []

    stripe_env.sandbox.close_dispute(opened["id"], won=True)
    closed = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    await deliver_each(client, closed, 3)
    await run_all_jobs(settings)
    await deliver_each(client, [*created, *closed], 2)  # everything again, the opening too
    await run_all_jobs(settings)
    won = await mail_to(settings, "dispute won")
    assert sorted(to for to, _, _ in won) == ["admin@example.com", owner.email]
    assert all("closed: won" in body and "yours again" in body for _, _, body in won)
    assert len(await mail_to(settings, "dispute opened")) == 2
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 0


async def test_a_dispute_first_seen_closed_sends_only_its_outcome(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=2500)
    charge_id = stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]
    opened = stripe_env.sandbox.dispute(charge_id)
    stripe_env.sandbox.close_dispute(opened["id"], won=False)
    deliveries = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    await deliver_each(client, reversed(deliveries), 2)  # closed first, each twice
    await run_all_jobs(settings)
    assert await mail_to(settings, "dispute opened") == []  # it was over before we heard of it
    [(to, subject, body)] = await mail_to(settings, "dispute lost")
    assert to == owner.email and "25.00 USD" in subject and "closed: lost" in body


async def with_admin(client, owner, shop) -> None:
    await sign_up(client, "admin@example.com")
    added = await client.put(
        f"{API}/communities/{shop['community']['id']}/staff", json={"email": "admin@example.com", "role": "admin"}, headers=owner.headers
    )
    assert added.status_code == 200, added.text


async def test_an_inquiry_holds_nothing_and_closes_without_moving_money(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    inquiry = stripe_env.sandbox.dispute(charge_of(stripe_env, payment), inquiry=True, reason="general")
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, payment)
    assert (shown["disputed_amount"], shown["net_amount"]) == (0, 4900)
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}
    assert (await dispute_row(sessions, inquiry["id"])).status == "warning_needs_response"
    stripe_env.sandbox.respond_to_dispute(inquiry["id"])
    await deliver_and_process(client, stripe_env, settings)
    assert (await dispute_row(sessions, inquiry["id"])).status == "warning_under_review"
    stripe_env.sandbox.close_dispute(inquiry["id"])
    await deliver_and_process(client, stripe_env, settings)
    await run_all_jobs(settings)
    row = await dispute_row(sessions, inquiry["id"])
    assert (row.status, row.closed_at is not None) == ("warning_closed", True)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 0
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}
    [(_to, _subject, opened)] = await mail_to(settings, "dispute opened")
    assert "inquiry so far: no money is held" in opened
    [(_to, _subject, closed)] = await mail_to(settings, "dispute closed without a chargeback")
    assert "No money moved" in closed
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)


async def test_an_inquiry_that_becomes_a_chargeback_holds_the_money_and_tells_staff(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    await with_admin(client, owner, shop)
    inquiry = stripe_env.sandbox.dispute(charge_of(stripe_env, payment), inquiry=True)
    await deliver_and_process(client, stripe_env, settings)
    stripe_env.sandbox.escalate_dispute(inquiry["id"])
    deliveries = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    assert [d.type for d in deliveries] == ["charge.dispute.updated", "charge.dispute.funds_withdrawn"]
    await deliver_each(client, reversed(deliveries), 2)  # in any order, twice
    await run_all_jobs(settings)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 4900
    assert await spent(sessions, shop, buyer.id) == {"USD": 0}
    notices = await mail_to(settings, "dispute opened")
    assert sorted(to for to, _, _ in notices) == sorted(["admin@example.com", owner.email] * 2)  # opened, then escalated
    escalated = [body for _, _, body in notices if "became a chargeback" in body]
    assert len(escalated) == 2 and all("is held" in body for body in escalated)
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)  # access is staff's call


async def test_a_lost_chargeback_stays_held_through_its_appeal_and_a_win_on_appeal_gives_it_back(
    client, owner, shop, stripe_env, sessions, settings
) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    opened = stripe_env.sandbox.dispute(charge_of(stripe_env, payment), amount=3000)
    stripe_env.sandbox.close_dispute(opened["id"], won=False)
    await deliver_and_process(client, stripe_env, settings)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 3000
    assert await spent(sessions, shop, buyer.id) == {"USD": 1900}

    stripe_env.sandbox.appeal_dispute(opened["id"])
    await deliver_and_process(client, stripe_env, settings)
    row = await dispute_row(sessions, opened["id"])
    assert (row.status, row.closed_at) == ("appeal_needs_response", None)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 3000  # still withdrawn while appealed
    assert await spent(sessions, shop, buyer.id) == {"USD": 1900}
    stripe_env.sandbox.respond_to_dispute(opened["id"])
    await deliver_and_process(client, stripe_env, settings)
    assert (await dispute_row(sessions, opened["id"])).status == "appeal_under_review"
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 3000

    stripe_env.sandbox.close_dispute(opened["id"], won=True)
    deliveries = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    assert [d.type for d in deliveries] == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    await deliver_each(client, deliveries, 2)
    await run_all_jobs(settings)
    row = await dispute_row(sessions, opened["id"])
    assert (row.status, row.closed_at is not None) == ("won", True)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 0
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}
    # Staff heard it was lost, then that it was won on appeal (no opened notice: first seen lost).
    assert [subject.split(" by ")[0] for _, subject, _ in await mail_to(settings, "dispute")] == [
        "Dispute lost: 30.00 USD", "Dispute won: 30.00 USD",
    ]
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)


async def test_prevented_disputes_hold_nothing_and_a_resolution_is_a_refund(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    blocked = stripe_env.sandbox.prevent_dispute(charge_of(stripe_env, payment))
    await deliver_and_process(client, stripe_env, settings)
    await run_all_jobs(settings)
    row = await dispute_row(sessions, blocked["id"])
    assert (row.status, row.closed_at is not None) == ("prevented", True)
    assert (await read(client, owner, shop, payment))["disputed_amount"] == 0
    assert await mail_to(settings, "dispute opened") == []
    [(_to, _subject, body)] = await mail_to(settings, "dispute prevented")
    assert "No chargeback was raised" in body

    stripe_env.sandbox.prevent_dispute(charge_of(stripe_env, payment), amount=1200, resolution=True)
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, payment)
    assert (shown["disputed_amount"], shown["refunded_amount"]) == (0, 1200)
    [refund] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (refund["amount"], refund["state"], refund["actor_id"]) == (1200, "succeeded", None)
    assert await spent(sessions, shop, buyer.id) == {"USD": 3700}
    assert await count(sessions, Refund) == 1
