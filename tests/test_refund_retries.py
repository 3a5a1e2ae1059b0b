"""Refunds whose Stripe call got no usable answer: the cron that asks again with the same
idempotency key, a key Stripe has forgotten after 24 hours (the look-up-first path), a Stripe
outage whose saved 500 is replayed, and Stripe unreachable."""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, text

from community.billing import refunds
from community.billing.models import Payment, Refund, RefundState
from community.db import utcnow
from community.stripe_client import stripe_client
from tests import test_checkout
from tests.checkout_helpers import API, run_jobs
from tests.test_refunds import base, buy, count, emails, read, refund, spent

shop = test_checkout.shop  # the fixture: a community with a connected Stripe account and a group to sell
from workers.settings import retry_pending_refunds

HOUR = 3600


def any_age() -> dict[str, Any]:
    """The retry as the cron runs it, but for rows of any age (a test's rows are seconds old)."""
    return {"older_than": dt.timedelta(0)}


async def pending_refund(sessions, settings, shop, payment, owner, amount: int) -> Refund:
    """Step 1 only, committed: what a request leaves behind when it dies before asking Stripe."""
    request = refunds.RefundRequest(amount, "lost answer", False, owner.id)
    async with sessions() as session, session.begin():
        return await refunds.start_refund(session, settings, community_id=shop["community"]["id"], payment_id=payment["id"], request=request)


async def stripe_refunds(settings, shop, payment) -> list[Any]:
    listed = await stripe_client(settings).v1.refunds.list_async(
        {"payment_intent": payment["stripe_payment_intent_id"]}, {"stripe_account": shop["account_id"]}
    )
    return list(listed.data)


async def test_a_refund_never_sent_to_stripe_is_sent_by_the_cron_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    row = await pending_refund(sessions, settings, shop, payment, owner, 1500)
    # The pending row holds its amount: what is left excludes it.
    assert (await refund(client, owner, shop, payment, amount=3401)).status_code == 422
    # A row this young may still be in its request: the cron leaves it alone.
    assert await retry_pending_refunds({"sessions": sessions, "settings": settings}) == 0
    assert await stripe_refunds(settings, shop, payment) == []

    assert await refunds.retry_pending(sessions, settings, **any_age()) == 1
    assert await refunds.retry_pending(sessions, settings, **any_age()) == 0  # run again: nothing more
    [made] = await stripe_refunds(settings, shop, payment)
    assert (made.amount, made.metadata["refund_id"]) == (1500, str(row.id))
    [listed] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (listed["id"], listed["state"], listed["stripe_refund_id"], listed["actor_id"]) == (row.id, "succeeded", made.id, owner.id)
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 1500
    assert await spent(sessions, shop, buyer.id) == {"USD": 3400}
    [(to, subject)] = await emails(sessions, settings, "refund of")
    assert to == buyer.email and "15.00" in subject
    # Its charge.refunded arrives afterwards, twice: nothing changes.
    deliveries = [d for d in stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint) if d.type == "charge.refunded"]
    for delivery in deliveries * 2:
        assert (await client.post(f"{API}/webhooks/stripe/connect", content=delivery.payload, headers=delivery.headers)).status_code == 200
    await run_jobs(settings)
    assert await count(sessions, Refund) == 1 and len(await emails(sessions, settings, "refund of")) == 1
    assert len(await stripe_refunds(settings, shop, payment)) == 1


