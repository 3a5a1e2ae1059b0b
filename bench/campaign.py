"""A campaign to 100,000 members through a local SMTP server (aiosmtpd, in a process of its own).

    python bench/campaign.py [--members 100000]

COMMUNITY_DATABASE_URL / COMMUNITY_REDIS_URL when set, else embedded services in a temp dir;
works in a fresh database bench_<random>, dropped at the end. Seeding is set-based (INSERT ...
SELECT generate_series), every member in the built-in segment `active`.

Stdout (`key=value`):
- queue_s: sending the campaign now (service.send, as the API calls it: the confirmed count
  checked, then every recipient queued by one INSERT ... SELECT), committed. Goal: < 5.
- base_per_s: a bare aiosmtplib loop on one connection sending the very same messages (built
  beforehand, not timed) to the same server, in the same run.
- campaign_per_s: the delivery job's loop (sender.deliver_campaign: claims, rendering, SMTP on
  one reused connection, recording every answer), COMMUNITY_CAMPAIGN_RATE unlimited.
- delivery_ratio = campaign_per_s / base_per_s. Goal: >= 0.5.
- delivered: recipients the server got the campaign for; duplicates: extra copies any recipient
  got (0: everyone exactly one); missing: members who got none; recorded_sent: rows `sent`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiosmtplib
from harness import log, out, scratch_settings
from sqlalchemy import text

from community.campaigns import sender, service
from community.campaigns.models import Campaign
from community.db import create_engine, session_factory
from community.migrate import upgrade

TRIGGERS = [("members", "members_joined"), ("members", "members_fill_keys")]
BODY = (
    "Hello {{ name }},\n\nThe **spring course** of {{ community_name }} opens on Monday: six live sessions, "
    "recordings, and a [workbook](https://example.com/workbook).\n\n- Week 1: foundations\n- Week 2: practice\n\n"
    "See you there!\n"
)


# ---------------------------------------------------------------- the SMTP server's process


class Counting:
    """aiosmtpd handler: counts copies per recipient. Control addresses: reset@control.invalid
    clears, dump@control.invalid writes the counts to the file named at start."""

    def __init__(self, dump_path: str) -> None:
        self.counts: Counter[str] = Counter()
        self.dump_path = dump_path

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address == "reset@control.invalid":
            self.counts.clear()
            return "250 reset"
        if address == "dump@control.invalid":
            Path(self.dump_path).write_text(json.dumps(self.counts))
            return "250 dumped"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.counts.update(envelope.rcpt_tos)
        return "250 Message accepted for delivery"


def serve_smtp(port: int, dump_path: str) -> None:
    from aiosmtpd.smtp import SMTP

    async def run() -> None:
        handler = Counting(dump_path)
        server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler, hostname="bench"), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


async def control(port: int, address: str) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.mail("bench@control.invalid")
        await smtp.rcpt(address)
        await smtp.rset()
    finally:
        await smtp.quit()


# ---------------------------------------------------------------- seeding


async def seed(sessions, n: int) -> tuple[int, int]:
    async with sessions() as s, s.begin():
        for table, trigger in TRIGGERS:
            await s.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
        cid = (await s.execute(text("INSERT INTO communities (name, slug, default_currency) VALUES ('Bench Guild', 'bench', 'USD') RETURNING id"))).scalar_one()
        t = time.perf_counter()
        await s.execute(text(
            "INSERT INTO users (email, name) SELECT 'm' || i || '@example.com', 'Member ' || i FROM generate_series(1, :n) AS i"
        ), {"n": n})
        await s.execute(text(
            "INSERT INTO members (community_id, user_id, status, name_key, email_key, search_key)"
            " SELECT CAST(:c AS bigint), u.id, 'active', lower(u.name), lower(u.email), lower(u.name) || ' ' || lower(u.email) FROM users u"
        ), {"c": cid})
        for table, trigger in TRIGGERS:
            await s.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
        first = (await s.execute(text("SELECT min(id) FROM users"))).scalar_one()
        log(f"seeded {n} members in {time.perf_counter() - t:.1f}s")
    async with sessions() as s:
        for table in ("users", "members"):
            await s.execute(text(f"ANALYZE {table}"))
        await s.commit()
    return cid, first


# ---------------------------------------------------------------- the run


async def bench(settings, n: int) -> None:
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url, pool_size=4)
    sessions = session_factory(engine)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dump_path = tempfile.mktemp(prefix="campaign-bench-", suffix=".json")
    smtp_process = multiprocessing.get_context("spawn").Process(target=serve_smtp, args=(port, dump_path), daemon=True)
    smtp_process.start()
    settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}", campaign_rate=0.0)
    try:
        for _ in range(100):
            try:
                await control(port, "reset@control.invalid")
                break
            except (OSError, aiosmtplib.SMTPException):
                await asyncio.sleep(0.1)
        cid, first = await seed(sessions, n)
        async with sessions() as s, s.begin():
            campaign = await service.create_campaign(
                s, cid, author_id=first, subject="Spring course: a seat for {{ name }}", body=BODY, format="markdown",
                segment="active", send_at=None,
            )
            reaches = (await service.audience(s, cid, "active")).reaches
        assert reaches == n, reaches

        t = time.perf_counter()
        async with sessions() as s, s.begin():
            await service.send(s, cid, campaign.id, expected=reaches)
        queue_s = time.perf_counter() - t
        out("queue_s", f"{queue_s:.2f}")

        # The baseline: the same messages, built beforehand, on one connection in a bare loop.
        async with sessions() as s:
            c = await s.get(Campaign, campaign.id)
            assert c is not None
            renderer = sender.Renderer.of(settings, c, "Bench Guild")
            rows = (await s.execute(text("SELECT user_id, email, name FROM campaign_recipients WHERE campaign_id = :c ORDER BY user_id"), {"c": campaign.id})).all()
        messages = [(r.email, renderer.message(r.user_id, r.email, r.name)) for r in rows]
        log(f"built {len(messages)} messages for the baseline")
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await smtp.connect()
        t = time.perf_counter()
        for to, message in messages:
            await smtp.sendmail(renderer.sender, [to], message)
        base_s = time.perf_counter() - t
        await smtp.quit()
        del messages
        base_rate = n / base_s
        out("base_per_s", f"{base_rate:.0f}")
        await control(port, "reset@control.invalid")

        t = time.perf_counter()
        result = await sender.deliver_campaign(sessions, settings, campaign.id)
        campaign_s = time.perf_counter() - t
        rate = n / campaign_s
        log(f"delivery {result} in {campaign_s:.1f}s")
        out("campaign_per_s", f"{rate:.0f}")
        out("delivery_ratio", f"{rate / base_rate:.2f}")

        await control(port, "dump@control.invalid")
        counts: dict[str, int] = json.loads(Path(dump_path).read_text())
        expected = {r.email for r in rows}
        out("delivered", sum(1 for e in expected if counts.get(e, 0) >= 1))
        out("duplicates", sum(c - 1 for c in counts.values() if c > 1))
        out("missing", sum(1 for e in expected if counts.get(e, 0) == 0))
        out("strangers", sum(1 for e in counts if e not in expected))
        async with sessions() as s:
            out("recorded_sent", (await s.execute(text("SELECT count(*) FROM campaign_recipients WHERE campaign_id = :c AND state = 'sent'"), {"c": campaign.id})).scalar_one())
            out("campaign_state", (await s.execute(text("SELECT state FROM campaigns WHERE id = :c"), {"c": campaign.id})).scalar_one())
    finally:
        smtp_process.terminate()
        smtp_process.join(timeout=10)
        Path(dump_path).unlink(missing_ok=True)
        await engine.dispose()


async def main(options: argparse.Namespace) -> None:
    async with scratch_settings() as settings, asyncio.timeout(options.timeout):
        await bench(settings, options.members)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=1800)
    asyncio.run(main(parser.parse_args()))
