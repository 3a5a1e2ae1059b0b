"""Tenant isolation (DESIGN.md section 4): an id from another community answers 404, never 403,
and changes nothing.

The routes are not listed by hand: every /api/v1 route with a {community_id} path parameter is
read from the app's own OpenAPI document, so a new community-scoped route is covered the day it
is added, or makes this test fail until the test knows how to call it (its path parameters and
its body).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community import jobs
from community.affiliates.models import Affiliate, Payout
from community.billing import service as billing
from community.models import metadata
from community.offers.models import Offer, Pricing
from tests.conftest import Account, create_community, sign_up
from tests.images import media_files, png_bytes

API = "/api/v1"
METHODS = ("get", "post", "put", "patch", "delete")
OBJECT_PARAMS = ("hub_id", "group_id", "post_id", "member_id", "job_id", "offer_id", "user_id", "entitlement_id", "run_id")
OBJECT_PARAMS += ("code_id", "payment_id")  # billing: a discount code, a payment
OBJECT_PARAMS += ("affiliate_id",)  # resell programs: the buyer's enrolment
OBJECT_PARAMS += ("payout_id",)  # resell programs: an open payout to the affiliate
OBJECT_PARAMS += ("note_id", "segment_id")  # members: a note on the buyer, a saved segment
OBJECT_PARAMS += ("campaign_id",)  # campaigns: a draft to the Active segment
# `key` names a message of the catalogue (the same in every community), not a tenant object.
KNOWN_PATH_PARAMS = {"community_id", "key", *OBJECT_PARAMS}
# Routes outside a community that take an object id in the path, and how they are checked.
KNOWN_OTHER_PARAM_ROUTES = {
    "/api/v1/me/tokens/{token_id}",  # checked below: another user's token is 404
    "/api/v1/offers/{offer_id}/claim",  # public by design, like a landing page (tests/test_access.py)
    "/api/v1/offers/{offer_id}/quote",  # public price preview of a published offer (tests/test_checkout.py)
    "/api/v1/me/affiliates/{affiliate_id}",  # the caller's own enrolment; another's is 404 (tests/test_affiliate_links.py)
}
# Columns a request by B's owner may legitimately touch: its own token's usage stamp.
IGNORED_COLUMNS = {("auth_tokens", "last_used_at")}
MARK_A = "alpha-secret"  # in A's names, so a leak into a B response is visible


@dataclasses.dataclass
class World:
    """One community and one of each kind of object in it."""

    owner: Account
    community_id: int
    hub_id: int
    group_id: int
    post_id: int
    member_id: int  # a staff member (a manager), not the owner
    job_id: int  # a failed outbox row of this community
    offer_id: int
    spare_offer_id: int  # an offer nobody holds (one that can be deleted)
    user_id: int  # a buyer (a member holding the offer)
    entitlement_id: int  # the buyer's entitlement
    run_id: int  # an access-change run
    hub_ids: list[int]  # every hub of the community, for a reorder body
    group_ids: list[int]  # every group of hub_id, for a reorder body
    code_id: int  # a discount code nobody used (one that can be deleted)
    payment_id: int  # the buyer's payment
    affiliate_id: int  # the buyer, enrolled in the offer's resell program
    payout_id: int  # an open payout to that affiliate
    note_id: int  # a staff note on the buyer
    segment_id: int  # a saved segment of the members directory
    campaign_id: int  # a draft campaign

    def path_values(self) -> dict[str, int]:
        return {
            "community_id": self.community_id,
            "hub_id": self.hub_id,
            "group_id": self.group_id,
            "post_id": self.post_id,
            "member_id": self.member_id,
            "job_id": self.job_id,
            "offer_id": self.offer_id,
            "user_id": self.user_id,
            "entitlement_id": self.entitlement_id,
            "run_id": self.run_id,
            "code_id": self.code_id,
            "payment_id": self.payment_id,
            "affiliate_id": self.affiliate_id,
            "payout_id": self.payout_id,
            "note_id": self.note_id,
            "segment_id": self.segment_id,
            "campaign_id": self.campaign_id,
            "key": "trial_ending",  # type: ignore[dict-item]
        }

    @property
    def owner_user_id(self) -> int:
        return self.owner.id

    def values_for(self, op: Operation) -> dict[str, int]:
        """The path values for one operation: the usual objects, or the ALTERNATES it needs."""
        values = self.path_values()
        for param, attribute in ALTERNATES.get(op.key, {}).items():
            values[param] = getattr(self, attribute)
        return values


Body = Callable[[World], Any]

# A valid body for every community-scoped operation that takes one, built from the ids of the
# world the request is aimed at: sent to the right community, each of these succeeds (checked
# below), so a 404 for the wrong community is the isolation at work, not a malformed request.
BODIES: dict[tuple[str, str], Body] = {
    ("patch", "/api/v1/communities/{community_id}"): lambda w: {"name": "Taken over", "support_email": "x@example.com"},
    ("put", "/api/v1/communities/{community_id}/staff"): lambda w: {"email": "newcomer@example.com", "role": "admin"},
    ("post", "/api/v1/communities/{community_id}/hubs"): lambda w: {"name": "Intruder hub"},
    ("put", "/api/v1/communities/{community_id}/hubs/order"): lambda w: {"ids": list(reversed(w.hub_ids))},
    ("patch", "/api/v1/communities/{community_id}/hubs/{hub_id}"): lambda w: {"name": "Renamed hub", "slug": "renamed-hub"},
    ("post", "/api/v1/communities/{community_id}/hubs/{hub_id}/groups"): lambda w: {"name": "Intruder group"},
    ("put", "/api/v1/communities/{community_id}/hubs/{hub_id}/groups/order"): lambda w: {"ids": list(reversed(w.group_ids))},
    ("patch", "/api/v1/communities/{community_id}/groups/{group_id}"): lambda w: {
        "name": "Renamed group",
        "hub_id": w.hub_ids[-1],
    },
    ("post", "/api/v1/communities/{community_id}/groups/{group_id}/posts"): lambda w: {"title": "Intruder", "body": "hello"},
    ("patch", "/api/v1/communities/{community_id}/posts/{post_id}"): lambda w: {"title": "Changed"},
    ("post", "/api/v1/communities/{community_id}/entitlements"): lambda w: {"email": "comp@example.com", "offer_id": w.offer_id},
    ("post", "/api/v1/communities/{community_id}/members/{user_id}/notes"): lambda w: {"body": "A note"},
    ("patch", "/api/v1/communities/{community_id}/members/{user_id}/notes/{note_id}"): lambda w: {"body": "Edited"},
    ("post", "/api/v1/communities/{community_id}/members/{user_id}/tags"): lambda w: {"tag": "friend"},
    ("post", "/api/v1/communities/{community_id}/members/{user_id}/tags/remove"): lambda w: {"tag": "vip"},
    ("post", "/api/v1/communities/{community_id}/members/bulk-tags"): lambda w: {"tag": "bulk", "action": "add", "user_ids": [w.user_id]},
    ("post", "/api/v1/communities/{community_id}/segments"): lambda w: {"name": "Yoga people", "filters": {"offer": w.offer_id}},
    ("post", "/api/v1/communities/{community_id}/campaigns"): lambda w: {"subject": "News", "body": "Hello {{ name }}", "segment": "active"},
    ("patch", "/api/v1/communities/{community_id}/campaigns/{campaign_id}"): lambda w: {"subject": "Edited news"},
    ("post", "/api/v1/communities/{community_id}/campaigns/{campaign_id}/send"): lambda w: {},
    ("post", "/api/v1/communities/{community_id}/entitlements/{entitlement_id}/end"): lambda w: {"status": "cancelled"},
    ("post", "/api/v1/communities/{community_id}/entitlements/{entitlement_id}/reopen"): lambda w: {},
    ("put", "/api/v1/communities/{community_id}/offers/{offer_id}/groups"): lambda w: {"add": [w.group_ids[-1]]},
    ("post", "/api/v1/communities/{community_id}/offers/{offer_id}/groups/preview"): lambda w: {"add": [w.group_ids[-1]]},
    ("post", "/api/v1/communities/{community_id}/offers"): lambda w: {"title": "Intruder offer", "pricing": "free"},
    ("patch", "/api/v1/communities/{community_id}/offers/{offer_id}"): lambda w: {
        "title": "Renamed offer",
        "landing_page": {"headline": "Changed"},
    },
    ("post", "/api/v1/communities/{community_id}/discount-codes"): lambda w: {
        "code": "INTRUDER",
        "kind": "percent",
        "percent_bps": 1000,
        "applies_to": "offers",
        "offer_ids": [w.spare_offer_id],
    },
    ("patch", "/api/v1/communities/{community_id}/discount-codes/{code_id}"): lambda w: {"code": "TAKEN10", "active": False},
    ("post", "/api/v1/communities/{community_id}/affiliates/payouts/{payout_id}/paid"): lambda w: {"reference": "wire 7"},
    ("post", "/api/v1/communities/{community_id}/payments/{payment_id}/refunds"): lambda w: {"amount": 100, "reason": "x"},
    ("patch", "/api/v1/communities/{community_id}/notifications/messages/{key}"): lambda w: {"enabled": False},
    ("post", "/api/v1/communities/{community_id}/notifications/messages/{key}/preview"): lambda w: {},
    ("put", "/api/v1/communities/{community_id}/notifications/offers/{offer_id}"): lambda w: {"overrides": {"trial_ending": False}},
    ("put", "/api/v1/communities/{community_id}/notifications/staff/{user_id}"): lambda w: {"choices": {"staff_renewal": False}},
}

# Routes whose success needs what this world has not (a charge at Stripe, the caller's own
# subscription): their control runs in the test named; the 404s below still apply to them.
CONTROLLED_ELSEWHERE: dict[tuple[str, str], str] = {
    ("post", "/api/v1/communities/{community_id}/payments/{payment_id}/refunds"): "tests/test_refunds.py",
    ("post", "/api/v1/communities/{community_id}/me/memberships/{entitlement_id}/cancel"): "tests/test_memberships.py",
    ("post", "/api/v1/communities/{community_id}/me/memberships/{entitlement_id}/resume"): "tests/test_memberships.py",
    ("post", "/api/v1/communities/{community_id}/me/memberships/{entitlement_id}/payment-method"): "tests/test_memberships.py",
    # The buyer has a payment: deleting the account is refused (409); no plan ever moves (409).
    ("delete", "/api/v1/communities/{community_id}/members/{user_id}/account"): "tests/test_members_accounts.py",
    ("post", "/api/v1/communities/{community_id}/entitlements/{entitlement_id}/transfer"): "tests/test_members_accounts.py",
}

# Operations that need a query value to answer at all: {param: value}.
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("get", "/api/v1/communities/{community_id}/campaigns/audience"): {"segment": "active"},
}

# Operations whose body is an upload (bytes, not JSON), and a valid one to send.
UPLOADS: dict[tuple[str, str], bytes] = {
    ("put", "/api/v1/communities/{community_id}/offers/{offer_id}/thumbnail"): png_bytes(),
    ("put", "/api/v1/communities/{community_id}/offers/{offer_id}/cover"): png_bytes(),
}

# Operations aimed at another object of a kind than the world's usual one: {param: World field}.
ALTERNATES: dict[tuple[str, str], dict[str, str]] = {
    # Deleting an offer someone holds is refused (409): this one is tried on the unsold offer.
    ("delete", "/api/v1/communities/{community_id}/offers/{offer_id}"): {"offer_id": "spare_offer_id"},
    # Staff choices are a staff person's: tried on the owner.
    ("put", "/api/v1/communities/{community_id}/notifications/staff/{user_id}"): {"user_id": "owner_user_id"},
}

# Bodies that carry object ids: aimed at B (path) with one of A's ids inside (body). The answer
# must be 404 or 422 and nothing may change.
FOREIGN_BODIES: dict[tuple[str, str], Callable[[World, World], Any]] = {
    ("put", "/api/v1/communities/{community_id}/hubs/order"): lambda b, a: {"ids": [*b.hub_ids[:-1], a.hub_id]},
    ("put", "/api/v1/communities/{community_id}/hubs/{hub_id}/groups/order"): lambda b, a: {
        "ids": [*b.group_ids[:-1], a.group_id]
    },
    ("patch", "/api/v1/communities/{community_id}/groups/{group_id}"): lambda b, a: {"hub_id": a.hub_id},
    ("post", "/api/v1/communities/{community_id}/entitlements"): lambda b, a: {"email": "x@example.com", "offer_id": a.offer_id},
    ("put", "/api/v1/communities/{community_id}/offers/{offer_id}/groups"): lambda b, a: {"add": [a.group_id]},
    ("post", "/api/v1/communities/{community_id}/offers/{offer_id}/groups/preview"): lambda b, a: {"add": [a.group_id]},
    ("post", "/api/v1/communities/{community_id}/discount-codes"): lambda b, a: {
        "code": "FOREIGN",
        "kind": "percent",
        "percent_bps": 1000,
        "applies_to": "offers",
        "offer_ids": [a.spare_offer_id],
    },
    ("patch", "/api/v1/communities/{community_id}/discount-codes/{code_id}"): lambda b, a: {
        "applies_to": "offers",
        "offer_ids": [a.spare_offer_id],
    },
    ("post", "/api/v1/communities/{community_id}/members/bulk-tags"): lambda b, a: {
        "tag": "intruder", "action": "add", "user_ids": [b.user_id, a.user_id],
    },
    ("post", "/api/v1/communities/{community_id}/segments"): lambda b, a: {
        "name": "Foreign offer", "filters": {"offer": a.offer_id},
    },
    # A saved segment is named by its id in `segment`: another community's is refused.
    ("post", "/api/v1/communities/{community_id}/campaigns"): lambda b, a: {
        "subject": "Foreign", "body": "Hello", "segment": str(a.segment_id),
    },
    ("patch", "/api/v1/communities/{community_id}/campaigns/{campaign_id}"): lambda b, a: {"segment": str(a.segment_id)},
}


# ---------------------------------------------------------------- building the two worlds


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


async def build_world(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], owner: Account, name: str, tag: str
) -> World:
    """A community with two hubs, two groups in the first hub, a post, a manager, a failed job,
    an offer granting the first group held by a buyer (an entitlement, and the access run it
    started) and a paid offer nobody holds."""
    h = owner.headers
    community = await create_community(client, owner, name)
    cid = community["id"]
    base = f"{API}/communities/{cid}"
    hub = await _ok(await client.post(f"{base}/hubs", json={"name": f"{tag} hub"}, headers=h), 201)
    other_hub = await _ok(await client.post(f"{base}/hubs", json={"name": f"{tag} second hub"}, headers=h), 201)
    group = await _ok(await client.post(f"{base}/hubs/{hub['id']}/groups", json={"name": f"{tag} group"}, headers=h), 201)
    group2 = await _ok(
        await client.post(f"{base}/hubs/{hub['id']}/groups", json={"name": f"{tag} other group"}, headers=h), 201
    )
    post = await _ok(
        await client.post(f"{base}/groups/{group['id']}/posts", json={"title": f"{tag} post", "body": f"{tag} text"}, headers=h),
        201,
    )
    manager = await _ok(
        await client.put(f"{base}/staff", json={"email": f"manager-{tag}@example.com", "role": "manager"}, headers=h)
    )
    async with sessions() as session, session.begin():
        offer = Offer(community_id=cid, title=f"{tag} offer", slug="offer", pricing=Pricing.free, currency="USD")
        session.add(offer)
        await session.flush()
        offer_id = offer.id
    await _ok(await client.put(f"{base}/offers/{offer_id}/groups", json={"add": [group["id"]]}, headers=h))
    held = await _ok(
        await client.post(f"{base}/entitlements", json={"email": f"buyer-{tag}@example.com", "offer_id": offer_id}, headers=h), 201
    )
    spare = await _ok(
        await client.post(f"{base}/offers", json={"title": f"{tag} spare offer", "pricing": "one_time", "amount": 900}, headers=h),
        201,
    )
    code = await _ok(
        await client.post(f"{base}/discount-codes", json={"code": "WELCOME", "kind": "percent", "percent_bps": 1000}, headers=h),
        201,
    )
    async with sessions() as session, session.begin():
        run_id = (await session.execute(text("SELECT max(id) FROM access_runs WHERE community_id = :c"), {"c": cid})).scalar()
        payment = await billing.record_payment(
            session, community_id=cid, user_id=held["user_id"], offer_id=offer_id, entitlement_id=held["id"],
            checkout_id=None, kind="purchase", amount=900, discount_amount=0, currency="USD",
            stripe_account_id=None, stripe_payment_intent_id=f"pi_{tag}",
        )
        affiliate = Affiliate(community_id=cid, offer_id=offer_id, user_id=held["user_id"], code=f"{tag[:8]}{cid}"[:16])
        session.add(affiliate)
        job = await jobs.enqueue(session, "isolation.probe", community_id=cid, note=tag)
        job.state = jobs.JobState.failed
        job.last_error = f"{tag} failure"
        job_id = job.id
        await session.flush()
        affiliate_id = affiliate.id
        payout = Payout(community_id=cid, affiliate_id=affiliate_id, currency="USD", amount=100)
        session.add(payout)
        await session.flush()
        payout_id = payout.id
    await _ok(await client.post(f"{base}/members/{held['user_id']}/tags", json={"tag": "vip"}, headers=h))
    note = await _ok(await client.post(f"{base}/members/{held['user_id']}/notes", json={"body": f"{tag} note"}, headers=h), 201)
    segment = await _ok(await client.post(f"{base}/segments", json={"name": f"{tag} vips", "filters": {"tag": "vip"}}, headers=h), 201)
    campaign = await _ok(await client.post(f"{base}/campaigns", json={"subject": f"{tag} news", "body": "Hello", "segment": "active"}, headers=h), 201)
    return World(
        owner=owner,
        community_id=cid,
        hub_id=hub["id"],
        group_id=group["id"],
        post_id=post["id"],
        member_id=manager["id"],
        job_id=job_id,
        offer_id=offer_id,
        spare_offer_id=spare["id"],
        user_id=held["user_id"],
        entitlement_id=held["id"],
        run_id=run_id,
        hub_ids=[hub["id"], other_hub["id"]],
        group_ids=[group["id"], group2["id"]],
        code_id=code["id"],
        payment_id=payment.id,
        affiliate_id=affiliate_id,
        payout_id=payout_id,
        note_id=note["id"],
        segment_id=segment["id"],
        campaign_id=campaign["id"],
    )


@pytest.fixture
async def worlds(client: httpx.AsyncClient, sessions) -> tuple[World, World]:
    owner_a = await sign_up(client, "alice@example.com", name=f"Alice {MARK_A}")
    owner_b = await sign_up(client, "bob@example.com", name="Bob")
    a = await build_world(client, sessions, owner_a, f"Alpha {MARK_A}", MARK_A)
    b = await build_world(client, sessions, owner_b, "Beta", "beta")
    return a, b


# ---------------------------------------------------------------- snapshots


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (A's rows among them), in primary-key order."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with sessions() as session:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in IGNORED_COLUMNS]
            order = list(table.primary_key.columns) or columns
            rows = (await session.execute(select(*columns).order_by(*order))).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables


def diff(before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    return {
        name: {"gone": [r for r in before[name] if r not in after[name]], "new": [r for r in after[name] if r not in before[name]]}
        for name in before
        if before[name] != after[name]
    }


# ---------------------------------------------------------------- the routes


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /api/v1/communities/{community_id}/hubs/{hub_id}
    params: tuple[str, ...]
    has_body: bool  # a JSON body
    upload: bool = False  # a body of bytes (an image), not JSON

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def url(self, values: dict[str, int]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), self.path)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def api_operations(app: Litestar) -> list[Operation]:
    operations = []
    for path, item in app.openapi_schema.paths.items():
        if not path.startswith(API + "/"):
            continue
        for method in METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            params = tuple(re.findall(r"\{(\w+)\}", path))
            body = operation.request_body
            json_body = body is not None and "application/json" in (body.content or {})
            operations.append(Operation(method, path, params, json_body, upload=body is not None and not json_body))
    return operations


def community_operations(app: Litestar) -> list[Operation]:
    return [op for op in api_operations(app) if "community_id" in op.params]


def test_the_test_knows_every_community_route(app: Litestar) -> None:
    """Fails when a route is added that this test cannot fill in: teach it the new parameter
    (a World field and OBJECT_PARAMS) or the new body (BODIES, and FOREIGN_BODIES when the
    body carries ids)."""
    operations = community_operations(app)
    assert len(operations) >= 20  # the document really was read
    for op in operations:
        unknown = set(op.params) - KNOWN_PATH_PARAMS
        assert not unknown, f"{op}: the isolation test does not know the path parameter(s) {sorted(unknown)}"
        if op.has_body:
            assert op.key in BODIES, f"{op}: the isolation test has no body for this route (add it to BODIES)"
        if op.upload:
            assert op.key in UPLOADS, f"{op}: the isolation test has no upload for this route (add it to UPLOADS)"
    for key in [*BODIES, *FOREIGN_BODIES, *UPLOADS, *ALTERNATES, *CONTROLLED_ELSEWHERE, *QUERIES]:
        assert key in {op.key for op in operations}, f"{key}: no such route any more; drop it from the test"
    # A body field that names an object (an id) must be tried with a foreign id.
    schema = app.openapi_schema.to_schema()
    for op in operations:
        if not op.has_body:
            continue
        properties = _body_properties(schema, op)
        id_fields = {name for name in properties if name == "ids" or name.endswith("_id")}
        if id_fields:
            assert op.key in FOREIGN_BODIES, f"{op}: its body carries {sorted(id_fields)}; add it to FOREIGN_BODIES"


def _body_properties(schema: dict[str, Any], op: Operation) -> dict[str, Any]:
    content = schema["paths"][op.path][op.method]["requestBody"]["content"]
    body_schema = next(iter(content.values()))["schema"]
    while "$ref" in body_schema:
        body_schema = schema["components"]["schemas"][body_schema["$ref"].rsplit("/", 1)[1]]
    return body_schema.get("properties", {})


def test_every_other_route_with_an_id_is_known(app: Litestar) -> None:
    others = {op.path for op in api_operations(app) if op.params and "community_id" not in op.params}
    assert others == KNOWN_OTHER_PARAM_ROUTES, "a route outside communities takes an id: add an isolation check for it"


# ---------------------------------------------------------------- the checks


async def _call(client: httpx.AsyncClient, op: Operation, who: Account, values: dict[str, int], body: Any) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": who.headers}
    if op.has_body:
        kwargs["json"] = body
    if op.upload:
        kwargs["content"] = UPLOADS[op.key]
    if op.key in QUERIES:
        kwargs["params"] = QUERIES[op.key]
    return await client.request(op.method.upper(), op.url(values), **kwargs)


def _assert_problem(response: httpx.Response, statuses: tuple[int, ...], what: str) -> None:
    assert response.status_code in statuses, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), what
    assert MARK_A not in response.text, f"{what} leaks A's data: {response.text}"


async def test_a_foreign_community_id_answers_404_and_changes_nothing(
    client: httpx.AsyncClient, sessions, settings, app: Litestar, worlds: tuple[World, World]
) -> None:
    a, b = worlds
    before = await snapshot(sessions)
    files = media_files(settings)  # uploads write files, not only rows
    calls = 0
    for op in community_operations(app):
        body = BODIES[op.key](a) if op.has_body else None
        # (a) B's owner, A's community and A's objects.
        response = await _call(client, op, b.owner, a.values_for(op), body)
        _assert_problem(response, (404,), f"{op} with A's community as B's owner")
        calls += 1
        # (b) B's community, A's objects.
        object_params = [p for p in op.params if p not in ("community_id", "key")]
        if object_params:
            values = {**a.values_for(op), "community_id": b.community_id}
            response = await _call(client, op, b.owner, values, body)
            _assert_problem(response, (404,), f"{op} in B with A's {', '.join(object_params)}")
            calls += 1
        # (c) B's community and B's objects, A's ids in the body.
        if op.key in FOREIGN_BODIES:
            response = await _call(client, op, b.owner, b.values_for(op), FOREIGN_BODIES[op.key](b, a))
            _assert_problem(response, (404, 422), f"{op} in B with A's id in the body")
            if response.status_code == 422:
                fields = {e["field"] for e in response.json()["errors"]}
                assert fields & {"ids", "hub_id", "add", "offer_ids", "segment"}, response.text
            calls += 1
        after = await snapshot(sessions)
        assert after == before, f"{op} changed rows: {diff(before, after)}"
        assert media_files(settings) == files, f"{op} wrote files"
    assert calls >= 35


async def test_the_same_requests_succeed_in_the_right_community(
    client: httpx.AsyncClient, sessions, app: Litestar, worlds: tuple[World, World]
) -> None:
    """The control for the test above: aimed at B's own objects, every one of those requests
    works, so the 404s above come from the isolation, not from a malformed request. Each
    request gets a fresh B world, as some of them delete what they touch. No B response shows
    anything of A's (whose world the `worlds` fixture built)."""
    for n, op in enumerate(community_operations(app)):
        if op.key in CONTROLLED_ELSEWHERE:
            continue
        owner = await sign_up(client, f"control{n}@example.com")
        w = await build_world(client, sessions, owner, f"Control {n}", f"control{n}")
        body = BODIES[op.key](w) if op.has_body else None
        response = await _call(client, op, owner, w.values_for(op), body)
        assert response.status_code < 300, f"{op} in its own community: {response.status_code} {response.text}"
        assert MARK_A not in response.text, f"{op} shows A's data: {response.text}"


