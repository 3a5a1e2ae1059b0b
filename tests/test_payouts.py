"""Payouts: the owner pays what is approved per affiliate and currency above the offer's minimum,
marks it paid with a reference and downloads it as CSV; a refund after payout is a negative line
on the next payout; two owners creating payouts at once never pay an entry twice; and every
number on the affiliate's dashboard reconciles with the ledger."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from community.accounts import service as accounts
from community.accounts.models import Member, User
from community.affiliates import commissions, payouts, reports
from community.affiliates.models import (
    Click,
    Commission,
    CommissionState,
    LedgerEntry,
    Payout,
    PayoutState,
)
from community.billing.models import Payment
from community.db import utcnow
from community.errors import Conflict, Invalid
from tests.checkout_helpers import CSRF
from tests.conftest import Account, sign_up
from tests.helpers import run_jobs
from tests.test_affiliate_links import visitor_client
from tests.test_commissions import (
    PAID_AT,
    Program,
    add_affiliate,
    buy,
    commission_of,
    earnings,
    entries_of,
    make_program,
    refund,
    set_program,
)
from workers.settings import approve_commissions

API = "/api/v1"
AFTER_HOLD = PAID_AT + dt.timedelta(days=31)


async def approve(sessions) -> None:
    async with sessions() as session, session.begin():
        await commissions.approve_due(session, now=AFTER_HOLD)


async def create(sessions, community_id: int) -> list[Payout]:
    async with sessions() as session, session.begin():
        return await payouts.create_payouts(session, community_id)


async def pay(sessions, community_id: int, payout_id: int, reference: str = "wire 42") -> Payout:
    async with sessions() as session, session.begin():
        return await payouts.mark_paid(session, community_id, payout_id, reference)


async def lines_of(sessions, payout_id: int) -> list[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.execute(
            select(LedgerEntry.kind, LedgerEntry.amount).where(LedgerEntry.payout_id == payout_id).order_by(LedgerEntry.id)
        )
        return [(kind.value, amount) for kind, amount in rows]


async def assert_reconciles(sessions, p: Program) -> None:
    """The dashboard's buckets add up to the ledger, and `paid` to the paid payouts."""
    totals = (await earnings(sessions, p))["USD"]
    async with sessions() as session:
        ledger = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.affiliate_id == p.affiliate_id)
        )
        paid = await session.scalar(
            select(func.coalesce(func.sum(Payout.amount), 0)).where(
                Payout.affiliate_id == p.affiliate_id, Payout.state == PayoutState.paid
            )
        )
    assert totals.pending + totals.approved + totals.paid == ledger
    assert totals.paid == paid


@pytest.fixture
async def program(client: httpx.AsyncClient, sessions, community: dict[str, Any]) -> Program:
    p = await make_program(client, sessions, community["id"])
    await set_program(sessions, p.offer_id, resell_min_payout=500)
    return p


async def sales(client: httpx.AsyncClient, sessions, p: Program, count: int, *, prefix: str = "buyer", **kwargs: Any) -> list[int]:
    return [
        (await buy(sessions, p, buyer=await sign_up(client, f"{prefix}{n}@example.com"), **kwargs)).payment_id
        for n in range(count)
    ]


