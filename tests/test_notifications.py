"""Notifications: the catalogue, who is told what (community settings, offer overrides, staff
choices), owners' templates, and the delivery log, against a real local SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from community import jobs
from community.jobs import OutboxJob
from community.mail import tasks as mail_tasks
from community.mail.announce import NOTIFY, announce
from community.mail.models import Delivery
from community.mail.service import SEND_EMAIL
from community.notifications import tasks as notification_tasks
from tests.conftest import Account, create_community, sign_up
from tests.helpers import run_jobs
from tests.test_email import WAIT, Inbox, SmtpServer, free_port

API = "/api/v1"
REFUSED = "refused@example.com"


class RefusingInbox(Inbox):
    """Refuses one address at RCPT with a permanent 5xx, as a server does for an unknown mailbox."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address == REFUSED:
            return "550 5.1.1 <refused@example.com>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    inbox = RefusingInbox()
    server = SmtpServer(port=free_port(), inbox=inbox, logins=[])
    controller = Controller(inbox, hostname="127.0.0.1", port=server.port, ready_timeout=10)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@dataclasses.dataclass
class Shop:
    community_id: int
    offer_id: int
    other_offer_id: int
    owner: Account
    manager: Account
    member: Account


@pytest.fixture
async def shop(client, owner) -> Shop:
    community = await create_community(client, owner, "Makers Guild")
    cid = community["id"]
    offers = []
    for title in ("Workshop", "Library"):
        made = await client.post(f"{API}/communities/{cid}/offers", json={"title": title, "pricing": "free"}, headers=owner.headers)
        assert made.status_code == 201, made.text
        offers.append(made.json()["id"])
    manager = await sign_up(client, "manager@example.com", name="Max Manager")
    staffed = await client.put(f"{API}/communities/{cid}/staff", json={"email": manager.email, "role": "manager"}, headers=owner.headers)
    assert staffed.status_code == 200, staffed.text
    member = await sign_up(client, "member@example.com", name="Mia Member")
    given = await client.post(f"{API}/communities/{cid}/entitlements", json={"email": member.email, "offer_id": offers[0]}, headers=owner.headers)
    assert given.status_code == 201, given.text  # a member of the community
    return Shop(cid, offers[0], offers[1], owner, manager, member)


def smtp_settings(settings, smtp: SmtpServer):
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp.port}")


async def cancel(sessions, shop: Shop, *, offer_id: int | None = None, by_staff: bool = False, user_id: int | None = None) -> None:
    """What billing announces when a membership is cancelled."""
    async with sessions() as session, session.begin():
        await announce(
            session, "cancellation", community_id=shop.community_id, user_id=user_id or shop.member.id,
            offer_id=offer_id or shop.offer_id, by_staff=by_staff, ends_at="31 December 2026, 00:00 UTC",
            in_grace=False, billing_url="http://testserver/communities/1/billing",
        )


def received(smtp: SmtpServer) -> list[tuple[str, str]]:
    """What arrived, but the access run's "access gained" message for the member's comp."""
    return sorted((m["To"], m["Subject"]) for m in smtp.inbox.messages() if not m["Subject"].startswith("You now have access"))


async def patch(client, shop: Shop, key: str, who: Account | None = None, **body: Any):
    return await client.patch(f"{API}/communities/{shop.community_id}/notifications/messages/{key}", json=body, headers=(who or shop.owner).headers)


