"""Refunds through the local Stripe sandbox: an owner's full and partial refunds (exact sums,
what is left, access kept or revoked, emails), refunds made in the Stripe dashboard, refunds Stripe
holds pending and then pays, fails or cancels (totals put back, the member told only what is
true), and duplicate, concurrent and out-of-order deliveries of their events. Disputes:
test_disputes.py; refunds Stripe did not answer: test_refund_retries.py."""

from __future__ import annotations

import asyncio
import email
import email.policy
from typing import Any

import pytest
from sqlalchemy import func, select, text

from community.billing import events as billing_events
from community.billing import refunds
from community.billing import service as billing
from community.billing.models import (
    Dispute,
    Payment,
    Refund,
    RefundState,
    StripeEvent,
    Subscription,
)
from community.errors import NotYetKnown
from community.jobs import JobState, OutboxJob
from community.mail.service import SEND_EMAIL
from community.stripe_client import stripe_client
from tests import test_checkout
from tests.checkout_helpers import API, deliver_and_process, submit_checkout
from tests.conftest import sign_up
from tests.helpers import decide_notifications, run_jobs
from tests.test_checkout import can_open, sell, session_id_of

shop = test_checkout.shop  # the fixture: a community with a connected Stripe account and a group to sell


async def buy(client, owner, shop, stripe_env, settings, *, email: str = "buyer@example.com", **fields: Any):
    """A buyer with an account pays for an offer; returns (buyer, payment as the API shows it)."""
    buyer = await sign_up(client, email)
    _offer, path = await sell(client, owner, shop, **fields)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email=email)), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    payments = (await client.get(f"{API}/communities/{shop['community']['id']}/payments", headers=owner.headers)).json()
    return buyer, payments["items"][0]


def base(shop, payment) -> str:
    return f"{API}/communities/{shop['community']['id']}/payments/{payment['id']}"


async def refund(client, owner, shop, payment, **body: Any):
    return await client.post(f"{base(shop, payment)}/refunds", json=body, headers=owner.headers)


async def read(client, owner, shop, payment) -> dict[str, Any]:
    return (await client.get(base(shop, payment), headers=owner.headers)).json()


async def emails(sessions, settings, template_word: str = "") -> list[tuple[str, str]]:
    await decide_notifications(settings)
    async with sessions() as session:
        rows = await session.scalars(select(OutboxJob).where(OutboxJob.name == SEND_EMAIL).order_by(OutboxJob.id))
        return [(r.payload["to"], r.payload["subject"]) for r in rows if template_word.lower() in r.payload["subject"].lower()]


async def mail_to(settings, word: str) -> list[tuple[str, str, str]]:
    """(to, subject, text) of the delivered emails whose subject has `word`."""
    delivered = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted((settings.data_dir / "mail").glob("*.eml"))
    ]
    return [
        (m["To"], m["Subject"], m.get_body(("plain",)).get_content())
        for m in delivered
        if word.lower() in m["Subject"].lower()
    ]


async def run_all_jobs(settings) -> None:
    """Until nothing is left: the webhooks' jobs, then the emails they queued."""
    while await run_jobs(settings):
        pass


async def spent(sessions, shop, user_id: int) -> dict[str, int]:
    async with sessions() as session:
        return await billing.total_spent(session, community_id=shop["community"]["id"], user_id=user_id)


async def access_log(sessions) -> list[tuple[int, int, str]]:
    async with sessions() as session:
        return [tuple(r) for r in await session.execute(text("SELECT user_id, group_id, change FROM access_log ORDER BY id"))]


async def count(sessions, model, *where) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- an owner's refunds


