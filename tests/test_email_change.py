"""Changing an account's email through the API: a link goes to the new address, and only
confirming it (once, in time, as the account that asked) moves the account; the old address is
told, and links already sent to it stop working."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from dataclasses import dataclass

import httpx
from sqlalchemy import update

from community.accounts.models import EmailChange
from community.db import utcnow
from community.settings import Settings
from tests.conftest import Account, sign_up
from tests.helpers import run_jobs

API = "/api/v1"
PASSWORD = "correct horse battery"
TOKEN = re.compile(r"/account/email/([A-Za-z0-9_-]+)")


@dataclass
class Mail:
    to: str
    subject: str
    text: str


async def mails(settings: Settings) -> list[Mail]:
    """Deliver what the outbox holds, then read every message written to the data dir."""
    await run_jobs(settings)
    found = []
    for path in sorted((settings.data_dir / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(Mail(str(message["To"]), str(message["Subject"]), message.get_body(("plain",)).get_content()))
    return found


def fields_of(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


async def ask(client: httpx.AsyncClient, who: Account, new_email: str, password: str | None = PASSWORD) -> httpx.Response:
    body = {"email": new_email} if password is None else {"email": new_email, "current_password": password}
    return await client.post(f"{API}/me/email", json=body, headers=who.headers)


async def token_sent_to(settings: Settings, address: str) -> str:
    sent = [m for m in await mails(settings) if m.to == address]
    assert sent, f"no mail to {address}"
    match = TOKEN.search(sent[-1].text)
    assert match, sent[-1].text
    return match.group(1)


async def confirm(client: httpx.AsyncClient, who: Account, token: str) -> httpx.Response:
    return await client.post(f"{API}/me/email/confirm", json={"token": token}, headers=who.headers)


async def logs_in(client: httpx.AsyncClient, address: str) -> bool:
    response = await client.post(f"{API}/auth/login", json={"email": address, "password": PASSWORD})
    return response.status_code == 200


async def test_the_change_waits_for_the_link_then_happens_once(client: httpx.AsyncClient, settings: Settings) -> None:
    ada = await sign_up(client, "ada@example.com", name="Ada")
    asked = await ask(client, ada, "Ada.New@Example.com")
    assert asked.status_code == 202, asked.text
    assert asked.json()["new_email"] == "Ada.New@example.com"  # normalised (the domain)

    # Nothing moved yet: the account keeps its address, which still logs in.
    state = (await client.get(f"{API}/me/email", headers=ada.headers)).json()
    assert state["email"] == "ada@example.com" and state["pending"]["new_email"] == "Ada.New@example.com"
    assert (await client.get(f"{API}/me", headers=ada.headers)).json()["email"] == "ada@example.com"
    sent = await mails(settings)
    assert [(m.to, m.subject) for m in sent] == [("Ada.New@example.com", "Confirm your new email address")]
    assert "from ada@example.com to Ada.New@example.com" in sent[0].text
    token = TOKEN.search(sent[0].text).group(1)
    assert sent[0].text.count(f"{settings.base_url}/account/email/{token}") == 1

    confirmed = await confirm(client, ada, token)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == "Ada.New@example.com"
    assert await logs_in(client, "ada.new@example.com") and not await logs_in(client, "ada@example.com")
    assert (await client.get(f"{API}/me/email", headers=ada.headers)).json() == {"email": "Ada.New@example.com", "pending": None}

    # The old address is told; the new one got nothing more.
    told = [m for m in await mails(settings) if m.subject == "Your account's email was changed"]
    assert [m.to for m in told] == ["ada@example.com"]
    assert "from ada@example.com to Ada.New@example.com" in told[0].text

    # The link works once.
    again = await confirm(client, ada, token)
    assert again.status_code == 404 and "invalid, used or expired" in again.json()["detail"]
    assert (await client.get(f"{API}/me", headers=ada.headers)).json()["email"] == "Ada.New@example.com"


async def test_an_expired_link_changes_nothing(client: httpx.AsyncClient, settings: Settings, sessions) -> None:
    bo = await sign_up(client, "bo@example.com")
    assert (await ask(client, bo, "bo2@example.com")).status_code == 202
    token = await token_sent_to(settings, "bo2@example.com")
    async with sessions() as session, session.begin():
        await session.execute(update(EmailChange).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    expired = await confirm(client, bo, token)
    assert expired.status_code == 404 and fields_of(expired) == ["token"]
    assert (await client.get(f"{API}/me", headers=bo.headers)).json()["email"] == "bo@example.com"
    assert (await client.get(f"{API}/me/email", headers=bo.headers)).json()["pending"] is None
    assert [m.to for m in await mails(settings)] == ["bo2@example.com"]  # no "changed" notice


async def test_a_taken_address_is_refused_when_asked_and_when_confirmed(client: httpx.AsyncClient, settings: Settings) -> None:
    cy = await sign_up(client, "cy@example.com")
    await sign_up(client, "taken@example.com")
    refused = await ask(client, cy, "TAKEN@example.com")
    assert refused.status_code == 409 and fields_of(refused) == ["email"]
    assert "already exists" in refused.json()["detail"]
    assert await mails(settings) == []

    # Free when asked, taken by a sign-up before the link is opened: refused then, nothing moved,
    # and the link is not spent (should the other account go, it still works).
    assert (await ask(client, cy, "later@example.com")).status_code == 202
    token = await token_sent_to(settings, "later@example.com")
    await sign_up(client, "Later@example.com")
    late = await confirm(client, cy, token)
    assert late.status_code == 409 and fields_of(late) == ["email"]
    assert (await client.get(f"{API}/me", headers=cy.headers)).json()["email"] == "cy@example.com"
    assert (await client.get(f"{API}/me/email", headers=cy.headers)).json()["pending"]["new_email"] == "later@example.com"
    assert not [m for m in await mails(settings) if m.subject == "Your account's email was changed"]


async def test_another_users_token_is_refused_and_stays_good_for_its_owner(client: httpx.AsyncClient, settings: Settings) -> None:
    dee = await sign_up(client, "dee@example.com")
    eve = await sign_up(client, "eve@example.com")
    assert (await ask(client, dee, "dee.new@example.com")).status_code == 202
    token = await token_sent_to(settings, "dee.new@example.com")
    stolen = await confirm(client, eve, token)
    assert stolen.status_code == 404 and fields_of(stolen) == ["token"]
    assert (await client.get(f"{API}/me", headers=eve.headers)).json()["email"] == "eve@example.com"
    assert (await client.get(f"{API}/me", headers=dee.headers)).json()["email"] == "dee@example.com"
    assert (await confirm(client, dee, token)).status_code == 200
    assert (await client.get(f"{API}/me", headers=dee.headers)).json()["email"] == "dee.new@example.com"
    # Without a token at all, or a made-up one: the same refusal; without a login: 401.
    assert (await confirm(client, dee, "x" * 43)).status_code == 404
    assert (await client.post(f"{API}/me/email/confirm", json={"token": token})).status_code == 401


async def test_bad_requests_name_their_field_and_send_nothing(client: httpx.AsyncClient, settings: Settings) -> None:
    fay = await sign_up(client, "fay@example.com")
    cases = [
        ({"email": "not an address", "current_password": PASSWORD}, 422, "email"),
        ({"email": "FAY@example.com", "current_password": PASSWORD}, 422, "email"),  # already hers
        ({"email": "fay2@example.com", "current_password": "wrong password"}, 422, "current_password"),
        ({"email": "fay2@example.com"}, 422, "current_password"),  # someone with a password gives it
        ({"email": "fay2@example.com", "current_password": PASSWORD, "extra": 1}, 422, "extra"),
    ]
    for body, status, field in cases:
        response = await client.post(f"{API}/me/email", json=body, headers=fay.headers)
        assert response.status_code == status, (body, response.text)
        assert fields_of(response) == [field], (body, response.text)
    assert (await client.post(f"{API}/me/email", json={"email": "fay2@example.com"})).status_code == 401
    assert await mails(settings) == []
    assert (await client.get(f"{API}/me/email", headers=fay.headers)).json()["pending"] is None


async def test_a_new_request_voids_the_earlier_link_and_the_change_voids_old_login_links(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    gus = await sign_up(client, "gus@example.com")
    assert (await ask(client, gus, "first@example.com")).status_code == 202
    first = await token_sent_to(settings, "first@example.com")
    assert (await ask(client, gus, "second@example.com")).status_code == 202
    second = await token_sent_to(settings, "second@example.com")
    assert (await confirm(client, gus, first)).status_code == 404  # replaced by the second request

    # A login link mailed to the old address before the change no longer opens the account.
    assert (await client.post(f"{API}/auth/login-link", json={"email": "gus@example.com"})).status_code == 202
    login_mail = [m for m in await mails(settings) if m.subject == "Your login link"][-1]
    login_token = re.search(r"/login/link/(\S+)", login_mail.text).group(1)
    assert (await confirm(client, gus, second)).status_code == 200
    redeemed = await client.post(f"{API}/auth/login-link/redeem", json={"token": login_token})
    assert redeemed.status_code == 401


async def test_an_account_without_a_password_changes_its_email_without_one(client: httpx.AsyncClient, settings: Settings, owner: Account, community) -> None:
    # Invited by staff: no password; the login link sent to the address is the way in.
    invited = await client.put(
        f"{API}/communities/{community['id']}/staff", json={"email": "hal@example.com", "role": "manager"}, headers=owner.headers
    )
    assert invited.status_code == 200, invited.text
    invite = [m for m in await mails(settings) if m.to == "hal@example.com"][-1]
    login_token = re.search(r"/login/link/(\S+)", invite.text).group(1)
    session = (await client.post(f"{API}/auth/login-link/redeem", json={"token": login_token})).json()
    hal = Account(id=session["user"]["id"], email="hal@example.com", token=session["secret"])
    assert session["user"]["has_password"] is False
    assert (await ask(client, hal, "hal.new@example.com", password=None)).status_code == 202
    token = await token_sent_to(settings, "hal.new@example.com")
    assert (await confirm(client, hal, token)).json()["email"] == "hal.new@example.com"


async def test_requests_are_limited_per_account(client: httpx.AsyncClient, settings: Settings) -> None:
    ivy = await sign_up(client, "ivy@example.com")
    statuses = [(await ask(client, ivy, f"ivy{n}@example.com")).status_code for n in range(6)]
    assert statuses == [202] * 5 + [429]
