"""Discount codes in the console over HTTP, where a browser is not needed to show the rule: the
form gives the API the same input (major units and percents read as minor units and basis
points, dates as UTC) and shows the API's refusals next to their fields, changing nothing;
disabling, enabling and deleting go through the API's rules; managers read only; foreign ids
answer 404; the codes and a code's uses download as CSV (decimal amounts, a currency column),
the same from the console and the API; the state is one answer everywhere."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from typing import Any

import httpx
import pytest

from community.billing import service
from tests.checkout_helpers import API, CSRF
from tests.conftest import Account, create_community, sign_up
from tests.test_discounts import make_offer, quote_for, reserve
from tests.test_memberships import login

UTC = dt.UTC
FUTURE = "2099-01-01T10:00"


def codes_api(cid: int) -> str:
    return f"{API}/communities/{cid}/discount-codes"


async def form_post(client: httpx.AsyncClient, page_url: str, action: str, data: dict[str, Any]) -> httpx.Response:
    """Post a form the way its page would: with the CSRF token the page carries."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"_csrf_token": CSRF.search(page.text).group(1), **data})


def filled(**over: Any) -> dict[str, Any]:
    """The new-code form as a person fills it in: a percent code for all offers."""
    return {
        "code": "SPRING", "kind": "percent", "percent_bps": "15", "amount_off": "", "applies_to": "all",
        "starts_at": "", "ends_at": "", "max_redemptions": "", "per_customer_limit": "", "duration": "once",
        "duration_months": "", **over,
    }  # fmt: skip


