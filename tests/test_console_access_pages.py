"""The console's access screens over HTTP, where a browser is not needed to show the rule: the
end form cancels a running Stripe subscription (billing's end_now, as the API), refusals come
back on the form in the service's words and change nothing, foreign ids answer 404, and an
offer nobody holds saves its groups at once."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from tests.checkout_helpers import API, CSRF
from tests.conftest import Account, create_community, sign_up
from tests.test_access import comp, make_group, make_offer, my_groups
from tests.test_checkout import can_open
from tests.test_memberships import login, shop, subscribe, subscription

__all__ = ["shop"]


async def form_post(client: httpx.AsyncClient, page_url: str, action: str, data: dict[str, Any]) -> httpx.Response:
    """Post a form the way its page would: with the CSRF token the page carries."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"_csrf_token": CSRF.search(page.text).group(1), **data})


async def links(sessions) -> list[tuple]:
    async with sessions() as session:
        return [tuple(r) for r in await session.execute(text("SELECT offer_id, group_id, entitlement_ids::text FROM offer_groups ORDER BY 1, 2"))]


async def test_ending_a_subscribed_membership_from_the_console_cancels_it_at_stripe(
    client, owner, shop, stripe_env, sessions, settings
) -> None:
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    cid = shop["community"]["id"]
    await login(client, owner)
    page_url = f"/dashboard/communities/{cid}/entitlements/{entitlement_id}/end"
    form = await client.get(page_url)
    assert form.status_code == 200 and 'id="stripe-note"' in form.text and "cancels the subscription at Stripe now" in form.text

    # At a date: the service refuses it for a running subscription, next to the date, and nothing ends.
    later = await form_post(client, page_url, page_url, {"when": "date", "at": "2099-01-01T00:00", "status": "cancelled"})
    assert later.status_code == 422
    assert 'id="e-at"' in later.text and "a subscribed membership ends now" in later.text
    assert (await subscription(sessions)).status != "canceled"
    assert await can_open(client, cid, shop["group_id"], member.headers)

    done = await form_post(client, page_url, page_url, {"when": "now", "status": "cancelled", "reason": "asked by email"})
    assert done.status_code == 303 and done.headers["location"] == f"/dashboard/communities/{cid}/entitlements/{entitlement_id}"
    sub = await subscription(sessions)
    assert stripe_env.sandbox.get(sub.stripe_subscription_id)["status"] == "canceled" and sub.status == "canceled"
    assert not await can_open(client, cid, shop["group_id"], member.headers)
    shown = await client.get(done.headers["location"])
    assert "asked by email" in shown.text and 'id="reopen-link"' in shown.text


async def test_refusals_come_back_on_the_form_and_change_nothing(client, owner, community, sessions) -> None:
    cid = community["id"]
    yoga = await make_group(client, owner, cid, "Yoga")
    offer = await make_offer(sessions, cid, "Membership")
    buyer = await sign_up(client, "buyer@example.com")
    held = await comp(client, owner, cid, offer, buyer.email)
    await login(client, owner)
    base = f"/dashboard/communities/{cid}"
    permissions = f"{base}/offers/{offer}/permissions"
    before = await links(sessions)

    forged = await form_post(client, permissions, permissions, {"group": "not-a-number"})
    assert forged.status_code == 422 and 'class="form-error"' in forged.text
    foreign = await form_post(client, permissions, f"{permissions}/apply", {"add": "987654", "mode": "everyone"})
    assert foreign.status_code == 422 and "no such group in this community: 987654" in foreign.text
    unchosen = await form_post(client, permissions, f"{permissions}/apply", {"add": str(yoga)})
    assert unchosen.status_code == 422 and 'id="e-mode"' in unchosen.text  # the page asks; it never defaults
    assert (await client.get(f"{permissions}/confirm?add=x")).status_code == 422
    assert await links(sessions) == before and await my_groups(client, buyer, cid) == []

    give = f"{base}/offers/{offer}/holders/give"
    bad_email = await form_post(client, give, give, {"email": "", "ends_at": "tomorrow"})
    assert bad_email.status_code == 422 and 'id="e-ends_at"' in bad_email.text and "must be a date and time in UTC" in bad_email.text
    end = f"{base}/entitlements/{held['id']}/end"
    no_date = await form_post(client, end, end, {"when": "date", "at": "", "status": "expired"})
    assert no_date.status_code == 422 and 'id="e-at"' in no_date.text
    reopen = f"{base}/entitlements/{held['id']}/reopen"
    past = await form_post(client, reopen, reopen, {"ends_at": "2001-01-01T00:00"})
    assert past.status_code == 422 and "must be in the future" in past.text
    entitlement = (await client.get(f"{API}/communities/{cid}/entitlements/{held['id']}", headers=owner.headers)).json()
    assert entitlement["live"] is True and len(entitlement["history"]) == 1

    # A form without its CSRF token is refused.
    assert (await client.post(permissions, data={"group": str(yoga)})).status_code == 403


