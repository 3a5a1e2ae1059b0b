"""The payments list and a payment's page, through the API and the console over HTTP: the
filters (offer, status, dates paid, buyer's email) narrow the list, the API's page and its CSV
alike; bad filters are 422s naming their parameter; the CSV is amounts in major units beside a
currency, with cells a spreadsheet would run quoted; foreign ids are 404; managers read and cannot
refund; a refund form sent twice (a double click, a resubmit) makes one refund; refusals come back
next to their field in the API's words; a dispute shows its evidence due date."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from sqlalchemy import func, select, text

from community.billing.models import Dispute, Refund
from tests import test_checkout
from tests.checkout_helpers import API, CSRF, deliver_and_process
from tests.conftest import create_community, sign_up
from tests.test_checkout import can_open
from tests.test_communities import add_staff
from tests.test_memberships import login, subscribe, subscription
from tests.test_refunds import buy, refund

shop = test_checkout.shop  # the fixture: a community with a connected Stripe account and a group to sell
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


async def listed(client, owner, cid: int, **params: Any) -> list[int]:
    response = await client.get(f"{API}/communities/{cid}/payments", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["items"]]


async def two_sales(client, owner, shop, stripe_env, settings, sessions) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bea buys Yoga (49.00), then Cy buys Pilates (19.99); Bea's name is a formula."""
    _bea, first = await buy(client, owner, shop, stripe_env, settings, email="Bea.Buyer@Example.com", title="Yoga", amount=4900)
    _cy, second = await buy(client, owner, shop, stripe_env, settings, email="cy@other.org", title="Pilates", amount=1999)
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE users SET name = '=HYPERLINK(\"http://x\")' WHERE lower(email) = 'bea.buyer@example.com'"))
    return first, second


async def test_filters_narrow_the_list_and_the_csv_alike(client, owner, shop, stripe_env, settings, sessions) -> None:
    cid = shop["community"]["id"]
    first, second = await two_sales(client, owner, shop, stripe_env, settings, sessions)
    assert (await refund(client, owner, shop, first, amount=1000)).status_code == 201
    await deliver_and_process(client, stripe_env, settings)

    assert await listed(client, owner, cid) == [second["id"], first["id"]]  # newest first
    assert await listed(client, owner, cid, limit=1, after=second["id"]) == [first["id"]]
    assert await listed(client, owner, cid, offer_id=second["offer_id"]) == [second["id"]]
    assert await listed(client, owner, cid, status="partially_refunded") == [first["id"]]
    assert await listed(client, owner, cid, status="succeeded") == [second["id"]]
    assert await listed(client, owner, cid, status="disputed") == []
    assert await listed(client, owner, cid, email="BEA.buyer@") == [first["id"]]  # part of it, any case
    assert await listed(client, owner, cid, email="%") == []  # a wildcard is a character, not a pattern
    hour = dt.timedelta(hours=1)
    now = dt.datetime.now(dt.UTC)
    assert await listed(client, owner, cid, paid_from=(now - hour).isoformat(), paid_to=(now + hour).isoformat()) == [
        second["id"], first["id"],
    ]
    assert await listed(client, owner, cid, paid_from=(now + hour).isoformat()) == []
    assert await listed(client, owner, cid, paid_to=(now - hour).isoformat()) == []

    # The CSV: the same filters, every row, amounts in major units beside the currency, formulas quoted.
    response = await client.get(f"{API}/communities/{cid}/payments.csv", params={"email": "bea"}, headers=owner.headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1
    row = rows[0]
    assert (row["payment_id"], row["offer"], row["currency"], row["amount"], row["refunded"], row["net"], row["status"]) == (
        str(first["id"]), "Yoga", "USD", "49.00", "10.00", "39.00", "partially_refunded",
    )
    assert row["buyer_name"].startswith("'=") and row["buyer_email"].lower() == "bea.buyer@example.com"
    every = await client.get(f"{API}/communities/{cid}/payments.csv", headers=owner.headers)
    assert [r["amount"] for r in csv.DictReader(io.StringIO(every.text))] == ["19.99", "49.00"]

    # The console's list and its download link carry the same filters.
    await login(client, owner)
    page = await client.get(f"/dashboard/communities/{cid}/payments", params={"status": "partially_refunded"})
    assert page.status_code == 200
    assert f'data-payment="{first["id"]}"' in page.text and f'data-payment="{second["id"]}"' not in page.text
    assert "49.00 USD" in page.text and "4900" not in page.text
    assert f'href="/dashboard/communities/{cid}/payments.csv?status=partially_refunded"' in page.text
    download = await client.get(f"/dashboard/communities/{cid}/payments.csv", params={"status": "partially_refunded"})
    assert [r["payment_id"] for r in csv.DictReader(io.StringIO(download.text))] == [str(first["id"])]
    today = now.strftime("%Y-%m-%d")
    by_day = await client.get(f"/dashboard/communities/{cid}/payments", params={"paid_from": today, "paid_to": today})
    assert f'data-payment="{first["id"]}"' in by_day.text  # the "until" day is included


async def test_bad_filters_are_422s_naming_their_parameter(client, owner, shop) -> None:
    cid = shop["community"]["id"]
    for params, field in (
        ({"status": "paid"}, "status"),
        ({"paid_from": "yesterday"}, "paid_from"),
        ({"paid_to": "2026-12-01T00:00:00"}, "paid_to"),  # no time zone
        ({"paid_from": "2026-12-02T00:00:00Z", "paid_to": "2026-12-01T00:00:00Z"}, "paid_to"),
    ):
        for path in ("payments", "payments.csv"):
            response = await client.get(f"{API}/communities/{cid}/{path}", params=params, headers=owner.headers)
            assert response.status_code == 422, (path, params, response.text)
            assert response.json()["errors"][0]["field"] == field
    await login(client, owner)
    page = await client.get(f"/dashboard/communities/{cid}/payments", params={"status": "paid", "paid_to": "31/12/2026"})
    assert page.status_code == 422 and 'class="field-error"' in page.text


async def test_foreign_ids_are_404(client, owner, shop, stripe_env, settings, sessions) -> None:
    cid = shop["community"]["id"]
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, title="Yoga")
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other Club")
    for path in (f"payments/{payment['id']}", f"payments/{payment['id']}/refunds", f"payments/{payment['id']}/disputes"):
        assert (await client.get(f"{API}/communities/{other['id']}/{path}", headers=other_owner.headers)).status_code == 404
        assert (await client.get(f"{API}/communities/{cid}/{path}", headers=other_owner.headers)).status_code == 404
    assert await listed(client, other_owner, other["id"]) == []
    stolen = await client.post(
        f"{API}/communities/{other['id']}/payments/{payment['id']}/refunds", json={}, headers=other_owner.headers
    )
    assert stolen.status_code == 404
    await login(client, other_owner)
    assert (await client.get(f"/dashboard/communities/{other['id']}/payments/{payment['id']}")).status_code == 404
    assert (await client.get(f"/dashboard/communities/{cid}/payments")).status_code == 404

    assert await listed(client, owner, cid) == [payment["id"]]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Refund)) == 0