async def list_codes(client: httpx.AsyncClient, owner: Account, cid: int) -> list[dict[str, Any]]:
    response = await client.get(codes_api(cid), headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
async def console(client: httpx.AsyncClient, owner: Account, community: dict[str, Any]) -> str:
    await login(client, owner)
    return f"/dashboard/communities/{community['id']}/discounts"


async def test_the_form_refuses_next_to_the_field_in_the_apis_words_and_saves_what_the_api_would(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], console: str
) -> None:
    cid = community["id"]
    monthly = await make_offer(client, cid, owner, title="Monthly", pricing="recurring", amount=2000, interval_months=1)
    new = f"{console}/new"
    refusals = [
        ({"code": "ab"}, "code", "a code has 3 to 40 characters"),
        ({"percent_bps": ""}, "percent_bps", "a percent code needs percent_bps"),
        ({"percent_bps": "12.345"}, "percent_bps", "a percent has at most 2 decimals"),
        ({"kind": "amount", "amount_off": "12,5"}, "amount_off", "use a point for decimals"),
        ({"kind": "amount", "amount_off": ""}, "amount_off", "an amount code needs amount_off"),
        ({"applies_to": "offers"}, "offer_ids", "name at least one offer"),
        ({"applies_to": "offers", "offer_ids": "987654"}, "offer_ids", "no such offer in this community: 987654"),
        ({"starts_at": FUTURE, "ends_at": "2098-01-01T10:00"}, "ends_at", "must be after starts_at"),
        ({"ends_at": "tomorrow"}, "ends_at", "must be a date and time in UTC"),
        ({"max_redemptions": "0"}, "max_redemptions", "Expected `int` >= 1"),
        ({"per_customer_limit": "lots"}, "per_customer_limit", "Expected `int | null`, got `str`"),
        ({"duration": "repeating"}, "duration_months", "a repeating discount needs duration_months"),
        ({"duration": "repeating", "duration_months": "37"}, "duration_months", "<= 36"),
    ]
    for over, field, words in refusals:
        refused = await form_post(client, new, new, filled(**over))
        assert refused.status_code == 422, (over, refused.status_code)
        assert f'id="e-{field}"' in refused.text and words in html.unescape(refused.text), (over, field)
        assert 'aria-invalid="true"' in refused.text or field == "offer_ids"
    assert await list_codes(client, owner, cid) == []  # nothing written

    # What the page typed reaches the API as the API's own input: minor units, UTC, the offers ticked.
    made = await form_post(client, new, new, filled(
        code="Launch-5", kind="amount", percent_bps="99", amount_off="5.50", applies_to="offers",
        offer_ids=str(monthly["id"]), starts_at="2098-06-01T09:30", ends_at=FUTURE, max_redemptions="100",
        per_customer_limit="1", duration="repeating", duration_months="3",
    ))  # fmt: skip
    assert made.status_code == 303, made.text
    [code] = await list_codes(client, owner, cid)
    assert made.headers["location"] == f"{console}/{code['id']}"
    assert (code["code"], code["kind"], code["amount_off"], code["currency"], code["percent_bps"]) == ("Launch-5", "amount", 550, "USD", None)
    assert code["offer_ids"] == [monthly["id"]] and code["applies_to"] == "offers"
    assert dt.datetime.fromisoformat(code["starts_at"]) == dt.datetime(2098, 6, 1, 9, 30, tzinfo=UTC)
    assert dt.datetime.fromisoformat(code["ends_at"]) == dt.datetime(2099, 1, 1, 10, 0, tzinfo=UTC)
    assert (code["max_redemptions"], code["per_customer_limit"], code["duration"], code["duration_months"]) == (100, 1, "repeating", 3)
    assert code["state"] == "scheduled"
    shown = await client.get(made.headers["location"])
    assert "5.50 USD off" in shown.text and "Monthly" in shown.text and "01 Jun 2098, 09:30 UTC" in shown.text

    # The same name again, in another case: the API's conflict, next to the code.
    taken = await form_post(client, new, new, filled(code="LAUNCH-5"))
    assert taken.status_code == 409 and 'id="e-code"' in taken.text and "codes ignore case" in taken.text

    # Editing: the form shows the code in major units and UTC, and saves the whole form.
    edit = f"{console}/{code['id']}/edit"
    form = await client.get(edit)
    assert 'value="5.50"' in form.text and 'value="2098-06-01T09:30"' in form.text and 'value="Launch-5"' in form.text
    bad = await form_post(client, edit, edit, filled(code="Launch-5", starts_at="2099-06-01T00:00", ends_at=FUTURE))
    assert bad.status_code == 422 and 'id="e-ends_at"' in bad.text and "must be after starts_at" in bad.text
    assert (await list_codes(client, owner, cid))[0]["kind"] == "amount"  # unchanged
    saved = await form_post(client, edit, edit, filled(code="Launch-5", percent_bps="12.5", amount_off="5.50", starts_at=""))
    assert saved.status_code == 303, saved.text
    [code] = await list_codes(client, owner, cid)
    assert (code["kind"], code["percent_bps"], code["amount_off"], code["currency"]) == ("percent", 1250, None, None)
    assert code["applies_to"] == "all" and code["offer_ids"] == [] and code["ends_at"] is None
    assert code["max_redemptions"] is None and code["duration"] == "once" and code["duration_months"] is None
    assert dt.datetime.fromisoformat(code["starts_at"]) == dt.datetime(2098, 6, 1, 9, 30, tzinfo=UTC)  # blank start kept