async def test_a_payout_takes_what_is_approved_above_the_minimum(client, sessions, settings, program: Program) -> None:
    other_user = await sign_up(client, "second-affiliate@example.com")
    other = Program(program.community_id, program.offer_id, await add_affiliate(
        sessions, program.community_id, program.offer_id, other_user.id
    ), other_user, program.buyer)
    await sales(client, sessions, program, 2)  # 600 for the first affiliate
    await sales(client, sessions, other, 1, prefix="other")  # 300 for the second: under the minimum
    await run_jobs(settings)
    assert await create(sessions, program.community_id) == []  # nothing approved yet
    await approve(sessions)
    late = (await sales(client, sessions, program, 1, prefix="late", paid_at=AFTER_HOLD))[0]  # still in its hold
    await run_jobs(settings)

    async with sessions() as session:
        balances = await payouts.balances(session, program.community_id)
    assert [(b.affiliate_id, b.amount, b.minimum) for b in balances] == [(program.affiliate_id, 600, 500), (other.affiliate_id, 300, 500)]
    made = await create(sessions, program.community_id)
    assert [(p.affiliate_id, p.amount, p.currency, p.state) for p in made] == [(program.affiliate_id, 600, "USD", PayoutState.open)]
    assert await lines_of(sessions, made[0].id) == [("earned", 300), ("earned", 300)]
    assert await create(sessions, program.community_id) == []  # nothing left to take

    totals = (await earnings(sessions, program))["USD"]
    assert (totals.pending, totals.approved, totals.paid, totals.sales) == (300, 600, 0, 3)
    with pytest.raises(Invalid):
        await pay(sessions, program.community_id, made[0].id, reference="  ")
    paid = await pay(sessions, program.community_id, made[0].id, reference="SEPA 2030-02-20")
    assert (paid.state, paid.reference) == (PayoutState.paid, "SEPA 2030-02-20") and paid.paid_at is not None
    with pytest.raises(Conflict):
        await pay(sessions, program.community_id, made[0].id, reference="again")
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.pending, totals.approved, totals.paid) == (300, 0, 600)
    assert (await commission_of(sessions, late)).state == CommissionState.pending
    await assert_reconciles(sessions, program)


async def test_a_refund_after_payout_is_a_negative_line_on_the_next_payout(client, sessions, settings, program: Program) -> None:
    await set_program(sessions, program.offer_id, resell_min_payout=0)
    first, second = await sales(client, sessions, program, 2)
    await run_jobs(settings)
    await approve(sessions)
    payout = (await create(sessions, program.community_id))[0]
    await pay(sessions, program.community_id, payout.id)
    assert (await commission_of(sessions, first)).state == CommissionState.paid

    await refund(sessions, program.community_id, first, 500)  # half of one paid sale
    await refund(sessions, program.community_id, second, 1000)  # all of the other
    await run_jobs(settings)
    for payment_id in (first, second):
        assert (await commission_of(sessions, payment_id)).state == CommissionState.paid  # paid stays paid
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.approved, totals.paid, totals.reversed) == (-450, 600, 450)  # owed back
    assert await create(sessions, program.community_id) == []  # a negative balance waits for earnings
    await assert_reconciles(sessions, program)

    # New earnings pay the clawback off: the next payout nets them.
    await sales(client, sessions, program, 2, prefix="new")
    await run_jobs(settings)
    await approve(sessions)
    payout = (await create(sessions, program.community_id))[0]
    assert payout.amount == 150
    assert sorted(await lines_of(sessions, payout.id)) == [("earned", 300), ("earned", 300), ("reversal", -300), ("reversal", -150)]
    await pay(sessions, program.community_id, payout.id)
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.approved, totals.paid) == (0, 750)
    await assert_reconciles(sessions, program)


async def test_a_refund_while_the_payout_is_open_goes_to_the_next_one(client, sessions, settings, program: Program) -> None:
    await set_program(sessions, program.offer_id, resell_min_payout=0)
    (sale,) = await sales(client, sessions, program, 1)
    await run_jobs(settings)
    await approve(sessions)
    payout = (await create(sessions, program.community_id))[0]
    await refund(sessions, program.community_id, sale, 1000)
    await run_jobs(settings)
    commission = await commission_of(sessions, sale)
    # Its earning is in a payout: the commission is not silently reversed, the reversal is owed.
    assert commission.state == CommissionState.approved
    assert await entries_of(sessions, commission.id) == [("earned", 300), ("reversal", -300)]
    assert await lines_of(sessions, payout.id) == [("earned", 300)]
    await pay(sessions, program.community_id, payout.id)
    totals = (await earnings(sessions, program))["USD"]
    assert (totals.approved, totals.paid) == (-300, 300)
    await assert_reconciles(sessions, program)


