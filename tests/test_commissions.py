"""Commissions: an attributed payment earns its affiliate once (however often the webhook or job
runs), at the program's rate on what was paid, floored; renewals earn by the program's rule;
self-referrals and suspended affiliates earn nothing and say why; refunds and disputes take
back exactly their proportion, ending at zero; the hold ends through the cron.

Payments are recorded through billing.service.record_payment (as the webhook handlers do) and
the commission work runs through the real outbox and an arq worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from community import jobs
from community.affiliates import commissions, reports
from community.affiliates.commissions import same_person_email
from community.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Commission,
    CommissionState,
    LedgerEntry,
)
from community.billing import service as billing
from community.billing.models import Checkout, Payment
from community.jobs import OutboxJob
from community.offers.models import (
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    Offer,
    Pricing,
)
from community.stripe_client import stripe_client
from tests.checkout_helpers import API, community_origin, submit_checkout
from tests.conftest import Account, sign_up
from tests.helpers import run_jobs
from tests.test_access import comp, make_offer
from tests.test_affiliate_links import visitor_client
from tests.test_checkout import sell, session_id_of, shop  # noqa: F401 - the fixture
from tests.test_subscriptions import drain, post, resent, take
from workers.settings import approve_commissions

PAID_AT = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.UTC)


@dataclass
class Program:
    community_id: int
    offer_id: int
    affiliate_id: int
    affiliate: Account
    buyer: Account


async def set_program(sessions, offer_id: int, **fields: Any) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(Offer).where(Offer.id == offer_id).values(**fields))


async def add_affiliate(sessions, community_id: int, offer_id: int, user_id: int, **fields: Any) -> int:
    async with sessions() as session, session.begin():
        affiliate = Affiliate(
            community_id=community_id, offer_id=offer_id, user_id=user_id, code=secrets.token_hex(6), **fields
        )
        session.add(affiliate)
        await session.flush()
        return affiliate.id


async def make_program(
    client: httpx.AsyncClient, sessions, community_id: int, *, title: str = "Pro", affiliate_email: str = "aff@example.com",
    buyer_email: str = "buyer@example.com", **program: Any,
) -> Program:
    """A monthly offer with a 30% program, an affiliate and a buyer."""
    offer_id = await make_offer(sessions, community_id, title, pricing=Pricing.recurring, amount=1000, interval_months=1)
    settings = {"resell_enabled": True, "resell_commission_bps": 3000, "resell_hold_days": 30, **program}
    await set_program(sessions, offer_id, **settings)
    affiliate = await sign_up(client, affiliate_email)
    buyer = await sign_up(client, buyer_email)
    affiliate_id = await add_affiliate(sessions, community_id, offer_id, affiliate.id)
    return Program(community_id, offer_id, affiliate_id, affiliate, buyer)


@dataclass
class Bought:
    payment_id: int
    entitlement_id: int
    checkout_id: int


async def buy(
    sessions, p: Program, *, amount: int = 1000, discount: int = 0, buyer: Account | None = None,
    affiliate_id: int | None | bool = True, email: str | None = None, paid_at: dt.datetime = PAID_AT,
    intent: str | None = None, record: bool = True, viewer: Account | None = None,
) -> Bought:
    """A purchase through the affiliate's link (the checkout carries the attribution)."""
    buyer = buyer or p.buyer
    async with sessions() as session, session.begin():
        checkout = Checkout(
            community_id=p.community_id, offer_id=p.offer_id, token=secrets.token_urlsafe(32), email=email or buyer.email,
            user_id=buyer.id, list_amount=amount + discount, discount_amount=discount, amount_due=amount, currency="USD",
            affiliate_id=p.affiliate_id if affiliate_id is True else affiliate_id or None,
            affiliate_clicked_at=paid_at - dt.timedelta(hours=1), viewer_id=viewer.id if viewer else None,
        )
        entitlement = Entitlement(
            community_id=p.community_id, offer_id=p.offer_id, user_id=buyer.id,
            source=EntitlementSource.purchase, status=EntitlementStatus.active,
        )
        session.add_all([checkout, entitlement])
        await session.flush()
        checkout.entitlement_id = entitlement.id
        if not record:  # a free trial: nothing paid at checkout
            return Bought(0, entitlement.id, checkout.id)
        payment = await billing.record_payment(
            session, community_id=p.community_id, user_id=buyer.id, offer_id=p.offer_id, entitlement_id=entitlement.id,
            checkout_id=checkout.id, kind="purchase", amount=amount, discount_amount=discount, currency="USD",
            stripe_account_id="acct_1", stripe_payment_intent_id=intent or f"pi_{secrets.token_hex(6)}", paid_at=paid_at,
        )
        return Bought(payment.id, entitlement.id, checkout.id)


