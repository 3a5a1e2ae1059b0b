"""A model-based test of derived access: random sequences of grants, ends, expiries,
reopenings and offer group edits (both modes), checked against a small pure-Python model.

The model keeps, per entitlement, (user, offer, live?), and per (offer, group) the entitlement
ids the link applies to, as half-open id intervals (the int8multirange): "everyone" is all
ids, "new buyers only" adds [next id, inf) or keeps only (-inf, next id). After every step
the access query (groups_of, can_open, members_of) must agree with the model; after all
pending access runs are processed, the last access_log entry per (user, group) must be the
model's access, and no run may ever log a non-change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from community.db import utcnow
from community.errors import Conflict
from community.offers import access, entitlements, grants, runs
from community.offers.models import (
    EntitlementSource,
    EntitlementStatus,
    Offer,
    OfferStatus,
    Pricing,
)
from tests.conftest import sign_up

API = "/api/v1"
USERS, OFFERS, GROUPS = 3, 2, 3
PER_EXAMPLE_TABLES = "offers, offer_groups, entitlements, entitlement_events, access_runs, access_log, outbox"

# ---------------------------------------------------------------- the model

Interval = tuple[int | None, int | None]  # [lo, hi), None = unbounded


def _union_from(intervals: list[Interval], cutoff: int) -> list[Interval]:
    """intervals + [cutoff, inf)"""
    kept = [(lo, hi) for lo, hi in intervals if hi is not None and hi < cutoff]
    touching = [lo for lo, hi in intervals if hi is None or hi >= cutoff]
    lows = [cutoff, *touching]
    lo = None if None in lows else min(lows)
    return [*kept, (lo, None)]


def _below(intervals: list[Interval], cutoff: int) -> list[Interval]:
    """intervals * (-inf, cutoff)"""
    out = []
    for lo, hi in intervals:
        hi = cutoff if hi is None else min(hi, cutoff)
        if lo is None or lo < hi:
            out.append((lo, hi))
    return out


def _contains(intervals: list[Interval], x: int) -> bool:
    return any((lo is None or lo <= x) and (hi is None or x < hi) for lo, hi in intervals)


def _render(intervals: list[Interval]) -> str:
    """As PostgreSQL prints an int8multirange."""
    parts = [("(" if lo is None else f"[{lo}") + "," + (")" if hi is None else f"{hi})") for lo, hi in intervals]
    return "{" + ",".join(parts) + "}"


@dataclass
class Model:
    next_id: int = 1
    ents: dict[int, tuple[int, int, bool]] = field(default_factory=dict)  # id -> (user, offer, live)
    links: dict[tuple[int, int], list[Interval]] = field(default_factory=dict)  # (offer, group) -> ids

    def access(self, user: int, group: int) -> bool:
        return any(
            live and u == user and _contains(self.links.get((offer, group), []), eid)
            for eid, (u, offer, live) in self.ents.items()
        )

    def edit(self, offer: int, add: list[int], remove: list[int], everyone: bool) -> None:
        for group in add:
            current = self.links.get((offer, group), [])
            self.links[(offer, group)] = [(None, None)] if everyone else _union_from(current, self.next_id)
        for group in remove:
            if everyone:
                self.links.pop((offer, group), None)
            elif (offer, group) in self.links:
                self.links[(offer, group)] = _below(self.links[(offer, group)], self.next_id)
        self.links = {k: v for k, v in self.links.items() if v}


# ---------------------------------------------------------------- operations

FUTURE = dt.timedelta(days=30)

# Weighted towards what changes access: grants, ends now, edits for everyone.
grant_op = st.tuples(
    st.just("grant"),
    st.integers(0, USERS - 1),
    st.integers(0, OFFERS - 1),
    st.booleans(),  # with an end in the future (a pass)
    st.sampled_from([EntitlementSource.purchase, EntitlementSource.comp]),
)
# (pick, status, at period end in the future?)
end_op = st.tuples(
    st.just("end"), st.integers(0, 9), st.sampled_from(["cancelled", "refunded"]), st.sampled_from([False, False, True])
)
expire_op = st.tuples(st.just("expire"), st.integers(0, 9))
reopen_op = st.tuples(st.just("reopen"), st.integers(0, 9), st.booleans())
edit_op = st.tuples(
    st.just("edit"),
    st.integers(0, OFFERS - 1),
    st.lists(st.sampled_from([None, "add", "add", "remove"]), min_size=GROUPS, max_size=GROUPS),
    st.sampled_from([grants.EditMode.everyone, grants.EditMode.everyone, grants.EditMode.new_buyers_only]),
)
process_op = st.tuples(st.sampled_from(["process_one", "process_all"]))
operation = st.one_of(grant_op, grant_op, grant_op, end_op, end_op, expire_op, reopen_op, edit_op, edit_op, process_op)


# ---------------------------------------------------------------- the world


async def _make_group(client: httpx.AsyncClient, owner, community_id: int, name: str) -> int:
    base = f"{API}/communities/{community_id}"
    hubs = (await client.get(f"{base}/hubs", headers=owner.headers)).json()
    if hubs:
        hub_id = hubs[0]["id"]
    else:
        hub_id = (await client.post(f"{base}/hubs", json={"name": "Main"}, headers=owner.headers)).json()["id"]
    response = await client.post(f"{base}/hubs/{hub_id}/groups", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
async def world(client, owner, community):
    cid = community["id"]
    groups = [await _make_group(client, owner, cid, f"Group {i}") for i in range(GROUPS)]
    users = [(await sign_up(client, f"buyer{i}@example.com")).id for i in range(USERS)]
    return cid, groups, users


async def _fresh_offers(sessions, cid: int) -> list[int]:
    async with sessions() as s, s.begin():
        await s.execute(text(f"TRUNCATE {PER_EXAMPLE_TABLES} RESTART IDENTITY CASCADE"))
    async with sessions() as s, s.begin():
        offers = [
            Offer(community_id=cid, title=f"Offer {i}", slug=f"offer-{i}", pricing=Pricing.free, currency="USD", status=OfferStatus.published)
            for i in range(OFFERS)
        ]
        s.add_all(offers)
        await s.flush()
        return [o.id for o in offers]


async def _process(sessions, *, only_oldest: bool) -> None:
    async with sessions() as s:
        pending = list(
            (await s.scalars(text("SELECT id FROM access_runs WHERE state IN ('pending', 'running') ORDER BY id"))).all()
        )
    for run_id in pending[:1] if only_oldest else pending:
        run = await runs.process_run(sessions, run_id)
        assert run is not None and run.state.value == "done"


async def _check_access(sessions, cid, groups, users, offers, model: Model, steps) -> None:
    async with sessions() as s:
        for u, user in enumerate(users):
            expected = sorted(groups[g] for g in range(GROUPS) if model.access(u, g))
            assert await access.groups_of(s, cid, user) == expected, steps
            for g, group in enumerate(groups):
                assert await access.can_open(s, cid, user, group) == model.access(u, g), steps
        for g, group in enumerate(groups):
            expected = [users[u] for u in range(USERS) if model.access(u, g)]
            members = await access.members_of(s, cid, group, after=0, limit=100)
            assert [getattr(m, "user_id", m) for m in members] == expected, steps  # rows or bare ids
        for o, offer in enumerate(offers):
            linked = {row.group_id: row for row in await grants.granted_groups(s, cid, offer)}
            expected = {groups[g]: ids for (oo, g), ids in model.links.items() if oo == o}
            assert set(linked) == set(expected), steps
            for group_id, ids in expected.items():
                assert linked[group_id].entitlement_ids == _render(ids), steps
                assert linked[group_id].everyone == (ids == [(None, None)]), steps


async def _check_log(sessions, groups, users, model: Model, steps) -> None:
    async with sessions() as s:
        rows = (await s.execute(text("SELECT user_id, group_id, change FROM access_log ORDER BY id"))).all()
    by_pair: dict[tuple[int, int], list[str]] = {}
    for user_id, group_id, change in rows:
        by_pair.setdefault((user_id, group_id), []).append(str(change))
    for (user_id, group_id), changes in by_pair.items():
        assert changes[0] == "gained", (steps, user_id, group_id, changes)  # nothing logged = no access
        assert all(a != b for a, b in zip(changes, changes[1:])), (steps, user_id, group_id, changes)
    for u, user in enumerate(users):
        for g, group in enumerate(groups):
            last = by_pair.get((user, group), ["lost"])[-1]
            assert (last == "gained") == model.access(u, g), (steps, u, g, by_pair.get((user, group)))


async def _check_preview(sessions, cid, groups, offers, model: Model, o: int, add, remove, mode, steps) -> None:
    """The dry run says, per edited group, how many of the offer's holders the edit about to be
    made will make gain it, lose it or keep it: the model's access before and after."""
    after = Model(model.next_id, dict(model.ents), {k: list(v) for k, v in model.links.items()})
    after.edit(o, add, remove, everyone=mode is grants.EditMode.everyone)
    holders = {u for u, offer, live in model.ents.values() if offer == o and live}
    for u in range(USERS):  # nobody else's access changes
        if u not in holders:
            assert all(model.access(u, g) == after.access(u, g) for g in range(GROUPS)), steps
    expected = {
        groups[g]: (
            "add" if g in add else "remove",
            sum(1 for u in holders if not model.access(u, g) and after.access(u, g)),
            sum(1 for u in holders if model.access(u, g) and not after.access(u, g)),
            sum(1 for u in holders if model.access(u, g) and after.access(u, g)),
        )
        for g in [*add, *remove]
    }
    async with sessions() as s:
        preview = await grants.preview_edit(
            s, community_id=cid, offer_id=offers[o], add=[groups[g] for g in add],
            remove=[groups[g] for g in remove], mode=mode,
        )
    assert preview.holders == len(holders), steps
    assert {i.group_id: (i.change, i.gaining, i.losing, i.keeping) for i in preview.groups} == expected, steps