async def test_the_catalogue_lists_every_message(client, shop: Shop) -> None:
    listed = await client.get(f"{API}/communities/{shop.community_id}/notifications/messages", headers=shop.manager.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    by_key = {m["key"]: m for m in body["messages"]}
    assert {k for k, m in by_key.items() if m["audience"] == "staff"} >= {
        "staff_purchase", "staff_renewal", "staff_payment_failed", "staff_cancellation", "staff_dispute_opened",
    }
    assert {k for k, m in by_key.items() if m["audience"] == "member"} >= {
        "purchase_confirmation", "cancellation_confirmed", "payment_succeeded", "payment_failed", "trial_ending", "refund_issued",
    }
    cancelled = by_key["cancellation_confirmed"]
    assert cancelled["enabled"] and not cancelled["edited"] and "{{ offer_title }}" in cancelled["subject"]
    assert {"offer_title", "ends_at", "billing_url"} <= {v["name"] for v in cancelled["variables"]}
    assert {s["key"] for s in body["system"]} >= {"login_link", "email_change", "staff_invite"}
    # Managers read; they do not change the community's settings.
    assert (await patch(client, shop, "cancellation_confirmed", shop.manager, enabled=False)).status_code == 403
    # Another community's staff see none of it.
    stranger = await sign_up(client, "stranger@example.com")
    await create_community(client, stranger, "Elsewhere")
    assert (await client.get(f"{API}/communities/{shop.community_id}/notifications/messages", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"{API}/communities/{shop.community_id}/notifications/messages/nope", headers=shop.owner.headers)).status_code == 404
    # An unknown message named in a body is a 422 naming it.
    base = f"{API}/communities/{shop.community_id}/notifications"
    bad = await client.put(f"{base}/offers/{shop.offer_id}", json={"overrides": {"nope": True}}, headers=shop.owner.headers)
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["overrides.nope"]
    bad = await client.put(f"{base}/staff/{shop.owner.id}", json={"choices": {"trial_ending": True}}, headers=shop.owner.headers)
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["choices.trial_ending"]


async def test_a_template_that_cannot_render_is_refused_at_save(client, shop: Shop) -> None:
    for body, field, words in (
        ({"subject": "Bye {{ offer_title"}, "subject", "not a valid template"),
        ({"body": "Hello {{ favourite_colour }}"}, "body", "favourite_colour"),
        ({"body": "{{ offer_title.__class__.__mro__ }}"}, "body", ""),
        ({"subject": "  "}, "subject", "empty"),
    ):
        refused = await patch(client, shop, "cancellation_confirmed", **body)
        assert refused.status_code == 422, (body, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == [field] and words in refused.text
    # Nothing was saved.
    view = (await client.get(f"{API}/communities/{shop.community_id}/notifications/messages/cancellation_confirmed", headers=shop.owner.headers)).json()
    assert view["edited"] is False
    # A good one is saved and previewed with sample data.
    saved = await patch(client, shop, "cancellation_confirmed", subject="{{ offer_title }}: goodbye", body="Bye {{ name }}, until {{ ends_at }}.")
    assert saved.status_code == 200 and saved.json()["edited"] is True
    preview = await client.post(f"{API}/communities/{shop.community_id}/notifications/messages/cancellation_confirmed/preview", json={}, headers=shop.owner.headers)
    assert preview.json() == {"subject": "Sample Membership: goodbye", "body": "Bye Ada Lovelace, until 31 December 2026, 00:00 UTC."}


async def test_lifecycle_messages_follow_settings_offer_overrides_and_staff_choices(client, shop: Shop, sessions, settings, smtp) -> None:
    live = smtp_settings(settings, smtp)
    await run_jobs(live)  # the manager's invitation (a system email)
    smtp.inbox.envelopes.clear()

    # Defaults: the member is told; staff are told (owners and admins; managers opt in).
    await cancel(sessions, shop)
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert received(smtp) == [
        ("member@example.com", "Your Workshop membership is cancelled: access until 31 December 2026, 00:00 UTC"),
        ("owner@example.com", "Mia Member cancelled Workshop"),
    ]
    # Cancelled by staff: staff are not told of their own act.
    smtp.inbox.envelopes.clear()
    await cancel(sessions, shop, by_staff=True)
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert [to for to, _ in received(smtp)] == ["member@example.com"]

    # The manager chooses cancellations; the owner chooses none; the owner's edited text is sent.
    base = f"{API}/communities/{shop.community_id}/notifications"
    chose = await client.put(f"{base}/staff/{shop.manager.id}", json={"choices": {"staff_cancellation": True}}, headers=shop.manager.headers)
    assert chose.status_code == 200 and chose.json()["choices"]["staff_cancellation"] is True
    assert (await client.put(f"{base}/staff/{shop.owner.id}", json={"choices": {"staff_cancellation": False}}, headers=shop.manager.headers)).status_code == 403
    assert (await client.put(f"{base}/staff/{shop.owner.id}", json={"choices": {"staff_cancellation": False}}, headers=shop.owner.headers)).status_code == 200
    assert (await client.put(f"{base}/staff/{shop.member.id}", json={"choices": {"staff_cancellation": True}}, headers=shop.owner.headers)).status_code == 404
    assert (await patch(client, shop, "staff_cancellation", body="{{ member_email }} left {{ offer_title }}.")).status_code == 200
    smtp.inbox.envelopes.clear()
    await cancel(sessions, shop)
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert [to for to, _ in received(smtp)] == ["manager@example.com", "member@example.com"]
    [to_manager] = [m for m in smtp.inbox.messages() if m["To"] == "manager@example.com"]
    assert to_manager.get_body(("plain",)).get_content().strip() == "member@example.com left Workshop."

    # The community switches the member's confirmation off; one offer switches it back on.
    assert (await patch(client, shop, "cancellation_confirmed", enabled=False)).status_code == 200
    put = await client.put(f"{base}/offers/{shop.other_offer_id}", json={"overrides": {"cancellation_confirmed": True, "staff_cancellation": False}}, headers=shop.owner.headers)
    assert put.status_code == 200 and put.json()["overrides"] == {"cancellation_confirmed": True, "staff_cancellation": False}
    smtp.inbox.envelopes.clear()
    await cancel(sessions, shop)  # Workshop: follows the community
    await cancel(sessions, shop, offer_id=shop.other_offer_id)  # Library: its overrides
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert received(smtp) == [
        ("manager@example.com", "Mia Member cancelled Workshop"),
        ("member@example.com", "Your Library membership is cancelled: access until 31 December 2026, 00:00 UTC"),
    ]
    # null follows the community again; a foreign offer is a 404.
    back = await client.put(f"{base}/offers/{shop.other_offer_id}", json={"overrides": {"cancellation_confirmed": None}}, headers=shop.owner.headers)
    assert back.json()["overrides"] == {"staff_cancellation": False}
    assert (await client.get(f"{base}/offers/999999", headers=shop.owner.headers)).status_code == 404


async def test_nothing_is_sent_twice_when_jobs_rerun(client, shop: Shop, sessions, settings, smtp) -> None:
    live = smtp_settings(settings, smtp)
    await run_jobs(live)
    smtp.inbox.envelopes.clear()
    crashes = {"decide": [RuntimeError("worker died after deciding")], "send": [RuntimeError("worker died after sending")]}

    async def decide_then_crash_once(session, ctx: jobs.JobContext, **payload: Any):
        kept = await notification_tasks.handle_announce(session, ctx, **payload)
        if crashes["decide"]:
            raise crashes["decide"].pop()
        return kept

    async def send_then_crash_once(session, ctx: jobs.JobContext, **payload: Any):
        kept = await mail_tasks.send_email(session, ctx, **payload)
        if crashes["send"]:
            raise crashes["send"].pop()
        return kept

    await cancel(sessions, shop)
    await asyncio.wait_for(run_jobs(live, handlers={NOTIFY: decide_then_crash_once, SEND_EMAIL: send_then_crash_once}), WAIT)
    assert not crashes["decide"] and not crashes["send"]
    assert received(smtp) == [
        ("member@example.com", "Your Workshop membership is cancelled: access until 31 December 2026, 00:00 UTC"),
        ("owner@example.com", "Mia Member cancelled Workshop"),
    ]
    async with sessions() as session:
        states = sorted((d.email, d.state) for d in await session.scalars(select(Delivery)))
        assert states == [("member@example.com", "sent"), ("owner@example.com", "sent")]
        assert await session.scalar(select(func.count()).select_from(OutboxJob).where(OutboxJob.state != jobs.JobState.done)) == 0


async def test_the_log_shows_sent_and_bounced_per_community_and_per_member(client, shop: Shop, sessions, settings, smtp) -> None:
    live = smtp_settings(settings, smtp)
    refused = await sign_up(client, REFUSED, name="Ray Refused")
    await cancel(sessions, shop)
    await cancel(sessions, shop, user_id=refused.id)
    await asyncio.wait_for(run_jobs(live), WAIT)
    base = f"{API}/communities/{shop.community_id}/notifications"
    log = (await client.get(f"{base}/deliveries", headers=shop.manager.headers)).json()
    assert [(d["email"], d["message"], d["state"]) for d in log] == [
        ("owner@example.com", "staff_cancellation", "sent"),
        (REFUSED, "cancellation_confirmed", "bounced"),
        ("owner@example.com", "staff_cancellation", "sent"),
        ("member@example.com", "cancellation_confirmed", "sent"),
    ]
    assert log[1]["error"].startswith("550") and "User unknown" in log[1]["error"]
    bounced = (await client.get(f"{base}/deliveries?status=bounced", headers=shop.owner.headers)).json()
    assert [d["email"] for d in bounced] == [REFUSED]
    mine = (await client.get(f"{base}/members/{shop.member.id}/deliveries", headers=shop.owner.headers)).json()
    assert [(d["message"], d["state"]) for d in mine] == [("cancellation_confirmed", "sent")]
    assert (await client.get(f"{base}/deliveries?status=lost", headers=shop.owner.headers)).status_code == 422
    assert (await client.get(f"{base}/members/{shop.manager.id + 1000}/deliveries", headers=shop.owner.headers)).status_code == 404
    # The bounce is final: the job is done, not retried.
    assert [m["To"] for m in smtp.inbox.messages()].count(REFUSED) == 0


async def test_send_yourself_a_test(client, shop: Shop, settings, smtp) -> None:
    sent = await client.post(f"{API}/communities/{shop.community_id}/notifications/messages/payment_failed/test", headers=shop.manager.headers)
    assert sent.status_code == 202 and sent.json() == {"to": "manager@example.com"}
    await asyncio.wait_for(run_jobs(smtp_settings(settings, smtp)), WAIT)
    [message] = [m for m in smtp.inbox.messages() if m["Subject"].startswith("[Test]")]
    assert message["To"] == "manager@example.com"
    assert message["Subject"] == "[Test] Your payment for Sample Membership did not go through"