async def test_two_owners_creating_payouts_at_once_pay_each_entry_once(client, sessions, settings, program: Program) -> None:
    await sales(client, sessions, program, 3)
    await run_jobs(settings)
    await approve(sessions)

    async def press() -> list[int]:
        async with sessions() as session, session.begin():
            made = await payouts.create_payouts(session, program.community_id)
            await asyncio.sleep(0.05)  # hold the entries' locks: the other waits, then finds none
            return [p.amount for p in made]

    results = await asyncio.gather(press(), press())
    assert sorted(results) == [[], [900]]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Payout)) == 1


async def _join(sessions, community_id: int, user_id: int) -> None:
    """The buyer's place in the community (fulfilment gives it to real buyers)."""
    async with sessions() as session, session.begin():
        if await accounts.membership(session, community_id, user_id) is None:
            session.add(Member(community_id=community_id, user_id=user_id))


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_the_owner_pays_through_the_api(client: httpx.AsyncClient, sessions, settings, owner: Account, program: Program) -> None:
    base = f"{API}/communities/{program.community_id}/affiliates"
    await set_program(sessions, program.offer_id, resell_commission_bps=3333)
    await sales(client, sessions, program, 2)  # 333 each
    await run_jobs(settings)
    await approve(sessions)

    balances = (await client.get(f"{base}/balances", headers=owner.headers)).json()
    assert balances == [{"affiliate_id": program.affiliate_id, "currency": "USD", "amount": 666, "minimum": 500}]
    created = await client.post(f"{base}/payouts", headers=owner.headers)
    assert created.status_code == 201, created.text
    (payout,) = created.json()
    assert (payout["amount"], payout["state"], payout["reference"]) == (666, "open", "")
    listed = (await client.get(f"{base}/payouts", params={"state": "open"}, headers=owner.headers)).json()
    assert [p["id"] for p in listed["items"]] == [payout["id"]]
    assert (await client.get(f"{base}/payouts", params={"state": "paid"}, headers=owner.headers)).json()["items"] == []

    async with sessions() as session, session.begin():  # a name a spreadsheet would run
        await session.execute(update(User).where(User.id == program.affiliate.id).values(name="=HYPERLINK(\"x\")"))
    to_pay = rows_of(await client.get(f"{base}/payouts.csv", params={"state": "open"}, headers=owner.headers))
    assert [(r["email"], r["name"], r["amount"], r["currency"]) for r in to_pay] == [
        ("aff@example.com", "'=HYPERLINK(\"x\")", "6.66", "USD")
    ]
    lines = rows_of(await client.get(f"{base}/payouts/{payout['id']}/lines.csv", headers=owner.headers))
    assert [(r["kind"], r["amount"], r["currency"]) for r in lines] == [("earned", "3.33", "USD")] * 2

    for bad in ({}, {"reference": ""}, {"reference": "x", "extra": 1}):
        refused = await client.post(f"{base}/payouts/{payout['id']}/paid", json=bad, headers=owner.headers)
        assert refused.status_code in (400, 422), (bad, refused.text)
    paid = await client.post(f"{base}/payouts/{payout['id']}/paid", json={"reference": "PayPal 9XY"}, headers=owner.headers)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["state"], paid.json()["reference"]) == ("paid", "PayPal 9XY")
    again = await client.post(f"{base}/payouts/{payout['id']}/paid", json={"reference": "twice"}, headers=owner.headers)
    assert again.status_code == 409
    assert (await client.get(f"{base}/payouts/{payout['id']}", headers=owner.headers)).json()["state"] == "paid"
    assert (await client.get(f"{base}/payouts/{payout['id'] + 1000}", headers=owner.headers)).status_code == 404

    commissions_page = (await client.get(f"{base}/commissions", params={"state": "paid"}, headers=owner.headers)).json()
    assert [c["amount"] for c in commissions_page["items"]] == [333, 333]
    assert (await client.get(f"{base}/commissions", params={"state": "pending"}, headers=owner.headers)).json()["items"] == []

    # The affiliate reads their own earnings; another buyer cannot; staff can.
    expected = [{
        "affiliate_id": program.affiliate_id, "offer_id": program.offer_id,
        "totals": [{"currency": "USD", "sales": 2, "rejected": 0, "revenue": 2000, "pending": 0, "approved": 0, "paid": 666, "reversed": 0}],
    }]
    await _join(sessions, program.community_id, program.affiliate.id)
    await _join(sessions, program.community_id, program.buyer.id)
    mine = await client.get(f"{base}/earnings", headers=program.affiliate.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json() == expected
    named = await client.get(f"{base}/earnings", params={"affiliate_id": program.affiliate_id}, headers=program.affiliate.headers)
    assert named.json() == expected
    stranger = await client.get(f"{base}/earnings", params={"affiliate_id": program.affiliate_id}, headers=program.buyer.headers)
    assert stranger.status_code == 404
    assert (await client.get(f"{base}/earnings", headers=program.buyer.headers)).json() == []  # not an affiliate
    by_owner = await client.get(f"{base}/earnings", params={"affiliate_id": program.affiliate_id}, headers=owner.headers)
    assert by_owner.json() == expected
    outsider = await sign_up(client, "outsider@example.com")
    assert (await client.get(f"{base}/earnings", headers=outsider.headers)).status_code == 404

    # Managers read the money but do not pay it.
    await sign_up(client, "manager@example.com")
    manager = await sign_up(client, "manager2@example.com")
    await client.put(f"{API}/communities/{program.community_id}/staff", json={"email": manager.email, "role": "manager"}, headers=owner.headers)
    assert (await client.get(f"{base}/payouts", headers=manager.headers)).status_code == 200
    assert (await client.post(f"{base}/payouts", headers=manager.headers)).status_code == 403
    assert (await client.get(f"{base}/payouts", headers=program.buyer.headers)).status_code == 403  # a member, not staff
    assert (await client.get(f"{base}/payouts", headers=outsider.headers)).status_code == 404


async def test_the_owners_report_per_affiliate_and_per_offer(client: httpx.AsyncClient, sessions, settings, owner: Account, program: Program) -> None:
    base = f"{API}/communities/{program.community_id}/affiliates"
    idle_user = await sign_up(client, "idle@example.com")
    idle = await add_affiliate(sessions, program.community_id, program.offer_id, idle_user.id)
    first, _ = await sales(client, sessions, program, 2)
    await buy(sessions, program, buyer=program.affiliate)  # a self-referral: kept, earns nothing
    await refund(sessions, program.community_id, first, 1000)
    await run_jobs(settings)

    report = (await client.get(f"{base}/report", headers=owner.headers)).json()
    by_id = {line["id"]: line for line in report["per_affiliate"]}
    assert by_id[program.affiliate_id]["label"] == "aff@example.com" and by_id[program.affiliate_id]["status"] == "active"
    assert by_id[program.affiliate_id]["totals"] == {
        "currency": "USD", "sales": 1, "rejected": 1, "revenue": 1000, "pending": 300, "approved": 0, "paid": 0, "reversed": 300,
    }
    assert by_id[idle]["totals"]["sales"] == 0 and by_id[idle]["clicks"] == 0
    (offer_line,) = report["per_offer"]
    assert (offer_line["id"], offer_line["totals"]["sales"], offer_line["totals"]["pending"]) == (program.offer_id, 1, 300)

    per_affiliate = rows_of(await client.get(f"{base}/report.csv", headers=owner.headers))
    mine = next(r for r in per_affiliate if r["affiliate_id"] == str(program.affiliate_id))
    assert (mine["sales"], mine["revenue"], mine["pending"], mine["reversed"], mine["currency"]) == ("1", "10.00", "3.00", "3.00", "USD")
    per_offer = rows_of(await client.get(f"{base}/report.csv", params={"per": "offer"}, headers=owner.headers))
    assert [(r["offer_id"], r["pending"]) for r in per_offer] == [(str(program.offer_id), "3.00")]
    assert (await client.get(f"{base}/report.csv", params={"per": "nobody"}, headers=owner.headers)).status_code in (400, 422)
    assert (await client.get(f"{base}/report", headers=program.affiliate.headers)).status_code == 404

    async with sessions() as session:
        assert [t.pending for t in await reports.earnings(session, program.community_id, idle)] == []


# ---------------------------------------------------------------- the affiliate's dashboard


async def ledger_by_state(sessions, affiliate_id: int) -> dict[str, int]:
    """The affiliate's ledger entries summed by where their money stands: in a paid payout;
    owed (commission approved or paid, entry not paid out yet, a clawback too); in the hold."""
    async with sessions() as session:
        rows = await session.execute(
            select(LedgerEntry.amount, Commission.state, Payout.state)
            .join(Commission, Commission.id == LedgerEntry.commission_id)
            .outerjoin(Payout, Payout.id == LedgerEntry.payout_id)
            .where(LedgerEntry.affiliate_id == affiliate_id)
        )
        sums = dict.fromkeys(("pending", "approved", "paid", "reversed"), 0)
        for amount, commission_state, payout_state in rows:
            if payout_state == PayoutState.paid:
                sums["paid"] += amount
            elif commission_state in (CommissionState.approved, CommissionState.paid):
                sums["approved"] += amount
            else:
                sums[commission_state.value] += amount
        return sums


async def add_clicks(sessions, p: Program, *times: dt.datetime) -> None:
    async with sessions() as session, session.begin():
        session.add_all(
            Click(community_id=p.community_id, affiliate_id=p.affiliate_id, offer_id=p.offer_id,
                  visitor_hash=f"v{n}", ip_hash=f"i{n}", at=at)
            for n, at in enumerate(times)
        )


async def log_in(browser: httpx.AsyncClient, email: str) -> None:
    token = CSRF.search((await browser.get("/login")).text).group(1)
    done = await browser.post("/login", data={"_csrf_token": token, "email": email, "password": "correct horse battery"})
    assert done.status_code in (302, 303), done.text


async def test_the_affiliates_dashboard_is_the_ledger_from_sale_to_clawback(
    app, client: httpx.AsyncClient, sessions, settings, owner: Account, program: Program
) -> None:
    """Sales, a partial and a full refund in the hold, the approval cron, a payout marked paid
    and a clawback after it: the dashboard's numbers (API and page) are the ledger's sums by
    state and the owner's report line, and the chart's sales add up to the sales count."""
    await set_program(sessions, program.offer_id, resell_hold_days=5, resell_min_payout=0)
    earlier, recent = utcnow() - dt.timedelta(days=10), utcnow() - dt.timedelta(hours=1)
    partly, fully, clawed = await sales(client, sessions, program, 3, paid_at=earlier)
    (held,) = await sales(client, sessions, program, 1, prefix="recent", paid_at=recent)
    await buy(sessions, program, buyer=program.affiliate, paid_at=recent)  # a self-referral: rejected
    await add_clicks(sessions, program, earlier, earlier, recent, recent)
    await run_jobs(settings)
    await refund(sessions, program.community_id, partly, 400)  # 30% of the 600 left: 180
    await refund(sessions, program.community_id, fully, 1000)  # reversed in its hold: no longer a sale
    await run_jobs(settings)
    assert await approve_commissions({"sessions": sessions}) == 2  # partly and clawed
    assert (await commission_of(sessions, held)).state == CommissionState.pending  # still in its hold
    (payout,) = await create(sessions, program.community_id)
    assert payout.amount == 180 + 300
    await pay(sessions, program.community_id, payout.id, "wire 7")
    await refund(sessions, program.community_id, clawed, 1000)  # after payout: owed back, no longer a sale
    await run_jobs(settings)

    mine = await client.get(f"{API}/me/affiliates/{program.affiliate_id}", headers=program.affiliate.headers)
    assert mine.status_code == 200, mine.text
    dashboard = mine.json()
    (totals,) = dashboard["earnings"]
    assert totals == {
        "currency": "USD", "sales": 2, "rejected": 1, "revenue": 2000,
        "pending": 300, "approved": -300, "paid": 480, "reversed": 120 + 300 + 300,
    }
    ledger = await ledger_by_state(sessions, program.affiliate_id)
    assert {name: totals[name] for name in ("pending", "approved", "paid")} == {
        name: ledger[name] for name in ("pending", "approved", "paid")
    }
    assert ledger["reversed"] == 0  # a commission reversed in its hold nets to nothing
    async with sessions() as session:
        paid_out = await session.scalar(select(func.sum(Payout.amount)).where(Payout.state == PayoutState.paid))
    assert totals["paid"] == paid_out

    report = (await client.get(f"{API}/communities/{program.community_id}/affiliates/report", headers=owner.headers)).json()
    (line,) = [line for line in report["per_affiliate"] if line["id"] == program.affiliate_id]
    assert (line["totals"], line["clicks"]) == (totals, dashboard["clicks"])
    await _join(sessions, program.community_id, program.affiliate.id)
    own = (await client.get(f"{API}/communities/{program.community_id}/affiliates/earnings", headers=program.affiliate.headers)).json()
    assert own == [{"affiliate_id": program.affiliate_id, "offer_id": program.offer_id, "totals": [totals]}]

    assert (dashboard["clicks"], dashboard["sales"], dashboard["conversion_rate"]) == (4, 2, 0.5)
    assert sum(day["sales"] for day in dashboard["days"]) == dashboard["sales"]
    charted = {day["date"]: (day["clicks"], day["sales"]) for day in dashboard["days"] if day["clicks"] or day["sales"]}
    assert charted == {earlier.date().isoformat(): (2, 1), recent.date().isoformat(): (2, 1)}

    async with visitor_client(app) as browser:  # the page shows the same numbers
        await log_in(browser, program.affiliate.email)
        page = await browser.get(f"/affiliates/{program.affiliate_id}")
        assert page.status_code == 200, page.text
        assert 'id="sales">2<' in page.text and 'id="conversion">50.0%<' in page.text
        assert ('<td class="pending">3.00 USD</td><td class="approved">-3.00 USD</td>'
                '<td class="paid">4.80 USD</td>') in page.text
        assert 'href="/affiliates"' in (await browser.get(f"/communities/{program.community_id}")).text  # has a link


async def test_the_community_page_links_to_resell_programs_for_those_who_can_join(
    app, client: httpx.AsyncClient, sessions, owner: Account, program: Program
) -> None:
    (sale,) = await sales(client, sessions, program, 1)  # buyer0 holds the offer: may join its program
    async with sessions() as session:
        buyer_id = await session.scalar(select(Payment.user_id).where(Payment.id == sale))
    await _join(sessions, program.community_id, buyer_id)
    for email, linked in (("buyer0@example.com", True), (owner.email, False)):
        async with visitor_client(app) as browser:
            await log_in(browser, email)
            page = await browser.get(f"/communities/{program.community_id}")
            assert page.status_code == 200, page.text
            assert ('href="/affiliates"' in page.text) is linked, email
    await set_program(sessions, program.offer_id, resell_enabled=False)  # no program to join any more
    async with visitor_client(app) as browser:
        await log_in(browser, "buyer0@example.com")
        assert 'href="/affiliates"' not in (await browser.get(f"/communities/{program.community_id}")).text