async def test_thirty_thirty_forty_percent_leaves_it_fully_refunded_with_exact_sums(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4999)
    assert await spent(sessions, shop, buyer.id) == {"USD": 4999}
    parts = [4999 * 30 // 100, 4999 * 30 // 100]
    parts.append(4999 - sum(parts))  # 1499, 1499, 2001
    for part in parts:
        made = await refund(client, owner, shop, payment, amount=part, reason="goodwill")
        assert made.status_code == 201, made.text
        assert made.json()["state"] == "succeeded" and made.json()["amount"] == part and made.json()["stripe_refund_id"]
    shown = await read(client, owner, shop, payment)
    assert (shown["refunded_amount"], shown["status"], shown["net_amount"]) == (4999, "refunded", 0)
    listed = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert [r["amount"] for r in listed] == parts and {r["state"] for r in listed} == {"succeeded"}
    assert all(r["actor_id"] == owner.id for r in listed)
    assert await spent(sessions, shop, buyer.id) == {"USD": 0}
    cid = shop["community"]["id"]
    staff_view = await client.get(f"{API}/communities/{cid}/members/{buyer.id}/total-spent", headers=owner.headers)
    own_view = await client.get(f"{API}/communities/{cid}/me/total-spent", headers=buyer.headers)
    assert staff_view.json() == own_view.json() == {"totals": {"USD": 0}}

    # Stripe's charge.refunded deliveries arrive afterwards: they change nothing.
    await deliver_and_process(client, stripe_env, settings)
    assert await count(sessions, Refund) == 3
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 4999
    charge = stripe_env.sandbox.get(stripe_env.sandbox.get(shown["stripe_payment_intent_id"])["latest_charge"])
    assert charge["amount_refunded"] == 4999 and charge["refunded"] is True

    # Nothing is left: a further refund names the amount.
    over = await refund(client, owner, shop, payment, amount=1)
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "amount"
    # The membership was kept (no revoke): the buyer still opens the group.
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    assert len(await emails(sessions, settings, "refund of")) == 3


async def test_a_refund_above_what_is_left_is_refused_and_the_default_is_the_rest(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    assert (await refund(client, owner, shop, payment, amount=1000)).status_code == 201
    over = await refund(client, owner, shop, payment, amount=3901)
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "amount" and "39.00" in over.text
    assert (await refund(client, owner, shop, payment, amount=0)).status_code in (400, 422)
    rest = await refund(client, owner, shop, payment)
    assert rest.status_code == 201 and rest.json()["amount"] == 3900
    assert await count(sessions, Refund) == 2  # refused requests wrote nothing
    assert (await read(client, owner, shop, payment))["status"] == "refunded"


async def test_a_refund_that_revokes_access_ends_the_membership(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings)
    await run_jobs(settings)
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    made = await refund(client, owner, shop, payment, amount=2000, reason="asked", revoke_access=True)
    assert made.status_code == 201 and made.json()["revoke_access"] is True
    assert not await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    await run_jobs(settings)
    assert await access_log(sessions) == [(buyer.id, shop["group_id"], "gained"), (buyer.id, shop["group_id"], "lost")]
    entitlement = (await client.get(f"{API}/communities/{shop['community']['id']}/entitlements/{payment['entitlement_id']}", headers=owner.headers)).json()
    assert entitlement["status"] == "refunded" and entitlement["live"] is False
    assert (await read(client, owner, shop, payment))["status"] == "partially_refunded"
    assert await spent(sessions, shop, buyer.id) == {"USD": 2900}
    [(to, subject)] = await emails(sessions, settings, "refund of")
    assert to == buyer.email and "20.00" in subject
    assert await emails(sessions, settings, "refund:") == [(owner.email, "Refund: 20.00 USD to buyer for Pro Membership")]  # staff, once
    # The buyer may buy it again: ended access does not block a new purchase.
    again = await submit_checkout(client, f"/o/{shop['community']['slug']}/pro-membership", email=buyer.email)
    assert again.status_code == 303, again.text


async def test_concurrent_refunds_never_exceed_the_payment(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=5000)
    answers = await asyncio.gather(*(refund(client, owner, shop, payment, amount=3000) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [201, 422, 422]
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 3000
    assert await count(sessions, Refund) == 1


async def test_a_refused_stripe_call_leaves_a_failed_row_and_no_totals(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings)
    charge_id = stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]
    stripe_env.sandbox.dispute(charge_id, amount=1000)  # Stripe refuses refunds while a dispute is open
    stripe_env.drain()
    refused = await refund(client, owner, shop, payment, amount=500)
    assert refused.status_code == 409 and "disputed" in refused.text
    async with sessions() as session:
        row = await session.scalar(select(Refund))
        assert row.state is RefundState.failed and "disputed" in row.error and row.stripe_refund_id is None
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 0
    assert await emails(sessions, settings, "refund of") == []
    assert stripe_env.sandbox.get(charge_id)["amount_refunded"] == 0


async def test_a_retried_stripe_call_refunds_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    """The idempotency key comes from our row: asking Stripe again for the same row (a retry
    after a lost answer) returns the same refund."""
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings)
    made = (await refund(client, owner, shop, payment, amount=1200)).json()
    async with sessions() as session, session.begin():
        row = await session.get(Refund, made["id"])
        again = await refunds.send_refund(session, settings, row)
        assert again.stripe_refund_id == made["stripe_refund_id"]
    listed = await stripe_client(settings).v1.refunds.list_async(
        {"payment_intent": payment["stripe_payment_intent_id"]}, {"stripe_account": shop["account_id"]}
    )
    assert [r.id for r in listed.data] == [made["stripe_refund_id"]]
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 1200
    assert len(await emails(sessions, settings, "refund of")) == 1


async def test_staff_and_outsiders(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings)
    assert (await client.post(f"{base(shop, payment)}/refunds", json={}, headers=buyer.headers)).status_code == 403  # a member, not staff
    stranger = await sign_up(client, "stranger@example.com")
    other = (await client.post(f"{API}/communities", json={"name": "Other"}, headers=stranger.headers)).json()
    foreign = f"{API}/communities/{other['id']}/payments/{payment['id']}/refunds"
    assert (await client.post(foreign, json={}, headers=stranger.headers)).status_code == 404
    assert (await client.get(foreign, headers=stranger.headers)).status_code == 404
    assert await count(sessions, Refund) == 0


# ---------------------------------------------------------------- the Stripe dashboard


async def dashboard_refund(settings, shop, payment, amount: int) -> str:
    made = await stripe_client(settings).v1.refunds.create_async(
        {"payment_intent": payment["stripe_payment_intent_id"], "amount": amount}, {"stripe_account": shop["account_id"]}
    )
    return made.id


async def test_dashboard_refunds_show_up_like_ours(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    first = await dashboard_refund(settings, shop, payment, 900)
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, payment)
    assert (shown["refunded_amount"], shown["status"]) == (900, "partially_refunded")
    [row] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (row["stripe_refund_id"], row["amount"], row["state"], row["actor_id"]) == (first, 900, "succeeded", None)
    assert await spent(sessions, shop, buyer.id) == {"USD": 4000}
    # What is left counts the dashboard's refund.
    assert (await refund(client, owner, shop, payment, amount=4001)).status_code == 422
    assert (await refund(client, owner, shop, payment, amount=4000)).status_code == 201
    await deliver_and_process(client, stripe_env, settings)
    assert await count(sessions, Refund) == 2 and len(await emails(sessions, settings, "refund of")) == 2


async def test_duplicate_concurrent_and_out_of_order_refund_deliveries_change_nothing(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=3000)
    for amount in (1000, 500, 1500):
        await dashboard_refund(settings, shop, payment, amount)
    deliveries = [d for d in stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint) if d.type == "charge.refunded"]
    assert len(deliveries) == 3
    route = f"{API}/webhooks/stripe/connect"
    # The last first, each several times at once.
    for delivery in reversed(deliveries):
        answers = await asyncio.gather(*(client.post(route, content=delivery.payload, headers=delivery.headers) for _ in range(3)))
        assert all(a.status_code == 200 for a in answers)
    await run_jobs(settings)
    for delivery in deliveries:  # and all of them again
        await client.post(route, content=delivery.payload, headers=delivery.headers)
    await run_jobs(settings)
    assert await count(sessions, StripeEvent, StripeEvent.type == "charge.refunded") == 3
    assert await count(sessions, Refund) == 3 and await count(sessions, Refund, Refund.state == RefundState.succeeded) == 3
    shown = await read(client, owner, shop, payment)
    assert (shown["refunded_amount"], shown["status"]) == (3000, "refunded")
    assert len(await emails(sessions, settings, "refund of")) == 3
    assert await spent(sessions, shop, buyer.id) == {"USD": 0}


async def test_our_refund_settled_by_the_webhook_when_the_request_died(client, owner, shop, stripe_env, sessions, settings) -> None:
    """A pending row whose request never recorded Stripe's answer is found by the refund's metadata."""
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings)
    request = refunds.RefundRequest(700, "crash", False, owner.id)
    async with sessions() as session, session.begin():
        row = await refunds.start_refund(session, settings, community_id=shop["community"]["id"], payment_id=payment["id"], request=request)
    params = {"payment_intent": payment["stripe_payment_intent_id"], "amount": 700, "metadata": {"refund_id": str(row.id)}}
    await stripe_client(settings).v1.refunds.create_async(params, {"stripe_account": shop["account_id"], "idempotency_key": refunds.idempotency_key(row)})
    await deliver_and_process(client, stripe_env, settings)
    [listed] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (listed["id"], listed["state"], listed["actor_id"]) == (row.id, "succeeded", owner.id)
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 700