async def test_an_offer_nobody_holds_saves_at_once(client, owner, community, sessions) -> None:
    cid = community["id"]
    yoga = await make_group(client, owner, cid, "Yoga")
    offer = await make_offer(sessions, cid, "Membership")
    await login(client, owner)
    permissions = f"/dashboard/communities/{cid}/offers/{offer}/permissions"
    saved = await form_post(client, permissions, permissions, {"group": str(yoga)})
    assert saved.status_code == 303 and saved.headers["location"] == permissions
    assert await links(sessions) == [(offer, yoga, "{(,)}")]
    again = await form_post(client, permissions, permissions, {"group": str(yoga)})
    assert again.status_code == 303 and "Nothing to save" in (await client.get(permissions)).text


async def test_foreign_ids_answer_404(client, owner, community, sessions) -> None:
    cid = community["id"]
    offer = await make_offer(sessions, cid, "Membership")
    held = await comp(client, owner, cid, offer, "held@example.com")
    # A run of another offer is not shown under this one.
    yoga = await make_group(client, owner, cid, "Yoga")
    changed = await client.put(f"{API}/communities/{cid}/offers/{offer}/groups", json={"add": [yoga]}, headers=owner.headers)
    run_id = changed.headers["access-run-id"]
    second = await make_offer(sessions, cid, "Second")
    await login(client, owner)
    assert (await client.get(f"/dashboard/communities/{cid}/offers/{offer}/permissions/runs/{run_id}")).status_code == 200
    assert (await client.get(f"/dashboard/communities/{cid}/offers/{second}/permissions/runs/{run_id}")).status_code == 404
    await client.post("/logout", data={"_csrf_token": CSRF.search((await client.get("/dashboard")).text).group(1)})

    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Elsewhere")
    await make_offer(sessions, other["id"], "Theirs")
    await login(client, other_owner)
    assert (await client.get(f"/dashboard/communities/{other['id']}")).status_code == 200  # B's console opens
    mine = f"/dashboard/communities/{other['id']}"
    for path in (
        f"/offers/{offer}/permissions", f"/offers/{offer}/permissions/confirm", f"/offers/{offer}/permissions/runs/{run_id}",
        f"/offers/{offer}/holders", f"/offers/{offer}/holders/give", f"/entitlements/{held['id']}",
        f"/entitlements/{held['id']}/end", f"/entitlements/{held['id']}/reopen",
    ):
        assert (await client.get(mine + path)).status_code == 404, path  # A's ids in B
        assert (await client.get(f"/dashboard/communities/{cid}" + path)).status_code == 404, path  # A itself


async def test_the_holders_list_pages_by_keyset(client: httpx.AsyncClient, owner: Account, community, sessions) -> None:
    cid = community["id"]
    offer = await make_offer(sessions, cid, "Membership")
    made = [await comp(client, owner, cid, offer, f"h{i:02}@example.com") for i in range(52)]
    await login(client, owner)
    holders = f"/dashboard/communities/{cid}/offers/{offer}/holders"
    first = await client.get(holders)
    assert first.text.count("data-entitlement=") == 50 and "h51@example.com" in first.text and "h01@example.com" not in first.text
    assert f'href="?after={made[2]["id"]}" rel="next"' in first.text
    second = await client.get(f"{holders}?after={made[2]['id']}")
    assert second.text.count("data-entitlement=") == 2 and "h01@example.com" in second.text and 'rel="next"' not in second.text