async def test_disable_enable_and_delete_follow_the_apis_rules(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], console: str, sessions
) -> None:
    cid = community["id"]
    offer = await make_offer(client, cid, owner)
    new = f"{console}/new"
    assert (await form_post(client, new, new, filled(code="ONCE", max_redemptions="1"))).status_code == 303
    assert (await form_post(client, new, new, filled(code="UNUSED"))).status_code == 303
    once, unused = await list_codes(client, owner, cid)
    assert once["state"] == "active"

    # A buyer pays with ONCE: 1 / 1, used up, in the API and on the page.
    now = dt.datetime.now(UTC)
    q = await quote_for(sessions, offer, "once", now=now)
    await reserve(sessions, cid, q, checkout_id=1, expires_at=now + dt.timedelta(hours=1), now=now)
    async with sessions() as session, session.begin():
        assert await service.redeem(session, community_id=cid, checkout_id=1)
    once = (await client.get(f"{codes_api(cid)}/{once['id']}", headers=owner.headers)).json()
    assert (once["redeemed"], once["state"]) == (1, "used_up")
    listed = await client.get(console)
    row = listed.text.split(f'data-code="{once["id"]}"')[1].split("</tr>")[0]
    assert "1 / 1" in row and "used up" in row
    page = await client.get(f"{console}/{once['id']}")
    assert "buyer@example.com" in page.text and "1.50 USD" in page.text and "paid" in page.text
    assert 'id="delete-link"' not in page.text and 'id="no-delete"' in page.text

    # Deleting a redeemed code: the API's refusal on the confirmation page; the code stays.
    delete = f"{console}/{once['id']}/delete"
    refused = await form_post(client, f"{console}/{unused['id']}/delete", delete, {})
    assert refused.status_code == 409 and "this code has been redeemed: deactivate it instead" in refused.text
    assert len(await list_codes(client, owner, cid)) == 2

    # Disabling says what happens, then the checkout refuses the code as the API says.
    disable = f"{console}/{unused['id']}/disable"
    confirm = await client.get(disable)
    assert "Buyers can no longer use UNUSED" in confirm.text and "can still pay with the discount" in confirm.text
    done = await form_post(client, disable, disable, {})
    assert done.status_code == 303 and done.headers["location"] == f"{console}/{unused['id']}"
    assert (await client.get(f"{codes_api(cid)}/{unused['id']}", headers=owner.headers)).json()["state"] == "disabled"
    with pytest.raises(service.Invalid) as exc:
        await quote_for(sessions, offer, "UNUSED", now=dt.datetime.now(UTC))
    assert exc.value.detail == service.NO_SUCH
    enable = f"{console}/{unused['id']}/enable"
    assert "Buyers can use UNUSED again" in (await client.get(enable)).text
    assert (await form_post(client, enable, enable, {})).status_code == 303
    assert (await client.get(f"{codes_api(cid)}/{unused['id']}", headers=owner.headers)).json()["state"] == "active"

    # A code nobody used is deleted after its confirmation.
    delete = f"{console}/{unused['id']}/delete"
    assert "Nobody has paid with this code" in (await client.get(delete)).text
    gone = await form_post(client, delete, delete, {})
    assert gone.status_code == 303 and gone.headers["location"] == console
    assert [c["code"] for c in await list_codes(client, owner, cid)] == ["ONCE"]


async def test_managers_read_and_foreign_ids_answer_404(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], console: str
) -> None:
    cid = community["id"]
    new = f"{console}/new"
    assert (await form_post(client, new, new, filled(code="MINE"))).status_code == 303
    [mine] = await list_codes(client, owner, cid)
    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other Guild")
    theirs = await client.post(codes_api(other["id"]), json={"code": "THEIRS", "kind": "percent", "percent_bps": 500}, headers=other_owner.headers)
    assert theirs.status_code == 201
    for path in ("", "/edit", "/disable", "/enable", "/delete", "/redemptions.csv"):
        assert (await client.get(f"{console}/{theirs.json()['id']}{path}")).status_code == 404, path
    edit = f"{console}/{mine['id']}/edit"
    token = CSRF.search((await client.get(edit)).text).group(1)
    for path in ("/edit", "/disable", "/delete"):
        posted = await client.post(f"{console}/{theirs.json()['id']}{path}", data={"_csrf_token": token, **filled()})
        assert posted.status_code == 404, path
    assert (await client.get(f"{codes_api(cid)}/{theirs.json()['id']}/redemptions.csv", headers=owner.headers)).status_code == 404
    # Another community's console answers 404 to this owner.
    assert (await client.get(f"/dashboard/communities/{other['id']}/discounts")).status_code == 404
    assert (await client.get(f"{API}/communities/{other['id']}/discount-codes.csv", headers=owner.headers)).status_code == 404

    # A manager reads the list, the code and the CSVs, and changes nothing.
    manager = await sign_up(client, "manager@example.com")
    staffed = await client.put(f"{API}/communities/{cid}/staff", json={"email": manager.email, "role": "manager"}, headers=owner.headers)
    assert staffed.status_code == 200
    client.cookies.clear()
    await login(client, manager)
    listed = await client.get(console)
    assert listed.status_code == 200 and "MINE" in listed.text and 'id="new-code"' not in listed.text
    page = await client.get(f"{console}/{mine['id']}")
    assert 'id="read-only"' in page.text and 'id="edit-link"' not in page.text
    assert (await client.get(f"{console}/codes.csv")).status_code == 200
    assert (await client.get(f"{console}/{mine['id']}/redemptions.csv")).status_code == 200
    for path in ("/new", f"/{mine['id']}/edit", f"/{mine['id']}/disable", f"/{mine['id']}/delete"):
        assert (await client.get(f"{console}{path}")).status_code == 403, path
    token = CSRF.search(listed.text).group(1)
    for path in ("/new", f"/{mine['id']}/edit", f"/{mine['id']}/disable", f"/{mine['id']}/delete"):
        assert (await client.post(f"{console}{path}", data={"_csrf_token": token, **filled(code="NOPE")})).status_code == 403, path
    [still] = await list_codes(client, owner, cid)
    assert still == mine


