"""Campaigns against a real local SMTP server (aiosmtpd): one message per member, nothing twice
on a rerun or after a dead worker, unsubscribes honoured (one-click too), the headers, a cancel
that stops the sender, scheduling, refusals naming their field, and another community's 404."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text

from community.campaigns import sender, service, tasks
from community.settings import Settings
from tests.conftest import Account, create_community, sign_up
from tests.helpers import run_jobs
from tests.test_communities import base, field_of
from tests.test_email import SmtpServer, smtp_server  # noqa: F401 - the aiosmtpd fixture

WAIT = 60.0


async def add_members(sessions, cid: int, n: int, *, tag: str = "news", prefix: str = "m") -> list[int]:
    """n people who joined, tagged `tag` (one INSERT each for users and members)."""
    async with sessions() as s, s.begin():
        ids = (await s.execute(text(
            "INSERT INTO users (email, name) SELECT :p || i || '@example.com', 'Member ' || i"
            " FROM generate_series(1, :n) AS i RETURNING id"), {"p": prefix, "n": n})).scalars().all()
        await s.execute(text(
            "INSERT INTO members (community_id, user_id, tags) SELECT :c, u, ARRAY[:t] FROM unnest(CAST(:ids AS bigint[])) AS u"),
            {"c": cid, "t": tag, "ids": list(ids)})
    return list(ids)


async def news_segment(client: httpx.AsyncClient, community: dict[str, Any], owner: Account, tag: str = "news") -> str:
    r = await client.post(f"{base(community)}/segments", json={"name": f"Tag {tag}", "filters": {"tag": tag}}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["key"]


async def draft(client, community, owner, segment: str, **fields: Any) -> dict[str, Any]:
    body = {"subject": "News for {{ name }}", "body": "Hello {{ name }},\n\n**Big** news from {{ community_name }}.",
            "format": "markdown", "segment": segment, **fields}
    r = await client.post(f"{base(community)}/campaigns", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


def smtp(settings: Settings, server: SmtpServer, rate: float = 0) -> Settings:
    return dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{server.port}", campaign_rate=rate)


async def states(sessions, campaign_id: int) -> Counter[str]:
    async with sessions() as s:
        rows = await s.execute(text("SELECT state, count(*) FROM campaign_recipients WHERE campaign_id = :c GROUP BY state"), {"c": campaign_id})
        return Counter({k: v for k, v in rows})


async def test_each_member_gets_exactly_one_message_with_the_unsubscribe_headers(
    client, owner, community, sessions, settings, smtp_server: SmtpServer  # noqa: F811
) -> None:
    cid = community["id"]
    await add_members(sessions, cid, 25)
    await add_members(sessions, cid, 3, tag="other", prefix="x")  # not in the segment
    segment = await news_segment(client, community, owner)
    campaign = await draft(client, community, owner, segment)
    url = f"{base(community)}/campaigns/{campaign['id']}"

    audience = (await client.get(f"{base(community)}/campaigns/audience", params={"segment": segment}, headers=owner.headers)).json()
    directory = (await client.get(f"{base(community)}/segments", headers=owner.headers)).json()
    assert audience == {"segment": segment, "members": 25, "unsubscribed": 0, "reaches": 25}
    assert [s["count"] for s in directory if s["key"] == segment] == [25]  # the directory's count

    preview = (await client.get(f"{url}/preview", headers=owner.headers)).json()
    assert preview["subject"] == "News for Olivia Owner"
    assert "<strong>Big</strong> news from Makers Guild" in preview["html"]

    r = await client.post(f"{url}/send", json={"expected": 24}, headers=owner.headers)
    assert r.status_code == 409 and field_of(r) == ["expected"]  # the count changed: nothing sent
    r = await client.post(f"{url}/send", json={"expected": 25}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["state"] == "sending" and r.json()["counts"] == {"queued": 25}

    mail_settings = smtp(settings, smtp_server)
    await asyncio.wait_for(run_jobs(mail_settings), WAIT)
    messages = smtp_server.inbox.messages()
    assert sorted(Counter(m["To"] for m in messages).values()) == [1] * 25
    m = next(m for m in messages if m["To"] == "m7@example.com")
    assert m["Subject"] == "News for Member 7"
    unsubscribe = service.unsubscribe_url(settings, cid, int(m["List-Unsubscribe"].split("/")[-1].split(".")[1].rstrip(">")))
    assert m["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in m.get_body(("plain",)).get_content()
    assert "<strong>Big</strong> news from Makers Guild" in m.get_body(("html",)).get_content()
    read = (await client.get(url, headers=owner.headers)).json()
    assert read["state"] == "sent" and read["counts"] == {"sent": 25}

    # A rerun of the job (a duplicate delivery, a relayed row) sends nothing again.
    await sender.deliver_campaign(sessions, mail_settings, campaign["id"])
    async with sessions() as s, s.begin():
        await s.execute(text("UPDATE campaigns SET state = 'sending' WHERE id = :c"), {"c": campaign["id"]})
    assert await sender.deliver_campaign(sessions, mail_settings, campaign["id"]) == "done"
    assert len(smtp_server.inbox.envelopes) == 25

    page = (await client.get(f"{url}/recipients", params={"limit": 10}, headers=owner.headers)).json()
    assert len(page["items"]) == 10 and {i["state"] for i in page["items"]} == {"sent"}
    rest = (await client.get(f"{url}/recipients", params={"after": page["next"], "limit": 50}, headers=owner.headers)).json()
    assert len(rest["items"]) == 15 and rest["next"] is None


async def test_unsubscribed_members_are_skipped_at_queue_and_send_time(
    client, owner, community, sessions, settings, smtp_server: SmtpServer  # noqa: F811
) -> None:
    cid = community["id"]
    ids = await add_members(sessions, cid, 6)
    segment = await news_segment(client, community, owner)
    # One-click, as a mail provider posts it: no log-in, no CSRF token.
    token = service.unsubscribe_token(settings, cid, ids[0])
    page = await client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "Unsubscribe from Makers Guild?" in page.text
    r = await client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert (await client.post(f"/unsubscribe/{token}x", data={"List-Unsubscribe": "One-Click"})).status_code == 404
    audience = (await client.get(f"{base(community)}/campaigns/audience", params={"segment": segment}, headers=owner.headers)).json()
    assert audience == {"segment": segment, "members": 6, "unsubscribed": 1, "reaches": 5}

    campaign = await draft(client, community, owner, segment)
    assert (await client.post(f"{base(community)}/campaigns/{campaign['id']}/send", json={"expected": 5}, headers=owner.headers)).status_code == 200
    # Another unsubscribes after queueing, before the sender reaches them.
    r = await client.post(f"/unsubscribe/{service.unsubscribe_token(settings, cid, ids[1])}")
    assert r.status_code == 200
    await asyncio.wait_for(run_jobs(smtp(settings, smtp_server)), WAIT)
    got = sorted(m["To"] for m in smtp_server.inbox.messages())
    assert got == sorted(f"m{i}@example.com" for i in range(3, 7))
    assert await states(sessions, campaign["id"]) == Counter({"sent": 4, "skipped": 2})


async def test_a_bounce_and_a_dead_worker_never_lead_to_a_second_send(
    client, owner, community, sessions, settings
) -> None:
    from aiosmtpd.controller import Controller

    from tests.test_email import Inbox, free_port

    class Picky(Inbox):
        async def handle_RCPT(self, server, session, envelope, address, options) -> str:
            if address.startswith("m2@"):
                return "550 5.1.1 No such user here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    inbox = Picky()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        cid = community["id"]
        await add_members(sessions, cid, 5)
        segment = await news_segment(client, community, owner)
        campaign = await draft(client, community, owner, segment)
        await client.post(f"{base(community)}/campaigns/{campaign['id']}/send", json={}, headers=owner.headers)
        # A worker claimed m1 and died after the server took it, before recording it.
        async with sessions() as s, s.begin():
            await s.execute(text("UPDATE campaign_recipients SET state = 'sending', updated_at = now() - interval '1 hour'"
                                 " WHERE email = 'm1@example.com'"))
        await asyncio.wait_for(run_jobs(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{controller.port}", campaign_rate=0)), WAIT)
        assert sorted(e.rcpt_tos[0] for e in inbox.envelopes) == ["m3@example.com", "m4@example.com", "m5@example.com"]
        rows = (await client.get(f"{base(community)}/campaigns/{campaign['id']}/recipients", headers=owner.headers)).json()["items"]
        by_email = {r["email"]: r for r in rows}
        assert by_email["m2@example.com"]["state"] == "bounced" and "550 5.1.1 No such user here" in by_email["m2@example.com"]["detail"]
        assert by_email["m1@example.com"]["state"] == "failed" and "outcome unknown" in by_email["m1@example.com"]["detail"]
        assert (await client.get(f"{base(community)}/campaigns/{campaign['id']}", headers=owner.headers)).json()["state"] == "sent"

        # A sender that died with its claim fresh: the campaign waits; once the claim is stale,
        # the cron settles it (failed, outcome unknown) and finishes the campaign. Nothing resent.
        async with sessions() as s, s.begin():
            await s.execute(text("UPDATE campaigns SET state = 'sending'"))
            await s.execute(text("UPDATE campaign_recipients SET state = 'sending', updated_at = now() WHERE email = 'm3@example.com'"))
        await tasks.start_due(sessions)
        assert (await client.get(f"{base(community)}/campaigns/{campaign['id']}", headers=owner.headers)).json()["state"] == "sending"
        async with sessions() as s, s.begin():
            await s.execute(text("UPDATE campaign_recipients SET updated_at = now() - interval '1 hour' WHERE state = 'sending'"))
        await tasks.start_due(sessions)
        done = (await client.get(f"{base(community)}/campaigns/{campaign['id']}", headers=owner.headers)).json()
        assert done["state"] == "sent" and done["counts"] == {"sent": 2, "failed": 2, "bounced": 1}
        assert len(inbox.envelopes) == 3
    finally:
        controller.stop()


async def test_cancel_stops_the_sender_at_its_next_batch(
    client, owner, community, sessions, settings, smtp_server: SmtpServer  # noqa: F811
) -> None:
    cid = community["id"]
    await add_members(sessions, cid, 40)
    segment = await news_segment(client, community, owner)
    campaign = await draft(client, community, owner, segment)
    await client.post(f"{base(community)}/campaigns/{campaign['id']}/send", json={}, headers=owner.headers)
    slow = smtp(settings, smtp_server, rate=1)  # batches of 5, one message a second

    sending = asyncio.create_task(sender.deliver_campaign(sessions, slow, campaign["id"]))
    for _ in range(200):
        if smtp_server.inbox.envelopes:
            break
        await asyncio.sleep(0.05)
    r = await client.post(f"{base(community)}/campaigns/{campaign['id']}/cancel", headers=owner.headers)
    assert r.status_code == 200 and r.json()["campaign"]["state"] == "cancelled" and r.json()["not_sent"] >= 30
    assert await asyncio.wait_for(sending, WAIT) == "stopped"
    counts = await states(sessions, campaign["id"])
    assert counts["sent"] == len(smtp_server.inbox.envelopes) <= 5
    assert counts["sent"] + counts["cancelled"] == 40
    r = await client.post(f"{base(community)}/campaigns/{campaign['id']}/cancel", headers=owner.headers)
    assert r.status_code == 409


async def test_a_scheduled_campaign_starts_at_its_time(client, owner, community, sessions, settings) -> None:
    await add_members(sessions, community["id"], 3)
    segment = await news_segment(client, community, owner)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    campaign = await draft(client, community, owner, segment, send_at=later)
    r = await client.post(f"{base(community)}/campaigns/{campaign['id']}/send", json={}, headers=owner.headers)
    assert r.json()["state"] == "scheduled" and r.json()["counts"] == {}
    async with sessions() as s, s.begin():
        assert await service.start_due(s) == 0
        await s.execute(text("UPDATE campaigns SET send_at = now() - interval '1 second'"))
    assert await tasks.start_due(sessions) == 1
    read = (await client.get(f"{base(community)}/campaigns/{campaign['id']}", headers=owner.headers)).json()
    assert read["state"] == "sending" and read["counts"] == {"queued": 3}


async def test_refusals_name_their_field_and_another_community_is_404(client, owner, community, sessions) -> None:
    segment = await news_segment(client, community, owner)
    url = f"{base(community)}/campaigns"
    bad = {"subject": "Hi", "body": "Hello {{ name ", "segment": segment}
    r = await client.post(url, json=bad, headers=owner.headers)
    assert r.status_code == 422 and field_of(r) == ["body"]
    r = await client.post(url, json={**bad, "body": "{{ name.__class__.__mro__ }}"}, headers=owner.headers)
    assert r.status_code == 422 and field_of(r) == ["body"]
    r = await client.post(url, json={**bad, "body": "Hi", "segment": "nobody"}, headers=owner.headers)
    assert r.status_code == 422 and field_of(r) == ["segment"]
    r = await client.post(url, json={**bad, "body": "Hi", "send_at": "2026-01-01T00:00:00"}, headers=owner.headers)
    assert r.status_code == 422 and field_of(r) == ["send_at"]
    mine = await draft(client, community, owner, segment)

    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Other Guild")
    theirs = f"{base(other)}/campaigns"
    r = await client.post(theirs, json={**bad, "body": "Hi"}, headers=other_owner.headers)  # my segment id is not theirs
    assert r.status_code == 422 and field_of(r) == ["segment"]
    for method, path in (("get", ""), ("get", "/preview"), ("get", "/recipients"), ("post", "/send"), ("post", "/cancel"), ("patch", "")):
        kwargs = {"json": {}} if method != "get" else {}
        r = await getattr(client, method)(f"{theirs}/{mine['id']}{path}", headers=other_owner.headers, **kwargs)
        assert r.status_code == 404, (method, path, r.text)

    manager = await sign_up(client, "manager@example.com")
    await client.put(f"{base(community)}/staff", json={"email": "manager@example.com", "role": "manager"}, headers=owner.headers)
    assert (await client.get(url, headers=manager.headers)).status_code == 200
    assert (await client.post(f"{url}/{mine['id']}/send", json={}, headers=manager.headers)).status_code == 403

    r = await client.patch(f"{url}/{mine['id']}", json={"subject": "Changed"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["subject"] == "Changed"


async def test_recipients_go_with_their_user_and_their_campaign(client, owner, community, sessions) -> None:
    ids = await add_members(sessions, community["id"], 3)
    segment = await news_segment(client, community, owner)
    campaign = await draft(client, community, owner, segment)
    await client.post(f"{base(community)}/campaigns/{campaign['id']}/send", json={}, headers=owner.headers)
    async with sessions() as s, s.begin():
        await s.execute(text("DELETE FROM users WHERE id = :u"), {"u": ids[0]})
    assert await states(sessions, campaign["id"]) == Counter({"queued": 2})
    async with sessions() as s, s.begin():
        await s.execute(text("DELETE FROM communities WHERE id = :c"), {"c": community["id"]})
    assert await states(sessions, campaign["id"]) == Counter()