async def renew(sessions, p: Program, bought: Bought, *, months: int, amount: int = 1000, buyer: Account | None = None) -> int:
    """The entitlement's renewal `months` months after the purchase (an invoice paid)."""
    async with sessions() as session, session.begin():
        payment = await billing.record_payment(
            session, community_id=p.community_id, user_id=(buyer or p.buyer).id, offer_id=p.offer_id,
            entitlement_id=bought.entitlement_id, checkout_id=None, kind="renewal", amount=amount, discount_amount=0,
            currency="USD", stripe_account_id="acct_1", stripe_invoice_id=f"in_{secrets.token_hex(6)}",
            paid_at=PAID_AT + dt.timedelta(days=30 * months, minutes=40),
        )
        return payment.id


async def commission_of(sessions, payment_id: int) -> Commission | None:
    async with sessions() as session:
        return await session.scalar(select(Commission).where(Commission.payment_id == payment_id))


async def entries_of(sessions, commission_id: int) -> list[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.execute(
            select(LedgerEntry.kind, LedgerEntry.amount).where(LedgerEntry.commission_id == commission_id).order_by(LedgerEntry.id)
        )
        return [(kind.value, amount) for kind, amount in rows]


async def refund(sessions, community_id: int, payment_id: int, total: int) -> None:
    """What the payment's refunds hold now (pending or succeeded at Stripe), as billing recounts it."""
    async with sessions() as session, session.begin():
        await billing.apply_refund(session, community_id=community_id, payment_id=payment_id, amount_refunded=total)


async def dispute(sessions, community_id: int, payment_id: int, amount: int) -> None:
    async with sessions() as session, session.begin():
        payment = await billing.get_payment(session, community_id, payment_id, lock=True)
        await billing.set_disputed(session, payment, amount)


async def earnings(sessions, p: Program) -> dict[str, Any]:
    async with sessions() as session:
        return {t.currency: t for t in await reports.earnings(session, p.community_id, p.affiliate_id)}


@pytest.fixture
async def program(client: httpx.AsyncClient, sessions, community: dict[str, Any]) -> Program:
    return await make_program(client, sessions, community["id"])


# ---------------------------------------------------------------- earning


async def test_a_purchase_through_a_link_earns_the_rate_on_what_was_paid_floored(sessions, settings, program: Program) -> None:
    await set_program(sessions, program.offer_id, resell_commission_bps=3333, resell_hold_days=14)
    bought = await buy(sessions, program, amount=799, discount=200)  # list 999, paid 799 after the discount
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    assert commission is not None
    assert (commission.base_amount, commission.amount, commission.currency) == (799, 266, "USD")  # 266.3067 floored
    assert commission.state == CommissionState.pending and commission.reason == ""
    assert commission.hold_until == PAID_AT + dt.timedelta(days=14)
    assert commission.buyer_user_id == program.buyer.id and commission.affiliate_id == program.affiliate_id
    assert await entries_of(sessions, commission.id) == [("earned", 266)]
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.pending, totals.approved, totals.paid, totals.sales, totals.revenue) == (266, 0, 0, 1, 799)


async def test_a_flat_commission_never_exceeds_the_payment(client, sessions, settings, program: Program) -> None:
    await set_program(sessions, program.offer_id, resell_commission_bps=None, resell_commission_flat=700)
    full = await buy(sessions, program, amount=1000)
    cheap = await buy(sessions, program, amount=500, discount=500, buyer=await sign_up(client, "cheap@example.com"))
    await run_jobs(settings)
    assert (await commission_of(sessions, full.payment_id)).amount == 700
    assert (await commission_of(sessions, cheap.payment_id)).amount == 500