async def test_refunding_a_subscription_payment_with_revoke_cancels_it_at_stripe(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, pricing="recurring", amount=2000, interval_months=1)
    assert payment["stripe_subscription_id"] and payment["kind"] == "purchase"
    async with sessions() as session, session.begin():  # as if the first invoice.paid had not come yet
        await session.execute(text("UPDATE payments SET stripe_payment_intent_id = NULL, stripe_charge_id = NULL, stripe_invoice_id = NULL"))
    made = await refund(client, owner, shop, payment, amount=500, revoke_access=True, reason="unhappy")
    assert made.status_code == 201, made.text
    async with sessions() as session:
        sub = await session.scalar(select(Subscription))
        assert sub.status == "canceled"
    assert stripe_env.sandbox.get(payment["stripe_subscription_id"])["status"] == "canceled"  # no more charges
    assert not await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    await deliver_and_process(client, stripe_env, settings)  # subscription deleted, charge refunded: nothing more
    shown = await read(client, owner, shop, payment)
    assert (shown["refunded_amount"], shown["status"]) == (500, "partially_refunded")
    # found through its first invoice's payments: the payment now names them
    assert shown["stripe_invoice_id"] and shown["stripe_payment_intent_id"] and shown["stripe_charge_id"]
    assert stripe_env.sandbox.get(shown["stripe_charge_id"])["amount_refunded"] == 500
    assert await count(sessions, Refund) == 1  # its charge.refunded found our row, not a "dashboard" one
    entitlement = (await client.get(f"{API}/communities/{shop['community']['id']}/entitlements/{payment['entitlement_id']}", headers=owner.headers)).json()
    assert entitlement["status"] == "refunded" and entitlement["live"] is False
    assert await spent(sessions, shop, buyer.id) == {"USD": 1500}


