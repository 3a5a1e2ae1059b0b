"""The console home's numbers (GET .../numbers and the home page) against the ledger itself:
payments bought through checkout, a refund, a lost chargeback, subscriptions (paying, every
3 months, trialing, one whose renewal failed), comps and cancellations; each figure equals a
sum taken here straight from the tables with SQL, the 30-day window's edges hold, another
community's rows count for nothing, and managers read but do not retry jobs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import text

from community import jobs
from community.billing import service as billing
from tests.checkout_helpers import API, CSRF, submit_checkout
from tests.conftest import create_community, sign_up
from tests.helpers import run_jobs
from tests.test_access import comp, make_offer
from tests.test_checkout import sell, session_id_of, shop
from tests.test_memberships import login
from tests.test_refunds import buy, read, refund
from tests.test_subscriptions import deliver as deliver_all
from tests.test_subscriptions import period_end, subscribe

__all__ = ["shop"]
DAY = dt.timedelta(days=1)


def numbers_url(cid: int) -> str:
    return f"{API}/communities/{cid}/numbers"


def window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The last 30 days as the page defines them: today and the 29 days before, whole UTC days."""
    today = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    return today - 29 * DAY, today + DAY


async def ledger(sessions, cid: int, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """Every figure, summed straight from the tables."""
    args = {"c": cid, "since": since, "until": until}
    async with sessions() as s:
        revenue = [
            {"currency": c, "payments": n, "paid_amount": int(p), "refunded_amount": int(r), "disputed_amount": int(d), "net_amount": int(net)}
            for c, n, p, r, d, net in await s.execute(text(
                "SELECT currency, count(*), sum(amount), sum(refunded_amount), sum(disputed_amount),"
                " sum(amount - refunded_amount - disputed_amount) FROM payments"
                " WHERE community_id = :c AND paid_at >= :since AND paid_at < :until GROUP BY currency ORDER BY currency"), args)
        ]
        members = {
            "active": await s.scalar(text(
                "SELECT count(DISTINCT user_id) FROM entitlements WHERE community_id = :c AND (ends_at IS NULL OR ends_at > now())"), args),
            "new": await s.scalar(text(
                "SELECT count(*) FROM (SELECT min(starts_at) AS first FROM entitlements WHERE community_id = :c GROUP BY user_id) f"
                " WHERE first >= :since AND first < :until"), args),
            "cancelled": await s.scalar(text(
                "SELECT count(*) FROM entitlements WHERE community_id = :c AND status = 'cancelled'"
                " AND ends_at >= :since AND ends_at <= now()"), args),
            "set_to_end": await s.scalar(text(
                "SELECT count(*) FROM entitlements WHERE community_id = :c AND status = 'cancelled' AND ends_at > now()"), args),
        }
        mrr = {c: int(v) for c, v in await s.execute(text(
            "SELECT s.currency, round(sum(s.amount::numeric / o.interval_months)) FROM subscriptions s"
            " JOIN offers o ON o.id = s.offer_id WHERE s.community_id = :c AND s.status = 'active' GROUP BY 1"), args)}
        trialing = {c: n for c, n in await s.execute(text(
            "SELECT currency, count(*) FROM subscriptions WHERE community_id = :c AND status = 'trialing' GROUP BY 1"), args)}
        failing = [tuple(r) for r in await s.execute(text(
            "SELECT s.entitlement_id, u.email, o.title, s.grace_ends_at FROM subscriptions s JOIN users u ON u.id = s.user_id"
            " JOIN offers o ON o.id = s.offer_id WHERE s.community_id = :c AND s.status = 'past_due' ORDER BY s.grace_ends_at"), args)]
        ninety = {c: int(v) for c, v in await s.execute(text(
            "SELECT currency, sum(amount - refunded_amount - disputed_amount) FROM payments"
            " WHERE community_id = :c AND paid_at >= :start AND paid_at < :until GROUP BY 1"), {**args, "start": until - 90 * DAY})}
    return {"revenue": revenue, "members": members, "mrr": mrr, "trialing": trialing, "failing": failing, "ninety": ninety}


def figure(page: str, key: str) -> str:
    found = re.search(rf'id="n-{key}">.*?<dd class="value">(.*?)</dd>', page, re.DOTALL)
    assert found, key
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


async def trial(client, owner, shop, stripe_env, settings, sessions, email: str) -> None:
    _, path = await sell(client, owner, shop, title="Trial club", pricing="recurring", amount=900, interval_months=1, trial_days=14)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email=email)), outcome="success")
    await deliver_all(client, stripe_env, settings, sessions)