async def test_payments_without_attribution_or_program_earn_nothing(client, sessions, settings, program: Program) -> None:
    plain = await buy(sessions, program, affiliate_id=None)
    free = await buy(sessions, program, amount=0, discount=1000, buyer=await sign_up(client, "free@example.com"))
    await set_program(sessions, program.offer_id, resell_enabled=False)
    program_off = await buy(sessions, program, buyer=await sign_up(client, "late@example.com"))
    await run_jobs(settings)
    for bought in (plain, free, program_off):
        assert await commission_of(sessions, bought.payment_id) is None


async def test_a_webhook_delivered_twice_makes_one_commission(sessions, settings, program: Program) -> None:
    """The same payment recorded twice (one job), and the job run several times at once."""
    bought = await buy(sessions, program, intent="pi_twice")
    async with sessions() as session, session.begin():
        again = await billing.record_payment(
            session, community_id=program.community_id, user_id=program.buyer.id, offer_id=program.offer_id,
            entitlement_id=bought.entitlement_id, checkout_id=bought.checkout_id, kind="purchase", amount=1000,
            discount_amount=0, currency="USD", stripe_account_id="acct_1", stripe_payment_intent_id="pi_twice",
        )
        assert again.id == bought.payment_id
        announced = await session.scalar(select(func.count()).where(OutboxJob.name == billing.PAYMENT_RECORDED))
        assert announced == 1  # only the insert announces the payment

    async def record_at_once() -> None:
        async with sessions() as session, session.begin():
            await commissions.record_commission(session, community_id=program.community_id, payment_id=bought.payment_id)
            await asyncio.sleep(0.05)  # hold the transaction: the others wait on the unique key

    await asyncio.gather(*(record_at_once() for _ in range(4)))
    await run_jobs(settings)  # and the outbox job, once more
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Commission)) == 1
    commission = await commission_of(sessions, bought.payment_id)
    assert await entries_of(sessions, commission.id) == [("earned", 300)]


def test_one_mailbox_is_one_person() -> None:
    assert same_person_email("J.O.H.N+deals@GoogleMail.com") == "john@gmail.com"
    assert same_person_email(" John+x@Example.com ") == "john@example.com"
    assert same_person_email("j.ohn@example.com") == "j.ohn@example.com"  # dots matter outside Gmail
    assert same_person_email("+a@example.com") != same_person_email("+b@example.com")  # nothing before the tag


async def test_self_referrals_earn_nothing_and_say_why(client, sessions, settings, community) -> None:
    p = await make_program(client, sessions, community["id"], affiliate_email="jane.doe@gmail.com")
    own = await buy(sessions, p, buyer=p.affiliate)  # the affiliate buys through their own link
    alias = await buy(sessions, p, buyer=await sign_up(client, "JaneDoe+2nd@googlemail.com"))
    # A new account, but the checkout's email is the affiliate's mailbox.
    checkout_email = await buy(sessions, p, buyer=await sign_up(client, "other@example.com"), email="jane.doe+x@gmail.com")
    # The affiliate, logged in, buys for another address.
    logged_in = await buy(sessions, p, buyer=await sign_up(client, "gift@example.com"), viewer=p.affiliate)
    honest = await buy(sessions, p)
    await run_jobs(settings)
    for bought in (own, alias, checkout_email, logged_in):
        commission = await commission_of(sessions, bought.payment_id)
        assert commission is not None and commission.state == CommissionState.rejected
        assert commission.amount == 0 and commission.reason == commissions.SELF_REFERRAL
        assert commission.base_amount == 1000  # the sale is kept, with the reason
        assert await entries_of(sessions, commission.id) == []
    assert (await commission_of(sessions, honest.payment_id)).amount == 300
    totals = (await earnings(sessions, p))["USD"]
    assert (totals.pending, totals.sales, totals.rejected) == (300, 1, 4)


async def suspend(sessions, affiliate_id: int, at: dt.datetime | None) -> None:
    status = AffiliateStatus.active if at is None else AffiliateStatus.suspended
    async with sessions() as session, session.begin():
        await session.execute(update(Affiliate).where(Affiliate.id == affiliate_id).values(status=status, suspended_at=at))