async def test_a_refund_stripe_made_but_whose_answer_was_lost_settles_without_a_second(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    row = await pending_refund(sessions, settings, shop, payment, owner, 900)
    async with sessions() as session:  # the request's call reached Stripe; its answer never came back
        paid = await session.get(Payment, payment["id"])
        made = await stripe_client(settings).v1.refunds.create_async(
            refunds.refund_params(paid, row), {"stripe_account": shop["account_id"], "idempotency_key": refunds.idempotency_key(row)}
        )
    stripe_env.drain()  # and its charge.refunded is late
    assert await refunds.retry_pending(sessions, settings, **any_age()) == 1
    assert [r.id for r in await stripe_refunds(settings, shop, payment)] == [made.id]
    async with sessions() as session:
        settled = await session.get(Refund, row.id)
        assert (settled.state, settled.stripe_refund_id) == (RefundState.succeeded, made.id)
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 900
    assert len(await emails(sessions, settings, "refund of")) == 1
    assert await refunds.retry_pending(sessions, settings, **any_age()) == 0


async def test_a_refund_older_than_stripe_remembers_keys_is_found_not_made_again(client, owner, shop, stripe_env, sessions, settings) -> None:
    """Stripe forgets an idempotency key after 24 hours, and the sandbox too: a row that old is
    looked for among the payment's refunds first. Asking again with its (forgotten) key would
    make a second refund; the row Stripe never got is made once."""
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    made_once = await pending_refund(sessions, settings, shop, payment, owner, 700)
    never_sent = await pending_refund(sessions, settings, shop, payment, owner, 300)
    async with sessions() as session:
        paid = await session.get(Payment, payment["id"])
        made = await stripe_client(settings).v1.refunds.create_async(
            refunds.refund_params(paid, made_once), {"stripe_account": shop["account_id"], "idempotency_key": refunds.idempotency_key(made_once)}
        )
    stripe_env.drain()  # its events never arrive
    stripe_env.sandbox.age_idempotency_keys(25 * HOUR)  # a day later at Stripe: the key is forgotten
    a_day_later = utcnow() + dt.timedelta(hours=25)
    assert await refunds.retry_pending(sessions, settings, now=a_day_later) == 2
    assert sorted((r.amount, r.metadata["refund_id"]) for r in await stripe_refunds(settings, shop, payment)) == [
        (300, str(never_sent.id)), (700, str(made_once.id))
    ]
    async with sessions() as session:
        rows = {r.id: (r.state, r.stripe_refund_id is not None) for r in await session.scalars(select(Refund))}
        assert rows == {made_once.id: (RefundState.succeeded, True), never_sent.id: (RefundState.succeeded, True)}
        assert (await session.get(Refund, made_once.id)).stripe_refund_id == made.id
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 1000
    assert len(await emails(sessions, settings, "refund of")) == 2


async def test_a_stripe_outage_is_replayed_for_a_day_then_the_refund_is_made_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    """Stripe answered the refund with a 500 (its endpoint began, so the answer is saved under the
    key): every retry within 24 hours gets that 500 again and nothing is made; the row waits.
    Once Stripe has forgotten the key, the retry looks among the payment's refunds, finds none,
    and asks again: one refund."""
    buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    stripe_env.sandbox.fail_next("POST", "/v1/refunds")
    answered = await refund(client, owner, shop, payment, amount=1200, reason="outage")
    assert answered.status_code == 502 and "waits for Stripe" in answered.json()["detail"]
    [row] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (row["state"], row["stripe_refund_id"]) == ("pending", None)
    for _ in range(2):  # the cron, minutes later: the same key, the same saved 500, nothing made
        assert await refunds.retry_pending(sessions, settings, **any_age()) == 0
    assert await stripe_refunds(settings, shop, payment) == []
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 0
    # The amount stays asked for: no second refund of it can start meanwhile.
    assert (await refund(client, owner, shop, payment, amount=3701)).status_code == 422

    stripe_env.sandbox.age_idempotency_keys(25 * HOUR)
    assert await refunds.retry_pending(sessions, settings, now=utcnow() + dt.timedelta(hours=25)) == 1
    [made] = await stripe_refunds(settings, shop, payment)
    assert (made.amount, made.metadata["refund_id"]) == (1200, str(row["id"]))
    [row] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert (row["state"], row["stripe_refund_id"]) == ("succeeded", made.id)
    assert await spent(sessions, shop, buyer.id) == {"USD": 3700}
    assert len(await emails(sessions, settings, "refund of")) == 1


def silent_stripe(settings):
    """Settings whose Stripe is a loopback port nobody listens on: Stripe does not answer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return replace(settings, stripe_api_base=f"http://127.0.0.1:{probe.getsockname()[1]}")


async def test_stripe_unreachable_answers_502_and_the_cron_finishes_the_refund(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, amount=4900)
    silent = silent_stripe(settings)
    request = refunds.RefundRequest(2000, "no answer", False, owner.id)
    async with sessions() as session:
        with pytest.raises(refunds.StripeUnavailable) as unavailable:
            await refunds.refund_payment(session, silent, community_id=shop["community"]["id"], payment_id=payment["id"], request=request)
    assert unavailable.value.status_code == 502 and "waits for Stripe" in unavailable.value.detail
    [row] = (await client.get(f"{base(shop, payment)}/refunds", headers=owner.headers)).json()
    assert row["state"] == "pending" and row["stripe_refund_id"] is None
    assert await refunds.retry_pending(sessions, silent, **any_age()) == 0  # still no answer: still pending
    assert await refunds.retry_pending(sessions, settings, **any_age()) == 1
    assert [r.amount for r in await stripe_refunds(settings, shop, payment)] == [2000]
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 2000



async def test_stripe_unreachable_while_finding_a_first_payments_charge_answers_502_and_writes_nothing(client, owner, shop, stripe_env, sessions, settings) -> None:
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, pricing="recurring", amount=2000, interval_months=1)
    async with sessions() as session, session.begin():  # as if the first invoice.paid had not come yet
        await session.execute(text("UPDATE payments SET stripe_payment_intent_id = NULL, stripe_charge_id = NULL, stripe_invoice_id = NULL"))
    silent = silent_stripe(settings)
    request = refunds.RefundRequest(500, "no answer", False, owner.id)
    async with sessions() as session:
        with pytest.raises(refunds.StripeUnavailable) as unavailable:
            await refunds.refund_payment(session, silent, community_id=shop["community"]["id"], payment_id=payment["id"], request=request)
    assert unavailable.value.status_code == 502 and "nothing was refunded" in unavailable.value.detail
    assert await count(sessions, Refund) == 0
    assert (await read(client, owner, shop, payment))["refunded_amount"] == 0