async def test_the_numbers_equal_the_ledger_and_hold_their_window(client, owner, shop, stripe_env, sessions, settings) -> None:
    cid = shop["community"]["id"]
    sandbox = stripe_env.sandbox

    # First (the sandbox's clock moves a month): a subscription whose renewal fails.
    failing = await subscribe(client, owner, shop, stripe_env, settings, sessions, email="late@example.com", title="Monthly club", amount=2000)
    sandbox.set_card_declines(failing.customer_id, True)
    sandbox.advance_clock(period_end(sandbox, failing) - sandbox.now() + 60)
    await deliver_all(client, stripe_env, settings, sessions)

    # Purchases, a partial refund, a lost chargeback; a monthly, a quarterly and a trialing subscription.
    buyer, first = await buy(client, owner, shop, stripe_env, settings, email="a@example.com", title="Pass", amount=4900)
    _, second = await buy(client, owner, shop, stripe_env, settings, email="b@example.com", title="Course", amount=2500)
    assert (await refund(client, owner, shop, first, amount=1000, reason="goodwill")).status_code == 201
    opened = sandbox.dispute(sandbox.get(second["stripe_payment_intent_id"])["latest_charge"], amount=500)
    sandbox.close_dispute(opened["id"], won=False)
    await deliver_all(client, stripe_env, settings, sessions)
    assert (await read(client, owner, shop, second))["disputed_amount"] == 500
    await subscribe(client, owner, shop, stripe_env, settings, sessions, email="m@example.com", title="Monthly", amount=1500)
    await subscribe(client, owner, shop, stripe_env, settings, sessions, email="q@example.com", title="Quarterly", amount=3000, interval_months=3)
    await trial(client, owner, shop, stripe_env, settings, sessions, "t@example.com")

    # Comps: one cancelled now, one cancelled at a later date (still running).
    free = await make_offer(sessions, cid, "Guest pass")
    gone = await comp(client, owner, cid, free, "gone@example.com")
    later = await comp(client, owner, cid, free, "later@example.com")
    end = f"{API}/communities/{cid}/entitlements"
    assert (await client.post(f"{end}/{gone['id']}/end", json={"status": "cancelled"}, headers=owner.headers)).status_code == 200
    at = (dt.datetime.now(dt.UTC) + 5 * DAY).isoformat()
    assert (await client.post(f"{end}/{later['id']}/end", json={"status": "cancelled", "at": at}, headers=owner.headers)).status_code == 200

    # The window's edges: payments and first starts at its first instant count, a second before do not.
    since, until = window(dt.datetime.now(dt.UTC))
    edge = await sign_up(client, "edge@example.com")
    before = await sign_up(client, "before@example.com")
    async with sessions() as session, session.begin():
        for user, moment in ((edge.id, since), (before.id, since - dt.timedelta(seconds=1))):
            await session.execute(text(
                "INSERT INTO entitlements (community_id, offer_id, user_id, source, status, note, starts_at, ends_at)"
                " VALUES (:c, :o, :u, 'comp', 'cancelled', '', :at, :at)"), {"c": cid, "o": free, "u": user, "at": moment})
            await billing.record_payment(
                session, community_id=cid, user_id=user, offer_id=first["offer_id"], entitlement_id=None, checkout_id=None,
                kind="purchase", amount=700, discount_amount=0, currency="EUR", stripe_account_id=None,
                stripe_payment_intent_id=f"pi_edge_{user}", paid_at=moment,
            )

    # Another community's ledger: none of it is ours.
    stranger = await sign_up(client, "stranger@example.com")
    theirs = await create_community(client, stranger, "Elsewhere")
    their_offer = await make_offer(sessions, theirs["id"], "Theirs")
    async with sessions() as session, session.begin():
        await billing.record_payment(
            session, community_id=theirs["id"], user_id=buyer.id, offer_id=their_offer, entitlement_id=None, checkout_id=None,
            kind="purchase", amount=99_900, discount_amount=0, currency="USD", stripe_account_id=None, stripe_payment_intent_id="pi_theirs",
        )
    await comp(client, stranger, theirs["id"], their_offer, "a@example.com")

    got = await client.get(numbers_url(cid), headers=owner.headers)
    assert got.status_code == 200, got.text
    numbers = got.json()
    sums = await ledger(sessions, cid, since, until)
    assert (numbers["window_start"], numbers["window_end"]) == (since.isoformat().replace("+00:00", "Z"), until.isoformat().replace("+00:00", "Z"))

    # Each figure as the ledger sums it, and as the story above says it should be.
    assert numbers["revenue"] == sums["revenue"]
    assert sums["revenue"] == [
        {"currency": "EUR", "payments": 1, "paid_amount": 700, "refunded_amount": 0, "disputed_amount": 0, "net_amount": 700},
        {"currency": "USD", "payments": 5, "paid_amount": 2000 + 4900 + 2500 + 1500 + 3000, "refunded_amount": 1000,
         "disputed_amount": 500, "net_amount": 13900 - 1500},
    ]
    assert numbers["members"] == sums["members"]
    # late, a, b, m, q, t, gone, later, edge hold or held; all but gone and edge hold now.
    assert sums["members"] == {"active": 7, "new": 9, "cancelled": 2, "set_to_end": 1}
    assert {r["currency"]: r["monthly_amount"] for r in numbers["recurring"]} == sums["mrr"] == {"USD": 1500 + 3000 // 3}
    assert [(r["currency"], r["subscriptions"], r["trialing"], r["trialing_monthly_amount"]) for r in numbers["recurring"]] == [("USD", 2, 1, 900)]
    assert sums["trialing"] == {"USD": 1}
    failing_now = numbers["failing_payments"]
    assert failing_now["count"] == 1 and [(f["entitlement_id"], f["email"], f["offer_title"]) for f in failing_now["items"]] == [
        (e, email, title) for e, email, title, _ in sums["failing"]
    ] == [(failing_now["items"][0]["entitlement_id"], "late@example.com", "Monthly club")]
    assert failing_now["items"][0]["grace_ends_at"] is not None
    assert numbers["failed_jobs"] == {"count": 0, "items": []}

    # The 90 days: one row a day ending today; the last 30 add up to the 30-day figures, all 90 to the ledger.
    days = numbers["days"]
    assert len(days) == 90 and days[-1]["date"] == (until - DAY).date().isoformat()
    last30 = days[-30:]
    assert sum(d["new_members"] for d in last30) == numbers["members"]["new"]
    for line in numbers["revenue"]:
        assert sum(d["revenue"].get(line["currency"], 0) for d in last30) == line["net_amount"]
    assert {c: sum(d["revenue"].get(c, 0) for d in days) for c in sums["ninety"]} == sums["ninety"]
    # Every payment here is inside the 90 days: the series adds up to the payments API's own net per currency.
    per_offer = (await client.get(f"{API}/communities/{cid}/payments/revenue", headers=owner.headers)).json()
    api_net: dict[str, int] = {}
    for line in per_offer:
        api_net[line["currency"]] = api_net.get(line["currency"], 0) + line["net_amount"]
    assert api_net == sums["ninety"] == {"USD": 12400, "EUR": 1400}
    assert days[-31]["revenue"] == {"EUR": 700} and days[-30]["revenue"].get("EUR") == 700  # a second apart, each side of the edge

    # The home page shows the same figures, in major units.
    await login(client, owner)
    page = (await client.get(f"/dashboard/communities/{cid}")).text
    assert (figure(page, "active"), figure(page, "new"), figure(page, "cancelled"), figure(page, "failing")) == ("7", "9", "2", "1")
    assert figure(page, "revenue") == "7.00 EUR 124.00 USD"
    assert figure(page, "mrr") == "25.00 USD"
    assert 'id="n-set-to-end">1<' in page and "late@example.com" in page and "Monthly club" in page
    assert '<svg role="img" aria-labelledby="chart-USD-title chart-USD-desc"' in page and 'id="chart-EUR"' in page
    assert page.count("<tr data-date=") == 90 and 'id="failed-jobs"' in page and 'id="no-failed-jobs"' in page
    assert "Net revenue, EUR" in page and "12400" not in page  # major units only


async def test_staff_read_owners_retry_and_outsiders_learn_nothing(client, owner, community, sessions, settings) -> None:
    cid = community["id"]
    async with sessions() as session, session.begin():
        job = await jobs.enqueue(session, "test.no_such_handler", community_id=cid)
    await run_jobs(settings)  # no handler: it fails for good at once
    manny = await sign_up(client, "manny@example.com")
    await client.put(f"{API}/communities/{cid}/staff", json={"email": manny.email, "role": "manager"}, headers=owner.headers)
    buyer = await sign_up(client, "buyer@example.com")
    await comp(client, owner, cid, await make_offer(sessions, cid, "Free"), buyer.email)
    stranger = await sign_up(client, "stranger@example.com")

    as_owner = (await client.get(numbers_url(cid), headers=owner.headers)).json()
    assert as_owner["failed_jobs"]["count"] == 1 and as_owner["failed_jobs"]["items"][0]["name"] == "test.no_such_handler"
    as_manager = await client.get(numbers_url(cid), headers=manny.headers)
    assert as_manager.status_code == 200 and as_manager.json()["failed_jobs"] is None  # jobs are owners' and admins'
    assert as_manager.json()["members"] == as_owner["members"] == {"active": 1, "new": 1, "cancelled": 0, "set_to_end": 0}
    assert (await client.get(numbers_url(cid), headers=buyer.headers)).status_code == 403  # a member, not staff
    assert (await client.get(numbers_url(cid), headers=stranger.headers)).status_code == 404
    assert (await client.get(numbers_url(987654), headers=owner.headers)).status_code == 404

    # The manager's home: the numbers, no jobs, and a retry refused.
    retry = f"/dashboard/communities/{cid}/jobs/{job.id}/retry"
    await login(client, manny)
    home = await client.get(f"/dashboard/communities/{cid}")
    assert home.status_code == 200 and 'id="n-active"' in home.text and 'id="failed-jobs"' not in home.text
    token = CSRF.search(home.text).group(1)
    assert (await client.post(retry, data={"_csrf_token": token})).status_code == 403
    assert (await client.post(f"{API}/communities/{cid}/jobs/{job.id}/retry", headers=manny.headers)).status_code == 403

    # The owner retries it from the home page: back in line, said once; a second click changes nothing.
    await client.post("/logout", data={"_csrf_token": token})
    await login(client, owner)
    home = await client.get(f"/dashboard/communities/{cid}")
    assert f'action="{retry}"' in home.text and "test.no_such_handler" in home.text
    token = CSRF.search(home.text).group(1)
    assert (await client.post(retry, data={})).status_code == 403  # no CSRF token: refused
    done = await client.post(retry, data={"_csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == f"/dashboard/communities/{cid}"
    assert "will run again shortly" in (await client.get(done.headers["location"])).text
    async with sessions() as session:
        assert (await session.scalar(text("SELECT state FROM outbox WHERE id = :i"), {"i": job.id})) == "pending"
    again = await client.post(retry, data={"_csrf_token": token})
    assert again.status_code == 303 and "retried already" in (await client.get(f"/dashboard/communities/{cid}")).text
    # Another community's job, or none: 404, nothing retried.
    theirs = await create_community(client, stranger, "Elsewhere")
    async with sessions() as session, session.begin():
        foreign = await jobs.enqueue(session, "test.no_such_handler", community_id=theirs["id"])
    assert (await client.post(f"/dashboard/communities/{cid}/jobs/{foreign.id}/retry", data={"_csrf_token": token})).status_code == 404