async def test_a_suspended_affiliate_earns_nothing(client, sessions, settings, program: Program) -> None:
    await suspend(sessions, program.affiliate_id, PAID_AT - dt.timedelta(days=1))
    bought = await buy(sessions, program)
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    assert commission.state == CommissionState.rejected and commission.reason == commissions.SUSPENDED
    assert commission.amount == 0 and await entries_of(sessions, commission.id) == []
    # Renewals of that sale are judged at their own payment time: active again, they earn.
    await suspend(sessions, program.affiliate_id, None)
    await set_program(sessions, program.offer_id, resell_earns="all")
    renewal = await renew(sessions, program, bought, months=1)
    await run_jobs(settings)
    assert (await commission_of(sessions, renewal)).amount == 300
    # Suspended after a payment was made (before its job ran): that payment still earns.
    before = await buy(sessions, program, buyer=await sign_up(client, "early@example.com"))
    await suspend(sessions, program.affiliate_id, PAID_AT + dt.timedelta(minutes=5))
    await run_jobs(settings)
    assert (await commission_of(sessions, before.payment_id)).amount == 300


@pytest.mark.parametrize(
    ("earns", "months", "interval", "earning"),
    [
        ("first", None, 1, [0]),
        ("all", None, 1, [0, 1, 2, 3, 4]),
        ("months", 3, 1, [0, 1, 2]),
        ("months", 6, 3, [0, 1]),  # quarterly: the periods starting in months 0 and 3
        ("months", 6, 12, [0]),  # yearly: only the first year starts within six months
    ],
)
async def test_renewals_earn_by_the_programs_rule(
    client, sessions, settings, community, earns: str, months: int | None, interval: int, earning: list[int]
) -> None:
    p = await make_program(client, sessions, community["id"], resell_earns=earns, resell_earn_months=months)
    await set_program(sessions, p.offer_id, interval_months=interval)
    bought = await buy(sessions, p)
    payments = [bought.payment_id] + [await renew(sessions, p, bought, months=n * interval) for n in range(1, 5)]
    await run_jobs(settings)
    earned = [n for n, payment_id in enumerate(payments) if await commission_of(sessions, payment_id) is not None]
    assert earned == earning
    for payment_id in payments[: len(earning)]:
        assert (await commission_of(sessions, payment_id)).amount == 300


async def test_a_trial_counts_from_the_first_paid_period(client, sessions, settings, community) -> None:
    """A free trial records no purchase payment: its first paid invoice is a renewal, found
    through the entitlement's checkout, and it is the "first" payment."""
    p = await make_program(client, sessions, community["id"], resell_earns="first")
    trial = await buy(sessions, p, record=False)
    first_paid = await renew(sessions, p, trial, months=0)
    second = await renew(sessions, p, trial, months=1)
    await run_jobs(settings)
    assert (await commission_of(sessions, first_paid)).amount == 300
    assert await commission_of(sessions, second) is None


# ---------------------------------------------------------------- refunds and disputes


async def test_partial_refunds_reverse_in_exact_proportion_and_end_at_zero(sessions, settings, program: Program) -> None:
    await set_program(sessions, program.offer_id, resell_commission_bps=3333)
    bought = await buy(sessions, program, amount=1000)
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    assert commission.amount == 333
    expected_left = []
    for total in (100, 350, 350, 999, 1000):  # cumulative, as Stripe reports; one repeated
        await refund(sessions, program.community_id, bought.payment_id, total)
        await run_jobs(settings)
        expected_left.append(333 * (1000 - total) // 1000)
        entries = await entries_of(sessions, commission.id)
        assert sum(amount for _, amount in entries) == expected_left[-1]
    assert await entries_of(sessions, commission.id) == [("earned", 333), ("reversal", -34), ("reversal", -83), ("reversal", -216)]
    commission = await commission_of(sessions, bought.payment_id)
    assert (commission.reversed_amount, commission.state) == (333, CommissionState.reversed)
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.pending, totals.approved, totals.paid, totals.sales, totals.reversed) == (0, 0, 0, 0, 333)


