"""What the console's offer screens show, through the API first: holders (people whose access
runs now), revenue per offer and currency net of refunds and disputes, a landing page turned
off but kept; and amounts and percents typed on a page (money.parse_amount / parse_percent)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from community.errors import Invalid
from community.money import parse_amount, parse_percent, percent_text
from tests import test_checkout
from tests.checkout_helpers import API, deliver_and_process, offer_path
from tests.conftest import create_community, sign_up
from tests.test_offers import hold
from tests.test_refunds import buy, read, refund

shop = test_checkout.shop  # a community with a connected Stripe account and a group to sell


# ---------------------------------------------------------------- holders


async def test_the_offer_list_counts_the_people_whose_access_runs(client, owner, community, sessions) -> None:
    cid = community["id"]
    made = [
        (await client.post(f"{API}/communities/{cid}/offers", json={"title": title, "pricing": "free"}, headers=owner.headers)).json()
        for title in ("Held", "Nobody")
    ]
    held = made[0]["id"]
    people = [await sign_up(client, f"p{i}@example.com") for i in range(4)]
    for person in people:
        await hold(sessions, cid, held, person.id)
    async with sessions() as session, session.begin():
        # One ended yesterday, one ends tomorrow (a pass, or a cancel at the period's end).
        await session.execute(
            text("UPDATE entitlements SET ends_at = :at, status = 'expired' WHERE user_id = :u"),
            {"at": dt.datetime.now(dt.UTC) - dt.timedelta(days=1), "u": people[0].id},
        )
        await session.execute(
            text("UPDATE entitlements SET ends_at = :at, status = 'cancelled' WHERE user_id = :u"),
            {"at": dt.datetime.now(dt.UTC) + dt.timedelta(days=1), "u": people[1].id},
        )
    listed = (await client.get(f"{API}/communities/{cid}/offers", headers=owner.headers)).json()["items"]
    assert {item["title"]: item["holders"] for item in listed} == {"Held": 3, "Nobody": 0}


# ---------------------------------------------------------------- revenue


async def test_revenue_per_offer_and_currency_is_net_of_refunds_and_disputes(client, owner, shop, stripe_env, sessions, settings) -> None:
    cid = shop["community"]["id"]
    _, first = await buy(client, owner, shop, stripe_env, settings, email="a@example.com", title="Pass", amount=4900)
    _, second = await buy(client, owner, shop, stripe_env, settings, email="b@example.com", title="Course", amount=2500)
    made = await refund(client, owner, shop, first, amount=1000, reason="goodwill")
    assert made.status_code == 201, made.text
    charge_id = stripe_env.sandbox.get(second["stripe_payment_intent_id"])["latest_charge"]
    opened = stripe_env.sandbox.dispute(charge_id, amount=500)
    stripe_env.sandbox.close_dispute(opened["id"], won=False)
    await deliver_and_process(client, stripe_env, settings)
    assert (await read(client, owner, shop, second))["disputed_amount"] == 500

    revenue = await client.get(f"{API}/communities/{cid}/payments/revenue", headers=owner.headers)
    assert revenue.status_code == 200, revenue.text
    assert revenue.json() == [
        {"offer_id": first["offer_id"], "currency": "USD", "payments": 1, "paid_amount": 4900, "refunded_amount": 1000, "disputed_amount": 0, "net_amount": 3900},
        {"offer_id": second["offer_id"], "currency": "USD", "payments": 1, "paid_amount": 2500, "refunded_amount": 0, "disputed_amount": 500, "net_amount": 2000},
    ]
    one = await client.get(f"{API}/communities/{cid}/payments/revenue", params={"offer_id": second["offer_id"]}, headers=owner.headers)
    assert [line["offer_id"] for line in one.json()] == [second["offer_id"]]

    # Managers read it; another community's staff learn nothing, even naming the offer.
    await sign_up(client, "manny@example.com")
    manny = await client.post(f"{API}/auth/login", json={"email": "manny@example.com", "password": "correct horse battery"})
    await client.put(f"{API}/communities/{cid}/staff", json={"email": "manny@example.com", "role": "manager"}, headers=owner.headers)
    as_manager = await client.get(f"{API}/communities/{cid}/payments/revenue", headers={"Authorization": f"Bearer {manny.json()['secret']}"})
    assert as_manager.status_code == 200 and len(as_manager.json()) == 2
    stranger = await sign_up(client, "stranger@example.com")
    theirs = await create_community(client, stranger, "Elsewhere")
    assert (await client.get(f"{API}/communities/{cid}/payments/revenue", headers=stranger.headers)).status_code == 404
    foreign = await client.get(f"{API}/communities/{theirs['id']}/payments/revenue", params={"offer_id": first["offer_id"]}, headers=stranger.headers)
    assert foreign.status_code == 200 and foreign.json() == []
    bad = await client.get(f"{API}/communities/{cid}/payments/revenue", params={"offer_id": "0"}, headers=owner.headers)
    assert bad.status_code == 400 or bad.status_code == 422


# ---------------------------------------------------------------- landing page on / off


async def test_a_landing_page_turned_off_keeps_its_text_and_sends_buyers_to_checkout(client, owner, shop) -> None:
    cid = shop["community"]["id"]
    offer, path = await test_checkout.sell(client, owner, shop, landing_page={"headline": "Learn", "body": "All of it"})
    assert (await client.get(path)).status_code == 200
    off = await client.patch(
        f"{API}/communities/{cid}/offers/{offer['id']}",
        json={"landing_page": {"headline": "Learn", "body": "All of it", "enabled": False}}, headers=owner.headers,
    )
    assert off.status_code == 200 and off.json()["landing_page"] == {"headline": "Learn", "body": "All of it", "call_to_action": "", "enabled": False}
    straight = await client.get(path)
    assert straight.status_code in (302, 303, 307) and straight.headers["location"].endswith("/checkout")
    wrong = await client.patch(f"{API}/communities/{cid}/offers/{offer['id']}", json={"landing_page": {"enabled": "maybe"}}, headers=owner.headers)
    assert wrong.status_code in (400, 422) and wrong.json()["errors"][0]["field"].startswith("landing_page")
    on = await client.patch(f"{API}/communities/{cid}/offers/{offer['id']}", json={"landing_page": {"headline": "Learn", "enabled": True}}, headers=owner.headers)
    assert on.status_code == 200 and (await client.get(offer_path(shop["community"], offer))).status_code == 200


# ---------------------------------------------------------------- typed amounts and percents


@pytest.mark.parametrize(
    ("typed", "currency", "minor"),
    [("12.50", "USD", 1250), ("12.5", "USD", 1250), ("12", "USD", 1200), (".5", "EUR", 50), ("1,200.00", "USD", 120000),
     ("12.50 USD", "USD", 1250), ("12.50usd", "USD", 1250), ("500", "JPY", 500), ("1.234", "KWD", 1234), ("999999.99", "USD", 99_999_999)],
)
def test_amounts_typed_in_major_units(typed: str, currency: str, minor: int) -> None:
    assert parse_amount(typed, currency, "amount") == minor


@pytest.mark.parametrize(
    ("typed", "currency", "message"),
    [("12.345 USD", "USD", "USD amounts have at most 2 decimals"), ("-1", "USD", "must not be negative"),
     ("twelve", "USD", "must be an amount in USD, like 12.50"), ("", "USD", "must be an amount in USD, like 12.50"),
     ("12,50", "EUR", "use a point for decimals, like 12.50"), ("1000000", "USD", "must be at most 999999.99 USD"),
     ("9" * 40, "USD", "must be at most 999999.99 USD"), ("5.5", "JPY", "JPY amounts have no decimals"),
     ("12.50 EUR", "USD", "must be an amount in USD, like 12.50"), ("1e3", "USD", "must be an amount in USD, like 12.50")],
)
def test_amounts_refused_name_the_field(typed: str, currency: str, message: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_amount(typed, currency, "old_amount")
    assert (refused.value.field, refused.value.detail) == ("old_amount", message)


def test_percents_are_basis_points_inside() -> None:
    assert [parse_percent(t, "p") for t in ("20", "12.5", "12.5 %", "0.01", "100")] == [2000, 1250, 1250, 1, 10000]
    assert [percent_text(b) for b in (2000, 1250, 1, 10000, 1005)] == ["20", "12.5", "0.01", "100", "10.05"]
    for typed, message in (("0", "must be between 0.01% and 100%"), ("100.5", "must be between 0.01% and 100%"),
                           ("1.005", "a percent has at most 2 decimals"), ("-3", "must not be negative"), ("x", "must be a percent, like 20 or 12.5")):
        with pytest.raises(Invalid) as refused:
            parse_percent(typed, "resell_commission_bps")
        assert (refused.value.field, refused.value.detail) == ("resell_commission_bps", message), typed
    with pytest.raises(Invalid):
        parse_amount("0", "USD", "resell_commission_flat", minimum=1)