async def test_lists_in_b_show_nothing_of_a(client: httpx.AsyncClient, worlds: tuple[World, World]) -> None:
    _, b = worlds
    base = f"{API}/communities/{b.community_id}"
    for url in ["", "/staff", "/members", "/hubs", f"/groups/{b.group_id}/posts", "/jobs", "/offers"]:
        response = await client.get(base + url, headers=b.owner.headers)
        assert response.status_code == 200, response.text
        assert MARK_A not in response.text and "alice@example.com" not in response.text, url
    mine = await client.get(f"{API}/communities", headers=b.owner.headers)
    assert [c["id"] for c in mine.json()] == [b.community_id]


async def test_a_staff_member_of_a_cannot_reach_b(client: httpx.AsyncClient, sessions, worlds: tuple[World, World]) -> None:
    """A's owner is no one in B: B's community answers 404 to every one of their requests."""
    a, b = worlds
    before = await snapshot(sessions)
    base = f"{API}/communities/{b.community_id}"
    for method, url, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "mine now"}),
        ("PUT", "/staff", {"email": "alice@example.com", "role": "owner"}),
        ("DELETE", f"/staff/{b.member_id}", None),
        ("GET", f"/hubs/{b.hub_id}", None),
        ("DELETE", f"/hubs/{b.hub_id}", None),
        ("GET", f"/posts/{b.post_id}", None),
        ("POST", f"/jobs/{b.job_id}/retry", None),
        ("GET", f"/offers/{b.offer_id}", None),
        ("PATCH", f"/offers/{b.offer_id}", {"title": "mine now"}),
        ("POST", f"/offers/{b.spare_offer_id}/archive", None),
        ("DELETE", f"/offers/{b.spare_offer_id}", None),
    ]:
        response = await client.request(method, base + url, json=body, headers=a.owner.headers)
        assert response.status_code == 404, f"{method} {url}: {response.text}"
    assert await snapshot(sessions) == before