async def test_a_repeated_adjustment_job_writes_nothing(sessions, settings, program: Program) -> None:
    bought = await buy(sessions, program)
    await refund(sessions, program.community_id, bought.payment_id, 500)
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    async with sessions() as session, session.begin():
        for _ in range(3):
            await jobs.enqueue(session, billing.PAYMENT_ADJUSTED, community_id=program.community_id, payment_id=bought.payment_id)
    await run_jobs(settings)
    assert await entries_of(sessions, commission.id) == [("earned", 300), ("reversal", -150)]


async def test_a_refund_that_fails_or_is_canceled_gives_its_share_back(sessions, settings, program: Program) -> None:
    """A refund counts while Stripe holds it; failed or canceled, the refunded total goes back down."""
    bought = await buy(sessions, program)
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    for total in (500, 0, 700, 200):  # pending 500 fails; pending 700 of which 500 is canceled
        await refund(sessions, program.community_id, bought.payment_id, total)
        await run_jobs(settings)
    assert await entries_of(sessions, commission.id) == [
        ("earned", 300), ("reversal", -150), ("restored", 150), ("reversal", -210), ("restored", 150),
    ]
    assert (await commission_of(sessions, bought.payment_id)).reversed_amount == 60


async def test_a_refund_before_the_job_ran_is_taken_into_account(sessions, settings, program: Program) -> None:
    """Jobs may run in any order: the commission is created from the payment as it is now."""
    bought = await buy(sessions, program)
    await refund(sessions, program.community_id, bought.payment_id, 1000)
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    assert commission.state == CommissionState.reversed
    assert await entries_of(sessions, commission.id) == [("earned", 300), ("reversal", -300)]


async def test_a_dispute_reverses_and_a_won_dispute_restores(sessions, settings, program: Program) -> None:
    bought = await buy(sessions, program)
    await refund(sessions, program.community_id, bought.payment_id, 200)
    await dispute(sessions, program.community_id, bought.payment_id, 800)  # the rest is charged back
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    assert commission.state == CommissionState.reversed
    assert await entries_of(sessions, commission.id) == [("earned", 300), ("reversal", -300)]
    await dispute(sessions, program.community_id, bought.payment_id, 0)  # won
    await run_jobs(settings)
    commission = await commission_of(sessions, bought.payment_id)
    assert commission.state == CommissionState.pending and commission.reversed_amount == 60
    assert await entries_of(sessions, commission.id) == [("earned", 300), ("reversal", -300), ("restored", 240)]
    assert (await earnings(sessions, program))["USD"].pending == 240


# ---------------------------------------------------------------- the hold