async def test_a_refund_delivered_before_the_purchase_waits_for_it(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer = await sign_up(client, "early@example.com")
    _offer, path = await sell(client, owner, shop, amount=3000)
    session_id = session_id_of(await submit_checkout(client, path, email=buyer.email))
    stripe_env.sandbox.pay(session_id, outcome="success")
    purchase = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    pi_id = stripe_env.sandbox.get(session_id)["payment_intent"]
    await stripe_client(settings).v1.refunds.create_async({"payment_intent": pi_id, "amount": 1000}, {"stripe_account": shop["account_id"]})
    route = f"{API}/webhooks/stripe/connect"
    for delivery in stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint):  # the refund first
        assert (await client.post(route, content=delivery.payload, headers=delivery.headers)).status_code == 200
    async with sessions() as session:  # its job, now: the payment is not recorded yet, so it is retried
        row = await session.scalar(select(StripeEvent).where(StripeEvent.type == "charge.refunded"))
        with pytest.raises(NotYetKnown):
            await billing_events.HANDLERS[row.type](session, settings, row)
        await session.rollback()
    for delivery in purchase:
        assert (await client.post(route, content=delivery.payload, headers=delivery.headers)).status_code == 200
    # Retried with a backoff (as in production), the refund's job runs after the purchase's.
    while await run_jobs(settings, retry_base_seconds=0.2):
        pass
    async with sessions() as session:
        payment = await session.scalar(select(Payment))
        assert (payment.amount, payment.refunded_amount) == (3000, 1000)
        event = await session.scalar(select(StripeEvent).where(StripeEvent.type == "charge.refunded"))
        assert event.outcome == "refunded 1000 of 3000"
        assert await session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.state == JobState.failed)) == 0
    assert await count(sessions, Refund) == 1


# ---------------------------------------------------------------- subscription payments (invoices as endive sends them)


async def subscribe_and_renew(client, owner, shop, stripe_env, settings, *, email: str = "member@example.com"):
    """A member subscribes (20.00 USD a month) and is charged once more at the period's end;
    returns (member, first payment, renewal) as the API shows them."""
    buyer, purchase = await buy(client, owner, shop, stripe_env, settings, email=email, pricing="recurring", amount=2000, interval_months=1)
    sandbox = stripe_env.sandbox
    sandbox.advance_clock(sandbox.get(purchase["stripe_subscription_id"])["items"]["data"][0]["current_period_end"] - sandbox.now() + 60)
    await deliver_and_process(client, stripe_env, settings)
    listed = (await client.get(f"{API}/communities/{shop['community']['id']}/payments", headers=owner.headers)).json()["items"]
    [renewal] = [p for p in listed if p["kind"] == "renewal"]
    return buyer, await read(client, owner, shop, purchase), renewal