async def test_another_users_token_id_answers_404(client: httpx.AsyncClient, sessions, worlds: tuple[World, World]) -> None:
    a, b = worlds
    created = await client.post(f"{API}/me/tokens", json={"name": "a's script"}, headers=a.owner.headers)
    assert created.status_code == 201
    token_id = created.json()["token"]["id"]
    before = await snapshot(sessions)
    response = await client.delete(f"{API}/me/tokens/{token_id}", headers=b.owner.headers)
    _assert_problem(response, (404,), "DELETE another user's token")
    assert await snapshot(sessions) == before
    assert (await client.get(f"{API}/me", headers={"Authorization": f"Bearer {created.json()['secret']}"})).status_code == 200
    # A's token list is A's alone.
    listed = await client.get(f"{API}/me/tokens", headers=b.owner.headers)
    assert token_id not in {t["id"] for t in listed.json()}


async def test_snapshot_sees_a_change(client: httpx.AsyncClient, sessions, worlds: tuple[World, World]) -> None:
    """The snapshot used above is not blind: a real change in A shows up in it."""
    a, _ = worlds
    before = await snapshot(sessions)
    response = await client.patch(
        f"{API}/communities/{a.community_id}/posts/{a.post_id}", json={"title": "edited"}, headers=a.owner.headers
    )
    assert response.status_code == 200
    changed = diff(before, await snapshot(sessions))
    assert set(changed) == {"posts"}
    async with sessions() as session:
        title = await session.scalar(text("SELECT title FROM posts WHERE id = :id"), {"id": a.post_id})
    assert title == "edited"


async def test_every_table_is_in_the_snapshot(sessions) -> None:
    """The snapshot reads the models' tables: the migrations created no table it would miss."""
    async with sessions() as session:
        live = set(
            (
                await session.scalars(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'")
                )
            ).all()
        )
    assert live == {t.name for t in metadata.sorted_tables}