async def test_the_cron_approves_commissions_after_their_hold(client, sessions, settings, program: Program) -> None:
    early = await buy(sessions, program, paid_at=PAID_AT)
    late = await buy(sessions, program, paid_at=PAID_AT + dt.timedelta(days=10), buyer=await sign_up(client, "b2@example.com"))
    await run_jobs(settings)
    async with sessions() as session, session.begin():
        assert await commissions.approve_due(session, now=PAID_AT + dt.timedelta(days=29)) == 0
        assert await commissions.approve_due(session, now=PAID_AT + dt.timedelta(days=30)) == 1
        assert await commissions.approve_due(session, now=PAID_AT + dt.timedelta(days=30)) == 0  # idempotent
    assert (await commission_of(sessions, early.payment_id)).state == CommissionState.approved
    assert (await commission_of(sessions, late.payment_id)).state == CommissionState.pending
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.pending, totals.approved) == (300, 300)

    # The worker's cron function (at the real time) approves the rest once their hold is over.
    async with sessions() as session, session.begin():
        await session.execute(update(Commission).values(hold_until=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    assert await approve_commissions({"sessions": sessions}) == 1
    assert (await commission_of(sessions, late.payment_id)).state == CommissionState.approved


async def test_a_partial_refund_during_the_hold_is_netted_when_approved(sessions, settings, program: Program) -> None:
    bought = await buy(sessions, program)
    await refund(sessions, program.community_id, bought.payment_id, 250)
    await run_jobs(settings)
    async with sessions() as session, session.begin():
        await commissions.approve_due(session, now=PAID_AT + dt.timedelta(days=31))
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.pending, totals.approved, totals.reversed) == (0, 225, 75)


# ---------------------------------------------------------------- end to end through the Stripe sandbox


async def test_through_stripe_a_link_earns_on_purchase_and_renewal_and_gives_back_on_refund_and_dispute(
    app, client, owner, shop, stripe_env, settings, sessions  # noqa: F811 - the checkout shop fixture
) -> None:
    """A visitor clicks an affiliate's link and subscribes; Stripe renews; the owner refunds part
    of the purchase; a renewal is partly refunded in Stripe's dashboard and the rest charged
    back. Every step arrives as webhooks (delivered twice too) and ends in the ledger."""
    cid = shop["community"]["id"]
    offer, path = await sell(
        client, owner, shop, pricing="recurring", amount=2000, interval_months=1, resell_enabled=True,
        resell_commission_bps=2000, resell_earns="months", resell_earn_months=2,
    )
    affiliate = await sign_up(client, "ann@example.com")
    await comp(client, owner, cid, offer["id"], affiliate.email)
    enrolled = await client.post(f"{API}/me/affiliates", json={"offer_id": offer["id"]}, headers=affiliate.headers)
    assert enrolled.status_code == 201, enrolled.text
    code, affiliate_id = enrolled.json()["code"], enrolled.json()["id"]

    async with visitor_client(app) as browser:
        assert (await browser.get(f"{community_origin(shop['community']['slug'])}/r/{code}")).status_code == 302
        redirect = await submit_checkout(browser, path, email="buyer@example.com", name="Buyer")
    stripe_env.sandbox.pay(session_id_of(redirect), outcome="success")
    deliveries = take(stripe_env)
    await post(client, deliveries)
    await post(client, resent(deliveries))  # every event twice
    await drain(settings, sessions)
    async with sessions() as session:
        payments = (await session.scalars(select(Payment).where(Payment.community_id == cid).order_by(Payment.id))).all()
    (purchase,) = payments
    commission = await commission_of(sessions, purchase.id)
    assert (commission.affiliate_id, commission.amount, commission.state) == (affiliate_id, 400, CommissionState.pending)

    for _ in range(2):  # two renewals: the first month's renewal earns, the third month's does not
        stripe_env.sandbox.advance_clock(
            stripe_env.sandbox.get(purchase.stripe_subscription_id)["items"]["data"][0]["current_period_end"]
            - stripe_env.sandbox.now() + 60
        )
        await post(client, take(stripe_env))
        await drain(settings, sessions)
    async with sessions() as session:
        renewals = (await session.scalars(select(Payment).where(Payment.kind == "renewal").order_by(Payment.paid_at))).all()
    assert [r.amount for r in renewals] == [2000, 2000]
    assert (await commission_of(sessions, renewals[0].id)).amount == 400
    assert await commission_of(sessions, renewals[1].id) is None

    refunded = await client.post(
        f"{API}/communities/{cid}/payments/{purchase.id}/refunds", json={"amount": 500, "reason": "goodwill"}, headers=owner.headers
    )
    assert refunded.status_code == 201, refunded.text
    # The renewal's charge, known from its invoice's payments (no invoice event carries them):
    # a quarter is refunded in Stripe's dashboard, then the rest is charged back.
    assert renewals[0].stripe_charge_id and renewals[0].stripe_payment_intent_id
    await stripe_client(settings).v1.refunds.create_async(
        {"charge": renewals[0].stripe_charge_id, "amount": 500}, {"stripe_account": shop["account_id"]}
    )
    await post(client, take(stripe_env))
    await drain(settings, sessions)
    assert await entries_of(sessions, commission.id) == [("earned", 400), ("reversal", -100)]
    assert await entries_of(sessions, (await commission_of(sessions, renewals[0].id)).id) == [("earned", 400), ("reversal", -100)]
    stripe_env.sandbox.dispute(renewals[0].stripe_charge_id)  # the rest (15.00) is charged back
    await post(client, take(stripe_env))
    await drain(settings, sessions)
    charged_back = await commission_of(sessions, renewals[0].id)
    assert charged_back.state == CommissionState.reversed
    assert await entries_of(sessions, charged_back.id) == [("earned", 400), ("reversal", -100), ("reversal", -300)]
    totals = (await earnings(sessions, Program(cid, offer["id"], affiliate_id, affiliate, affiliate)))["USD"]
    assert (totals.pending, totals.sales, totals.reversed) == (300, 1, 500)


async def test_through_stripe_refunds_that_fail_or_are_canceled_and_every_dispute_status_settle_the_commission(
    app, client, owner, shop, stripe_env, settings, sessions  # noqa: F811 - the checkout shop fixture
) -> None:
    """A purchase through an affiliate's link earns 25% of 4000. A refund Stripe holds pending
    takes its share back at once, and gives it back when it fails or is canceled; an inquiry
    changes nothing; a chargeback takes it all, stays taken while lost and appealed, and comes
    back when won on appeal; a prevented dispute changes nothing."""
    cid = shop["community"]["id"]
    offer, path = await sell(client, owner, shop, amount=4000, resell_enabled=True, resell_commission_bps=2500)
    affiliate = await sign_up(client, "ann@example.com")
    await comp(client, owner, cid, offer["id"], affiliate.email)
    enrolled = await client.post(f"{API}/me/affiliates", json={"offer_id": offer["id"]}, headers=affiliate.headers)
    assert enrolled.status_code == 201, enrolled.text
    async with visitor_client(app) as browser:
        assert (await browser.get(f"{community_origin(shop['community']['slug'])}/r/{enrolled.json()['code']}")).status_code == 302
        redirect = await submit_checkout(browser, path, email="buyer@example.com", name="Buyer")
    stripe_env.sandbox.pay(session_id_of(redirect), outcome="success")
    sandbox = stripe_env.sandbox

    async def sync() -> int:
        """Stripe's webhooks, every job; what the commission holds now (the ledger's sum)."""
        deliveries = take(stripe_env)
        await post(client, deliveries)
        await post(client, resent(deliveries))  # and every event again, newest first
        await drain(settings, sessions)
        return sum(amount for _, amount in await entries_of(sessions, commission.id))

    await post(client, take(stripe_env))
    await drain(settings, sessions)
    async with sessions() as session:
        purchase = await session.scalar(select(Payment).where(Payment.community_id == cid))
    commission = await commission_of(sessions, purchase.id)
    assert commission.amount == 1000
    charge = sandbox.get(purchase.stripe_payment_intent_id)["latest_charge"]
    refunds_url = f"{API}/communities/{cid}/payments/{purchase.id}/refunds"

    sandbox.hold_refunds(charge)
    held = (await client.post(refunds_url, json={"amount": 1000}, headers=owner.headers)).json()
    assert held["state"] == "pending"
    assert await sync() == 750  # a quarter of the payment is on its way back
    sandbox.settle_refund(held["stripe_refund_id"], "failed")
    assert await sync() == 1000
    canceled = (await client.post(refunds_url, json={"amount": 2000}, headers=owner.headers)).json()
    assert await sync() == 500
    sandbox.settle_refund(canceled["stripe_refund_id"], "canceled")
    assert await sync() == 1000

    inquiry = sandbox.dispute(charge, inquiry=True)
    assert await sync() == 1000
    sandbox.close_dispute(inquiry["id"])
    assert await sync() == 1000
    chargeback = sandbox.dispute(charge)
    assert await sync() == 0
    assert (await commission_of(sessions, purchase.id)).state == CommissionState.reversed
    sandbox.close_dispute(chargeback["id"], won=False)
    assert await sync() == 0
    sandbox.appeal_dispute(chargeback["id"])
    assert await sync() == 0  # the money stays withdrawn during the appeal
    sandbox.respond_to_dispute(chargeback["id"])
    assert await sync() == 0
    sandbox.close_dispute(chargeback["id"], won=True)
    assert await sync() == 1000
    sandbox.prevent_dispute(charge)
    assert await sync() == 1000
    assert await entries_of(sessions, commission.id) == [
        ("earned", 1000), ("reversal", -250), ("restored", 250), ("reversal", -500), ("restored", 500),
        ("reversal", -1000), ("restored", 1000),
    ]
    assert (await commission_of(sessions, purchase.id)).state == CommissionState.pending