async def test_a_manager_reads_payments_and_cannot_refund(client, owner, shop, stripe_env, settings, sessions) -> None:
    cid = shop["community"]["id"]
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, title="Yoga")
    manny = await sign_up(client, "manny@example.com")
    assert (await add_staff(client, shop["community"], owner, manny.email, "manager")).status_code in (200, 201)
    assert await listed(client, manny, cid) == [payment["id"]]
    assert (await client.get(f"{API}/communities/{cid}/payments.csv", headers=manny.headers)).status_code == 200
    assert (await refund(client, manny, shop, payment)).status_code == 403
    await login(client, manny)
    shown = await client.get(f"/dashboard/communities/{cid}/payments/{payment['id']}")
    assert shown.status_code == 200 and 'id="refund-form"' not in shown.text and "cancel-now-link" not in shown.text
    listed_page = await client.get(f"/dashboard/communities/{cid}/payments")
    token = CSRF.search(listed_page.text).group(1) if CSRF.search(listed_page.text) else ""
    forged = await client.post(
        f"/dashboard/communities/{cid}/payments/{payment['id']}/refund", data={"_csrf_token": token, "amount": "1.00"}
    )
    assert forged.status_code == 403
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Refund)) == 0


async def refund_form(client, cid: int, payment_id: int) -> tuple[str, dict[str, str]]:
    page = await client.get(f"/dashboard/communities/{cid}/payments/{payment_id}")
    assert page.status_code == 200, page.text
    return page.text, {"_csrf_token": CSRF.search(page.text).group(1), "idempotency_key": KEY.search(page.text).group(1)}


