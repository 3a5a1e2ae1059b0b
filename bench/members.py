"""The members directory at scale: 200,000 members with payments, refunds, tags and notes.

    python bench/members.py [--members 200000] [--samples 40]

COMMUNITY_DATABASE_URL / COMMUNITY_REDIS_URL when set, else embedded services in a temp dir;
works in a fresh database bench_<random>, dropped at the end (see harness.scratch_settings to
keep it, or to run again in a kept one without seeding). Seeding is set-based (INSERT ...
SELECT generate_series) with the summary triggers off, then one `members_recount` fills every
member's summary (seed_recount_s), then VACUUM (ANALYZE), as autovacuum would after such a
load. Each timing is the service function the API calls, on an
AsyncSession (one statement round trip or a few), p95 over --samples runs; the baseline is a bare
indexed lookup of one member row (by community and user id) through the same session, in the same run.

Stdout (`key=value`): base_p95_ms; page_p95_ms (the slowest sort, order, filter or search page,
first and later pages) and page_ratio (over the baseline); member_page_p95_ms (a member's whole
story) and member_page_ratio; builtin_count_p95_ms (a built-in segment's count, which is also
the directory's total: read from member_counts); segment_count_p95_ms (one saved segment's count) and
segments_p95_ms (every segment with its count, the segments list); export_rows_per_s,
export_peak_rss_mb and export_rss_growth_mb (RSS at the end of the export minus at its first
batch: flat memory stays near 0). Stderr shows each case's p50/p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from harness import log, out, scratch_settings
from sqlalchemy import select, text

from community.db import create_engine, session_factory
from community.exports import stream_copy
from community.members import directory, exports, profile, service
from community.members.models import MemberSegment
from community.migrate import upgrade
from community.offers.models import Offer, Pricing

TRIGGERS = [("entitlements", "members_recount"), ("subscriptions", "members_recount"), ("payments", "members_recount"),
            ("members", "members_joined"), ("members", "members_fill_keys")]
WORDS = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ida", "jon", "kim", "lea", "max", "ned", "ola", "pia"]


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def seed(sessions, n: int) -> tuple[int, list[int], int]:
    async with sessions() as s, s.begin():
        for table, trigger in TRIGGERS:
            await s.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
        cid = (await s.execute(text("INSERT INTO communities (name, slug, default_currency) VALUES ('Bench', 'bench', 'USD') RETURNING id"))).scalar_one()
        offer_rows = [
            Offer(community_id=cid, title=f"Offer {i}", slug=f"offer-{i}", pricing=Pricing.recurring, amount=1500,
                  currency="USD", interval_months=1, auto_tags=[f"offer-{i}"])
            for i in range(4)
        ]
        s.add_all(offer_rows)
        await s.flush()
        offers = [o.id for o in offer_rows]
        words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
        t = time.perf_counter()
        await s.execute(text(
            "INSERT INTO users (email, name) SELECT 'm' || i || '@' || (" + words + ")[1 + (i * 7) % 16] || '.example.com',"
            " initcap((" + words + ")[1 + i % 16]) || ' ' || initcap((" + words + ")[1 + (i / 16) % 16]) || substr(md5(i::text), 1, 6)"
            " FROM generate_series(1, :n) AS i"
        ), {"n": n})
        first_user = (await s.execute(text("SELECT min(id) FROM users"))).scalar_one()
        await s.execute(text(
            "INSERT INTO members (community_id, user_id, joined_at, tags, name_key, email_key, search_key)"
            " SELECT CAST(:c AS bigint), u.id, now() - (u.id - :f) * interval '2 minutes',"
            "  CASE WHEN u.id % 10 = 0 THEN ARRAY['vip'] WHEN u.id % 7 = 0 THEN ARRAY['newsletter', 'yoga'] ELSE '{}' END,"
            "  lower(u.name), lower(u.email), lower(u.name) || ' ' || lower(u.email)"
            " FROM users u"
        ), {"c": cid, "f": first_user})
        # One entitlement each (most active; some cancelled, past due, ended), a second for a quarter.
        await s.execute(text(
            "INSERT INTO entitlements (community_id, offer_id, user_id, source, status, starts_at, ends_at, note)"
            " SELECT CAST(:c AS bigint), (CAST(:offers AS bigint[]))[1 + u.id % 4], u.id, 'purchase'::entitlement_source,"
            "  (CASE WHEN u.id % 20 = 1 THEN 'cancelled' WHEN u.id % 50 = 2 THEN 'past_due' WHEN u.id % 8 = 3 THEN 'expired' ELSE 'active' END)::entitlement_status,"
            "  now() - interval '400 days',"
            "  CASE WHEN u.id % 20 = 1 THEN now() + interval '10 days' WHEN u.id % 50 = 2 THEN now() + interval '5 days'"
            "       WHEN u.id % 8 = 3 THEN now() - interval '3 days' END, ''"
            " FROM users u WHERE u.id % 13 <> 0"
            " UNION ALL SELECT CAST(:c AS bigint), (CAST(:offers AS bigint[]))[1 + (u.id + 1) % 4], u.id, 'comp'::entitlement_source, 'active'::entitlement_status, now(), NULL::timestamptz, '' FROM users u WHERE u.id % 4 = 0"
        ), {"c": cid, "offers": offers})
        await s.execute(text(
            "INSERT INTO subscriptions (community_id, entitlement_id, user_id, offer_id, stripe_account_id, stripe_subscription_id,"
            " status, cancel_at_period_end, amount, currency)"
            " SELECT e.community_id, e.id, e.user_id, e.offer_id, 'acct_bench', 'sub_' || e.id,"
            "  CASE WHEN e.user_id % 30 = 5 THEN 'trialing' ELSE 'active' END, false, 1500, 'USD'"
            " FROM entitlements e WHERE e.source = 'purchase' AND e.status = 'active'"
        ))
        # Payments: 1 to 6 monthly ones per paying member (about 700,000), a few refunded or disputed.
        await s.execute(text(
            "INSERT INTO payments (community_id, user_id, offer_id, entitlement_id, kind, amount, discount_amount, currency,"
            " status, refunded_amount, disputed_amount, paid_at, stripe_account_id, stripe_payment_intent_id)"
            " SELECT e.community_id, e.user_id, e.offer_id, e.id, CASE WHEN k = 1 THEN 'purchase' ELSE 'renewal' END::payment_kind,"
            "  500 + (e.user_id % 40) * 100, 0, 'USD', 'succeeded',"
            "  CASE WHEN (e.user_id + k) % 97 = 0 THEN 500 ELSE 0 END, CASE WHEN (e.user_id + k) % 211 = 0 THEN 500 ELSE 0 END,"
            "  now() - ((e.user_id % 300) + k * 30) * interval '1 day', 'acct_bench', 'pi_' || e.id || '_' || k"
            " FROM entitlements e, generate_series(1, 1 + e.user_id % 6) AS k WHERE e.source = 'purchase'"
        ))
        await s.execute(text(
            "INSERT INTO member_notes (community_id, user_id, author_id, body)"
            " SELECT CAST(:c AS bigint), u.id, :f, 'Called about the ' || (u.id % 12) || 'th class; prefers email.' FROM users u WHERE u.id % 10 < 3"
        ), {"c": cid, "f": first_user})
        log(f"seeded {n} members in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        await s.execute(text("SELECT members_recount(:c, NULL)"), {"c": cid})
        out("seed_recount_s", f"{time.perf_counter() - t:.1f}")
        for table, trigger in TRIGGERS:
            await s.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
        payments = (await s.execute(text("SELECT count(*) FROM payments"))).scalar_one()
        log(f"{payments} payments; summary recounted")
    return cid, offers, first_user


async def p95(samples: int, call: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    times = []
    for i in range(samples + 3):
        t = time.perf_counter()
        await call(i)
        if i >= 3:  # warm-up
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1 if len(times) > 1 else 0]


async def bench(settings, n: int, samples: int) -> None:
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url, pool_size=4)
    sessions = session_factory(engine)
    async with sessions() as s:
        seeded = (await s.execute(text("SELECT id FROM communities WHERE slug = 'bench'"))).scalar()
    if seeded is None:
        cid, offers, first_user = await seed(sessions, n)
    else:  # a kept database (COMMUNITY_BENCH_DATABASE): its members as they are
        async with sessions() as s:
            cid = seeded
            offers = list((await s.execute(text("SELECT id FROM offers WHERE community_id = :c ORDER BY id"), {"c": cid})).scalars())
            first_user = (await s.execute(text("SELECT min(user_id) FROM members WHERE community_id = :c"), {"c": cid})).scalar_one()
            n = (await s.execute(text("SELECT count(*) FROM members WHERE community_id = :c"), {"c": cid})).scalar_one()
        log(f"reusing {n} members")
    # VACUUM as autovacuum would after such a load (the recount rewrote every member row): the
    # visibility map lets a page's walk of a sort index stay in the index (an index-only scan).
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("users", "members", "entitlements", "subscriptions", "payments", "member_notes"):
            await connection.execute(text(f"VACUUM (ANALYZE) {table}"))
    rng = random.Random(14)

    async def in_session(work: Callable[[Any], Awaitable[Any]]) -> Any:
        async with sessions() as s, s.begin():
            return await work(s)

    base50, base95 = await p95(samples * 3, lambda i: in_session(lambda s: s.execute(
        text("SELECT id, status, spent FROM members WHERE community_id = :c AND user_id = :u"), {"c": cid, "u": first_user + rng.randrange(n)}
    )))
    log(f"baseline (bare indexed lookup) p50 {base50:.2f} ms p95 {base95:.2f} ms")
    out("base_p95_ms", f"{base95:.2f}")

    async with sessions() as s:
        saved = await s.scalar(select(MemberSegment).where(MemberSegment.community_id == cid, MemberSegment.name == "Vip spenders"))
        if saved is None:
            saved = await service.save_segment(s, cid, name="Vip spenders", filters=directory.parse_filters({"tag": "vip", "spent_above": "3000"}), author_id=first_user)
            await s.commit()
    cases: dict[str, dict[str, str]] = {}
    for key in directory.SORTS:
        for order in directory.ORDERS:
            cases[f"sort={key}&order={order}"] = {"sort": key, "order": order}
    cases |= {
        "q=prefix 'ann b'": {"q": "ann b"},
        "q=contains 'bob.exa'": {"q": "bob.exa"},
        "q=rare 'm1234'": {"q": "m1234@", "sort": "name"},
        "q=2 letters 'ka' by spent": {"q": "ka", "sort": "total_spent", "order": "desc"},
        "status=past_due by name": {"status": "past_due", "sort": "name"},
        "status=trialing by last payment": {"status": "trialing", "sort": "last_payment", "order": "desc"},
        "tag=vip by spent desc": {"tag": "vip", "sort": "total_spent", "order": "desc"},
        "offer by email": {"offer": str(offers[2]), "sort": "email"},
        "segment=customers by joined desc": {"segment": "customers", "order": "desc"},
        "segment=affiliates": {"segment": "affiliates"},
        "segment=saved by name": {"segment": str(saved.id), "sort": "name"},
        "spent_above=20000 by name": {"spent_above": "20000", "sort": "name"},
        "joined last 30 days by spent": {"joined_from": "2000-01-01T00:00:00Z", "sort": "total_spent", "order": "desc"},
        "status=ended + tag=yoga by email desc": {"status": "ended", "tag": "yoga", "sort": "email", "order": "desc"},
    }
    raw = await engine.raw_connection()
    driver = raw.driver_connection  # asyncpg: the database's own execution time, through EXPLAIN ANALYZE
    await driver.execute("SET max_parallel_workers_per_gather = 0")  # as directory.directory sets it

    async def db_ms(statement) -> float:
        compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup]
        plan = await driver.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled), *params)
        plan = json.loads(plan) if isinstance(plan, str) else plan  # SQLAlchemy's codec may have decoded it
        return float(plan[0]["Execution Time"])

    worst = ("", 0.0)
    worst_db = ("", 0.0)
    for name, params in cases.items():
        sort = directory.parse_sort(params.pop("sort", None), params.pop("order", None))
        f = directory.parse_filters(params)
        first = await in_session(lambda s, f=f, sort=sort: directory.directory(s, cid, f, sort, after=None, limit=50))
        cursor = first.next
        for label, after in (("page 1", None), ("page 2", cursor)):
            if label == "page 2" and after is None:
                continue
            m50, m95 = await p95(samples, lambda i, f=f, sort=sort, after=after: in_session(
                lambda s: directory.directory(s, cid, f, sort, after=after, limit=50)))
            log(f"  {name:42s} {label}: p50 {m50:6.2f} ms  p95 {m95:6.2f} ms  ({len(first.rows)} rows)")
            if m95 > worst[1]:
                worst = (f"{name} {label}", m95)
            position = directory.decode_cursor(after, sort) if after else None
            statement = (await in_session(lambda s, f=f, sort=sort, position=position: directory.statement(s, cid, f, sort, after=position, plan=True, limit=50)))
            d = sorted([await db_ms(statement) for _ in range(samples)])
            d95 = d[max(0, int(len(d) * 0.95) - 1)]
            log(f"  {'':42s} {label}: in the database (EXPLAIN ANALYZE) p50 {statistics.median(d):6.2f} ms  p95 {d95:6.2f} ms")
            if d95 > worst_db[1]:
                worst_db = (f"{name} {label}", d95)
    log(f"slowest page: {worst[0]}; in the database: {worst_db[0]}")
    out("page_db_p95_ms", f"{worst_db[1]:.2f}")
    out("page_p95_ms", f"{worst[1]:.2f}")
    out("page_ratio", f"{worst[1] / base95:.1f}")

    m50, m95 = await p95(samples, lambda i: in_session(lambda s: profile.profile(s, cid, first_user + rng.randrange(n - 1) + 1)))
    log(f"member page p50 {m50:.2f} ms p95 {m95:.2f} ms")
    out("member_page_p95_ms", f"{m95:.2f}")
    out("member_page_ratio", f"{m95 / base95:.1f}")

    k50, k95 = await p95(samples, lambda i: in_session(lambda s: directory.count(s, cid, directory.Filters(segment="customers"))))
    log(f"a built-in segment's count (kept by the trigger) p50 {k50:.2f} ms p95 {k95:.2f} ms")
    out("builtin_count_p95_ms", f"{k95:.2f}")
    c50, c95 = await p95(samples, lambda i: in_session(lambda s: directory.count(s, cid, directory.Filters(segment=str(saved.id)))))
    log(f"one saved segment's count p50 {c50:.2f} ms p95 {c95:.2f} ms")
    out("segment_count_p95_ms", f"{c95:.2f}")
    out("segment_count_ratio", f"{c95 / base95:.1f}")
    s50, s95 = await p95(max(5, samples // 4), lambda i: in_session(lambda s: service.segments(s, cid)))
    log(f"every segment with its count p50 {s50:.2f} ms p95 {s95:.2f} ms")
    out("segments_p95_ms", f"{s95:.2f}")

    # The full export: every member, the statement and the stream the API sends (through csv_download).
    statement = await in_session(lambda s: exports.statement(s, cid, directory.Filters(), directory.Sort("name", "asc")))
    rows = size = 0
    start_rss = peak = 0.0
    t = time.perf_counter()
    async for chunk in stream_copy(sessions, exports.HEADER, statement):
        rows += chunk.count(b"\n")
        size += len(chunk)
        now_rss = rss_mb()
        start_rss = start_rss or now_rss
        peak = max(peak, now_rss)
    elapsed = time.perf_counter() - t
    log(f"export: {rows - 1} rows, {size / 2**20:.1f} MB of CSV in {elapsed:.2f}s")
    out("export_rows_per_s", f"{(rows - 1) / elapsed:.0f}")
    out("export_peak_rss_mb", f"{peak:.1f}")
    out("export_rss_growth_mb", f"{rss_mb() - start_rss:.1f}")
    raw.close()
    await engine.dispose()


async def main(options: argparse.Namespace) -> None:
    async with scratch_settings() as settings, asyncio.timeout(options.timeout):
        await bench(settings, options.members, options.samples)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before giving up")
    asyncio.run(main(parser.parse_args()))
