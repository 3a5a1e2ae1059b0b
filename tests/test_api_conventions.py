"""API conventions (DESIGN.md section 10): the OpenAPI document covers the API, bodies have a
size limit and no unknown fields, every error is problem+json naming the fields at fault, and no
bad input gets a 500.

The routes are read from the app's OpenAPI document, so a new route is held to the same rules.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import text

from tests.checkout_helpers import CSRF
from tests.conftest import Account, sign_up
from tests.test_isolation import BODIES, World, api_operations, build_world

API = "/api/v1"

# A valid body for each route outside communities (the community ones are in test_isolation).
OTHER_BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/v1/auth/signup"): {"email": "newbie@example.com", "password": "long enough pass", "name": "New"},
    ("post", "/api/v1/auth/login"): {"email": "owner@example.com", "password": "not the password"},
    ("post", "/api/v1/auth/login-link"): {"email": "owner@example.com"},
    ("post", "/api/v1/auth/login-link/redeem"): {"token": "x" * 32},
    ("patch", "/api/v1/me"): {"name": "Still Olivia"},
    ("post", "/api/v1/me/tokens"): {"name": "script", "expires_in_days": 30},
    ("post", "/api/v1/me/email"): {"email": "olivia.elsewhere@example.com", "current_password": "correct horse battery"},
    ("post", "/api/v1/me/email/confirm"): {"token": "x" * 32},
    ("post", "/api/v1/communities"): {"name": "Another Guild"},
    ("post", "/api/v1/offers/{offer_id}/quote"): {"code": "", "email": "buyer@example.com"},
    ("post", "/api/v1/me/affiliates"): {"offer_id": 1},
}

# Values that are wrong for most fields, or right but awkward (unicode, NUL, extremes).
BAD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**63,
    10**30,
    1.5,
    "",
    " ",
    "\x00",
    "nul\x00inside@example.com",
    "ünïcödé ✓ 👍",
    "x" * 20_000,
    [],
    [1, "a"],
    {},
    {"nested": {"deeper": [None]}},
]
BAD_PATH_VALUES = ["0", "-1", str(2**63), "99999999999999999999", "007"]
# Date-times no layer can hold, or that are not date-times with a zone: 9999-12-31T23:59:59-14:00
# is past year 9999 in UTC, 0001-01-01T00:00:00+14:00 before year 1.
BAD_INSTANTS = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-06-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2026-01-01T00:00:00",
    "2026-02-30T00:00:00Z",
    "yesterday",
    "",
    "2026-01-01T00:00:00\u0000Z",
    1767225600,
]
BAD_HEADER_VALUES = ["", " ", "é\xff", "x" * 8000, "a b", "\x7f", "0", "-1"]
BAD_QUERY_VALUES = ["", "-1", "0", "abc", "1e3", str(2**63), "99999999999999999999", "\x00", "1,2"]


def assert_problem(response: httpx.Response, what: str = "") -> dict[str, Any]:
    """The one shape of every API error."""
    what = what or f"{response.request.method} {response.request.url}"
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text}"
    assert response.status_code >= 400, f"{what}: expected an error, got {response.status_code}"
    assert response.headers["content-type"].startswith("application/problem+json"), f"{what}: {response.headers}"
    body = response.json()
    assert body["status"] == response.status_code, what
    assert isinstance(body["title"], str) and body["title"], what
    assert isinstance(body["detail"], str) and body["detail"], what
    for error in body.get("errors", []):
        assert set(error) == {"field", "message"}, what
        assert isinstance(error["field"], str) and error["field"], what
        assert isinstance(error["message"], str) and error["message"], what
    return body


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


@pytest.fixture
async def world(client: httpx.AsyncClient, sessions, owner: Account) -> AsyncIterator[tuple[World, int]]:
    """The owner's community with one of everything, and an API token id of theirs."""
    w = await build_world(client, sessions, owner, "Conventions Guild", "conv")
    created = await client.post(f"{API}/me/tokens", json={"name": "spare"}, headers=owner.headers)
    yield w, created.json()["token"]["id"]


