"""The catalogue messages that answer access runs, refunds and payouts: access gained and lost
(switchable, per offer too, editable, sent once however the job reruns), staff told of a
refund, and staff told when affiliates can be paid; against a real local SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select

from community import jobs
from community.affiliates import commissions
from community.mail.models import Delivery
from community.notifications import access as access_notices
from community.offers.runs import SEND_ACCESS_EMAILS
from tests.conftest import sign_up
from tests.helpers import run_jobs
from tests.test_access import edit, make_group
from tests.test_commissions import PAID_AT, buy, make_program, set_program
from tests.test_email import WAIT, free_port
from tests.test_notifications import API, Shop, patch, shop, smtp, smtp_settings
from workers.registry import HANDLERS

__all__ = ["shop", "smtp"]  # pytest fixtures from test_notifications, used by name


async def holders_and_a_group(client, shop: Shop, live, smtp, count: int) -> tuple[list, int]:
    """`count` more holders of the shop's offer and a group Yoga it does not open yet; the inbox emptied."""
    others = [await sign_up(client, f"m{n}@example.com", name=f"M{n}") for n in range(count)]
    for person in others:
        given = await client.post(f"{API}/communities/{shop.community_id}/entitlements", json={"email": person.email, "offer_id": shop.offer_id}, headers=shop.owner.headers)
        assert given.status_code == 201
    yoga = await make_group(client, shop.owner, shop.community_id, "Yoga")
    await run_jobs(live)
    smtp.inbox.envelopes.clear()
    return others, yoga


def subjects(smtp, to: str) -> list[str]:
    return sorted(m["Subject"] for m in smtp.inbox.messages() if m["To"] == to)


async def test_access_gained_and_lost_are_catalogue_messages(client, shop: Shop, sessions, settings, smtp) -> None:
    live = smtp_settings(settings, smtp)
    yoga = await make_group(client, shop.owner, shop.community_id, "Yoga")
    weights = await make_group(client, shop.owner, shop.community_id, "Weights")
    await run_jobs(live)
    smtp.inbox.envelopes.clear()

    # Defaults: a member who gains groups is told which, in one message.
    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, add=[yoga, weights])).status_code == 200
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert subjects(smtp, shop.member.email) == ["You now have access to Yoga, Weights in Makers Guild"]  # in the run's order

    # Previewed with sample groups, as on the console's message page.
    base = f"{API}/communities/{shop.community_id}/notifications"
    preview = await client.post(f"{base}/messages/access_gained/preview", json={}, headers=shop.owner.headers)
    assert preview.status_code == 200 and preview.json()["subject"] == "You now have access to Weight Training, Yoga in Sample Community"

    # The owner edits "access lost"; the edit is what goes out, with the groups listed.
    edited = await patch(client, shop, "access_lost", subject="Goodbye {{ groups | join(' & ') }}",
                         body="{% for g in groups %}{{ g }} is closed to you, {{ name }}.\n{% endfor %}")
    assert edited.status_code == 200, edited.text
    smtp.inbox.envelopes.clear()
    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, remove=[yoga])).status_code == 200
    await asyncio.wait_for(run_jobs(live), WAIT)
    [lost] = [m for m in smtp.inbox.messages() if m["To"] == shop.member.email]
    assert lost["Subject"] == "Goodbye Yoga"
    assert lost.get_body(("plain",)).get_content().strip() == "Yoga is closed to you, Mia Member."

    # Switched off for the community: nobody is told; an offer's override switches it back on.
    assert (await patch(client, shop, "access_gained", enabled=False)).status_code == 200
    smtp.inbox.envelopes.clear()
    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, add=[yoga])).status_code == 200
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert subjects(smtp, shop.member.email) == []
    put = await client.put(f"{base}/offers/{shop.offer_id}", json={"overrides": {"access_gained": True}}, headers=shop.owner.headers)
    assert put.status_code == 200, put.text
    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, remove=[yoga])).status_code == 200
    await asyncio.wait_for(run_jobs(live), WAIT)  # (runs reconcile with the access of their moment: each change settles first)
    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, add=[yoga])).status_code == 200
    await asyncio.wait_for(run_jobs(live), WAIT)
    assert subjects(smtp, shop.member.email) == ["Goodbye Yoga", "You now have access to Yoga in Makers Guild"]

    # Each one is in the delivery log, on the member's page too.
    mine = (await client.get(f"{base}/members/{shop.member.id}/deliveries", headers=shop.owner.headers)).json()
    assert [(d["message"], d["state"]) for d in mine][:3] == [("access_gained", "sent"), ("access_lost", "sent"), ("access_lost", "sent")]