def parsed(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


async def test_codes_and_uses_download_as_csv_from_the_console_and_the_api(
    client: httpx.AsyncClient, owner: Account, community: dict[str, Any], console: str, sessions
) -> None:
    cid = community["id"]
    offer = await make_offer(client, cid, owner, title="=Pass", amount=1999)
    new = f"{console}/new"
    assert (await form_post(client, new, new, filled(code="TENOFF", percent_bps="12.5", max_redemptions="2"))).status_code == 303
    assert (await form_post(client, new, new, filled(
        code="FIVE", kind="amount", amount_off="5", applies_to="offers", offer_ids=str(offer["id"]), ends_at=FUTURE,
    ))).status_code == 303  # fmt: skip
    tenoff, five = await list_codes(client, owner, cid)
    now = dt.datetime.now(UTC)
    q = await quote_for(sessions, offer, "tenoff", now=now, email="Ann@Example.com")
    await reserve(sessions, cid, q, checkout_id=7, email="Ann@Example.com", expires_at=now + dt.timedelta(hours=1), now=now)
    await reserve(sessions, cid, q, checkout_id=8, email="bob@example.com", expires_at=now + dt.timedelta(hours=1), now=now)
    async with sessions() as session, session.begin():
        await service.redeem(session, community_id=cid, checkout_id=7)

    from_console = await client.get(f"{console}/codes.csv")
    from_api = await client.get(f"{API}/communities/{cid}/discount-codes.csv", headers=owner.headers)
    for response in (from_console, from_api):
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert 'filename="discount-codes.csv"' in response.headers["content-disposition"]
    assert from_console.text == from_api.text
    rows = parsed(from_api.text)
    assert [r["code"] for r in rows] == ["TENOFF", "FIVE"]
    assert (rows[0]["percent_off"], rows[0]["amount_off"], rows[0]["offers"]) == ("12.5", "", "all")
    assert (rows[0]["redeemed"], rows[0]["reserved"], rows[0]["uses"], rows[0]["max_uses"], rows[0]["state"]) == ("1", "1", "2", "2", "used_up")
    assert (rows[1]["amount_off"], rows[1]["currency"], rows[1]["offers"], rows[1]["state"]) == ("5.00", "USD", "'=Pass", "active")
    assert rows[1]["ends_at_utc"] == "2099-01-01T10:00:00+00:00"
    api_states = {c["code"]: c["state"] for c in await list_codes(client, owner, cid)}
    assert api_states == {r["code"]: r["state"] for r in rows}  # one answer everywhere
    page = await client.get(console)
    assert "2 / 2" in page.text and "used up" in page.text and "1 held at checkout" in page.text

    uses_console = await client.get(f"{console}/{tenoff['id']}/redemptions.csv")
    uses_api = await client.get(f"{codes_api(cid)}/{tenoff['id']}/redemptions.csv", headers=owner.headers)
    assert uses_console.text == uses_api.text and uses_api.status_code == 200
    uses = parsed(uses_api.text)
    assert [(u["checkout_id"], u["email"], u["state"], u["amount_off"], u["currency"]) for u in uses] == [
        ("8", "bob@example.com", "reserved", "2.50", "USD"),  # newest first; 12.5% of 19.99, halves up
        ("7", "ann@example.com", "redeemed", "2.50", "USD"),
    ]
    assert uses[1]["redeemed_at_utc"] and not uses[0]["redeemed_at_utc"]
    assert parsed((await client.get(f"{console}/{five['id']}/redemptions.csv")).text) == []