def invoice_charge(stripe_env, invoice_id: str) -> str:
    """The charge that paid an invoice, as Stripe holds it (its invoice payment's intent's latest charge)."""
    state = stripe_env.sandbox.state
    [paid] = [state.objects[i] for i in state.index["invoice_payment"] if state.objects[i]["invoice"] == invoice_id]
    return stripe_env.sandbox.get(paid["payment"]["payment_intent"])["latest_charge"]


async def test_an_owner_refunds_a_renewal_and_a_first_payment_in_part_and_in_full(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, first, renewal = await subscribe_and_renew(client, owner, shop, stripe_env, settings)
    for payment in (first, renewal):  # each knows the intent and charge its invoice was paid with
        assert payment["stripe_charge_id"] == invoice_charge(stripe_env, payment["stripe_invoice_id"])
        assert stripe_env.sandbox.get(payment["stripe_charge_id"])["payment_intent"] == payment["stripe_payment_intent_id"]
    assert await spent(sessions, shop, buyer.id) == {"USD": 4000}

    part = await refund(client, owner, shop, renewal, amount=500, reason="a week unused")
    assert part.status_code == 201, part.text
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, renewal)
    assert (shown["refunded_amount"], shown["status"]) == (500, "partially_refunded")
    rest = await refund(client, owner, shop, renewal, reason="the rest")  # everything left by default
    assert (rest.status_code, rest.json()["amount"], rest.json()["state"]) == (201, 1500, "succeeded")
    whole = await refund(client, owner, shop, first, reason="the first month too")
    assert (whole.status_code, whole.json()["amount"]) == (201, 2000)
    await deliver_and_process(client, stripe_env, settings)

    for payment in (first, renewal):
        shown = await read(client, owner, shop, payment)
        assert (shown["refunded_amount"], shown["status"], shown["net_amount"]) == (2000, "refunded", 0)
        charge = stripe_env.sandbox.get(payment["stripe_charge_id"])
        assert (charge["amount_refunded"], charge["refunded"]) == (2000, True)
    # charge.refunded found our three rows (no "made in Stripe" duplicates)
    assert await count(sessions, Refund) == 3 and await count(sessions, Refund, Refund.state == RefundState.succeeded) == 3
    assert await spent(sessions, shop, buyer.id) == {"USD": 0}
    assert len(await emails(sessions, settings, "refund of")) == 3
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)  # access was kept


async def test_a_dashboard_refund_and_a_dispute_of_a_renewal_move_its_totals(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, first, renewal = await subscribe_and_renew(client, owner, shop, stripe_env, settings)
    on_account = {"stripe_account": shop["account_id"]}
    made = await stripe_client(settings).v1.refunds.create_async({"charge": renewal["stripe_charge_id"], "amount": 700}, on_account)
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, renewal)
    assert (shown["refunded_amount"], shown["status"]) == (700, "partially_refunded")
    [row] = (await client.get(f"{base(shop, renewal)}/refunds", headers=owner.headers)).json()
    assert (row["stripe_refund_id"], row["amount"], row["state"], row["actor_id"]) == (made.id, 700, "succeeded", None)
    assert await spent(sessions, shop, buyer.id) == {"USD": 3300}

    opened = stripe_env.sandbox.dispute(renewal["stripe_charge_id"])  # the rest is charged back
    await deliver_and_process(client, stripe_env, settings)
    shown = await read(client, owner, shop, renewal)
    assert (opened["amount"], shown["disputed_amount"], shown["net_amount"]) == (1300, 1300, 0)
    assert await spent(sessions, shop, buyer.id) == {"USD": 2000}
    untouched = await read(client, owner, shop, first)
    assert (untouched["refunded_amount"], untouched["disputed_amount"]) == (0, 0)
    async with sessions() as session:
        dispute = await session.scalar(select(Dispute))
        assert (dispute.payment_id, dispute.stripe_dispute_id) == (renewal["id"], opened["id"])


