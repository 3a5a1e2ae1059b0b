"""The payments ledger: a payment is recorded once however often (and however concurrently) a
webhook delivers it, totals are net of refunds per currency, and the API lists payments to staff
of their own community only."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from community.billing import service
from community.billing.models import Payment
from community.errors import Conflict
from tests.conftest import Account, create_community, sign_up

API = "/api/v1"
PAID_AT = dt.datetime(2030, 3, 1, 9, 30, tzinfo=dt.UTC)


async def make_offer(client: httpx.AsyncClient, community_id: int, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": "Pass", "pricing": "one_time", "amount": 1000, **fields}
    response = await client.post(f"{API}/communities/{community_id}/offers", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def shop(client: httpx.AsyncClient, community: dict[str, Any], owner: Account) -> dict[str, Any]:
    """A community with two offers and two buyers."""
    return {
        "community_id": community["id"],
        "offer": await make_offer(client, community["id"], owner),
        "euro_offer": await make_offer(client, community["id"], owner, title="Euro", currency="EUR", amount=2000),
        "ann": await sign_up(client, "ann@example.com"),
        "bob": await sign_up(client, "bob@example.com"),
    }


async def record(sessions, shop: dict[str, Any], **fields: Any) -> Payment:
    args: dict[str, Any] = {
        "community_id": shop["community_id"],
        "user_id": shop["ann"].id,
        "offer_id": shop["offer"]["id"],
        "entitlement_id": None,
        "checkout_id": None,
        "kind": "purchase",
        "amount": 1000,
        "discount_amount": 0,
        "currency": "USD",
        "stripe_account_id": "acct_1",
        **fields,
    }
    async with sessions() as session, session.begin():
        return await service.record_payment(session, **args)


async def payment_count(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Payment))


async def test_a_payment_is_recorded_with_its_fields(sessions, shop: dict[str, Any]) -> None:
    payment = await record(
        sessions, shop, checkout_id=41, amount=900, discount_amount=100, currency="usd",
        stripe_checkout_session_id="cs_1", stripe_payment_intent_id="pi_1", stripe_charge_id="ch_1", paid_at=PAID_AT,
    )
    assert payment.id and payment.kind.value == "purchase" and payment.status.value == "succeeded"
    assert (payment.amount, payment.discount_amount, payment.currency, payment.refunded_amount) == (900, 100, "USD", 0)
    assert (payment.stripe_checkout_session_id, payment.stripe_payment_intent_id, payment.stripe_charge_id) == (
        "cs_1", "pi_1", "ch_1",
    )
    assert payment.paid_at == PAID_AT and payment.checkout_id == 41


async def test_duplicates_return_the_first_row(sessions, shop: dict[str, Any]) -> None:
    first = await record(sessions, shop, stripe_payment_intent_id="pi_dup", checkout_id=1)
    # The same payment intent (a webhook delivered twice), even with other details, is the same payment.
    again = await record(sessions, shop, stripe_payment_intent_id="pi_dup", checkout_id=1, amount=1)
    assert again.id == first.id and again.amount == 1000
    # The same purchase checkout, recorded by the completion route without the intent id.
    by_checkout = await record(sessions, shop, checkout_id=1)
    assert by_checkout.id == first.id
    # The same invoice on the same account.
    invoice = await record(sessions, shop, kind="renewal", stripe_invoice_id="in_1", checkout_id=1)
    assert invoice.id != first.id  # a renewal is not the purchase, even for the same checkout
    assert (await record(sessions, shop, kind="renewal", stripe_invoice_id="in_1")).id == invoice.id
    # The same ids on another account are another payment; without an account, ids still match.
    other_account = await record(sessions, shop, stripe_account_id="acct_2", stripe_payment_intent_id="pi_dup")
    assert other_account.id not in (first.id, invoice.id)
    no_account = await record(sessions, shop, stripe_account_id=None, stripe_invoice_id="in_9", kind="renewal")
    assert (await record(sessions, shop, stripe_account_id=None, stripe_invoice_id="in_9", kind="renewal")).id == no_account.id
    # Renewals without Stripe ids are not deduplicated by checkout (only purchases are).
    renewal_a = await record(sessions, shop, kind="renewal", checkout_id=1, stripe_invoice_id="in_2")
    renewal_b = await record(sessions, shop, kind="renewal", checkout_id=1, stripe_invoice_id="in_3")
    assert renewal_a.id != renewal_b.id
    assert await payment_count(sessions) == 6


async def test_concurrent_deliveries_record_one_payment(sessions, shop: dict[str, Any]) -> None:
    """Several deliveries of one payment at once, each in its own transaction: one row, and each
    caller is answered that row."""
    for round_ in range(3):
        gate = asyncio.Event()

        async def deliver(round_=round_, gate=gate) -> int:
            async with sessions() as session, session.begin():
                await gate.wait()
                payment = await service.record_payment(
                    session, community_id=shop["community_id"], user_id=shop["ann"].id,
                    offer_id=shop["offer"]["id"], entitlement_id=None, checkout_id=100 + round_, kind="purchase",
                    amount=1000, discount_amount=0, currency="USD", stripe_account_id="acct_1",
                    stripe_payment_intent_id=f"pi_race_{round_}",
                )
                await asyncio.sleep(0.05)  # keep the transaction open: the others must wait for it
                return payment.id

        tasks = [asyncio.create_task(deliver()) for _ in range(4)]
        await asyncio.sleep(0.01)
        gate.set()
        ids = await asyncio.gather(*tasks)
        assert len(set(ids)) == 1, ids
    assert await payment_count(sessions) == 3


async def test_a_conflict_in_another_community_is_not_answered_with_its_row(
    sessions, shop: dict[str, Any], client: httpx.AsyncClient
) -> None:
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other Guild")
    other_offer = await make_offer(client, other["id"], other_owner)
    await record(sessions, shop, stripe_payment_intent_id="pi_shared")
    with pytest.raises(Conflict):
        await record(
            sessions, {**shop, "community_id": other["id"], "offer": other_offer}, stripe_payment_intent_id="pi_shared"
        )


async def test_refunds_and_total_spent(sessions, shop: dict[str, Any]) -> None:
    cid, ann = shop["community_id"], shop["ann"].id
    one = await record(sessions, shop, stripe_payment_intent_id="pi_a", amount=1000)
    await record(sessions, shop, stripe_invoice_id="in_a", kind="renewal", amount=500)
    await record(sessions, shop, stripe_payment_intent_id="pi_e", amount=2000, currency="EUR", offer_id=shop["euro_offer"]["id"])
    await record(sessions, shop, stripe_payment_intent_id="pi_b", user_id=shop["bob"].id, amount=700)
    async with sessions() as session, session.begin():
        assert await service.total_spent(session, community_id=cid, user_id=ann) == {"EUR": 2000, "USD": 1500}
        refunded = await service.apply_refund(session, community_id=cid, payment_id=one.id, amount_refunded=300)
        assert (refunded.refunded_amount, refunded.status.value) == (300, "partially_refunded")
        # A total, recounted from the refunds Stripe holds: repeated, it changes nothing ...
        await service.apply_refund(session, community_id=cid, payment_id=one.id, amount_refunded=300)
        assert await service.total_spent(session, community_id=cid, user_id=ann) == {"EUR": 2000, "USD": 1200}
        # ... and a refund that failed or was canceled gives its amount back (200 of the 300).
        back = await service.apply_refund(session, community_id=cid, payment_id=one.id, amount_refunded=100)
        assert (back.refunded_amount, back.status.value) == (100, "partially_refunded")
        assert await service.total_spent(session, community_id=cid, user_id=ann) == {"EUR": 2000, "USD": 1400}
        await service.apply_refund(session, community_id=cid, payment_id=one.id, amount_refunded=300)
        full = await service.apply_refund(session, community_id=cid, payment_id=one.id, amount_refunded=5000)
        assert (full.refunded_amount, full.status.value) == (1000, "refunded")
        assert await service.total_spent(session, community_id=cid, user_id=ann) == {"EUR": 2000, "USD": 500}
        assert await service.total_spent(session, community_id=cid, user_id=shop["bob"].id) == {"USD": 700}
        assert await service.total_spent(session, community_id=cid + 1, user_id=ann) == {}
        found = await service.find_payment(session, community_id=cid, stripe_account_id="acct_1", stripe_charge_id=None,
                                           stripe_payment_intent_id="pi_a")
        assert found is not None and found.id == one.id


async def test_the_payments_api(client: httpx.AsyncClient, sessions, shop: dict[str, Any], owner: Account) -> None:
    cid = shop["community_id"]
    base = f"{API}/communities/{cid}/payments"
    ann, bob = shop["ann"].id, shop["bob"].id
    made = [
        await record(sessions, shop, stripe_payment_intent_id="pi_1", paid_at=PAID_AT),
        await record(sessions, shop, stripe_payment_intent_id="pi_2", user_id=bob),
        await record(sessions, shop, stripe_payment_intent_id="pi_3", offer_id=shop["euro_offer"]["id"], currency="EUR"),
    ]
    page = (await client.get(base, params={"limit": 2}, headers=owner.headers)).json()
    assert [p["id"] for p in page["items"]] == [made[2].id, made[1].id]  # newest first
    rest = (await client.get(base, params={"after": page["next"]}, headers=owner.headers)).json()
    assert [p["id"] for p in rest["items"]] == [made[0].id] and rest["next"] is None
    by_user = (await client.get(base, params={"user_id": ann}, headers=owner.headers)).json()
    assert [p["id"] for p in by_user["items"]] == [made[2].id, made[0].id]
    by_offer = (await client.get(base, params={"offer_id": shop["euro_offer"]["id"]}, headers=owner.headers)).json()
    assert [p["id"] for p in by_offer["items"]] == [made[2].id]
    both = (await client.get(base, params={"offer_id": shop["offer"]["id"], "user_id": bob}, headers=owner.headers)).json()
    assert [p["id"] for p in both["items"]] == [made[1].id]
    one = (await client.get(f"{base}/{made[0].id}", headers=owner.headers)).json()
    assert one["user_id"] == ann and one["amount"] == 1000 and one["stripe_payment_intent_id"] == "pi_1"
    assert dt.datetime.fromisoformat(one["paid_at"]) == PAID_AT and one["status"] == "succeeded"
    for bad in ({"user_id": 0}, {"offer_id": "x"}, {"limit": 101}, {"after": -1}):
        response = await client.get(base, params=bad, headers=owner.headers)
        assert response.status_code in (400, 422), (bad, response.text)

    # Managers read; a buyer who is not staff learns nothing.
    manager = await sign_up(client, "manager@example.com")
    await client.put(f"{API}/communities/{cid}/staff", json={"email": "manager@example.com", "role": "manager"}, headers=owner.headers)
    assert (await client.get(f"{base}/{made[0].id}", headers=manager.headers)).status_code == 200
    for url in (base, f"{base}/{made[0].id}"):
        assert (await client.get(url, headers=shop["ann"].headers)).status_code in (403, 404)

    # Another community: its ids answer 404 here, and its filters show nothing of ours.
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other Guild")
    other_offer = await make_offer(client, other["id"], other_owner)
    theirs = await record(sessions, {**shop, "community_id": other["id"], "offer": other_offer}, stripe_payment_intent_id="pi_x")
    assert (await client.get(f"{base}/{theirs.id}", headers=owner.headers)).status_code == 404
    assert (await client.get(f"{base}/{made[0].id}", headers=other_owner.headers)).status_code == 404
    other_base = f"{API}/communities/{other['id']}/payments"
    assert (await client.get(f"{other_base}/{made[0].id}", headers=other_owner.headers)).status_code == 404
    listed = (await client.get(other_base, params={"user_id": ann}, headers=other_owner.headers)).json()
    assert [p["id"] for p in listed["items"]] == [theirs.id]
    assert (await client.get(f"{base}/{2**63}", headers=owner.headers)).status_code == 404