def valid_body(op, w: World) -> Any:
    if op.key in BODIES:
        return BODIES[op.key](w)
    return OTHER_BODIES[op.key]


def path_values(w: World, token_id: int) -> dict[str, int]:
    return {**w.path_values(), "token_id": token_id}


# ---------------------------------------------------------------- OpenAPI


async def test_openapi_lists_every_api_route(client: httpx.AsyncClient, app: Litestar) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "BearerToken" in document["components"]["securitySchemes"]
    routes = [r for r in app.routes if isinstance(r, HTTPRoute) and r.path.startswith(API + "/")]
    assert len(routes) >= 20
    for route in routes:
        assert route.path_format in document["paths"], f"{route.path_format} is missing from the OpenAPI document"
        for method in route.methods - {"OPTIONS", "HEAD"}:
            operation = document["paths"][route.path_format].get(method.lower())
            assert operation is not None, f"{method} {route.path_format} is missing from the OpenAPI document"
            assert operation.get("summary"), f"{method} {route.path_format} has no summary"
    # And the document lists nothing that is not served.
    served = {r.path_format for r in routes}
    assert {p for p in document["paths"] if p.startswith(API)} == served


# ---------------------------------------------------------------- body size


async def test_body_over_the_limit_answers_413(client: httpx.AsyncClient, owner: Account, settings) -> None:
    assert settings.max_body_bytes == 1_000_000
    padding = settings.max_body_bytes + 1 - len(b'{"name": ""}')
    too_big = b'{"name": "' + b"x" * padding + b'"}'
    assert len(too_big) == settings.max_body_bytes + 1
    response = await client.post(
        f"{API}/communities", content=too_big, headers={**owner.headers, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_problem(response)

    # Streamed without a Content-Length: refused the same way.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 65536):
            yield too_big[start : start + 65536]

    streamed = await client.post(
        f"{API}/communities", content=chunks(), headers={**owner.headers, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert_problem(streamed)

    # At the limit the body is read, and judged on its content (the name is too long).
    at_limit = b'{"name": "' + b"x" * (padding - 1) + b'"}'
    assert len(at_limit) == settings.max_body_bytes
    judged = await client.post(
        f"{API}/communities", content=at_limit, headers={**owner.headers, "content-type": "application/json"}
    )
    assert judged.status_code == 422
    assert fields(judged) == ["name"]


async def test_body_limit_applies_before_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/signup", content=b"[" + b"1," * 600_000 + b"1]", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_problem(response)


# ---------------------------------------------------------------- unknown and missing fields


async def test_unknown_fields_are_named_on_every_route(client: httpx.AsyncClient, app: Litestar, owner: Account, world) -> None:
    w, token_id = world
    checked = 0
    for op in api_operations(app):
        if not op.has_body:
            continue
        body = valid_body(op, w)
        assert isinstance(body, dict), op
        response = await client.request(
            op.method.upper(),
            op.url(path_values(w, token_id)),
            json={**body, "surprise_field": 1},
            headers=owner.headers,
        )
        assert_problem(response, str(op))
        assert 400 <= response.status_code < 500
        assert "surprise_field" in fields(response), f"{op}: {response.text}"
        checked += 1
    assert checked >= 15


async def test_nested_and_missing_fields_are_named(client: httpx.AsyncClient, owner: Account, community: dict[str, Any]) -> None:
    missing = await client.post(f"{API}/auth/signup", json={"password": "long enough pass"})
    assert missing.status_code == 422 and fields(missing) == ["email"]
    wrong_item = await client.put(
        f"{API}/communities/{community['id']}/hubs/order", json={"ids": [1, "two"]}, headers=owner.headers
    )
    assert wrong_item.status_code == 422
    assert_problem(wrong_item)
    assert fields(wrong_item) == ["ids.1"]
    body_not_object = await client.post(f"{API}/communities", json=["name"], headers=owner.headers)
    assert body_not_object.status_code == 400
    problem = assert_problem(body_not_object)
    assert "errors" not in problem  # no field is at fault: the body as a whole is
    assert "object" in problem["detail"]


# ---------------------------------------------------------------- problem details everywhere


async def test_error_shapes(client: httpx.AsyncClient, owner: Account, world) -> None:
    w, _ = world
    base = f"{API}/communities/{w.community_id}"
    stranger = await sign_up(client, "stranger@example.com")
    cases = [
        (401, await client.get(f"{API}/me")),
        (401, await client.get(f"{API}/me", headers={"Authorization": "Bearer not-a-token"})),
        (401, await client.get(f"{API}/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})),
        (404, await client.get(f"{API}/no-such-thing", headers=owner.headers)),
        (404, await client.get(base, headers=stranger.headers)),
        (405, await client.delete(f"{API}/communities", headers=owner.headers)),
        (400, await client.post(f"{API}/communities", content=b"{not json", headers={**owner.headers, "content-type": "application/json"})),
        (409, await client.post(f"{API}/communities", json={"name": "Conventions Guild"}, headers=owner.headers)),
        (422, await client.post(f"{API}/communities", json={"name": "x", "default_currency": "ZZZ"}, headers=owner.headers)),
        (422, await client.get(f"{base}/members", params={"limit": 101}, headers=owner.headers)),
    ]
    for expected, response in cases:
        assert response.status_code == expected, (expected, response.request.url, response.text)
        assert_problem(response)
    conflict = cases[7][1].json()
    assert conflict["errors"] == [{"field": "slug", "message": conflict["detail"]}]


async def test_no_500_for_bad_input_anywhere(client: httpx.AsyncClient, app: Litestar, owner: Account, world) -> None:
    """Every operation of the API, with bad path ids, bad query values, bodies of the wrong
    shape and every body field set to each of BAD_VALUES: a 4xx in problem+json each time
    (or a success where the value happens to be fine), never a 500."""
    w, token_id = world
    sent = 0
    values = path_values(w, token_id)
    document = app.openapi_schema.to_schema()
    for op in api_operations(app):
        if op.path == f"{API}/auth/logout":
            continue  # no input at all (and it would end the session the test runs on)
        operation = document["paths"][op.path][op.method]
        # Path ids that cannot exist.
        for param in op.params:
            for bad in BAD_PATH_VALUES:
                url = re.sub(
                    r"\{(\w+)\}", lambda m, bad=bad, param=param: bad if m.group(1) == param else str(values[m.group(1)]), op.path
                )
                body = valid_body(op, w) if op.has_body else None
                response = await client.request(op.method.upper(), url, json=body, headers=owner.headers)
                sent += 1
                if bad == "007":
                    assert response.status_code < 500, (op, url, response.text)
                else:
                    assert response.status_code == 404, (op, url, response.text)
                    assert_problem(response, f"{op} with {param}={bad}")
        # Query parameters.
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            for bad in BAD_QUERY_VALUES:
                response = await client.request(
                    op.method.upper(), op.url(values), params={parameter["name"]: bad}, headers=owner.headers
                )
                sent += 1
                assert response.status_code < 500, (op, parameter["name"], bad, response.text)
                if response.status_code >= 400:
                    assert_problem(response, f"{op} ?{parameter['name']}={bad!r}")
        # Header parameters (Idempotency-Key): what an HTTP header can carry.
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "header":
                continue
            for bad in BAD_HEADER_VALUES:
                body = valid_body(op, w) if op.has_body else None
                response = await client.request(
                    op.method.upper(), op.url(values), json=body, headers={**owner.headers, parameter["name"]: bad.encode("latin-1")}
                )
                sent += 1
                assert response.status_code < 500, (op, parameter["name"], bad[:20], response.text)
                if response.status_code >= 400:
                    assert_problem(response, f"{op} {parameter['name']}: {bad[:20]!r}")
        if not op.has_body:
            continue
        # Bodies of the wrong shape.
        for raw in [b"", b"null", b"[]", b'"text"', b"12", b"{", b'{"a":', b"\xff\xfe", b'{"name": "\\ud800"}', b"[" * 5000]:
            response = await client.request(
                op.method.upper(), op.url(values), content=raw, headers={**owner.headers, "content-type": "application/json"}
            )
            sent += 1
            assert_problem(response, f"{op} with body {raw[:20]!r}")
        # Each field set to each bad value, the rest of the body valid.
        base_body = valid_body(op, w)
        schema = _body_schema(document, operation)
        for name in schema.get("properties", {}):
            for bad in BAD_VALUES:
                response = await client.request(
                    op.method.upper(), op.url(values), json={**base_body, name: bad}, headers=owner.headers
                )
                sent += 1
                assert response.status_code < 500, (op, name, bad, response.text)
                if response.status_code >= 400:
                    problem = assert_problem(response, f"{op} with {name}={bad!r}")
                    if response.status_code == 422:
                        assert problem.get("errors"), f"{op} with {name}={bad!r}: 422 without the field: {response.text}"
    assert sent > 1000


async def test_uploads_take_only_images_and_name_the_field(client: httpx.AsyncClient, app: Litestar, owner: Account, world) -> None:
    """Routes that take a file rather than JSON: whatever else arrives is a 422 naming the
    field at fault, in problem+json, never a 500."""
    w, token_id = world
    uploads = [op for op in api_operations(app) if op.upload]
    assert uploads, "no upload route found in the OpenAPI document"
    for op in uploads:
        for raw, content_type in [
            (b"", "application/octet-stream"),
            (b"null", "application/json"),
            (b'{"file": "x"}', "application/json"),
            (b"GIF89a\x01\x00\x01\x00", "image/png"),
            (b"\x00" * 100, "image/jpeg"),
            ("ünïcödé".encode(), "text/plain; charset=utf-8"),
            (b"--b\r\n", "multipart/form-data; boundary=b"),
            (b"x", "multipart/form-data"),
            (b"a=1&b=2", "application/x-www-form-urlencoded"),
        ]:
            response = await client.request(
                op.method.upper(), op.url(path_values(w, token_id)), content=raw, headers={**owner.headers, "content-type": content_type}
            )
            problem = assert_problem(response, f"{op} with {raw[:12]!r} as {content_type}")
            assert response.status_code == 422 and problem.get("errors"), f"{op} with {raw[:12]!r}: {response.text}"


def _body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    schema = next(iter(operation["requestBody"]["content"].values()))["schema"]
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


# ---------------------------------------------------------------- the request transaction


async def test_a_refused_request_leaves_no_open_transaction(
    client: httpx.AsyncClient, app: Litestar, owner: Account, community: dict[str, Any], sessions
) -> None:
    """A guard that refuses (401, 403, 404) raises while the request's database session is
    already open: the session must still be rolled back and its connection returned at once,
    not when the garbage collector gets round to it (meanwhile it would hold its locks)."""
    manager = await sign_up(client, "manager@example.com")
    await client.put(
        f"{API}/communities/{community['id']}/staff",
        json={"email": "manager@example.com", "role": "manager"},
        headers=owner.headers,
    )
    stranger = await sign_up(client, "stranger@example.com")
    pool = app.state.engine.pool
    for who, url, expected in [
        (stranger, f"{API}/communities/{community['id']}", 404),
        (manager, f"{API}/communities/{community['id']}/jobs", 403),  # the editor guard refuses a manager
        (Account(0, "", "bogus"), f"{API}/me", 401),
        (owner, f"{API}/communities/{2**63}", 404),
        (owner, f"{API}/communities/{community['id']}/hubs/999", 404),
    ]:
        response = await client.get(url, headers=who.headers)
        assert response.status_code == expected, response.text
        assert pool.checkedout() == 0, f"{url}: a connection is still checked out after the response"
        async with sessions() as session:
            idle = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            )
        assert idle == 0, f"{url}: a transaction was left open"


async def test_api_docs_load_their_ui_from_our_own_server(client) -> None:
    """The docs work offline: every script and stylesheet the page names is ours and loads."""
    for path in ("/schema", "/schema/swagger"):
        docs = await client.get(path)
        assert docs.status_code == 200
        policy = docs.headers["content-security-policy"]
        assert "https:" not in policy and "http:" not in policy
        assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css|svg|png))["']""", docs.text)
        assert len(assets) >= 3, docs.text
        for asset in assets:
            assert asset.startswith("/"), asset
            loaded = await client.get(asset)
            assert loaded.status_code == 200 and loaded.content, asset
    login = await client.get("/login")
    assert login.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
    assert "jsdelivr" not in login.headers["content-security-policy"]


# ---------------------------------------------------------------- dates, missing bodies, every route


def _date_fields(document: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """The body's fields the OpenAPI document gives as date-times."""
    schema = _body_schema(document, operation)

    def is_date(prop: dict[str, Any]) -> bool:
        return prop.get("format") == "date-time" or any(is_date(p) for p in prop.get("oneOf", []) + prop.get("anyOf", []))

    return [name for name, prop in schema.get("properties", {}).items() if is_date(prop)]


async def test_out_of_range_dates_are_422_naming_the_field_on_every_route(
    client: httpx.AsyncClient, app: Litestar, owner: Account, world
) -> None:
    """Every date-time a client can send (discount codes, comps, ends, reopenings, and any route
    added later) takes an ISO 8601 value with a time zone between 1970 and 9999 (UTC): anything
    else is a 422 naming the field, never a 500 from the database driver."""
    w, token_id = world
    document = app.openapi_schema.to_schema()
    checked: set[tuple[str, str]] = set()
    for op in api_operations(app):
        if not op.has_body:
            continue
        operation = document["paths"][op.path][op.method]
        for name in _date_fields(document, operation):
            for bad in BAD_INSTANTS:
                response = await client.request(
                    op.method.upper(), op.url(path_values(w, token_id)), json={**valid_body(op, w), name: bad}, headers=owner.headers
                )
                problem = assert_problem(response, f"{op} with {name}={bad!r}")
                assert response.status_code == 422 and fields(response) == [name], f"{op} with {name}={bad!r}: {response.text}"
                assert problem["detail"].startswith(f"{name}: ")
                checked.add((str(op), name))
    assert {field for _, field in checked} >= {"starts_at", "ends_at", "at"}
    assert len(checked) >= 6, checked
    # In range, in any zone: accepted, and kept as the same instant in UTC.
    made = await client.post(
        f"{API}/communities/{w.community_id}/discount-codes",
        json={"code": "EDGES", "kind": "percent", "percent_bps": 100, "starts_at": "1970-01-01T00:00:00Z", "ends_at": "9998-12-30T23:59:59-14:00"},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    assert (made.json()["starts_at"], made.json()["ends_at"]) == ("1970-01-01T00:00:00Z", "9998-12-31T13:59:59Z")
    shown = await client.get(f"{API}/communities/{w.community_id}/discount-codes/{made.json()['id']}", headers=owner.headers)
    assert shown.json() == made.json()


async def test_a_missing_body_says_the_body_is_missing(client: httpx.AsyncClient, app: Litestar, owner: Account, world) -> None:
    """Every operation that needs a JSON body, sent none: 400, saying so (not an internal name)."""
    w, token_id = world
    document = app.openapi_schema.to_schema()
    checked = 0
    for op in api_operations(app):
        if not op.has_body or not document["paths"][op.path][op.method]["requestBody"].get("required"):
            continue
        for headers in ({}, {"content-type": "application/json"}):
            response = await client.request(op.method.upper(), op.url(path_values(w, token_id)), headers={**owner.headers, **headers})
            problem = assert_problem(response, str(op))
            assert (response.status_code, problem["detail"]) == (400, "the request body is missing"), f"{op}: {response.text}"
        checked += 1
    assert checked >= 15


def _every_route(app: Litestar) -> list[tuple[str, str, dict[str, str], list[str]]]:
    """(method, path format, {path parameter: type}, query parameters) for every route the app
    serves, pages and static files included (not only those in the OpenAPI document)."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        params = dict(re.findall(r"\{(\w+):(\w+)\}", route.path))
        for handler in route.route_handlers:
            signature = handler.parsed_fn_signature.parameters
            query = [
                name for name, definition in signature.items()
                if name not in params and type(definition.kwarg_definition).__name__ == "ParameterKwarg"
                and not definition.kwarg_definition.header and not definition.kwarg_definition.cookie
            ]
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append((method, route.path_format, params, query))
    return found


def _fill(path_format: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path_format)


@asynccontextmanager
async def _logged_in_browser(app: Litestar) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The owner's browser, logged in to the pages, and its CSRF token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as browser:
        page = await browser.get("/login")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        login = await browser.post("/login", data={"_csrf_token": token, "email": "owner@example.com", "password": "correct horse battery"})
        assert login.status_code in (302, 303), login.text
        yield browser, token


async def test_no_path_of_any_route_takes_a_nul_or_an_impossible_id(app: Litestar, owner: Account, world) -> None:
    """Every route of the app, pages and static files included, read from its route table: a
    path parameter carrying a NUL, or a number no row id can be, names nothing (404), as does
    a NUL after the path; never a 500 (a NUL reached PostgreSQL, or the file system)."""
    w, token_id = world
    good = {**{k: str(v) for k, v in path_values(w, token_id).items()}}
    sent = 0
    async with _logged_in_browser(app) as (browser, csrf):
        for method, path_format, params, _ in _every_route(app):
            headers = {**owner.headers, "x-csrftoken": csrf}
            base = {name: good.get(name, "x") for name in params}
            for name, kind in params.items():
                bad_values = ["0", "-1", str(2**63), "99999999999999999999"] if kind == "int" else ["%00", "a%00b", "a%00/b"]
                for bad in bad_values:
                    url = _fill(path_format, {**base, name: bad})
                    response = await browser.request(method, url, headers=headers)
                    sent += 1
                    assert response.status_code == 404, (method, url, response.status_code, response.text[:300])
                    if url.startswith("/api/"):
                        assert_problem(response, f"{method} {url}")
            url = _fill(path_format, base).rstrip("/") + "%00"
            response = await browser.request(method, url, headers=headers)
            sent += 1
            assert response.status_code in (404, 405), (method, url, response.status_code, response.text[:300])
    assert sent > 300


async def test_no_query_parameter_of_any_page_is_a_500(app: Litestar, owner: Account, world) -> None:
    """The pages' query parameters (not in the OpenAPI document): NUL, invalid UTF-8, lone
    surrogates encoded, long and numeric values are a page or a 4xx, never a 500."""
    w, token_id = world
    good = {k: str(v) for k, v in path_values(w, token_id).items()}
    checked = 0
    async with _logged_in_browser(app) as (browser, _):
        for method, path_format, params, query in _every_route(app):
            if path_format.startswith("/api/") or not query:
                continue
            url = _fill(path_format, {name: good.get(name, "x") for name in params})
            for name in query:
                for bad in ["%00", "a%00b", "%FF%FE", "%ED%A0%80", "x" * 5000, str(2**64), "-1", ""]:
                    response = await browser.request(method, f"{url}?{name}={bad}")
                    assert response.status_code < 500, (method, url, name, bad[:20], response.text[:300])
                checked += 1
    assert checked >= 2  # ?ref= on a landing page, ?session_id= on the completion route


async def test_a_nul_in_any_form_field_is_a_422_naming_it(app: Litestar, owner: Account, world) -> None:
    """Every form a page posts (URL-encoded, read from the route table): a field carrying a NUL
    is refused before any handler sees it, naming the field."""
    w, token_id = world
    good = {k: str(v) for k, v in path_values(w, token_id).items()}
    posted = 0
    async with _logged_in_browser(app) as (browser, csrf):
        for method, path_format, params, _ in _every_route(app):
            if path_format.startswith("/api/") or method != "POST":
                continue
            url = _fill(path_format, {name: good.get(name, "x") for name in params})
            for field in ("email", "name", "discount_code", "password", "offer_id"):
                response = await browser.post(url, data={"_csrf_token": csrf, field: f"a\x00{field}"})
                assert response.status_code == 422, (url, field, response.status_code, response.text[:300])
                assert f"<strong>{field}</strong>: must not contain the NUL character" in response.text, (url, field)
                posted += 1
    assert posted >= 40
