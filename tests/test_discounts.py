"""Discount codes: the owner's API (every rule a 4xx naming the field, case-insensitive codes,
roles, foreign ids), and the checkout's side through the service: quotes with every refusal
reason, window edges, rounding, minimum charges, free codes, and reservations that hold under
concurrency (the last redemption is sold once, a payment is counted once)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from community.billing import service
from community.billing.models import DiscountRedemption
from community.errors import Invalid, TooManyRequests
from tests.conftest import Account, create_community, sign_up

API = "/api/v1"
UTC = dt.UTC
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
US = dt.timedelta(microseconds=1)
LATER = T0 + dt.timedelta(days=365)


class Codes:
    """The discount-code API of one community, as one account."""

    def __init__(self, client: httpx.AsyncClient, community_id: int, who: Account) -> None:
        self.client, self.community_id, self.headers = client, community_id, who.headers
        self.base = f"{API}/communities/{community_id}/discount-codes"

    async def request(self, method: str, url: str = "", body: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, self.base + url, json=body, headers=self.headers, **kwargs)

    async def create(self, code: str = "SUMMER10", **fields: Any) -> dict[str, Any]:
        body = {"code": code, "kind": "percent", "percent_bps": 1000, "starts_at": T0.isoformat(), **fields}
        response = await self.request("POST", "", body)
        assert response.status_code == 201, response.text
        return response.json()

    async def refused(self, body: dict[str, Any], method: str = "POST", url: str = "") -> tuple[int, list[str], str]:
        response = await self.request(method, url, body)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        return response.status_code, [e["field"] for e in problem.get("errors", [])], problem["detail"]


async def make_offer(client: httpx.AsyncClient, community_id: int, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": "Pass", "pricing": "one_time", "amount": 1000, **fields}
    response = await client.post(f"{API}/communities/{community_id}/offers", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return {**response.json(), "community_id": community_id}


@pytest.fixture
async def codes(client: httpx.AsyncClient, community: dict[str, Any], owner: Account) -> Codes:
    return Codes(client, community["id"], owner)


@pytest.fixture
async def offer(client: httpx.AsyncClient, community: dict[str, Any], owner: Account) -> dict[str, Any]:
    return await make_offer(client, community["id"], owner)


async def quote_for(sessions, offer: dict[str, Any], code: str | None, *, email: str | None = "buyer@example.com", now=T0, **over):
    """Quote `offer` (as the checkout would) in its own transaction."""
    args = {
        "community_id": offer["community_id"],
        "offer_id": offer["id"],
        "pricing": offer["pricing"],
        "amount": offer["amount"],
        "currency": offer["currency"],
        **over,
    }
    async with sessions() as session, session.begin():
        return await service.quote(session, code=code, email=email, now=now, **args)


def refusal(exc: pytest.ExceptionInfo[Invalid]) -> str:
    assert exc.value.field == "discount_code"
    return exc.value.detail


async def reserve(sessions, community_id: int, q: service.Quote, checkout_id: int, email: str = "buyer@example.com", *,
                  expires_at: dt.datetime = LATER, now: dt.datetime = T0) -> None:
    async with sessions() as session, session.begin():
        await service.reserve(
            session, community_id=community_id, quote=q, checkout_id=checkout_id, email=email, user_id=None,
            expires_at=expires_at, now=now,
        )


async def redemption_states(sessions, code_id: int) -> dict[int, str]:
    async with sessions() as session:
        rows = await session.execute(
            select(DiscountRedemption.checkout_id, DiscountRedemption.state).where(DiscountRedemption.code_id == code_id)
        )
        return {checkout: state.value for checkout, state in rows}


# ---------------------------------------------------------------- the owner's API


async def test_create_read_list_update_delete(codes: Codes, offer: dict[str, Any]) -> None:
    made = await codes.create(
        "Summer-2030", ends_at=(T0 + dt.timedelta(days=30)).isoformat(), max_redemptions=100, per_customer_limit=1
    )
    assert made["code"] == "Summer-2030"  # as typed
    assert made["kind"] == "percent" and made["percent_bps"] == 1000 and made["amount_off"] is None
    assert made["applies_to"] == "all" and made["offer_ids"] == []
    assert made["duration"] == "once" and made["active"] is True
    assert (made["redeemed"], made["reserved"]) == (0, 0)
    assert dt.datetime.fromisoformat(made["starts_at"]) == T0

    fixed = await codes.create("TENOFF", kind="amount", percent_bps=None, amount_off=500, applies_to="offers",
                               offer_ids=[offer["id"]])
    assert fixed["currency"] == "USD"  # the community's currency by default
    assert fixed["offer_ids"] == [offer["id"]] and fixed["percent_bps"] is None

    assert (await codes.request("GET", f"/{made['id']}")).json() == made
    page = (await codes.request("GET", params={"limit": 1})).json()
    assert [c["id"] for c in page["items"]] == [made["id"]] and page["next"] == made["id"]
    rest = (await codes.request("GET", params={"after": page["next"]})).json()
    assert [c["id"] for c in rest["items"]] == [fixed["id"]] and rest["next"] is None

    changed = await codes.request("PATCH", f"/{made['id']}", {"percent_bps": 2500, "ends_at": None, "active": False})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["percent_bps"] == 2500 and body["ends_at"] is None and body["active"] is False
    assert body["max_redemptions"] == 100 and body["updated_at"] is not None  # untouched fields stay

    # Switching kind: the other kind's fields are cleared.
    switched = await codes.request("PATCH", f"/{fixed['id']}", {"kind": "percent", "percent_bps": 5000})
    assert switched.status_code == 200, switched.text
    assert (switched.json()["amount_off"], switched.json()["currency"]) == (None, None)
    back_to_all = await codes.request("PATCH", f"/{fixed['id']}", {"applies_to": "all"})
    assert back_to_all.json()["offer_ids"] == []

    assert (await codes.request("DELETE", f"/{made['id']}")).status_code == 204
    assert (await codes.request("GET", f"/{made['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "ab"}, "code"),
        ({"code": "x" * 41}, "code"),
        ({"code": "no spaces"}, "code"),
        ({"code": "ÜBER10"}, "code"),
        ({"code": "semi;colon"}, "code"),
        ({"code": ""}, "code"),
        ({"kind": "bogus"}, "kind"),
        ({"percent_bps": None}, "percent_bps"),
        ({"percent_bps": 0}, "percent_bps"),
        ({"percent_bps": 10_001}, "percent_bps"),
        ({"amount_off": 100}, "amount_off"),
        ({"currency": "USD"}, "currency"),
        ({"kind": "amount", "percent_bps": None}, "amount_off"),
        ({"kind": "amount", "amount_off": 100}, "percent_bps"),
        ({"kind": "amount", "percent_bps": None, "amount_off": 0}, "amount_off"),
        ({"kind": "amount", "percent_bps": None, "amount_off": 100, "currency": "ZZZ"}, "currency"),
        ({"kind": "amount", "percent_bps": None, "amount_off": 100, "currency": "US"}, "currency"),
        ({"applies_to": "offers"}, "offer_ids"),
        ({"applies_to": "offers", "offer_ids": []}, "offer_ids"),
        ({"applies_to": "offers", "offer_ids": [2**62]}, "offer_ids"),
        ({"applies_to": "offers", "offer_ids": [0]}, "offer_ids.0"),
        ({"applies_to": "some"}, "applies_to"),
        ({"ends_at": T0.isoformat()}, "ends_at"),
        ({"ends_at": (T0 - dt.timedelta(seconds=1)).isoformat()}, "ends_at"),
        ({"starts_at": "2030-01-01T12:00:00"}, "starts_at"),  # no time zone
        ({"starts_at": "soon"}, "starts_at"),
        ({"max_redemptions": 0}, "max_redemptions"),
        ({"per_customer_limit": 0}, "per_customer_limit"),
        ({"per_customer_limit": -1}, "per_customer_limit"),
        ({"duration": "repeating"}, "duration_months"),
        ({"duration": "repeating", "duration_months": 0}, "duration_months"),
        ({"duration": "repeating", "duration_months": 37}, "duration_months"),
        ({"duration": "once", "duration_months": 3}, "duration_months"),
        ({"duration": "forever", "duration_months": 3}, "duration_months"),
        ({"duration": "sometimes"}, "duration"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_every_rule_is_a_422_naming_the_field(codes: Codes, sessions, body: dict[str, Any], field: str) -> None:
    full = {"code": "VALID10", "kind": "percent", "percent_bps": 1000, "starts_at": T0.isoformat(), **body}
    status, fields, _ = await codes.refused(full)
    assert status in (400, 422) and fields == [field], (status, fields)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DiscountRedemption)) == 0
    assert (await codes.request("GET")).json()["items"] == []  # nothing written


async def test_listed_offers_are_this_communitys_and_fixed_amounts_match_their_currency(
    client: httpx.AsyncClient, codes: Codes, offer: dict[str, Any], owner: Account
) -> None:
    other = await create_community(client, owner, "Other Guild")
    foreign = await make_offer(client, other["id"], owner)
    status, fields, detail = await codes.refused(
        {"code": "MIXED", "kind": "percent", "percent_bps": 100, "applies_to": "offers", "offer_ids": [offer["id"], foreign["id"]]}
    )
    assert (status, fields) == (422, ["offer_ids"]) and str(foreign["id"]) in detail
    euro = await make_offer(client, codes.community_id, owner, title="Euro pass", currency="EUR")
    status, fields, detail = await codes.refused(
        {"code": "FIVE", "kind": "amount", "amount_off": 500, "currency": "USD", "applies_to": "offers", "offer_ids": [euro["id"]]}
    )
    assert (status, fields) == (422, ["currency"]) and "EUR" in detail
    made = await codes.create("FIVE", kind="amount", percent_bps=None, amount_off=500, currency="eur",
                              applies_to="offers", offer_ids=[euro["id"], euro["id"]])
    assert made["currency"] == "EUR" and made["offer_ids"] == [euro["id"]]
    # A PATCH is held to the same rules on the code as it would be afterwards.
    status, fields, _ = await codes.refused({"offer_ids": [offer["id"]]}, "PATCH", f"/{made['id']}")
    assert (status, fields) == (422, ["currency"])
    status, fields, _ = await codes.refused({"kind": "amount", "amount_off": None}, "PATCH", f"/{made['id']}")
    assert (status, fields) == (422, ["amount_off"])
    status, fields, _ = await codes.refused({"ends_at": "2029-01-01T00:00:00Z"}, "PATCH", f"/{made['id']}")
    assert (status, fields) == (422, ["ends_at"])
    ended = await codes.create("ENDS", ends_at=(T0 + dt.timedelta(days=1)).isoformat())
    status, fields, _ = await codes.refused({"starts_at": "2030-01-03T00:00:00Z"}, "PATCH", f"/{ended['id']}")
    assert (status, fields) == (422, ["starts_at"])


async def test_codes_are_unique_ignoring_case(codes: Codes, client: httpx.AsyncClient, owner: Account) -> None:
    first = await codes.create("Summer10")
    for spelling in ("SUMMER10", "summer10", " sUmMeR10 "):
        status, fields, _ = await codes.refused({"code": spelling, "kind": "percent", "percent_bps": 500})
        assert (status, fields) == (409, ["code"]), spelling
    second = await codes.create("WINTER10")
    status, fields, _ = await codes.refused({"code": "summer10"}, "PATCH", f"/{second['id']}")
    assert (status, fields) == (409, ["code"])
    # Renaming a code to another spelling of itself is fine; so is the same code in another community.
    renamed = await codes.request("PATCH", f"/{first['id']}", {"code": "SUMMER10"})
    assert renamed.status_code == 200 and renamed.json()["code"] == "SUMMER10"
    other = await create_community(client, owner, "Other Guild")
    await Codes(client, other["id"], owner).create("summer10")


async def test_delete_is_refused_once_redeemed_or_reserved(codes: Codes, offer: dict[str, Any], sessions) -> None:
    cid = codes.community_id
    made = await codes.create("ONCE")
    q = await quote_for(sessions, offer, "once")
    await reserve(sessions, cid, q, checkout_id=1, expires_at=dt.datetime.now(UTC) + dt.timedelta(hours=1))
    shown = (await codes.request("GET", f"/{made['id']}")).json()
    assert (shown["redeemed"], shown["reserved"]) == (0, 1)
    status, fields, detail = await codes.refused(None, "DELETE", f"/{made['id']}")
    assert (status, fields) == (409, ["code_id"]) and "deactivate" in detail
    async with sessions() as session, session.begin():
        assert await service.redeem(session, community_id=cid, checkout_id=1)
    shown = (await codes.request("GET", f"/{made['id']}")).json()
    assert (shown["redeemed"], shown["reserved"]) == (1, 0)
    status, fields, _ = await codes.refused(None, "DELETE", f"/{made['id']}")
    assert status == 409
    # Deactivating works, and the code then answers like an unknown one.
    assert (await codes.request("PATCH", f"/{made['id']}", {"active": False})).status_code == 200
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, offer, "ONCE")
    assert refusal(refused) == service.NO_SUCH
    # A code whose only reservation was released can go.
    spare = await codes.create("SPARE")
    q = await quote_for(sessions, offer, "spare")
    await reserve(sessions, cid, q, checkout_id=2, expires_at=dt.datetime.now(UTC) + dt.timedelta(hours=1))
    async with sessions() as session, session.begin():
        await service.release(session, community_id=cid, checkout_id=2)
    assert (await codes.request("DELETE", f"/{spare['id']}")).status_code == 204


async def test_redemptions_page(codes: Codes, offer: dict[str, Any], sessions) -> None:
    cid = codes.community_id
    made = await codes.create("PAGED")
    q = await quote_for(sessions, offer, "PAGED")
    for checkout_id in (11, 12, 13):
        await reserve(sessions, cid, q, checkout_id, email=f"Buyer{checkout_id}@Example.com")
    async with sessions() as session, session.begin():
        await service.redeem(session, community_id=cid, checkout_id=12)
        await service.release(session, community_id=cid, checkout_id=13)
    first = (await codes.request("GET", f"/{made['id']}/redemptions", params={"limit": 2})).json()
    assert [r["checkout_id"] for r in first["items"]] == [13, 12]  # newest first
    assert [r["state"] for r in first["items"]] == ["released", "redeemed"]
    assert first["items"][1]["email"] == "buyer12@example.com" and first["items"][1]["redeemed_at"]
    assert first["items"][1]["amount_off"] == 100 and first["items"][1]["currency"] == "USD"
    rest = (await codes.request("GET", f"/{made['id']}/redemptions", params={"after": first["next"]})).json()
    assert [r["checkout_id"] for r in rest["items"]] == [11] and rest["next"] is None


async def test_roles_and_foreign_ids(client: httpx.AsyncClient, codes: Codes, owner: Account, offer: dict[str, Any]) -> None:
    made = await codes.create("STAFF")
    cid = codes.community_id
    manager = await sign_up(client, "manager@example.com")
    response = await client.put(
        f"{API}/communities/{cid}/staff", json={"email": "manager@example.com", "role": "manager"}, headers=owner.headers
    )
    assert response.status_code == 200
    as_manager = Codes(client, cid, manager)
    assert (await as_manager.request("GET", f"/{made['id']}")).status_code == 200
    assert (await as_manager.request("GET", f"/{made['id']}/redemptions")).status_code == 200
    for method, url, body in [
        ("POST", "", {"code": "MINE", "kind": "percent", "percent_bps": 100}),
        ("PATCH", f"/{made['id']}", {"active": False}),
        ("DELETE", f"/{made['id']}", None),
    ]:
        assert (await as_manager.request(method, url, body)).status_code == 403, (method, url)

    # Another community's owner, and another community's code.
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other Guild")
    theirs = await Codes(client, other["id"], other_owner).create("THEIRS")
    stranger = Codes(client, cid, other_owner)
    for method, url, body in [
        ("GET", "", None),
        ("GET", f"/{made['id']}", None),
        ("PATCH", f"/{made['id']}", {"active": False}),
        ("DELETE", f"/{made['id']}", None),
        ("GET", f"/{made['id']}/redemptions", None),
    ]:
        assert (await stranger.request(method, url, body)).status_code == 404, (method, url)
    for method, url, body in [
        ("GET", f"/{theirs['id']}", None),
        ("PATCH", f"/{theirs['id']}", {"active": False}),
        ("DELETE", f"/{theirs['id']}", None),
        ("GET", f"/{theirs['id']}/redemptions", None),
    ]:
        assert (await codes.request(method, url, body)).status_code == 404, (method, url)
    assert (await Codes(client, other["id"], other_owner).request("GET", f"/{theirs['id']}")).json()["active"] is True


# ---------------------------------------------------------------- quotes


async def test_no_code_is_the_list_price(sessions, offer: dict[str, Any]) -> None:
    for code in (None, "", "   "):
        q = await quote_for(sessions, offer, code)
        assert q == service.Quote(1000, 0, 1000, "USD", None, None, None, None, None, None)
        assert not q.is_free


async def test_codes_match_ignoring_case(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    made = await codes.create("Summer10")
    for typed in ("SUMMER10", "summer10", " Summer10 "):
        q = await quote_for(sessions, offer, typed)
        assert (q.code_id, q.code, q.discount_amount, q.amount_due) == (made["id"], "Summer10", 100, 900)
        assert q.percent_bps == 1000 and q.amount_off is None
        assert q.duration is None and q.duration_months is None  # a one-time offer


async def test_unknown_inactive_and_malformed_codes(codes: Codes, sessions, offer: dict[str, Any], client, owner) -> None:
    await codes.create("OFF", active=False)
    other = await create_community(client, owner, "Other Guild")
    await Codes(client, other["id"], owner).create("ELSEWHERE")
    for typed in ("NOPE", "OFF", "ELSEWHERE", "x" * 500, "a b c", "nul\x00", "ab"):
        with pytest.raises(Invalid) as refused:
            await quote_for(sessions, offer, typed)
        assert refusal(refused) == "no such discount code", typed


async def test_window_edges(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    ends = T0 + dt.timedelta(days=7)
    await codes.create("WEEK", ends_at=ends.isoformat())
    for now in (T0, ends - US):
        assert (await quote_for(sessions, offer, "week", now=now)).discount_amount == 100
    with pytest.raises(Invalid) as early:
        await quote_for(sessions, offer, "week", now=T0 - US)
    assert refusal(early) == "this code is not valid yet"
    for now in (ends, ends + dt.timedelta(days=1)):
        with pytest.raises(Invalid) as late:
            await quote_for(sessions, offer, "week", now=now)
        assert refusal(late) == "this code has expired"


async def test_not_for_this_offer(codes: Codes, sessions, offer: dict[str, Any], client, owner) -> None:
    other = await make_offer(client, codes.community_id, owner, title="Other pass")
    free = await make_offer(client, codes.community_id, owner, title="Free", pricing="free", amount=None)
    await codes.create("LISTED", applies_to="offers", offer_ids=[other["id"]])
    await codes.create("ALL")
    assert (await quote_for(sessions, other, "listed")).discount_amount == 100
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, offer, "listed")
    assert refusal(refused) == "this code is not valid for this offer"
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, free, "all")
    assert refusal(refused) == "this code is not valid for this offer"


async def test_fixed_amount_in_another_currency(codes: Codes, sessions, offer: dict[str, Any], client, owner) -> None:
    await codes.create("EURO5", kind="amount", percent_bps=None, amount_off=500, currency="EUR")
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, offer, "euro5")
    assert refusal(refused) == "a fixed discount in EUR cannot apply to a USD price"
    euro = await make_offer(client, codes.community_id, owner, title="Euro", currency="EUR", amount=2000)
    q = await quote_for(sessions, euro, "EURO5")
    assert (q.discount_amount, q.amount_due, q.currency, q.amount_off) == (500, 1500, "EUR", 500)


@pytest.mark.parametrize(
    ("amount", "bps", "discount"),
    [
        (999, 1500, 150),  # 149.85 -> 150
        (1001, 5000, 501),  # 500.5 -> 501: halves go up, as Stripe rounds
        (1003, 5000, 502),  # 501.5 -> 502
        (333, 1000, 33),  # 33.3 -> 33
        (1999, 3333, 666),  # 666.2667 -> 666
        (1000, 1, 0),  # 0.1 -> 0
        (5000, 1, 1),  # 0.5 -> 1
        (99_999_999, 10_000, 99_999_999),
    ],
)
async def test_percent_rounding_matches_stripe(codes: Codes, sessions, offer, amount: int, bps: int, discount: int) -> None:
    await codes.create("ROUND", percent_bps=bps)
    q = await quote_for(sessions, offer, "round", amount=amount)
    assert (q.discount_amount, q.amount_due, q.list_amount) == (discount, amount - discount, amount)
    assert service.percent_of(amount, bps) == discount


async def test_zero_decimal_currency(codes: Codes, sessions, client, owner) -> None:
    yen = await make_offer(client, codes.community_id, owner, title="Yen", currency="JPY", amount=1000)
    await codes.create("THIRD", percent_bps=3333)
    q = await quote_for(sessions, yen, "third")
    assert (q.discount_amount, q.amount_due, q.currency) == (333, 667, "JPY")  # 333.3 yen -> 333
    await codes.create("YEN960", kind="amount", percent_bps=None, amount_off=960, currency="JPY")
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, yen, "yen960")  # 40 yen left, the minimum is 50
    assert refusal(refused) == "the discounted price would be below the minimum charge of 50 JPY"
    await codes.create("YEN950", kind="amount", percent_bps=None, amount_off=950, currency="JPY")
    assert (await quote_for(sessions, yen, "yen950")).amount_due == 50


async def test_below_the_minimum_charge_is_refused(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    await codes.create("P96", percent_bps=9600)
    await codes.create("P95", percent_bps=9500)
    await codes.create("P9999", percent_bps=9999)
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, offer, "p96")  # 0.40 USD left
    assert refusal(refused) == "the discounted price would be below the minimum charge of 0.50 USD"
    assert (await quote_for(sessions, offer, "p9999")).is_free  # 999.9 -> 1000 off: free, which is allowed
    q = await quote_for(sessions, offer, "p95")
    assert (q.amount_due, q.is_free) == (50, False)


async def test_hundred_percent_and_oversized_fixed_codes_are_free(codes: Codes, sessions, offer, client, owner) -> None:
    await codes.create("FREE", percent_bps=10_000)
    await codes.create("BIG", kind="amount", percent_bps=None, amount_off=5000)
    for typed in ("free", "big"):
        q = await quote_for(sessions, offer, typed)
        assert (q.discount_amount, q.amount_due, q.is_free) == (1000, 0, True), typed
    monthly = await make_offer(client, codes.community_id, owner, title="Monthly", pricing="recurring", interval_months=1)
    await codes.create("FOREVER", percent_bps=10_000, duration="forever")
    await codes.create("QUARTER", percent_bps=2500, duration="repeating", duration_months=3)
    q = await quote_for(sessions, monthly, "forever")
    assert (q.is_free, q.duration, q.duration_months) == (True, "forever", None)
    q = await quote_for(sessions, monthly, "quarter")
    assert (q.discount_amount, q.duration, q.duration_months) == (250, "repeating", 3)
    q = await quote_for(sessions, monthly, "free")
    assert q.duration == "once"


# ---------------------------------------------------------------- limits and reservations


async def test_used_up_and_per_customer_limits(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    cid = codes.community_id
    await codes.create("TWICE", max_redemptions=2)
    await codes.create("MINE", per_customer_limit=1)
    q = await quote_for(sessions, offer, "twice")
    await reserve(sessions, cid, q, 1, "a@example.com")
    await reserve(sessions, cid, q, 2, "b@example.com")
    with pytest.raises(Invalid) as refused:
        await quote_for(sessions, offer, "TWICE", email="c@example.com")
    assert refusal(refused) == "this code has been used up"

    q = await quote_for(sessions, offer, "mine", email="Ann@Example.com")
    await reserve(sessions, cid, q, 3, "Ann@Example.com")
    for email in ("ann@example.com", " ANN@EXAMPLE.COM "):
        with pytest.raises(Invalid) as refused:
            await quote_for(sessions, offer, "mine", email=email)
        assert refusal(refused) == "you have already used this code"
    assert (await quote_for(sessions, offer, "mine", email=None)).code == "MINE"  # no email yet: not checked
    assert (await quote_for(sessions, offer, "mine", email="bob@example.com")).code == "MINE"
    # reserve checks it too, under the lock.
    with pytest.raises(Invalid) as refused:
        await reserve(sessions, cid, q, 4, "ANN@example.com")
    assert refusal(refused) == "you have already used this code"


async def test_reserve_is_idempotent_and_one_code_per_checkout(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    cid = codes.community_id
    one = await codes.create("ONE", max_redemptions=1)
    other = await codes.create("OTHER")
    q = await quote_for(sessions, offer, "one")
    await reserve(sessions, cid, q, 7)
    await reserve(sessions, cid, q, 7)  # the same checkout again: still one slot, its own
    assert await redemption_states(sessions, one["id"]) == {7: "reserved"}
    # The checkout switches to another code: the first is released, so someone else may take it.
    await reserve(sessions, cid, await quote_for(sessions, offer, "other"), 7)
    assert await redemption_states(sessions, one["id"]) == {7: "released"}
    assert await redemption_states(sessions, other["id"]) == {7: "reserved"}
    await reserve(sessions, cid, q, 8)
    async with sessions() as session, session.begin():
        assert await service.redeem(session, community_id=cid, checkout_id=7)
    assert await redemption_states(sessions, other["id"]) == {7: "redeemed"}
    assert await redemption_states(sessions, one["id"]) == {7: "released", 8: "reserved"}
    # A quote without a code reserves nothing.
    await reserve(sessions, cid, await quote_for(sessions, offer, None), 9)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DiscountRedemption)) == 3


async def test_reserve_rechecks_the_code(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    cid = codes.community_id
    made = await codes.create("SHORT", ends_at=(T0 + dt.timedelta(hours=1)).isoformat())
    q = await quote_for(sessions, offer, "short")
    with pytest.raises(Invalid) as refused:
        await reserve(sessions, cid, q, 1, now=T0 + dt.timedelta(hours=1))
    assert refusal(refused) == "this code has expired"
    assert (await codes.request("PATCH", f"/{made['id']}", {"active": False})).status_code == 200
    with pytest.raises(Invalid) as refused:
        await reserve(sessions, cid, q, 1)
    assert refusal(refused) == "no such discount code"
    assert (await codes.request("PATCH", f"/{made['id']}", {"active": True})).status_code == 200
    await reserve(sessions, cid, q, 1)
    assert await redemption_states(sessions, made["id"]) == {1: "reserved"}


async def test_the_last_redemption_is_sold_once(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    """Two buyers reserve the last redemption at the same time, each in their own transaction:
    exactly one gets it, the other is told the code is used up."""
    cid = codes.community_id
    for round_ in range(5):
        made = await codes.create(f"LAST{round_}", max_redemptions=1)
        q = await quote_for(sessions, offer, f"last{round_}")
        gate = asyncio.Event()

        async def buy(checkout_id: int, q=q, gate=gate) -> str:
            async with sessions() as session, session.begin():
                await gate.wait()
                try:
                    await service.reserve(
                        session, community_id=cid, quote=q, checkout_id=checkout_id,
                        email=f"buyer{checkout_id}@example.com", user_id=None, expires_at=LATER, now=T0,
                    )
                except Invalid as exc:
                    return exc.detail
                await asyncio.sleep(0.05)  # hold the lock a while: the other one must wait for it
                return "ok"

        tasks = [asyncio.create_task(buy(100 * round_ + n)) for n in (1, 2)]
        await asyncio.sleep(0.01)
        gate.set()
        results = sorted(await asyncio.gather(*tasks))
        assert results == ["ok", "this code has been used up"], results
        assert list((await redemption_states(sessions, made["id"])).values()) == ["reserved"]


async def test_release_frees_a_slot_and_reservations_count_until_released(codes: Codes, sessions, offer) -> None:
    """A reservation counts until it is released (once Stripe said its session can no longer be
    paid), never lapsing by our clock: a payment made just before the session's expiry may be
    announced days later, and must not find its use sold to someone else meanwhile."""
    cid = codes.community_id
    made = await codes.create("SOLO", max_redemptions=1, per_customer_limit=1)
    q = await quote_for(sessions, offer, "solo")
    await reserve(sessions, cid, q, 1)
    with pytest.raises(Invalid):
        await reserve(sessions, cid, q, 2, "other@example.com")
    async with sessions() as session, session.begin():
        await service.release(session, community_id=cid, checkout_id=1)
        await service.release(session, community_id=cid, checkout_id=1)  # idempotent
        await service.release(session, community_id=cid, checkout_id=999)  # nothing to release
    await reserve(sessions, cid, q, 2, "other@example.com", expires_at=T0 + dt.timedelta(minutes=30))
    # Long past the session's expiry, the reservation still counts: it was never released.
    for later in (T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(days=30)):
        with pytest.raises(Invalid) as refused:
            await quote_for(sessions, offer, "solo", email="third@example.com", now=later)
        assert refusal(refused) == "this code has been used up"
        with pytest.raises(Invalid) as refused:
            await reserve(sessions, cid, q, 3, "third@example.com", now=later)
        assert refusal(refused) == "this code has been used up"
    assert await redemption_states(sessions, made["id"]) == {1: "released", 2: "reserved"}
    # The late payment finds its use held: redeemed, and the code is used up at its limit.
    async with sessions() as session, session.begin():
        assert await service.redeem(session, community_id=cid, checkout_id=2)
        await service.release(session, community_id=cid, checkout_id=2)  # redeemed stays redeemed
    assert await redemption_states(sessions, made["id"]) == {1: "released", 2: "redeemed"}
    shown = (await codes.request("GET", f"/{made['id']}")).json()
    assert (shown["redeemed"], shown["reserved"]) == (1, 0)
    # A released reservation paid after all (a payment Stripe should no longer have taken) is
    # still recorded: the buyer did pay.
    async with sessions() as session, session.begin():
        assert await service.redeem(session, community_id=cid, checkout_id=1)
    assert await redemption_states(sessions, made["id"]) == {1: "redeemed", 2: "redeemed"}


async def test_redeem_counts_once_under_concurrency(codes: Codes, sessions, offer: dict[str, Any]) -> None:
    cid = codes.community_id
    made = await codes.create("PAID")
    q = await quote_for(sessions, offer, "paid")
    await reserve(sessions, cid, q, 5)
    gate = asyncio.Event()

    async def pay() -> bool:
        async with sessions() as session, session.begin():
            await gate.wait()
            first = await service.redeem(session, community_id=cid, checkout_id=5)
            await asyncio.sleep(0.05)
            return first

    tasks = [asyncio.create_task(pay()) for _ in range(4)]
    await asyncio.sleep(0.01)
    gate.set()
    assert sorted(await asyncio.gather(*tasks)) == [False, False, False, True]
    async with sessions() as session, session.begin():
        assert await service.redeem(session, community_id=cid, checkout_id=5) is False
        assert await service.redeem(session, community_id=cid, checkout_id=6) is False  # no reservation
        assert await service.redeem(session, community_id=cid + 1, checkout_id=5) is False  # another community
    assert await redemption_states(sessions, made["id"]) == {5: "redeemed"}


async def test_guessing_is_rate_limited(redis) -> None:
    for _ in range(service.GUESS_LIMIT - 1):
        await service.note_failed_guess(redis, address="198.51.100.1")
    await service.check_guess_rate(redis, address="198.51.100.1")
    await service.note_failed_guess(redis, address="198.51.100.1")
    with pytest.raises(TooManyRequests) as refused:
        await service.check_guess_rate(redis, address="198.51.100.1")
    assert 0 < int(refused.value.headers["Retry-After"]) <= service.GUESS_WINDOW_SECONDS
    await service.check_guess_rate(redis, address="198.51.100.2")  # per address

