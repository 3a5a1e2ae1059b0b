"""Member self-service and the owner's end of a membership, through the local Stripe sandbox:
my memberships and payments, cancel at the period's end (access stays until then; emails),
resume, the billing portal for the payment method, joining again after the end, the billing
page (CSRF forms, no custom code), and staff cancelling now (at Stripe too)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select, text

from community.billing.models import Subscription
from community.jobs import OutboxJob
from community.mail.service import SEND_EMAIL
from community.offers.models import EntitlementEvent
from tests import test_checkout
from tests.checkout_helpers import (
    API,
    CSRF,
    community_origin,
    deliver_and_process,
    submit_checkout,
)
from tests.conftest import Account, sign_up
from tests.helpers import decide_notifications, run_jobs
from tests.test_checkout import BODY_CODE, HEAD_CODE, can_open, sell, session_id_of

DAY = 86400


shop = test_checkout.shop  # the fixture: a community with a connected Stripe account and a group to sell


async def subscribe(client, owner, shop, stripe_env, settings, *, email: str = "member@example.com", **fields: Any):
    """A member with an account subscribes monthly; returns (member, offer, entitlement id, subscription row)."""
    member = await sign_up(client, email, name="Mia Member")
    fields = {"pricing": "recurring", "amount": 1500, "interval_months": 1, **fields}
    offer, path = await sell(client, owner, shop, **fields)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email=email)), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    mine = await my_memberships(client, shop, member)
    assert len(mine) == 1, mine
    return member, offer, mine[0]["entitlement_id"]


def me(shop) -> str:
    return f"{API}/communities/{shop['community']['id']}/me"


async def my_memberships(client, shop, member: Account) -> list[dict[str, Any]]:
    response = await client.get(f"{me(shop)}/memberships", headers=member.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def act(client, shop, member: Account, entitlement_id: int, action: str):
    return await client.post(f"{me(shop)}/memberships/{entitlement_id}/{action}", headers=member.headers)


async def subscription(sessions) -> Subscription:
    async with sessions() as session:
        return await session.scalar(select(Subscription))


async def emails(sessions, settings) -> list[tuple[str, str]]:
    await decide_notifications(settings)
    async with sessions() as session:
        rows = await session.scalars(select(OutboxJob).where(OutboxJob.name == SEND_EMAIL).order_by(OutboxJob.id))
        return [(r.payload["to"], r.payload["subject"]) for r in rows]


async def access_log(sessions) -> list[tuple[int, int, str]]:
    async with sessions() as session:
        return [tuple(r) for r in await session.execute(text("SELECT user_id, group_id, change FROM access_log ORDER BY id"))]


async def history(sessions, entitlement_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(select(EntitlementEvent).where(EntitlementEvent.entitlement_id == entitlement_id).order_by(EntitlementEvent.id))
        return [f"{e.status.value}: {e.reason}" for e in rows]


# ---------------------------------------------------------------- the member's API


async def test_my_memberships_and_payments(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    [mine] = await my_memberships(client, shop, member)
    sub = await subscription(sessions)
    assert (mine["offer_title"], mine["status"], mine["live"], mine["ends_at"]) == (offer["title"], "active", True, None)
    assert mine["subscription"]["next_payment_amount"] == 1500 and mine["subscription"]["currency"] == "USD"
    assert mine["subscription"]["next_payment_at"] is not None and sub.current_period_end is not None
    assert (mine["can_cancel"], mine["can_resume"], mine["join_again_url"]) == (True, False, None)
    payments = (await client.get(f"{me(shop)}/payments", headers=member.headers)).json()
    [paid] = payments["items"]
    assert (paid["amount"], paid["refunded_amount"], paid["net_amount"], paid["entitlement_id"]) == (1500, 0, 1500, entitlement_id)
    # Someone else's memberships are not mine; outsiders see nothing.
    other = await sign_up(client, "other@example.com")
    assert (await client.get(f"{me(shop)}/memberships", headers=other.headers)).status_code == 404
    assert (await act(client, shop, other, entitlement_id, "cancel")).status_code == 404


async def test_cancel_at_period_end_keeps_access_until_then_and_tells_member_and_staff(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    await run_jobs(settings)
    before = len(await emails(sessions, settings))
    cancelled = await act(client, shop, member, entitlement_id, "cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    sub = await subscription(sessions)
    assert sub.cancel_at_period_end is True and stripe_env.sandbox.get(sub.stripe_subscription_id)["cancel_at_period_end"] is True
    assert body["status"] == "cancelled" and body["live"] is True and body["ends_at"] is not None
    assert body["subscription"]["next_payment_at"] is None and (body["can_cancel"], body["can_resume"]) == (False, True)
    assert await can_open(client, shop["community"]["id"], shop["group_id"], member.headers)  # until the period ends
    sent = (await emails(sessions, settings))[before:]
    assert [to for to, _ in sent] == [member.email, owner.email]
    assert "cancelled" in sent[0][1] and "access until" in sent[0][1] and "cancelled" in sent[1][1]
    # Again: nothing changes, nothing is sent; Stripe's own events about it change nothing either.
    assert (await act(client, shop, member, entitlement_id, "cancel")).status_code == 200
    await deliver_and_process(client, stripe_env, settings)
    assert len(await emails(sessions, settings)) == before + 2
    [mine] = await my_memberships(client, shop, member)
    assert (mine["status"], mine["ends_at"], mine["live"]) == ("cancelled", body["ends_at"], True)

    # The period ends at Stripe: the subscription ends and so does access; then the member may join again.
    stripe_env.sandbox.advance_clock(32 * DAY)
    await deliver_and_process(client, stripe_env, settings)
    [mine] = await my_memberships(client, shop, member)
    assert mine["live"] is False and mine["can_cancel"] is False
    slug = shop["community"]["slug"]
    assert mine["join_again_url"] == f"{community_origin(slug)}/o/{slug}/{offer['slug']}/checkout"  # its community's origin
    assert not await can_open(client, shop["community"]["id"], shop["group_id"], member.headers)
    assert (await act(client, shop, member, entitlement_id, "resume")).status_code == 409  # too late: join again
    await run_jobs(settings)  # the access run the end started
    assert await access_log(sessions) == [(member.id, shop["group_id"], "gained"), (member.id, shop["group_id"], "lost")]
    await login(client, member)
    again = await submit_checkout(client, f"/o/{shop['community']['slug']}/{offer['slug']}", email=member.email)
    assert again.status_code == 303, again.text
    stripe_env.sandbox.pay(session_id_of(again), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    mine = await my_memberships(client, shop, member)
    assert [m["live"] for m in mine] == [True, False]  # the new one first
    assert await can_open(client, shop["community"]["id"], shop["group_id"], member.headers)


async def test_resume_before_the_period_ends(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    await act(client, shop, member, entitlement_id, "cancel")
    resumed = await act(client, shop, member, entitlement_id, "resume")
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert (body["status"], body["ends_at"], body["can_cancel"]) == ("active", None, True)
    assert body["subscription"]["next_payment_amount"] == 1500
    sub = await subscription(sessions)
    assert stripe_env.sandbox.get(sub.stripe_subscription_id)["cancel_at_period_end"] is False
    await deliver_and_process(client, stripe_env, settings)
    # The period ends: it renews and access goes on.
    stripe_env.sandbox.advance_clock(32 * DAY)
    await deliver_and_process(client, stripe_env, settings)
    [mine] = await my_memberships(client, shop, member)
    assert mine["live"] is True and mine["status"] == "active"
    assert await can_open(client, shop["community"]["id"], shop["group_id"], member.headers)


async def test_payment_method_through_the_billing_portal(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    portal = await act(client, shop, member, entitlement_id, "payment-method")
    assert portal.status_code == 201, portal.text
    url = portal.json()["url"]
    assert url.startswith(stripe_env.sandbox.url)
    session = stripe_env.sandbox.get(url.rstrip("/").split("/")[-1])
    sub = await subscription(sessions)
    assert session["customer"] == sub.stripe_customer_id
    assert session["return_url"] == f"{settings.base_url}/communities/{shop['community']['id']}/billing"


async def test_a_membership_without_a_subscription_cannot_be_cancelled_by_its_member(client, owner, shop, stripe_env, sessions, settings) -> None:
    member = await sign_up(client, "once@example.com")
    _offer, path = await sell(client, owner, shop)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email=member.email)), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    [mine] = await my_memberships(client, shop, member)
    assert mine["subscription"] is None and mine["can_cancel"] is False
    refused = await act(client, shop, member, mine["entitlement_id"], "cancel")
    assert refused.status_code == 409


# ---------------------------------------------------------------- staff


async def test_staff_cancel_now_stops_stripe_and_access_at_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    await run_jobs(settings)
    before = len(await emails(sessions, settings))
    url = f"{API}/communities/{shop['community']['id']}/entitlements/{entitlement_id}/cancel-now"
    assert (await client.post(url, headers=member.headers)).status_code == 403
    done = await client.post(url, headers=owner.headers)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled" and done.json()["live"] is False
    sub = await subscription(sessions)
    assert stripe_env.sandbox.get(sub.stripe_subscription_id)["status"] == "canceled" and sub.status == "canceled"
    assert not await can_open(client, shop["community"]["id"], shop["group_id"], member.headers)
    await deliver_and_process(client, stripe_env, settings)  # customer.subscription.deleted: nothing more
    assert await access_log(sessions) == [(member.id, shop["group_id"], "gained"), (member.id, shop["group_id"], "lost")]
    assert (await history(sessions, entitlement_id))[-1] == "cancelled: cancelled now by staff"
    sent = (await emails(sessions, settings))[before:]
    assert sent[0][0] == member.email and "has ended" in sent[0][1]
    again = await client.post(url, headers=owner.headers)
    assert again.status_code == 409  # already ended
    [mine] = await my_memberships(client, shop, member)
    assert mine["join_again_url"] is not None


async def test_ending_a_subscribed_entitlement_cancels_it_at_stripe(client, owner, shop, stripe_env, sessions, settings) -> None:
    _member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    base = f"{API}/communities/{shop['community']['id']}/entitlements/{entitlement_id}/end"
    later = await client.post(base, json={"status": "cancelled", "at": "2099-01-01T00:00:00Z"}, headers=owner.headers)
    assert later.status_code == 422 and later.json()["errors"][0]["field"] == "at"
    ended = await client.post(base, json={"status": "refunded", "reason": "chargeback"}, headers=owner.headers)
    assert ended.status_code == 200 and ended.json()["status"] == "refunded", ended.text
    sub = await subscription(sessions)
    assert stripe_env.sandbox.get(sub.stripe_subscription_id)["status"] == "canceled"
    await deliver_and_process(client, stripe_env, settings)
    entitlement = (await client.get(f"{API}/communities/{shop['community']['id']}/entitlements/{entitlement_id}", headers=owner.headers)).json()
    assert entitlement["status"] == "refunded" and entitlement["live"] is False


# ---------------------------------------------------------------- the billing page


async def login(client, account: Account, password: str = "correct horse battery") -> None:
    page = await client.get("/login")
    token = CSRF.search(page.text).group(1)
    done = await client.post("/login", data={"_csrf_token": token, "email": account.email, "password": password})
    assert done.status_code in (302, 303), done.text


async def test_the_billing_page(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    page_url = f"/communities/{shop['community']['id']}/billing"
    assert (await client.get(page_url)).headers.get("location", "") == f"/login?next={page_url.replace('/', '%2F')}"  # then back here
    await login(client, member)
    home = await client.get(f"/communities/{shop['community']['id']}")
    assert f'href="{page_url}"' in home.text  # the community page links to billing
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    assert offer["title"] in page.text and "Next payment: 15.00" in page.text and "Receipt" in page.text
    assert "Total spent (net of refunds): 15.00" in page.text
    assert HEAD_CODE not in page.text and BODY_CODE not in page.text and "owner-pixel" not in page.text
    assert "script-src" in page.headers.get("content-security-policy", "") or "default-src" in page.headers.get("content-security-policy", "")
    # A form post without the CSRF token is refused; with it, cancel works.
    action = f"{page_url}/{entitlement_id}/cancel"
    assert (await client.post(action, data={})).status_code == 403
    token = CSRF.search(page.text).group(1)
    done = await client.post(action, data={"_csrf_token": token})
    assert done.status_code == 303 and (await subscription(sessions)).cancel_at_period_end is True
    page = await client.get(page_url)
    assert "Resume membership" in page.text and "Next payment" not in page.text
    portal = await client.post(f"{page_url}/{entitlement_id}/payment-method", data={"_csrf_token": CSRF.search(page.text).group(1)})
    assert portal.status_code == 303 and portal.headers["location"].startswith(stripe_env.sandbox.url)
    payment_id = re.search(r'data-payment="(\d+)"', page.text).group(1)
    receipt = await client.get(f"{page_url}/receipts/{payment_id}")
    assert receipt.status_code == 200 and "15.00" in receipt.text and member.email in receipt.text
    # Another member's receipt is not found.
    client.cookies.clear()
    await login(client, owner)
    assert (await client.get(f"{page_url}/receipts/{payment_id}")).status_code == 404


async def test_cancelling_in_stripes_billing_portal_tells_member_and_staff_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    await run_jobs(settings)
    before = len(await emails(sessions, settings))
    portal = await act(client, shop, member, entitlement_id, "payment-method")
    portal_id = portal.json()["url"].rstrip("/").split("/")[-1]
    sub = await subscription(sessions)
    async with httpx.AsyncClient(base_url=stripe_env.sandbox.url) as stripe_page:  # the member presses "Cancel" there
        pressed = await stripe_page.post(f"/p/session/{portal_id}", data={"action": f"cancel:{sub.stripe_subscription_id}"})
        assert pressed.status_code in (302, 303), pressed.text
    await deliver_and_process(client, stripe_env, settings)
    await deliver_and_process(client, stripe_env, settings)  # nothing new: told once
    [mine] = await my_memberships(client, shop, member)
    assert (mine["status"], mine["live"], mine["can_resume"]) == ("cancelled", True, True)
    sent = (await emails(sessions, settings))[before:]
    assert [to for to, _ in sent] == [member.email, owner.email]


async def test_stripe_refusing_a_members_change_answers_409_not_500(client, owner, shop, stripe_env, sessions, settings) -> None:
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    async with sessions() as session, session.begin():  # ids Stripe does not know (deleted there)
        await session.execute(text("UPDATE subscriptions SET stripe_subscription_id = 'sub_unknown_to_stripe', stripe_customer_id = 'cus_unknown'"))
    for action in ("cancel", "payment-method"):
        refused = await act(client, shop, member, entitlement_id, action)
        assert refused.status_code == 409, (action, refused.text)
        assert refused.json()["errors"][0]["field"] == "entitlement_id" and "sub_unknown_to_stripe" in refused.json()["detail"]
    [mine] = await my_memberships(client, shop, member)
    assert (mine["status"], mine["live"], mine["subscription"]["cancel_at_period_end"]) == ("active", True, False)


async def test_a_staff_end_with_a_date_without_offset_is_refused_not_500(client, owner, shop, stripe_env, sessions, settings) -> None:
    _member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    base = f"{API}/communities/{shop['community']['id']}/entitlements/{entitlement_id}/end"
    naive = await client.post(base, json={"status": "cancelled", "at": "2099-01-01T00:00:00"}, headers=owner.headers)
    assert naive.status_code in (400, 422), naive.text


async def test_the_billing_pages_payment_method_form_may_go_on_to_stripe(client, owner, shop, stripe_env, sessions, settings) -> None:
    """Browsers (Chrome) apply the page's CSP form-action to the redirect after a form post: the
    billing portal's origin must be allowed there, or the button does nothing."""
    member, _offer, entitlement_id = await subscribe(client, owner, shop, stripe_env, settings)
    await login(client, member)
    page_url = f"/communities/{shop['community']['id']}/billing"
    page = await client.get(page_url)
    directives = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";") if d.strip())
    allowed = directives["form-action"].split()
    portal = await client.post(f"{page_url}/{entitlement_id}/payment-method", data={"_csrf_token": CSRF.search(page.text).group(1)})
    assert portal.status_code == 303
    target = httpx.URL(portal.headers["location"])
    assert f"{target.scheme}://{target.netloc.decode()}" in allowed, (allowed, str(target))
    assert "'self'" in allowed and "script-src 'self'" in page.headers["content-security-policy"]