async def test_charge_events_before_their_invoice_is_recorded_find_their_payment(client, owner, shop, stripe_env, sessions, settings) -> None:
    """A refund made in the dashboard reaches us before the invoice that names its charge has
    been recorded: the first payment (recorded from its checkout) gets its ids from the
    invoice Stripe says the charge's intent paid; a renewal not recorded yet is waited for."""
    buyer, first = await buy(client, owner, shop, stripe_env, settings, pricing="recurring", amount=2000, interval_months=1)
    first_charge = invoice_charge(stripe_env, first["stripe_invoice_id"])
    async with sessions() as session, session.begin():  # as if the first invoice.paid had not come yet
        await session.execute(text("UPDATE payments SET stripe_payment_intent_id = NULL, stripe_charge_id = NULL, stripe_invoice_id = NULL"))
    sandbox = stripe_env.sandbox
    sandbox.advance_clock(sandbox.get(first["stripe_subscription_id"])["items"]["data"][0]["current_period_end"] - sandbox.now() + 60)
    renewal_invoice = sandbox.get(first["stripe_subscription_id"])["latest_invoice"]
    held = sandbox.take_deliveries(stripe_env.connect_endpoint)  # the renewal's events, not delivered yet
    on_account = {"stripe_account": shop["account_id"]}
    for charge, amount in ((first_charge, 300), (invoice_charge(stripe_env, renewal_invoice), 400)):
        await stripe_client(settings).v1.refunds.create_async({"charge": charge, "amount": amount}, on_account)
    route = f"{API}/webhooks/stripe/connect"
    for delivery in sandbox.take_deliveries(stripe_env.connect_endpoint):  # the refunds first
        assert (await client.post(route, content=delivery.payload, headers=delivery.headers)).status_code == 200
    async with sessions() as session:
        rows = (await session.scalars(select(StripeEvent).where(StripeEvent.type == "charge.refunded").order_by(StripeEvent.id))).all()
        assert await billing_events.HANDLERS["charge.refunded"](session, settings, rows[0]) == "refunded 300 of 2000"
        with pytest.raises(NotYetKnown):  # the renewal is ours but not recorded yet: retried
            await billing_events.HANDLERS["charge.refunded"](session, settings, rows[1])
        await session.rollback()
    for delivery in held:
        assert (await client.post(route, content=delivery.payload, headers=delivery.headers)).status_code == 200
    while await run_jobs(settings, retry_base_seconds=0.2):
        pass
    async with sessions() as session:
        payments = {p.kind.value: p for p in await session.scalars(select(Payment))}
        assert (payments["purchase"].refunded_amount, payments["renewal"].refunded_amount) == (300, 400)
        assert payments["purchase"].stripe_charge_id == first_charge and payments["purchase"].stripe_invoice_id == first["stripe_invoice_id"]
        assert await session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.state == JobState.failed)) == 0
    assert await count(sessions, Refund) == 2
    assert await spent(sessions, shop, buyer.id) == {"USD": 3300}


# ---------------------------------------------------------------- a revoke Stripe refuses


async def test_a_revoke_whose_subscription_stripe_will_not_cancel_keeps_access_and_records_the_refund(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, pricing="recurring", amount=2000, interval_months=1)
    real_id = payment["stripe_subscription_id"]
    async with sessions() as session, session.begin():  # a subscription id Stripe does not know
        await session.execute(text("UPDATE subscriptions SET stripe_subscription_id = 'sub_unknown_to_stripe'"))
    made = await refund(client, owner, shop, payment, amount=500, revoke_access=True, reason="unhappy")
    assert made.status_code == 409, made.text
    problem = made.json()
    assert problem["errors"][0]["field"] == "revoke_access"
    assert "succeeded at Stripe and is recorded" in problem["detail"] and "sub_unknown_to_stripe" in problem["detail"]
    assert "No such subscription" in problem["detail"] and "keeps running" in problem["detail"]
    [row] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert row["state"] == "succeeded" and row["stripe_refund_id"] and row["error"].startswith("access kept: ")
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 500
    # Stripe still charges the member, so the member keeps the access they pay for.
    cid = shop["community"]["id"]
    entitlement_url = f"{API}/communities/{cid}/entitlements/{payment['entitlement_id']}"
    assert (await client.get(entitlement_url, headers=owner.headers)).json()["live"] is True
    assert await can_open(client, cid, shop["group_id"], buyer.headers)
    [(to, _subject)] = await emails(sessions, settings, "refund of")
    assert to == buyer.email
    async with sessions() as session:
        [body] = [j.payload["text"] for j in await session.scalars(select(OutboxJob).where(OutboxJob.name == SEND_EMAIL)) if "Refund of" in j.payload["subject"]]
    assert "has ended" not in body
    # Staff ending it while Stripe still refuses: the same clear 409, nothing ended.
    ended = await client.post(f"{entitlement_url}/cancel-now", headers=owner.headers)
    assert ended.status_code == 409 and "sub_unknown_to_stripe" in ended.json()["detail"], ended.text
    assert (await client.get(entitlement_url, headers=owner.headers)).json()["live"] is True
    # Its charge.refunded changes nothing; once Stripe accepts, one more end finishes the job.
    await deliver_and_process(client, stripe_env, settings)
    assert await count(sessions, Refund) == 1
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE subscriptions SET stripe_subscription_id = :id"), {"id": real_id})
    ended = await client.post(f"{entitlement_url}/end", json={"status": "refunded", "reason": "refund"}, headers=owner.headers)
    assert ended.status_code == 200 and ended.json()["live"] is False, ended.text
    assert stripe_env.sandbox.get(real_id)["status"] == "canceled"
    assert not await can_open(client, cid, shop["group_id"], buyer.headers)


