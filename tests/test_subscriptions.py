"""Memberships over time, driven by the Stripe sandbox's clock: renewals, failed renewals and
their grace period, recoveries, cancellations, trials. Each path checks access, the access log,
payments, totals and the emails queued; replaying every event (again, in reverse order, at the
same time) changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, text

from community import jobs
from community.billing import events as billing_events
from community.billing import service as billing
from community.billing import subscriptions
from community.billing.models import Payment, StripeEvent, Subscription
from community.checkout import webhooks
from community.errors import NotYetKnown
from community.jobs import JobState, OutboxJob
from community.mail.service import SEND_EMAIL
from community.offers import access
from community.offers.models import Entitlement, EntitlementEvent
from community.offers.tasks import sweep_expired
from community.stripe_client import stripe_client
from stripe_sandbox import sign
from tests.checkout_helpers import API, submit_checkout
from tests.conftest import CONNECT_WEBHOOK_SECRET, PLATFORM_WEBHOOK_SECRET
from tests.helpers import decide_notifications, relay, run_jobs
from tests.test_checkout import sell, session_id_of, shop  # noqa: F401 - the shop fixture
from tests.test_jobs import outage_redis, run_worker  # noqa: F401 - the outage_redis fixture

DAY = 86400
ROUTES = {True: f"{API}/webhooks/stripe/connect", False: f"{API}/webhooks/stripe"}


@dataclass
class Member:
    email: str
    user_id: int
    subscription_id: str
    customer_id: str
    account_id: str
    community_id: int
    group_id: int


# ---------------------------------------------------------------- driving Stripe and our inbox


def take(stripe_env) -> list[tuple[str, Any]]:
    """Every webhook Stripe has sent since the last take: (route, delivery)."""
    return [
        (ROUTES[connect], delivery)
        for connect, endpoint in ((True, stripe_env.connect_endpoint), (False, stripe_env.platform_endpoint))
        for delivery in stripe_env.sandbox.take_deliveries(endpoint)
    ]


async def post(client, deliveries) -> None:
    for route, delivery in deliveries:
        response = await client.post(route, content=delivery.payload, headers=delivery.headers)
        assert response.status_code == 200, response.text


async def drain(settings, sessions=None) -> None:
    """Run jobs until none are left (jobs enqueue more: access runs, their emails); none failed."""
    while await run_jobs(settings):
        pass
    if sessions is not None:
        async with sessions() as session:
            failed = (await session.scalars(select(OutboxJob).where(OutboxJob.state == JobState.failed))).all()
            assert [(job.name, job.last_error) for job in failed] == []


async def deliver(client, stripe_env, settings, sessions) -> list[tuple[str, Any]]:
    deliveries = take(stripe_env)
    await post(client, deliveries)
    await drain(settings, sessions)
    return deliveries


def resent(deliveries) -> list[tuple[str, Any]]:
    """The same events as new deliveries with new ids (as if Stripe had sent each twice), newest
    first: only idempotent handlers that re-read Stripe survive this unchanged."""
    again = []
    for route, delivery in reversed(deliveries):
        event = json.loads(delivery.payload)
        event["id"] += "_again"
        payload = json.dumps(event).encode()
        secret = CONNECT_WEBHOOK_SECRET if route.endswith("/connect") else PLATFORM_WEBHOOK_SECRET
        headers = {**delivery.headers, "Stripe-Signature": sign(payload, secret)}
        again.append((route, dataclasses.replace(delivery, payload=payload, headers=headers, event_id=event["id"])))
    return again


async def replay_changes_nothing(client, settings, sessions, member: Member, deliveries) -> None:
    """Deliver everything again, duplicated, reversed and processed by two workers at once."""
    before = await snapshot(sessions, settings, member)
    await post(client, deliveries)  # the very same deliveries: stored once already
    await post(client, resent(deliveries))
    await relay(settings)
    await asyncio.gather(run_jobs(settings), run_jobs(settings))
    await drain(settings, sessions)  # anything the access runs started
    assert await snapshot(sessions, settings, member) == before


def period_end(sandbox, member: Member) -> int:
    return sandbox.get(member.subscription_id)["items"]["data"][0]["current_period_end"]


def to_period_end(sandbox, member: Member) -> None:
    sandbox.advance_clock(period_end(sandbox, member) - sandbox.now() + 60)


async def subscribe(client, owner, shop, stripe_env, settings, sessions, *, email="member@example.com", outcome="success", **fields) -> Member:  # noqa: F811
    fields = {"pricing": "recurring", "amount": 2000, "interval_months": 1, **fields}
    _, path = await sell(client, owner, shop, **fields)
    redirect = await submit_checkout(client, path, email=email)
    stripe_env.sandbox.pay(session_id_of(redirect), outcome=outcome)
    await deliver(client, stripe_env, settings, sessions)
    async with sessions() as session:
        row = await session.scalar(select(Subscription).order_by(Subscription.id.desc()))
    assert row is not None, "fulfilment keeps the subscription"
    return Member(
        email, row.user_id, row.stripe_subscription_id, row.stripe_customer_id or "", row.stripe_account_id,
        shop["community"]["id"], shop["group_id"],
    )


async def set_grace_days(client, owner, community_id: int, days: int):
    return await client.patch(f"{API}/communities/{community_id}", json={"grace_days": days}, headers=owner.headers)


# ---------------------------------------------------------------- what a member and the owner see


async def snapshot(sessions, settings, member: Member) -> dict[str, Any]:
    await decide_notifications(settings)
    async with sessions() as session:
        row = await session.scalar(select(Subscription).where(Subscription.stripe_subscription_id == member.subscription_id))
        entitlement = await session.get_one(Entitlement, row.entitlement_id)
        payments = (await session.scalars(select(Payment).where(Payment.user_id == member.user_id).order_by(Payment.id))).all()
        log = (await session.execute(text("SELECT change, notified_at IS NOT NULL FROM access_log WHERE user_id = :u ORDER BY id"), {"u": member.user_id})).all()
        emails = (
            await session.scalars(select(OutboxJob).where(OutboxJob.name == SEND_EMAIL).order_by(OutboxJob.id))
        ).all()
        history = (await session.scalars(select(EntitlementEvent.reason).where(EntitlementEvent.entitlement_id == entitlement.id).order_by(EntitlementEvent.id))).all()
        return {
            "stripe_status": row.status,
            "grace_ends_at": row.grace_ends_at,
            "period_end": row.current_period_end,
            "status": entitlement.status.value,
            "ends_at": entitlement.ends_at,
            "access": await access.can_open(session, member.community_id, member.user_id, member.group_id),
            "log": [str(change) for change, _ in log],
            "told": [str(change) for change, told in log if told],  # the access run's emails
            "history": list(history),
            # True: the payment names its invoice, payment intent and charge (refunds and
            # disputes, ours or the dashboard's, find it by them)
            "payments": [(p.kind.value, p.amount, _knows_its_charge(p)) for p in payments],
            "total": await billing.total_spent(session, community_id=member.community_id, user_id=member.user_id),
            "emails": [(job.payload["to"], job.payload["subject"]) for job in emails],
        }


def _knows_its_charge(payment: Payment) -> bool:
    return None not in (payment.stripe_invoice_id, payment.stripe_payment_intent_id, payment.stripe_charge_id)


async def sent(settings, sessions, to: str, subject: str) -> str:
    """The delivered message (the mail folder of a demo or test run)."""
    async with sessions() as session:
        jobs_sent = (await session.scalars(select(OutboxJob).where(OutboxJob.name == SEND_EMAIL).order_by(OutboxJob.id))).all()
    [job] = [j for j in jobs_sent if j.payload["to"] == to and j.payload["subject"] == subject]
    message = email.message_from_bytes((settings.data_dir / "mail" / f"outbox-{job.id}.eml").read_bytes(), policy=email.policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def new_emails(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str]]:
    return after["emails"][len(before["emails"]):]


# ---------------------------------------------------------------- renewals


async def test_renewals_record_payments_and_extend_the_period(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    start = await snapshot(sessions, settings, member)
    assert start["stripe_status"] == "active" and start["status"] == "active" and start["ends_at"] is None
    assert start["access"] and start["log"] == ["gained"]
    # The first invoice is the purchase: recorded once, with its invoice attached.
    assert start["payments"] == [("purchase", 2000, True)] and start["total"] == {"USD": 2000}

    sandbox = stripe_env.sandbox
    for months in (1, 2):
        to_period_end(sandbox, member)
        deliveries = await deliver(client, stripe_env, settings, sessions)
        after = await snapshot(sessions, settings, member)
        assert after["stripe_status"] == "active" and after["ends_at"] is None and after["access"]
        assert after["period_end"] > start["period_end"]
        assert after["payments"] == [("purchase", 2000, True)] + [("renewal", 2000, True)] * months
        assert after["total"] == {"USD": 2000 * (months + 1)}
        assert after["log"] == ["gained"]  # nobody was told anything about access
        assert [s for to, s in new_emails(start, after) if to == member.email] == ["Payment received: Pro Membership (20.00 USD)"] * months
        # Staff hear of each recurring payment (Email settings, "Recurring payment").
        assert [to for to, s in new_emails(start, after) if s.startswith("Recurring payment: 20.00 USD")] == ["owner@example.com"] * months
        await replay_changes_nothing(client, settings, sessions, member, deliveries)


async def test_payments_record_the_intent_and_charge_their_invoice_was_paid_with(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    """Invoices as API 2026-10-28 sends them: no invoice event carries `payments` (nor the
    payment_intent and charge invoices had before 2025), so the purchase and each renewal get
    their payment intent and charge by re-fetching the invoice with its payments expanded."""
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    to_period_end(stripe_env.sandbox, member)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    sent_invoices = [json.loads(d.payload)["data"]["object"] for _, d in deliveries if d.type.startswith("invoice.")]
    assert {"invoice.paid", "invoice.payment_succeeded"} <= {d.type for _, d in deliveries}
    for invoice in sent_invoices:
        assert not {"payments", "payment_intent", "charge", "subscription"} & set(invoice), invoice["id"]
        assert invoice["parent"]["subscription_details"]["subscription"] == member.subscription_id
    async with sessions() as session:
        payments = (await session.scalars(select(Payment).where(Payment.user_id == member.user_id).order_by(Payment.id))).all()
    assert [p.kind.value for p in payments] == ["purchase", "renewal"]
    on_account = {"stripe_account": member.account_id}
    for payment in payments:
        [paid] = (await stripe_client(settings).v1.invoice_payments.list_async({"invoice": payment.stripe_invoice_id}, on_account)).data
        intent = await stripe_client(settings).v1.payment_intents.retrieve_async(paid.payment.payment_intent, options=on_account)
        assert (payment.stripe_payment_intent_id, payment.stripe_charge_id) == (intent.id, intent.latest_charge)
        charge = await stripe_client(settings).v1.charges.retrieve_async(payment.stripe_charge_id, options=on_account)
        assert (charge.amount, charge.status) == (payment.amount, "succeeded")
    assert len({p.stripe_charge_id for p in payments}) == 2


# ---------------------------------------------------------------- failed renewals and grace


async def test_failed_renewal_keeps_access_through_the_grace_and_recovery_restores_it(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    sandbox = stripe_env.sandbox
    sandbox.set_card_declines(member.customer_id, True)
    failure_at = period_end(sandbox, member)
    before = await snapshot(sessions, settings, member)
    to_period_end(sandbox, member)
    deliveries = await deliver(client, stripe_env, settings, sessions)

    failed = await snapshot(sessions, settings, member)
    grace_end = dt.datetime.fromtimestamp(failure_at, dt.UTC) + dt.timedelta(days=7)
    assert failed["stripe_status"] == "past_due" and failed["status"] == "past_due"
    assert abs((failed["grace_ends_at"] - grace_end).total_seconds()) < 120
    assert failed["ends_at"] == failed["grace_ends_at"] and failed["access"]
    assert failed["payments"] == before["payments"] and failed["log"] == ["gained"]
    subjects = new_emails(before, failed)
    assert subjects == [
        (member.email, "Your payment for Pro Membership did not go through"),
        ("owner@example.com", f"Failed payment: {member.email} for Pro Membership"),
    ]
    told = await sent(settings, sessions, member.email, "Your payment for Pro Membership did not go through")
    assert "20.00 USD" in told and f"until {grace_end:%B} {grace_end.day}, {grace_end.year}" in told
    await replay_changes_nothing(client, settings, sessions, member, deliveries)

    # The member fixes their card; Stripe's retry three days later succeeds, inside the grace.
    sandbox.set_card_declines(member.customer_id, False)
    sandbox.advance_clock(3 * DAY)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    recovered = await snapshot(sessions, settings, member)
    assert recovered["stripe_status"] == "active" and recovered["status"] == "active"
    assert recovered["ends_at"] is None and recovered["grace_ends_at"] is None and recovered["access"]
    assert recovered["payments"] == before["payments"] + [("renewal", 2000, True)]
    assert recovered["total"] == {"USD": 4000}
    assert recovered["log"] == ["gained"]  # access never stopped
    assert [s for to, s in new_emails(failed, recovered) if to == member.email] == ["Payment received: Pro Membership (20.00 USD)"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


async def test_cancelling_during_a_grace_period_tells_member_and_staff(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    sandbox = stripe_env.sandbox
    sandbox.set_card_declines(member.customer_id, True)
    to_period_end(sandbox, member)
    await deliver(client, stripe_env, settings, sessions)
    failed = await snapshot(sessions, settings, member)
    assert failed["status"] == "past_due" and failed["access"]
    # The member cancels in Stripe's portal while their card is being retried.
    on_account = {"stripe_account": member.account_id}
    await stripe_client(settings).v1.subscriptions.update_async(member.subscription_id, {"cancel_at_period_end": True}, on_account)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    cancelled = await snapshot(sessions, settings, member)
    assert [to for to, _subject in new_emails(failed, cancelled)] == [member.email, "owner@example.com"]
    assert cancelled["ends_at"] == failed["ends_at"] and cancelled["access"]  # access still ends with the grace
    [(_, subject)] = [e for e in new_emails(failed, cancelled) if e[0] == member.email]
    told = await sent(settings, sessions, member.email, subject)
    assert "will not renew" in told and "still unpaid" in told and "not be charged again" not in told
    await replay_changes_nothing(client, settings, sessions, member, deliveries)

async def test_grace_ending_unpaid_stops_access_and_a_later_payment_brings_it_back(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    sandbox = stripe_env.sandbox
    sandbox.set_card_declines(member.customer_id, True)
    to_period_end(sandbox, member)
    await deliver(client, stripe_env, settings, sessions)
    sandbox.advance_clock(3 * DAY)  # first retry fails, still inside the grace
    await deliver(client, stripe_env, settings, sessions)
    inside = await snapshot(sessions, settings, member)
    assert inside["status"] == "past_due" and inside["access"]
    assert len(inside["emails"]) == 2 + 2  # the purchase (member, staff); one failure notice each, not one per retry

    sandbox.advance_clock(5 * DAY)  # day 8: the second retry fails after the 7 days of grace
    deliveries = await deliver(client, stripe_env, settings, sessions)
    lapsed = await snapshot(sessions, settings, member)
    assert lapsed["stripe_status"] == "past_due" and lapsed["status"] == "expired"
    assert not lapsed["access"] and lapsed["ends_at"] <= dt.datetime.now(dt.UTC)
    assert lapsed["log"] == ["gained", "lost"]
    assert new_emails(inside, lapsed) == [] and lapsed["told"] == ["gained", "lost"]  # the access run's email
    assert lapsed["payments"] == inside["payments"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)

    sandbox.set_card_declines(member.customer_id, False)
    sandbox.advance_clock(7 * DAY)  # the last retry succeeds
    deliveries = await deliver(client, stripe_env, settings, sessions)
    back = await snapshot(sessions, settings, member)
    assert back["stripe_status"] == "active" and back["status"] == "active" and back["ends_at"] is None
    assert back["access"] and back["log"] == ["gained", "lost", "gained"]
    assert back["payments"] == [("purchase", 2000, True), ("renewal", 2000, True)] and back["total"] == {"USD": 4000}
    assert [s for to, s in new_emails(lapsed, back) if to == member.email] == ["Payment received: Pro Membership (20.00 USD)"]
    assert back["told"] == ["gained", "lost", "gained"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


async def test_grace_ends_on_our_clock_and_the_subscription_is_canceled_after_the_last_retry(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    sandbox = stripe_env.sandbox
    sandbox.set_card_declines(member.customer_id, True)
    to_period_end(sandbox, member)
    await deliver(client, stripe_env, settings, sessions)
    # Our clock passes the grace end before Stripe says anything more: the sweep stops access.
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE entitlements SET ends_at = now() - interval '1 second' WHERE user_id = :u"), {"u": member.user_id}
        )
        assert await sweep_expired(session) == 1
    await drain(settings, sessions)
    swept = await snapshot(sessions, settings, member)
    assert swept["status"] == "expired" and not swept["access"] and swept["log"] == ["gained", "lost"]

    sandbox.advance_clock(15 * DAY)  # every retry fails: Stripe cancels the subscription
    deliveries = await deliver(client, stripe_env, settings, sessions)
    canceled = await snapshot(sessions, settings, member)
    assert canceled["stripe_status"] == "canceled" and not canceled["access"]
    assert canceled["log"] == ["gained", "lost"] and canceled["payments"] == [("purchase", 2000, True)]
    assert canceled["emails"] == swept["emails"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


async def test_grace_days_is_an_owner_setting(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    cid = shop["community"]["id"]
    assert (await client.get(f"{API}/communities/{cid}", headers=owner.headers)).json()["grace_days"] == 7
    for wrong in (-1, 61):
        refused = await set_grace_days(client, owner, cid, wrong)
        assert refused.status_code == 422 and "grace_days" in refused.text, refused.text
    changed = await set_grace_days(client, owner, cid, 0)
    assert changed.status_code == 200 and changed.json()["grace_days"] == 0

    # No grace: a failed renewal stops access at once; the payment going through restores it.
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    stripe_env.sandbox.set_card_declines(member.customer_id, True)
    before = await snapshot(sessions, settings, member)
    to_period_end(stripe_env.sandbox, member)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    failed = await snapshot(sessions, settings, member)
    assert failed["stripe_status"] == "past_due" and failed["status"] == "expired" and not failed["access"]
    assert failed["log"] == ["gained", "lost"]
    assert sorted(s for _, s in new_emails(before, failed)) == [
        f"Failed payment: {member.email} for Pro Membership",
        "Your payment for Pro Membership did not go through",
    ]
    assert failed["told"] == ["gained", "lost"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


# ---------------------------------------------------------------- cancellations


async def test_cancel_at_period_end_resume_and_the_end(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    stripe = stripe_client(settings).v1.subscriptions
    on_account = {"stripe_account": member.account_id}
    end = dt.datetime.fromtimestamp(period_end(stripe_env.sandbox, member), dt.UTC)

    await stripe.update_async(member.subscription_id, {"cancel_at_period_end": True}, on_account)
    await deliver(client, stripe_env, settings, sessions)
    cancelling = await snapshot(sessions, settings, member)
    assert cancelling["status"] == "cancelled" and cancelling["ends_at"] == end and cancelling["access"]

    # Resumed, then cancelled and resumed again; the events arrive newest first: the state wins.
    await stripe.update_async(member.subscription_id, {"cancel_at_period_end": False}, on_account)
    await stripe.update_async(member.subscription_id, {"cancel_at_period_end": True}, on_account)
    await stripe.update_async(member.subscription_id, {"cancel_at_period_end": False}, on_account)
    deliveries = take(stripe_env)
    await post(client, list(reversed(deliveries)))
    await drain(settings, sessions)
    resumed = await snapshot(sessions, settings, member)
    assert resumed["status"] == "active" and resumed["ends_at"] is None and resumed["access"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)

    await stripe.update_async(member.subscription_id, {"cancel_at_period_end": True}, on_account)
    await deliver(client, stripe_env, settings, sessions)
    to_period_end(stripe_env.sandbox, member)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    ended = await snapshot(sessions, settings, member)
    assert ended["stripe_status"] == "canceled" and ended["status"] == "cancelled" and not ended["access"]
    assert ended["log"] == ["gained", "lost"] and ended["payments"] == [("purchase", 2000, True)]
    # Cancelled again (here from outside our API, as in Stripe's portal or dashboard): the member's
    # confirmation and the staff notice go out once; the end itself sends only the access email.
    told = [to for to, _subject in new_emails(resumed, ended)]
    assert told == ["member@example.com", "owner@example.com"] and ended["told"] == ["gained", "lost"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


# ---------------------------------------------------------------- trials


async def test_trial_with_a_card_warns_then_converts(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions, trial_days=14, trial_requires_card=True)
    start = await snapshot(sessions, settings, member)
    assert start["stripe_status"] == "trialing" and start["access"] and start["payments"] == []

    stripe_env.sandbox.advance_clock(11 * DAY + 60)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    warned = await snapshot(sessions, settings, member)
    [(to, subject)] = new_emails(start, warned)
    assert to == member.email and subject.startswith("Your free trial of Pro Membership ends on")
    await replay_changes_nothing(client, settings, sessions, member, deliveries)

    stripe_env.sandbox.advance_clock(3 * DAY)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    paying = await snapshot(sessions, settings, member)
    assert paying["stripe_status"] == "active" and paying["status"] == "active" and paying["access"]
    assert paying["payments"] == [("renewal", 2000, True)] and paying["total"] == {"USD": 2000}
    assert paying["log"] == ["gained"]
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


async def test_card_less_trial_ends_the_entitlement(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(
        client, owner, shop, stripe_env, settings, sessions, outcome="trial_without_card", trial_days=14, trial_requires_card=False,
    )
    start = await snapshot(sessions, settings, member)
    stripe_env.sandbox.advance_clock(11 * DAY + 60)
    await deliver(client, stripe_env, settings, sessions)
    warned = await snapshot(sessions, settings, member)
    [(_, subject)] = new_emails(start, warned)
    assert subject.startswith("Your free trial of Pro Membership ends on")
    assert "no payment method on file" in await sent(settings, sessions, member.email, subject)

    stripe_env.sandbox.advance_clock(3 * DAY)
    deliveries = await deliver(client, stripe_env, settings, sessions)
    ended = await snapshot(sessions, settings, member)
    assert ended["stripe_status"] == "canceled" and ended["status"] == "cancelled" and not ended["access"]
    assert ended["log"] == ["gained", "lost"] and ended["payments"] == [] and ended["total"] == {}
    await replay_changes_nothing(client, settings, sessions, member, deliveries)


async def test_a_trial_cancelled_by_its_member_is_not_told_it_will_be_charged(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions, trial_days=14, trial_requires_card=True)
    on_account = {"stripe_account": member.account_id}
    await stripe_client(settings).v1.subscriptions.update_async(member.subscription_id, {"cancel_at_period_end": True}, on_account)
    await deliver(client, stripe_env, settings, sessions)
    cancelled = await snapshot(sessions, settings, member)
    assert cancelled["status"] == "cancelled" and cancelled["access"]
    stripe_env.sandbox.advance_clock(11 * DAY + 60)
    await deliver(client, stripe_env, settings, sessions)
    later = await snapshot(sessions, settings, member)
    # The cancellation already said when access ends; "then continues at $20, charged" would be false.
    assert [s for _to, s in new_emails(cancelled, later) if "trial" in s] == []
    assert later["status"] == "cancelled" and later["access"] and later["payments"] == []


# ---------------------------------------------------------------- delivery and workers


async def test_subscription_events_before_the_checkout_is_fulfilled_wait_for_it(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    _, path = await sell(client, owner, shop, pricing="recurring", amount=2000, interval_months=1)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email="early@example.com")), outcome="success")
    deliveries = take(stripe_env)
    billing_first = [d for d in deliveries if d[1].type in billing_events.HANDLERS]
    await post(client, billing_first)
    async with sessions() as session:
        rows = (await session.scalars(select(StripeEvent).where(StripeEvent.type.in_(billing_events.HANDLERS)))).all()
        assert rows
        for row in rows:
            if row.type == "invoice.paid":  # a payment: retried until the checkout is there
                with pytest.raises(NotYetKnown):
                    await billing_events.HANDLERS[row.type](session, settings, row)
            else:  # a state: fulfilment will read it from Stripe anyway
                assert await billing_events.HANDLERS[row.type](session, settings, row) == subscriptions.BEFORE_FULFILMENT
        await session.rollback()
    await post(client, deliveries)  # checkout.session.completed too
    await drain(settings, sessions)
    async with sessions() as session:
        assert await session.scalar(select(text("count(*)")).select_from(Subscription)) == 1
        payments = (await session.scalars(select(Payment))).all()
        assert [(p.kind.value, p.amount) for p in payments] == [("purchase", 2000)]
        failed = await session.scalar(select(text("count(*)")).select_from(OutboxJob).where(OutboxJob.state == JobState.failed))
        assert failed == 0


async def test_a_renewal_webhook_arriving_while_redis_is_down_is_processed_once_it_is_back(client, owner, shop, stripe_env, settings, sessions, outage_redis) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    before = await snapshot(sessions, settings, member)
    outage_redis.stop()
    to_period_end(stripe_env.sandbox, member)
    await post(client, take(stripe_env))  # stored and acknowledged: nothing needs Redis
    stop = asyncio.Event()
    relay_task = asyncio.create_task(jobs.run_relay(sessions, outage_redis.url, stop, interval=0.05))
    try:
        await asyncio.sleep(0.5)
        async with sessions() as session:
            pending = await session.scalar(select(text("count(*)")).select_from(OutboxJob).where(OutboxJob.state == JobState.pending))
        assert pending > 0 and (await snapshot(sessions, settings, member))["payments"] == before["payments"]
        outage_redis.start()
        for _ in range(100):
            async with sessions() as session:
                if not await session.scalar(select(text("count(*)")).select_from(OutboxJob).where(OutboxJob.state == JobState.pending)):
                    break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(relay_task, 10)
    await run_worker(dataclasses.replace(settings, redis_url=outage_redis.url))
    await drain(settings, sessions)
    after = await snapshot(sessions, settings, member)
    assert after["payments"] == before["payments"] + [("renewal", 2000, True)] and after["access"]
    assert [s for to, s in new_emails(before, after) if to == member.email] == ["Payment received: Pro Membership (20.00 USD)"]


async def test_a_worker_stopped_in_the_middle_of_a_job_leaves_nothing_done_twice(client, owner, shop, stripe_env, settings, sessions) -> None:  # noqa: F811
    member = await subscribe(client, owner, shop, stripe_env, settings, sessions)
    before = await snapshot(sessions, settings, member)
    to_period_end(stripe_env.sandbox, member)
    await post(client, take(stripe_env))
    async with sessions() as session:
        paid = await session.scalar(select(StripeEvent).where(StripeEvent.type == "invoice.paid").order_by(StripeEvent.id.desc()))
        event_row_id = paid.id
    # A worker runs the job as far as it goes, then dies before its transaction commits.
    async with sessions() as session:
        await session.begin()
        ctx = jobs.JobContext(settings=settings, sessions=sessions, outbox_id=0, attempt=1)
        await webhooks.process_event(session, ctx, event_row_id=event_row_id)
        assert (await billing.total_spent(session, community_id=member.community_id, user_id=member.user_id)) == {"USD": 4000}
        await session.rollback()
    await drain(settings, sessions)
    await drain(settings, sessions)
    after = await snapshot(sessions, settings, member)
    assert after["payments"] == before["payments"] + [("renewal", 2000, True)] and after["total"] == {"USD": 4000}
    assert [s for to, s in new_emails(before, after) if to == member.email] == ["Payment received: Pro Membership (20.00 USD)"]
