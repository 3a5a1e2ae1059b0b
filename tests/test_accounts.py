from __future__ import annotations

import email
import email.policy
import re

import httpx

from tests.conftest import sign_up


async def test_sign_up_log_in_and_me(client: httpx.AsyncClient) -> None:
    account = await sign_up(client, "Ada@Example.com", name="Ada")
    me = await client.get("/api/v1/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json()["email"] == "Ada@example.com"

    # Emails compare case-insensitively, for log-in and for uniqueness.
    login = await client.post("/api/v1/auth/login", json={"email": "ADA@EXAMPLE.COM", "password": "correct horse battery"})
    assert login.status_code == 200, login.text
    assert login.json()["user"]["id"] == account.id
    again = await client.post("/api/v1/auth/signup", json={"email": "ada@example.com", "password": "another password!"})
    assert again.status_code == 409
    assert again.json()["errors"] == [{"field": "email", "message": "an account with this email already exists"}]


async def test_wrong_password_and_unknown_email_answer_the_same(client: httpx.AsyncClient) -> None:
    await sign_up(client, "bob@example.com")
    wrong = await client.post("/api/v1/auth/login", json={"email": "bob@example.com", "password": "not the password"})
    unknown = await client.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_bad_sign_up_input_names_the_field(client: httpx.AsyncClient) -> None:
    short = await client.post("/api/v1/auth/signup", json={"email": "c@example.com", "password": "short"})
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "password"
    bad_email = await client.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": "long enough pass"})
    assert bad_email.status_code == 422
    assert bad_email.json()["errors"][0]["field"] == "email"
    wrong_type = await client.post("/api/v1/auth/signup", json={"email": 5, "password": "long enough pass"})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "email"
    not_json = await client.post("/api/v1/auth/signup", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.headers["content-type"].startswith("application/problem+json")


async def test_tokens_are_listed_and_revocable(client: httpx.AsyncClient) -> None:
    account = await sign_up(client, "tok@example.com")
    created = await client.post("/api/v1/me/tokens", json={"name": "ci script", "expires_in_days": 30}, headers=account.headers)
    assert created.status_code == 201
    secret = created.json()["secret"]
    token_id = created.json()["token"]["id"]
    listed = await client.get("/api/v1/me/tokens", headers=account.headers)
    assert [t["name"] for t in listed.json()] == ["sign-up", "ci script"]
    assert "secret" not in listed.text and secret not in listed.text

    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
    revoked = await client.delete(f"/api/v1/me/tokens/{token_id}", headers=account.headers)
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})).status_code == 401

    other = await sign_up(client, "other@example.com")
    # Another user's token id is simply not found.
    first_id = listed.json()[0]["id"]
    assert (await client.delete(f"/api/v1/me/tokens/{first_id}", headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 200


async def test_tokens_are_stored_hashed(client: httpx.AsyncClient, sessions) -> None:
    from sqlalchemy import text

    account = await sign_up(client, "hash@example.com")
    async with sessions() as session:
        stored = (await session.execute(text("SELECT token_hash FROM auth_tokens"))).scalars().all()
    assert account.token not in stored
    assert all(len(value) == 64 for value in stored)


async def test_logout_revokes_the_calling_token(client: httpx.AsyncClient) -> None:
    account = await sign_up(client, "out@example.com")
    assert (await client.post("/api/v1/auth/logout", headers=account.headers)).status_code == 204
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 401


async def test_login_is_rate_limited_per_account(client: httpx.AsyncClient) -> None:
    await sign_up(client, "target@example.com")
    statuses = []
    for i in range(12):
        # A different address each time: the per-account limit still applies.
        transport_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=client._transport.app, client=(f"198.51.100.{i}", 1000)),  # type: ignore[attr-defined]
            base_url="http://testserver",
        )
        async with transport_client as c:
            r = await c.post("/api/v1/auth/login", json={"email": "target@example.com", "password": "wrong password!!"})
            statuses.append(r.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    limited = await client.post("/api/v1/auth/login", json={"email": "target@example.com", "password": "correct horse battery"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0


async def test_login_is_rate_limited_per_address(client: httpx.AsyncClient) -> None:
    statuses = [
        (await client.post("/api/v1/auth/login", json={"email": f"u{i}@example.com", "password": "whatever123"})).status_code
        for i in range(31)
    ]
    assert statuses[:30] == [401] * 30
    assert statuses[30] == 429


async def test_login_link_is_emailed_one_time(client: httpx.AsyncClient, settings, sessions) -> None:
    from tests.helpers import run_jobs

    account = await sign_up(client, "link@example.com")
    asked = await client.post("/api/v1/auth/login-link", json={"email": "LINK@example.com"})
    assert asked.status_code == 202
    unknown = await client.post("/api/v1/auth/login-link", json={"email": "ghost@example.com"})
    assert unknown.status_code == 202  # no hint whether an account exists

    await run_jobs(settings)
    mails = list((settings.data_dir / "mail").glob("*.eml"))
    assert len(mails) == 1
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "link@example.com"
    body = message.get_body(("plain",)).get_content()
    token = re.search(r"/login/link/(\S+)", body).group(1)

    redeemed = await client.post("/api/v1/auth/login-link/redeem", json={"token": token})
    assert redeemed.status_code == 200
    assert redeemed.json()["user"]["id"] == account.id
    again = await client.post("/api/v1/auth/login-link/redeem", json={"token": token})
    assert again.status_code == 401

    # Once sent, the outbox keeps who got what, not the body with the link.
    from sqlalchemy import text

    async with sessions() as session:
        payloads = (await session.execute(text("SELECT payload::text FROM outbox"))).scalars().all()
    assert payloads and not any(token in payload for payload in payloads)


async def test_expired_login_link_is_refused(client: httpx.AsyncClient, sessions) -> None:
    from sqlalchemy import text

    from community.accounts import service

    account = await sign_up(client, "late@example.com")
    async with sessions() as session, session.begin():
        user = await service.get_user(session, account.id)
        link = await service.create_login_link(session, user=user, base_url="http://testserver")
        await session.execute(text("UPDATE login_links SET expires_at = now() - interval '1 second'"))
    token = link.rsplit("/", 1)[1]
    assert (await client.post("/api/v1/auth/login-link/redeem", json={"token": token})).status_code == 401


async def test_profile_update_needs_current_password(client: httpx.AsyncClient) -> None:
    account = await sign_up(client, "prof@example.com")
    bad = await client.patch("/api/v1/me", json={"password": "a new password", "current_password": "nope"}, headers=account.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "current_password"
    ok = await client.patch(
        "/api/v1/me", json={"name": "Pro", "password": "a new password", "current_password": "correct horse battery"}, headers=account.headers
    )
    assert ok.status_code == 200 and ok.json()["name"] == "Pro"
    login = await client.post("/api/v1/auth/login", json={"email": "prof@example.com", "password": "a new password"})
    assert login.status_code == 200