async def test_a_refund_form_sent_twice_makes_one_refund(client, owner, shop, stripe_env, settings, sessions) -> None:
    cid = shop["community"]["id"]
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, title="Yoga", amount=4900)
    await login(client, owner)
    action = f"/dashboard/communities/{cid}/payments/{payment['id']}/refund"
    page, hidden = await refund_form(client, cid, payment["id"])
    assert 'value="49.00"' in page  # the rest refundable, in major units

    # Refusals: next to the amount, in the API's words; nothing written.
    over = await client.post(action, data={**hidden, "amount": "50.00"})
    assert over.status_code == 422 and 'id="e-amount"' in over.text and "must be between 1 and what is left, 49.00 USD" in over.text
    too_fine = await client.post(action, data={**hidden, "amount": "1.005"})
    assert too_fine.status_code == 422 and "USD amounts have at most 2 decimals" in too_fine.text
    assert KEY.search(over.text).group(1) == hidden["idempotency_key"]  # the form shown again keeps its key

    sent = [await client.post(action, data={**hidden, "amount": "12.50", "reason": "late"}) for _ in range(2)]
    assert [r.status_code for r in sent] == [303, 303]
    async with sessions() as session:
        made = (await session.scalars(select(Refund))).all()
    assert [(r.amount, r.reason, r.revoke_access) for r in made] == [(1250, "late", False)]
    await deliver_and_process(client, stripe_env, settings)
    shown = await client.get(f"/dashboard/communities/{cid}/payments/{payment['id']}")
    assert 'id="refunded">12.50 USD' in shown.text and '<strong>36.50 USD</strong>' in shown.text
    assert 'value="36.50"' in shown.text and KEY.search(shown.text).group(1) != hidden["idempotency_key"]


async def test_a_dispute_shows_its_state_and_evidence_due_date(client, owner, shop, stripe_env, settings, sessions) -> None:
    cid = shop["community"]["id"]
    _buyer, payment = await buy(client, owner, shop, stripe_env, settings, title="Yoga", amount=4900)
    charge_id = stripe_env.sandbox.get(payment["stripe_payment_intent_id"])["latest_charge"]
    opened = stripe_env.sandbox.dispute(charge_id)
    await deliver_and_process(client, stripe_env, settings)
    due = dt.datetime.fromtimestamp(stripe_env.sandbox.get(opened["id"])["evidence_details"]["due_by"], dt.UTC)
    async with sessions() as session:
        row = await session.scalar(select(Dispute))
    assert row.evidence_due_by == due
    answered = await client.get(f"{API}/communities/{cid}/payments/{payment['id']}/disputes", headers=owner.headers)
    assert answered.status_code == 200
    assert [(d["status"], d["amount"], dt.datetime.fromisoformat(d["evidence_due_by"])) for d in answered.json()] == [
        (row.status, 4900, due)
    ]
    await login(client, owner)
    shown = await client.get(f"/dashboard/communities/{cid}/payments/{payment['id']}")
    assert f"Respond in your Stripe dashboard by {due.strftime('%d %b %Y, %H:%M UTC')}" in shown.text
    assert 'id="disputed">49.00 USD' in shown.text and 'id="nothing-to-refund"' in shown.text


async def test_cancel_now_from_a_subscriptions_payment_stops_stripe_and_access(
    client, owner, shop, stripe_env, settings, sessions
) -> None:
    cid = shop["community"]["id"]
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    [payment_id] = await listed(client, owner, cid)
    await login(client, owner)
    shown = await client.get(f"/dashboard/communities/{cid}/payments/{payment_id}")
    assert f'href="/dashboard/communities/{cid}/entitlements/{entitlement_id}/cancel-now"' in shown.text
    assert "A subscription cannot be ended at a later date by staff" in shown.text and "end-at-date-link" not in shown.text
    assert "Their subscription keeps renewing unless you tick it" in shown.text

    page_url = f"/dashboard/communities/{cid}/entitlements/{entitlement_id}/cancel-now"
    confirm = await client.get(page_url)
    assert confirm.status_code == 200 and 'id="stripe-note"' in confirm.text and "Stripe stops charging" in confirm.text
    assert await can_open(client, cid, shop["group_id"], member.headers)  # nothing happens before the confirmation
    done = await client.post(page_url, data={"_csrf_token": CSRF.search(confirm.text).group(1)})
    assert done.status_code == 303 and done.headers["location"] == f"/dashboard/communities/{cid}/entitlements/{entitlement_id}"
    sub = await subscription(sessions)
    assert stripe_env.sandbox.get(sub.stripe_subscription_id)["status"] == "canceled" and sub.status == "canceled"
    assert not await can_open(client, cid, shop["group_id"], member.headers)
    again = await client.post(page_url, data={"_csrf_token": CSRF.search(confirm.text).group(1)})
    assert again.status_code == 409 and "already ended" in again.text
