"""Resell rights in the console and the API's additions, over HTTP: the report over a range of
UTC days (both ends, per currency, clicks too), a bad date refused naming its parameter, the
CSVs with the lists' filters (the console's links carry them), suspend and mark-paid refusals on
their forms, foreign ids 404, and managers who read and download but change nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from community.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Click,
    Commission,
    CommissionState,
    LedgerEntry,
)
from community.billing.models import Payment
from tests.checkout_helpers import API, CSRF
from tests.conftest import Account, create_community, sign_up
from tests.helpers import run_jobs
from tests.test_commissions import (
    PAID_AT,
    Program,
    add_affiliate,
    buy,
    make_program,
    set_program,
)
from tests.test_console_access_pages import form_post
from tests.test_memberships import login
from tests.test_payouts import approve, create

DAY = dt.date(2030, 1, 16)  # the day after PAID_AT's


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.text)))


async def to_euros(sessions, payment_id: int) -> None:
    """A payment (and what it earned) in EUR: the same program selling in a second currency."""
    async with sessions() as session, session.begin():
        await session.execute(update(Payment).where(Payment.id == payment_id).values(currency="EUR"))
        commission = await session.scalar(select(Commission.id).where(Commission.payment_id == payment_id))
        await session.execute(update(Commission).where(Commission.payment_id == payment_id).values(currency="EUR"))
        await session.execute(update(LedgerEntry).where(LedgerEntry.commission_id == commission).values(currency="EUR"))


async def click(sessions, p: Program, at: dt.datetime) -> None:
    async with sessions() as session, session.begin():
        session.add(Click(community_id=p.community_id, affiliate_id=p.affiliate_id, offer_id=p.offer_id,
                          visitor_hash=f"v{at.timestamp()}", ip_hash="i", at=at))


async def sale(client, sessions, p: Program, email: str, at: dt.datetime) -> int:
    return (await buy(sessions, p, buyer=await sign_up(client, email), paid_at=at)).payment_id


@pytest.fixture
async def program(client: httpx.AsyncClient, sessions, community: dict[str, Any]) -> Program:
    p = await make_program(client, sessions, community["id"])
    await set_program(sessions, p.offer_id, resell_min_payout=500)
    return p


async def test_the_report_counts_the_sales_and_clicks_of_its_utc_days_per_currency(
    client, sessions, settings, owner: Account, program: Program
) -> None:
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    await sale(client, sessions, program, "before@example.com", start - dt.timedelta(seconds=1))  # the day before
    await sale(client, sessions, program, "first@example.com", start)  # the first instant
    last = await sale(client, sessions, program, "last@example.com", start + dt.timedelta(days=1, seconds=-1))
    await sale(client, sessions, program, "after@example.com", start + dt.timedelta(days=1))  # the next day
    for at in (start - dt.timedelta(seconds=1), start, start + dt.timedelta(hours=5), start + dt.timedelta(days=1)):
        await click(sessions, program, at)
    await run_jobs(settings)
    await to_euros(sessions, last)
    base = f"{API}/communities/{program.community_id}/affiliates"

    def lines(report: dict[str, Any], per: str) -> dict[str, tuple]:
        return {line["totals"]["currency"]: (line["clicks"], line["totals"]["sales"], line["totals"]["pending"])
                for line in report[per]}

    day = (await client.get(f"{base}/report", params={"from": "2030-01-16", "to": "2030-01-16"}, headers=owner.headers)).json()
    assert lines(day, "per_affiliate") == {"EUR": (2, 1, 300), "USD": (2, 1, 300)}
    assert lines(day, "per_offer") == {"EUR": (2, 1, 300), "USD": (2, 1, 300)}
    since = (await client.get(f"{base}/report", params={"from": "2030-01-16"}, headers=owner.headers)).json()
    assert lines(since, "per_affiliate") == {"EUR": (3, 1, 300), "USD": (3, 2, 600)}
    until = (await client.get(f"{base}/report", params={"to": "2030-01-15"}, headers=owner.headers)).json()
    assert lines(until, "per_affiliate") == {"USD": (1, 1, 300)}
    everything = (await client.get(f"{base}/report", headers=owner.headers)).json()
    assert lines(everything, "per_affiliate") == {"EUR": (4, 1, 300), "USD": (4, 3, 900)}
    empty = (await client.get(f"{base}/report", params={"from": "2031-01-01"}, headers=owner.headers)).json()
    assert lines(empty, "per_affiliate") == {"USD": (0, 0, 0)}  # an affiliate with nothing: zeros in the offer's currency

    rows = rows_of(await client.get(f"{base}/report.csv", params={"from": "2030-01-16", "to": "2030-01-16"}, headers=owner.headers))
    assert sorted((r["currency"], r["sales"], r["pending"], r["revenue"]) for r in rows) == [
        ("EUR", "1", "3.00", "10.00"), ("USD", "1", "3.00", "10.00"),
    ]
    offer_rows = rows_of(await client.get(f"{base}/report.csv", params={"per": "offer", "to": "2030-01-15"}, headers=owner.headers))
    assert [(r["offer_id"], r["sales"]) for r in offer_rows] == [(str(program.offer_id), "1")]

    for params, name in (({"from": "2030-02-30"}, "from"), ({"to": "yesterday"}, "to"), ({"from": "2030-01-17", "to": "2030-01-16"}, "to")):
        for path in ("/report", "/report.csv"):
            refused = await client.get(f"{base}{path}", params=params, headers=owner.headers)
            assert refused.status_code in (400, 422), (params, refused.text)
            assert name in refused.text, refused.text

    # The console's report: the same numbers in major units, its CSV links carrying the range.
    await login(client, owner)
    page = await client.get(f"/dashboard/communities/{program.community_id}/resell/report", params={"from": "2030-01-16", "to": "2030-01-16"})
    assert page.status_code == 200, page.text
    assert "3.00 EUR" in page.text and "3.00 USD" in page.text and ">300<" not in page.text
    link = re.search(r'id="report-affiliate-csv"', page.text) and re.search(r'href="([^"]*report\.csv[^"]*per=affiliate[^"]*)"', page.text)
    assert link and "from=2030-01-16" in link.group(1) and "to=2030-01-16" in link.group(1)
    downloaded = rows_of(await client.get(link.group(1).replace("&amp;", "&")))
    assert sorted(r["currency"] for r in downloaded) == ["EUR", "USD"]
    bad = await client.get(f"/dashboard/communities/{program.community_id}/resell/report", params={"from": "2030-13-01"})
    assert bad.status_code == 422 and 'id="e-from"' in bad.text and "must be a day like" in bad.text


async def test_the_csvs_follow_the_lists_filters(client, sessions, settings, owner: Account, program: Program) -> None:
    cid = program.community_id
    other_user = await sign_up(client, "second@example.com", name="=cmd|x")
    other = await add_affiliate(sessions, cid, program.offer_id, other_user.id, status=AffiliateStatus.suspended)
    await sale(client, sessions, program, "b1@example.com", PAID_AT)
    await sale(client, sessions, program, "b2@example.com", PAID_AT)
    await run_jobs(settings)
    await approve(sessions)
    await sale(client, sessions, program, "b3@example.com", PAID_AT + dt.timedelta(days=40))  # still in its hold
    await run_jobs(settings)
    (payout,) = await create(sessions, cid)
    api = f"{API}/communities/{cid}/affiliates"

    suspended = rows_of(await client.get(f"{api}/list.csv", params={"status": "suspended"}, headers=owner.headers))
    assert [(r["affiliate_id"], r["name"], r["status"]) for r in suspended] == [(str(other), "'=cmd|x", "suspended")]
    everyone = rows_of(await client.get(f"{api}/list.csv", params={"offer_id": program.offer_id}, headers=owner.headers))
    assert [(r["email"], r["sales"], r["currency"], r["pending"], r["approved"], r["paid"]) for r in everyone] == [
        ("aff@example.com", "3", "USD", "3.00", "6.00", "0.00"),  # the held sale; the two in the open payout
        ("second@example.com", "0", "", "0", "0", "0"),
    ]
    pending = rows_of(await client.get(f"{api}/commissions.csv", params={"state": "pending"}, headers=owner.headers))
    assert [(r["state"], r["commission"], r["currency"]) for r in pending] == [("pending", "3.00", "USD")]
    assert len(rows_of(await client.get(f"{api}/commissions.csv", headers=owner.headers))) == 3
    assert rows_of(await client.get(f"{api}/payouts.csv", params={"state": "paid"}, headers=owner.headers)) == []
    assert rows_of(await client.get(f"{api}/payouts.csv", params={"affiliate_id": other}, headers=owner.headers)) == []
    (open_row,) = rows_of(await client.get(f"{api}/payouts.csv", params={"state": "open"}, headers=owner.headers))
    assert (open_row["payout_id"], open_row["amount"], open_row["email"]) == (str(payout.id), "6.00", "aff@example.com")

    # The console: each list's CSV link carries its filters, and gives what the list shows.
    await login(client, owner)
    base = f"/dashboard/communities/{cid}/resell"
    listed = await client.get(base, params={"status": "suspended", "offer_id": program.offer_id})
    assert listed.status_code == 200 and "second@example.com" in listed.text and "aff@example.com" not in listed.text
    href = re.search(r'href="([^"]+)" id="affiliates-csv"', listed.text).group(1).replace("&amp;", "&")
    assert "status=suspended" in href and f"offer_id={program.offer_id}" in href
    assert [r["email"] for r in rows_of(await client.get(href))] == ["second@example.com"]
    assert (await client.get(base, params={"offer_id": "", "status": ""})).text.count("data-affiliate=") == 2  # "All"
    refused = await client.get(base, params={"status": "gone"})
    assert refused.status_code == 422 and "status" in refused.text
    commissions = await client.get(f"{base}/commissions", params={"state": "approved", "affiliate_id": program.affiliate_id})
    href = re.search(r'href="([^"]+)" id="commissions-csv"', commissions.text).group(1).replace("&amp;", "&")
    assert "state=approved" in href and f"affiliate_id={program.affiliate_id}" in href
    assert [(r["state"], r["commission"]) for r in rows_of(await client.get(href))] == [("approved", "3.00")] * 2
    payouts_page = await client.get(f"{base}/payouts", params={"state": "open"})
    href = re.search(r'href="([^"]+)" id="payouts-csv"', payouts_page.text).group(1).replace("&amp;", "&")
    assert "state=open" in href and [r["amount"] for r in rows_of(await client.get(href))] == ["6.00"]
    lines = rows_of(await client.get(f"{base}/payouts/{payout.id}/lines.csv"))
    assert [(r["kind"], r["amount"]) for r in lines] == [("earned", "3.00")] * 2
    assert 'id="no-balances"' in (await client.get(f"{base}/balances")).text  # the run took it; the held sale waits


async def test_suspending_and_marking_paid_on_their_pages(client, sessions, settings, owner: Account, program: Program) -> None:
    cid = program.community_id
    await sale(client, sessions, program, "b1@example.com", PAID_AT)
    await sale(client, sessions, program, "b2@example.com", PAID_AT)
    await run_jobs(settings)
    await approve(sessions)
    await login(client, owner)
    base = f"/dashboard/communities/{cid}/resell"

    confirm = await client.get(f"{base}/affiliates/{program.affiliate_id}/suspend")
    assert confirm.status_code == 200 and "still leads to Pro" in confirm.text and "earn nothing" in confirm.text
    done = await form_post(client, confirm.url.path, confirm.url.path, {})
    assert done.status_code == 303
    async with sessions() as session:
        assert (await session.get(Affiliate, program.affiliate_id)).status is AffiliateStatus.suspended
    back = await form_post(client, f"{base}/affiliates/{program.affiliate_id}/reinstate", f"{base}/affiliates/{program.affiliate_id}/reinstate", {})
    assert back.status_code == 303
    assert (await client.get(f"{base}/affiliates/{program.affiliate_id}/delete")).status_code == 404

    balances = await client.get(f"{base}/balances")
    assert "6.00 USD" in balances.text and "5.00 USD" in balances.text and 'id="payout-run-link"' in balances.text
    run = await client.get(f"{base}/payouts/new")
    assert run.status_code == 200 and "6.00 USD" in run.text and "aff@example.com" in run.text
    made = await form_post(client, f"{base}/payouts/new", f"{base}/payouts/new", {})
    assert made.status_code == 303 and "payouts?state=open" in made.headers["location"]
    payout_id = int(re.search(r'data-payout="(\d+)"', (await client.get(f"{base}/payouts")).text).group(1))
    page_url = f"{base}/payouts/{payout_id}"
    blank = await form_post(client, page_url, f"{page_url}/paid", {"reference": ""})
    assert blank.status_code in (400, 422) and 'id="e-reference"' in blank.text and "length &gt;= 1" in blank.text
    spaces = await form_post(client, page_url, f"{page_url}/paid", {"reference": "   "})
    assert spaces.status_code == 422 and 'id="e-reference"' in spaces.text and "transfer reference" in spaces.text
    paid = await form_post(client, page_url, f"{page_url}/paid", {"reference": "SEPA 77"})
    assert paid.status_code == 303
    shown = await client.get(page_url)
    assert 'id="payout-state">Paid' in shown.text and "SEPA 77" in shown.text and 'id="mark-paid"' not in shown.text
    async with sessions() as session:
        states = (await session.scalars(select(Commission.state))).all()
    assert states == [CommissionState.paid, CommissionState.paid]


async def test_foreign_ids_are_not_found_and_managers_only_read(client, sessions, settings, owner: Account, program: Program) -> None:
    cid = program.community_id
    await sale(client, sessions, program, "b1@example.com", PAID_AT)
    await sale(client, sessions, program, "b2@example.com", PAID_AT)
    await run_jobs(settings)
    await approve(sessions)
    (payout,) = await create(sessions, cid)

    stranger = await sign_up(client, "stranger@example.com")
    theirs = await create_community(client, stranger, "Elsewhere")
    await login(client, stranger)
    other = f"/dashboard/communities/{theirs['id']}/resell"
    for path in (f"/payouts/{payout.id}", f"/payouts/{payout.id}/lines.csv", f"/affiliates/{program.affiliate_id}/suspend"):
        assert (await client.get(other + path)).status_code == 404, path
    assert (await client.get(f"{API}/communities/{theirs['id']}/affiliates/payouts/{payout.id}/lines.csv", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"/dashboard/communities/{cid}/resell")).status_code == 404  # not their community
    assert rows_of(await client.get(f"{other}/payouts.csv")) == []

    manager = await sign_up(client, "manager@example.com")
    await client.put(f"{API}/communities/{cid}/staff", json={"email": manager.email, "role": "manager"}, headers=owner.headers)
    client.cookies.clear()  # a new browser
    await login(client, manager)
    base = f"/dashboard/communities/{cid}/resell"
    for path in ("", "/balances", "/payouts", f"/payouts/{payout.id}", "/commissions", "/report"):
        page = await client.get(base + path)
        assert page.status_code == 200, (path, page.text)
        assert 'id="read-only"' in page.text or path in ("/payouts", "/commissions", "/report"), path
        assert "suspend-link" not in page.text and 'id="payout-run-link"' not in page.text and 'id="mark-paid"' not in page.text
    assert len(rows_of(await client.get(f"{base}/payouts/{payout.id}/lines.csv"))) == 2
    for path in ("/payouts/new", f"/affiliates/{program.affiliate_id}/suspend"):
        assert (await client.get(base + path)).status_code == 403, path
    csrf = {"_csrf_token": CSRF.search((await client.get("/dashboard/communities/new")).text).group(1)}
    assert (await client.post(f"{base}/payouts/{payout.id}/paid", data={**csrf, "reference": "x"})).status_code == 403
    assert (await client.post(f"{base}/affiliates/{program.affiliate_id}/suspend", data=csrf)).status_code == 403
    assert (await client.post(f"{base}/payouts/new", data=csrf)).status_code == 403