async def test_access_messages_go_once_when_the_job_dies_and_reruns(client, shop: Shop, sessions, settings, smtp) -> None:
    live = smtp_settings(settings, smtp)
    others, yoga = await holders_and_a_group(client, shop, live, smtp, 3)
    crashes = [RuntimeError("worker died after sending")]

    async def send_then_die_once(session, ctx: jobs.JobContext, **payload: Any) -> None:
        await access_notices.send_access_emails(session, ctx, **payload)
        if crashes:
            raise crashes.pop()

    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, add=[yoga])).status_code == 200
    await asyncio.wait_for(run_jobs(live, handlers={**HANDLERS, SEND_ACCESS_EMAILS: send_then_die_once}), WAIT)
    assert not crashes
    told = sorted(m["To"] for m in smtp.inbox.messages())
    assert told == sorted([shop.member.email, *(p.email for p in others)])  # each once
    async with sessions() as session:
        rows = (await session.execute(select(Delivery.email, Delivery.state).where(Delivery.message == "access_gained"))).all()
    assert sorted(rows) == sorted((email, "sent") for email in told)


async def test_staff_are_told_of_a_refund(client, shop: Shop, sessions, settings, smtp) -> None:
    from community.mail.announce import announce

    async with sessions() as session, session.begin():
        await announce(
            session, "refund_issued", community_id=shop.community_id, user_id=shop.member.id, offer_id=shop.offer_id,
            payment_id=7, amount="$20.00", paid="$49.00", access_revoked=True, billing_url="http://testserver/b",
            payment_url=f"http://testserver/dashboard/communities/{shop.community_id}/payments/7",
        )
    await asyncio.wait_for(run_jobs(smtp_settings(settings, smtp)), WAIT)
    assert "Refund of $20.00 for Workshop" in subjects(smtp, shop.member.email)
    [to_owner] = [m for m in smtp.inbox.messages() if m["To"] == shop.owner.email and "Refund" in m["Subject"]]
    assert to_owner["Subject"] == "Refund: $20.00 to Mia Member for Workshop"
    text = to_owner.get_body(("plain",)).get_content()
    assert "Their access to Workshop has ended" in text and f"/dashboard/communities/{shop.community_id}/payments/7" in text
    # A manager gets it only by choosing it.
    assert [m for m in smtp.inbox.messages() if m["To"] == shop.manager.email and "Refund" in m["Subject"]] == []


async def test_staff_are_told_once_when_an_affiliate_becomes_payable(client, sessions, settings, smtp, owner, community) -> None:
    live = smtp_settings(settings, smtp)
    program = await make_program(client, sessions, community["id"])
    await set_program(sessions, program.offer_id, resell_min_payout=500)
    await buy(sessions, program)  # earns 300: under the minimum once approved
    await buy(sessions, program, buyer=await sign_up(client, "second@example.com"), paid_at=PAID_AT + dt.timedelta(days=2))
    await run_jobs(live)
    smtp.inbox.envelopes.clear()

    async def approve(days: int) -> None:
        async with sessions() as session, session.begin():
            await commissions.approve_due(session, now=PAID_AT + dt.timedelta(days=days))
        await asyncio.wait_for(run_jobs(live), WAIT)

    await approve(31)  # the first: 300 of 500, not payable yet
    assert subjects(smtp, owner.email) == []
    await approve(33)  # the second: 600, payable
    assert subjects(smtp, owner.email) == ["Resell rights: 1 affiliate to pay in Makers Guild"]
    text = next(m for m in smtp.inbox.messages() if m["To"] == owner.email).get_body(("plain",)).get_content()
    assert "6.00 USD in all" in text and f"/dashboard/communities/{community['id']}/resell/balances" in text
    await approve(40)  # nothing new approved: nobody told again
    assert len(subjects(smtp, owner.email)) == 1


async def test_access_messages_wait_while_the_mail_server_is_down(client, shop: Shop, sessions, settings, smtp) -> None:
    live = smtp_settings(settings, smtp)
    others, yoga = await holders_and_a_group(client, shop, live, smtp, 2)

    down = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}")  # nothing listens there
    assert (await edit(client, shop.owner, shop.community_id, shop.offer_id, add=[yoga])).status_code == 200
    await asyncio.wait_for(run_jobs(down), WAIT)
    async with sessions() as session:
        assert (await session.execute(select(Delivery.state).where(Delivery.message == "access_gained"))).all() == []  # none lost
        [job] = (await session.scalars(select(jobs.OutboxJob).where(jobs.OutboxJob.name == SEND_ACCESS_EMAILS))).all()
    assert job.state == jobs.JobState.failed  # on Home's "Failed background jobs"

    retried = await client.post(f"{API}/communities/{shop.community_id}/jobs/{job.id}/retry", headers=shop.owner.headers)
    assert retried.status_code == 200, retried.text
    await asyncio.wait_for(run_jobs(live), WAIT)
    told = sorted(m["To"] for m in smtp.inbox.messages())
    assert told == sorted([shop.member.email, *(p.email for p in others)])  # each once, none missed