async def test_a_dashboard_refund_whose_metadata_names_no_possible_row_is_recorded(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    await stripe_client(settings).v1.refunds.create_async(  # metadata typed by hand in the dashboard
        {"payment_intent": payment["stripe_payment_intent_id"], "amount": 900, "metadata": {"refund_id": "9" * 30}},
        {"stripe_account": shop["account_id"]},
    )
    await deliver_and_process(client, stripe_env, settings)
    async with sessions() as session:
        failed = (await session.scalars(select(OutboxJob).where(OutboxJob.last_error.is_not(None)))).all()
    assert [(j.name, j.last_error) for j in failed] == []
    [row] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (row["amount"], row["state"]) == (900, "succeeded")
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 900


async def test_a_repeated_request_with_the_same_idempotency_key_refunds_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=5000)
    url = f"{base(shop, payment)}/refunds"

    def click(key: str | None = None):
        headers = {**owner.headers, **({"Idempotency-Key": key} if key else {})}
        return client.post(url, json={"amount": 1000, "reason": "late delivery"}, headers=headers)

    double = await asyncio.gather(click("refund-order-7"), click("refund-order-7"))  # a double click
    assert [r.status_code for r in double] == [201, 201], [r.text for r in double]
    assert double[0].json()["id"] == double[1].json()["id"]
    retried = await click("refund-order-7")  # a client retrying after a lost answer
    assert retried.status_code == 201 and retried.json()["id"] == double[0].json()["id"]
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 1000
    charge = stripe_env.sandbox.get(stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"])
    assert charge["amount_refunded"] == 1000  # one refund at Stripe
    # Without a key, or with another one, it is another refund.
    assert (await click()).status_code == 201 and (await click("refund-order-8")).status_code == 201
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 3000
    bad = await client.post(url, json={"amount": 1}, headers={**owner.headers, "Idempotency-Key": "has space"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Idempotency-Key"


# ---------------------------------------------------------------- refunds Stripe holds pending, fails or cancels


def charge_of(stripe_env, payment) -> str:
    return stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]


async def refund_row(client, owner, shop, payment, refund_id: int) -> dict[str, Any]:
    [row] = [r for r in (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json() if r["id"] == refund_id]
    return row


async def test_a_refund_stripe_holds_pending_counts_at_once_and_is_announced_when_it_succeeds(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    stripe_env.sandbox.hold_refunds(charge_of(stripe_env, payment))
    made = await refund(client, owner, shop, payment, amount=1500, reason="asked")
    assert made.status_code == 201, made.text
    assert (made.json()["state"], made.json()["completed_at"]) == ("pending", None) and made.json()["stripe_refund_id"]
    # Stripe has taken it: it counts as refunded, and cannot be asked for twice.
    shown = await read(client, owner, shop, payment)
    assert (shown["refunded_amount"], shown["status"]) == (1500, "partially_refunded")
    assert await spent(sessions, shop, buyer.id) == {"USD": 3400}
    assert (await refund(client, owner, shop, payment, amount=3401)).status_code == 422
    await deliver_and_process(client, stripe_env, settings)  # charge.refunded, refund.created: still pending
    assert (await refund_row(client, owner, shop, payment, made.json()["id"]))["state"] == "pending"
    assert await emails(sessions, settings, "refund of") == []  # nothing is announced while Stripe holds it

    stripe_env.sandbox.settle_refund(made.json()["stripe_refund_id"], "succeeded")
    deliveries = [d for d in stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)]
    assert [d.type for d in deliveries] == ["refund.updated", "charge.refund.updated"]
    for delivery in deliveries * 2:
        assert (await client.post(f"{API}/webhooks/stripe/connect", content=delivery.payload, headers=delivery.headers)).status_code == 200
    await run_jobs(settings)
    row = await refund_row(client, owner, shop, payment, made.json()["id"])
    assert row["state"] == "succeeded" and row["completed_at"]
    [(to, subject)] = await emails(sessions, settings, "refund of")
    assert to == buyer.email and "15.00" in subject
    assert await spent(sessions, shop, buyer.id) == {"USD": 3400}


async def test_a_pending_refund_that_fails_puts_the_totals_back_and_tells_the_member_nothing(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    await run_jobs(settings)
    stripe_env.sandbox.hold_refunds(charge_of(stripe_env, payment))
    made = (await refund(client, owner, shop, payment, amount=2000, reason="asked", revoke_access=True)).json()
    # The revoke waits for the refund to succeed: the member paid and has not been paid back yet.
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    stripe_env.sandbox.settle_refund(made["stripe_refund_id"], "failed", "expired_or_canceled_card")
    deliveries = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    assert [d.type for d in deliveries] == [
        "charge.refunded", "refund.created", "refund.updated", "charge.refund.updated", "refund.failed",
    ]
    for delivery in reversed(deliveries):  # the failure first: each event re-reads the refund
        assert (await client.post(f"{API}/webhooks/stripe/connect", content=delivery.payload, headers=delivery.headers)).status_code == 200
    await run_jobs(settings)
    row = await refund_row(client, owner, shop, payment, made["id"])
    assert (row["state"], row["error"]) == ("failed", "Stripe: expired or canceled card")
    shown = await read(client, owner, shop, payment)
    assert (shown["refunded_amount"], shown["status"], shown["net_amount"]) == (0, "succeeded", 4900)
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}
    assert await emails(sessions, settings, "refund of") == [] and await emails(sessions, settings, "did not go through") == []
    [(to, subject)] = await emails(sessions, settings, "refund failed")
    assert to == owner.email and "20.00" in subject
    await run_all_jobs(settings)
    [(_to, _subject, body)] = await mail_to(settings, "refund failed")
    assert "counts as paid again" in body and "membership was kept" in body
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    # What failed is refundable again.
    again = await refund(client, owner, shop, payment, amount=4900)
    assert again.status_code == 201 and again.json()["state"] == "pending"


async def test_a_canceled_refund_puts_the_totals_back(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    stripe_env.sandbox.hold_refunds(charge_of(stripe_env, payment))
    made = (await refund(client, owner, shop, payment, amount=1000)).json()
    assert await spent(sessions, shop, buyer.id) == {"USD": 3900}
    stripe_env.sandbox.settle_refund(made["stripe_refund_id"], "canceled")
    await deliver_and_process(client, stripe_env, settings)
    await deliver_and_process(client, stripe_env, settings)
    assert (await refund_row(client, owner, shop, payment, made["id"]))["state"] == "canceled"
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 0
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}
    assert await emails(sessions, settings, "refund of") == []
    [(to, subject)] = await emails(sessions, settings, "refund was canceled")
    assert to == owner.email and "10.00" in subject


async def test_a_refund_that_fails_after_succeeding_is_corrected_and_its_revoke_stands(client, owner, shop, stripe_env, sessions, settings) -> None:
    """Stripe's "asynchronous failure": the refund succeeded (the member was told, access ended as
    asked), then the bank returned it. Totals go back; the member is told it did not go through;
    access stays ended (staff decide how to pay back, or to give access back)."""
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    await run_jobs(settings)
    made = (await refund(client, owner, shop, payment, amount=4900, reason="asked", revoke_access=True)).json()
    assert made["state"] == "succeeded"
    assert not await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    await deliver_and_process(client, stripe_env, settings)
    stripe_env.sandbox.settle_refund(made["stripe_refund_id"], "failed", "lost_or_stolen_card")
    await deliver_and_process(client, stripe_env, settings)
    row = await refund_row(client, owner, shop, payment, made["id"])
    assert (row["state"], row["error"]) == ("failed", "Stripe: lost or stolen card")
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 0
    assert await spent(sessions, shop, buyer.id) == {"USD": 4900}
    [(to, _subject)] = await emails(sessions, settings, "refund of")  # told once that it succeeded ...
    [(to_again, subject)] = await emails(sessions, settings, "did not go through")  # ... and once that it did not
    assert to == to_again == buyer.email and "49.00" in subject
    await run_all_jobs(settings)
    [(_to, _subject, member_text)] = await mail_to(settings, "did not go through")
    [(_to, _subject, staff_text)] = await mail_to(settings, "refund failed")
    assert "stays ended" in member_text and "contact them" in member_text
    assert "had been told the refund succeeded" in staff_text and "give access back with a comp" in staff_text
    assert not await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    await deliver_and_process(client, stripe_env, settings)  # nothing more to deliver, nothing sent twice
    assert len(await emails(sessions, settings, "did not go through")) == 1