async def _check_no_pending_runs(sessions, steps) -> None:
    async with sessions() as s:
        left = (await s.execute(text("SELECT count(*) FROM access_runs WHERE state <> 'done'"))).scalar()
    assert left == 0, steps


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=4, max_size=30), eager=st.booleans())
async def test_derived_access_and_the_access_log_follow_the_model(sessions, world, ops, eager) -> None:
    """eager: process the runs after every step, so each change must have started a run
    covering everyone it changed; otherwise runs pile up and are processed late (only at the
    process steps and at the end), in order or one at a time."""
    cid, groups, users = world
    offers = await _fresh_offers(sessions, cid)
    model = Model()
    steps: list[tuple] = []  # the operations so far, shown on failure

    for op in ops:
        steps.append(op)
        kind = op[0]
        ids = sorted(model.ents)

        if kind == "grant":
            _, u, o, with_end, source = op
            async with sessions() as s, s.begin():
                offer = await s.get(Offer, offers[o])
                held = await entitlements.grant(
                    s,
                    community_id=cid,
                    offer=offer,
                    user_id=users[u],
                    source=source,
                    ends_at=utcnow() + FUTURE if with_end else None,
                )
                assert held.id == model.next_id, steps  # the id the grandfathering cutoffs count on
            model.ents[held.id] = (u, o, True)
            model.next_id += 1

        elif kind == "end":
            _, pick, status, at_period_end = op
            if not ids:
                continue
            eid = ids[pick % len(ids)]
            u, o, live = model.ents[eid]
            at = utcnow() + FUTURE if at_period_end else None
            if not live:
                with pytest.raises(Conflict):
                    async with sessions() as s, s.begin():
                        await entitlements.end(s, community_id=cid, entitlement_id=eid, status=EntitlementStatus(status), at=at)
            else:
                async with sessions() as s, s.begin():
                    await entitlements.end(s, community_id=cid, entitlement_id=eid, status=EntitlementStatus(status), at=at)
                model.ents[eid] = (u, o, at_period_end)  # a cancel at period end still grants until then

        elif kind == "expire":
            _, pick = op
            live_ids = [eid for eid in ids if model.ents[eid][2]]
            if not live_ids:
                continue
            eid = live_ids[pick % len(live_ids)]
            async with sessions() as s, s.begin():
                await s.execute(text("UPDATE entitlements SET ends_at = now() - interval '1 second' WHERE id = :id"), {"id": eid})
            async with sessions() as s, s.begin():
                assert await entitlements.start_expiry_runs(s) == 1, steps
            async with sessions() as s, s.begin():
                assert await entitlements.start_expiry_runs(s) == 0, steps  # idempotent
            u, o, _ = model.ents[eid]
            model.ents[eid] = (u, o, False)

        elif kind == "reopen":
            _, pick, with_end = op
            if not ids:
                continue
            eid = ids[pick % len(ids)]
            async with sessions() as s, s.begin():
                await entitlements.reopen(
                    s, community_id=cid, entitlement_id=eid, ends_at=utcnow() + FUTURE if with_end else None
                )
            u, o, _ = model.ents[eid]
            model.ents[eid] = (u, o, True)

        elif kind == "edit":
            _, o, actions, mode = op
            add = [g for g, a in enumerate(actions) if a == "add"]
            remove = [g for g, a in enumerate(actions) if a == "remove"]
            await _check_preview(sessions, cid, groups, offers, model, o, add, remove, mode, steps)
            async with sessions() as s, s.begin():
                await grants.edit_groups(
                    s,
                    community_id=cid,
                    offer_id=offers[o],
                    add=[groups[g] for g in add],
                    remove=[groups[g] for g in remove],
                    mode=mode,
                )
            model.edit(o, add, remove, everyone=mode is grants.EditMode.everyone)

        elif kind == "process_one":
            await _process(sessions, only_oldest=True)

        if kind == "process_all" or eager:
            await _process(sessions, only_oldest=False)
            await _check_no_pending_runs(sessions, steps)
            await _check_log(sessions, groups, users, model, steps)

        await _check_access(sessions, cid, groups, users, offers, model, steps)

    await _process(sessions, only_oldest=False)
    await _check_no_pending_runs(sessions, steps)
    await _check_log(sessions, groups, users, model, steps)
