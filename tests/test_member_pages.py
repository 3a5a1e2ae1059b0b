"""The member's pages without a browser: which offers open a group (the API the page uses), the
community page, a group's posts through the API's access rule, and the account page's rules
for a first password (a buyer made at checkout sets one only after opening a link sent to
their address, which is where the purchase email's link lands them)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.checkout_helpers import (
    API,
    CSRF,
    community_origin,
    make_group,
    offer_for_sale,
    offer_path,
    submit_checkout,
)
from tests.conftest import Account, sign_up
from tests.test_email_change import mails

PASSWORD = "correct horse battery"
OWNER_CODE = '<script id="owner-pixel">1</script>'


def browser(app: Litestar) -> httpx.AsyncClient:
    """A browser of its own: cookies kept, redirects not followed."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.20", 5000)), base_url="http://testserver")


async def log_in(page: httpx.AsyncClient, address: str, password: str = PASSWORD) -> None:
    token = CSRF.search((await page.get("/login")).text).group(1)
    done = await page.post("/login", data={"_csrf_token": token, "email": address, "password": password})
    assert done.status_code in (302, 303), done.text


async def post_form(page: httpx.AsyncClient, form_page: str, action: str, **fields: str) -> httpx.Response:
    token = CSRF.search((await page.get(form_page)).text).group(1)
    return await page.post(action, data={"_csrf_token": token, **fields})


async def write_post(client: httpx.AsyncClient, owner: Account, community_id: int, group_id: int, title: str, body: str = "Text") -> dict[str, Any]:
    made = await client.post(
        f"{API}/communities/{community_id}/groups/{group_id}/posts", json={"title": title, "body": body}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    return made.json()


@pytest.fixture
async def club(client: httpx.AsyncClient, owner: Account, community: dict[str, Any]) -> dict[str, Any]:
    """Two groups: Yoga, opened by a published free offer the member holds; Weights, opened by a
    published one-time offer they do not hold (and by a draft, which opens nothing)."""
    cid = community["id"]
    yoga = await make_group(client, owner, cid, "Yoga")
    weights = await make_group(client, owner, cid, "Weights")
    free = await offer_for_sale(
        client, owner, cid, groups=[yoga], title="Yoga Club", pricing="free", amount=None, currency=None, checkout_code_head=OWNER_CODE
    )
    draft = await client.post(
        f"{API}/communities/{cid}/offers", json={"title": "Draft Pass", "pricing": "free"}, headers=owner.headers
    )
    await client.put(f"{API}/communities/{cid}/offers/{draft.json()['id']}/groups", json={"add": [weights]}, headers=owner.headers)
    member = await sign_up(client, "mia@example.com", name="Mia Member")
    claimed = await client.post(f"{API}/offers/{free['id']}/claim", headers=member.headers)
    assert claimed.status_code == 201, claimed.text
    return {"id": cid, "slug": community["slug"], "yoga": yoga, "weights": weights, "free": free, "member": member}


async def sell_weights(client: httpx.AsyncClient, owner: Account, club: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A published offer for Weights (free: a paid one needs Stripe connected to publish)."""
    fields = {"title": "Weight Training", "pricing": "free", "amount": None, "currency": None, **fields}
    return await offer_for_sale(client, owner, club["id"], groups=[club["weights"]], **fields)


# ---------------------------------------------------------------- offers that open a group (API)


async def test_the_offers_that_open_a_group_for_a_new_buyer(client: httpx.AsyncClient, owner: Account, club: dict[str, Any]) -> None:
    cid, member = club["id"], club["member"]
    url = f"{API}/communities/{cid}/groups/{club['weights']}/offers"
    assert (await client.get(url, headers=member.headers)).json() == []  # only a draft links it
    weights = await sell_weights(client, owner, club)
    found = (await client.get(url, headers=member.headers)).json()
    assert found == [{
        "id": weights["id"], "title": "Weight Training", "slug": weights["slug"], "pricing": "free", "amount": 0,
        "currency": weights["currency"], "interval_months": None, "access_days": None,
        "landing_url": f"{community_origin(club['slug'])}/o/{club['slug']}/{weights['slug']}",
    }]
    assert (await client.get(url, headers=owner.headers)).json() == found  # staff ask the same

    # Removed for new buyers only: existing holders keep it, a new buyer would not get it.
    narrowed = await client.put(
        f"{API}/communities/{cid}/offers/{weights['id']}/groups", json={"remove": [club["weights"]], "mode": "new_buyers_only"},
        headers=owner.headers,
    )
    assert narrowed.status_code == 200, narrowed.text
    assert (await client.get(url, headers=member.headers)).json() == []

    # Archived offers sell nothing.
    yoga_url = f"{API}/communities/{cid}/groups/{club['yoga']}/offers"
    assert [o["title"] for o in (await client.get(yoga_url, headers=member.headers)).json()] == ["Yoga Club"]
    assert (await client.post(f"{API}/communities/{cid}/offers/{club['free']['id']}/archive", headers=owner.headers)).status_code == 200
    assert (await client.get(yoga_url, headers=member.headers)).json() == []


async def test_offers_of_a_group_are_for_the_communitys_people_only(client: httpx.AsyncClient, owner: Account, club: dict[str, Any]) -> None:
    stranger = await sign_up(client, "stranger@example.com")
    url = f"{API}/communities/{club['id']}/groups/{club['yoga']}/offers"
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.get(url)).status_code == 401
    other = (await client.post(f"{API}/communities", json={"name": "Other Place"}, headers=stranger.headers)).json()
    foreign_group = await make_group(client, stranger, other["id"], "Theirs")
    # A group of another community, asked through this one: 404 like any id that names nothing here.
    assert (await client.get(f"{API}/communities/{club['id']}/groups/{foreign_group}/offers", headers=owner.headers)).status_code == 404


# ---------------------------------------------------------------- the community page


async def test_the_community_page_links_open_groups_and_offers_for_locked_ones(
    app: Litestar, client: httpx.AsyncClient, owner: Account, club: dict[str, Any]
) -> None:
    weights = await sell_weights(client, owner, club, checkout_code_head=OWNER_CODE)
    async with browser(app) as page:
        await log_in(page, "mia@example.com")
        home = await page.get(f"/communities/{club['id']}")
        assert home.status_code == 200, home.text
        html = home.text
        assert f'href="/communities/{club["id"]}/groups/{club["yoga"]}">Yoga</a>' in html
        assert f'/groups/{club["weights"]}"' not in html  # locked: no link to the group itself
        landing = f"{community_origin(club['slug'])}/o/{club['slug']}/{weights['slug']}"
        assert f'<a href="{landing}" class="offer-link">Weight Training</a>' in html
        assert "Draft Pass" not in html and OWNER_CODE not in html  # a draft opens nothing; owner code never runs here
        assert f'href="/communities/{club["id"]}/billing"' in html and 'href="/account"' in html
        assert "Console" not in html  # members never see the console
        assert "script-src 'self'" in home.headers["content-security-policy"]

    async with browser(app) as page:  # the owner opens everything (as the API's access check says)
        await log_in(page, owner.email)
        html = (await page.get(f"/communities/{club['id']}")).text
        assert f'/groups/{club["weights"]}">Weights</a>' in html and "More groups" not in html
        assert f'href="/dashboard/communities/{club["id"]}">Console</a>' in html


# ---------------------------------------------------------------- a group's page


async def test_a_group_page_shows_its_posts_newest_first_in_pages(
    app: Litestar, client: httpx.AsyncClient, owner: Account, club: dict[str, Any]
) -> None:
    cid = club["id"]
    posts = [await write_post(client, owner, cid, club["yoga"], f"Lesson {n}", f"Breathe <b>in</b>\nand out {n}") for n in range(23)]
    async with browser(app) as page:
        await log_in(page, "mia@example.com")
        first = await page.get(f"/communities/{cid}/groups/{club['yoga']}")
        assert first.status_code == 200, first.text
        titles = re.findall(r'<h2 id="post-\d+-title">([^<]+)</h2>', first.text)
        assert titles == [f"Lesson {n}" for n in range(22, 2, -1)]  # 20 a page, newest first
        assert "Breathe &lt;b&gt;in&lt;/b&gt;\nand out 22" in first.text  # the body as written, escaped
        assert "Olivia Owner" in first.text and owner.email not in first.text  # the author's name, never an address
        older = re.search(r'href="([^"]+)" rel="next">Older posts', first.text).group(1)
        assert older == f"/communities/{cid}/groups/{club['yoga']}?before={posts[3]['id']}"
        second = await page.get(older)
        assert re.findall(r'<h2 id="post-\d+-title">([^<]+)</h2>', second.text) == ["Lesson 2", "Lesson 1", "Lesson 0"]
        assert "Older posts" not in second.text and "Newest posts" in second.text


async def test_a_locked_group_answers_like_the_api_with_the_offers_that_open_it(
    app: Litestar, client: httpx.AsyncClient, owner: Account, club: dict[str, Any]
) -> None:
    cid, member = club["id"], club["member"]
    await write_post(client, owner, cid, club["weights"], "Heavy secret")
    weights = await sell_weights(client, owner, club)
    api = await client.get(f"{API}/communities/{cid}/groups/{club['weights']}/posts", headers=member.headers)
    async with browser(app) as page:
        await log_in(page, "mia@example.com")
        refused = await page.get(f"/communities/{cid}/groups/{club['weights']}")
        assert refused.status_code == api.status_code == 403
        assert "You have no access to this group." in refused.text and "Heavy secret" not in refused.text
        assert f'{community_origin(club["slug"])}/o/{club["slug"]}/{weights["slug"]}' in refused.text

        # What does not exist here is 404, as in the API: another community's group, a stranger's look.
        stranger = await sign_up(client, "sam@example.com")
        theirs = (await client.post(f"{API}/communities", json={"name": "Elsewhere"}, headers=stranger.headers)).json()
        foreign = await make_group(client, stranger, theirs["id"], "Their group")
        for path in (f"/communities/{cid}/groups/{foreign}", f"/communities/{cid}/groups/999999", f"/communities/{theirs['id']}/groups/{foreign}",
                     f"/communities/{cid}/groups/0", f"/communities/{cid}/groups/{2**64}"):
            assert (await page.get(path)).status_code == 404, path

    async with browser(app) as page:  # logged out: log in, then come back
        gone = await page.get(f"/communities/{cid}/groups/{club['yoga']}")
        assert gone.status_code == 303
        assert gone.headers["location"] == f"/login?next=%2Fcommunities%2F{cid}%2Fgroups%2F{club['yoga']}"


# ---------------------------------------------------------------- the account page


async def test_a_buyer_made_at_checkout_sets_a_password_only_through_the_emailed_link(
    app: Litestar, client: httpx.AsyncClient, owner: Account, club: dict[str, Any], settings
) -> None:
    path = offer_path({"slug": club["slug"]}, club["free"])
    async with browser(app) as page:
        bought = await submit_checkout(page, path, email="newbie@example.com", name="Nia Newbie")
        completed = await page.get(bought.headers["location"])
        assert completed.status_code == 303  # logged in once, as the account this checkout made
        account = await page.get("/account")
        assert account.status_code == 200 and "Email me a link" in account.text and "New password" not in account.text
        # Typing an address at checkout proves nothing: no first password without the link.
        refused = await post_form(page, "/account", "/account/password", password="a brand new password")
        assert refused.status_code == 403 and "Open the login link sent to your email first" in refused.text

    # The purchase email's link logs in and lands on the account page, where the password is next.
    sent = [m for m in await mails(settings) if m.to == "newbie@example.com"]
    link = re.search(r"https?://\S+/login/link/\S+", sent[-1].text).group(0)
    async with browser(app) as page:
        confirm_page = await page.get(httpx.URL(link).path)
        assert confirm_page.status_code == 200  # a button, not a GET that logs in
        token = CSRF.search(confirm_page.text).group(1)
        landed = await page.post(httpx.URL(link).path, data={"_csrf_token": token})
        assert (landed.status_code, landed.headers["location"]) == (303, "/account")
        account = await page.get("/account")
        assert "Choose a password" in account.text and "Current password" not in account.text
        short = await post_form(page, "/account", "/account/password", password="short")
        assert short.status_code == 422 and "at least 10 characters" in short.text
        done = await post_form(page, "/account", "/account/password", password="a brand new password")
        assert (done.status_code, done.headers["location"]) == (303, "/account")
        after = await page.get("/account")
        assert "Your password is set" in after.text and "Current password" in after.text
    logged = await client.post(f"{API}/auth/login", json={"email": "newbie@example.com", "password": "a brand new password"})
    assert logged.status_code == 200


async def test_confirming_a_new_address_proves_it_for_a_first_password(
    app: Litestar, client: httpx.AsyncClient, club: dict[str, Any], settings
) -> None:
    """A buyer who typed a wrong address at checkout moves the account to their real one: the
    link reaching it proves it, so the same session may then choose the first password."""
    async with browser(app) as page:
        bought = await submit_checkout(page, offer_path({"slug": club["slug"]}, club["free"]), email="typo@example.con")
        assert (await page.get(bought.headers["location"])).status_code == 303
        asked = await post_form(page, "/account", "/account/email", email="real@example.com")
        assert asked.status_code == 303, asked.text
        token = re.search(r"/account/email/(\S+)", [m for m in await mails(settings) if m.to == "real@example.com"][-1].text).group(1)
        assert (await post_form(page, f"/account/email/{token}", f"/account/email/{token}")).status_code == 303
        assert "Choose a password" in (await page.get("/account")).text
        done = await post_form(page, "/account", "/account/password", password="finally my own")
        assert done.status_code == 303, done.text
    assert (await client.post(f"{API}/auth/login", json={"email": "real@example.com", "password": "finally my own"})).status_code == 200


async def test_the_account_page_changes_name_password_and_email(app: Litestar, client: httpx.AsyncClient, settings) -> None:
    await sign_up(client, "rex@example.com", name="Rex")
    await sign_up(client, "taken@example.com")
    async with browser(app) as page:
        await log_in(page, "rex@example.com")
        named = await post_form(page, "/account", "/account/name", name="  Rex Rider ")
        assert named.status_code == 303
        assert ">Rex Rider</a>" in (await page.get("/account")).text  # the header names the user

        wrong = await post_form(page, "/account", "/account/password", current_password="not it at all", password="another good password")
        assert wrong.status_code == 422 and 'id="e-current_password"' in wrong.text
        changed = await post_form(page, "/account", "/account/password", current_password=PASSWORD, password="another good password")
        assert changed.status_code == 303

        taken = await post_form(page, "/account", "/account/email", email="taken@example.com", email_current_password="another good password")
        assert taken.status_code == 409 and 'id="e-email"' in taken.text and "already exists" in taken.text
        assert 'value="taken@example.com"' in taken.text  # what was typed stays
        no_password = await post_form(page, "/account", "/account/email", email="rex2@example.com", email_current_password="")
        assert no_password.status_code == 422 and 'id="e-email_current_password"' in no_password.text
        asked = await post_form(page, "/account", "/account/email", email="rex2@example.com", email_current_password="another good password")
        assert asked.status_code == 303
        account = (await page.get("/account")).text
        assert "Waiting for confirmation" in account and "rex2@example.com" in account
        token = re.search(r"/account/email/(\S+)", [m for m in await mails(settings) if m.to == "rex2@example.com"][-1].text).group(1)
        shown = await page.get(f"/account/email/{token}")
        assert shown.status_code == 200 and "rex2@example.com" in shown.text
        assert (await client.get(f"{API}/me", headers=(await _api(client, "rex@example.com", "another good password")).headers)).json()["email"] == "rex@example.com"
        confirmed = await post_form(page, f"/account/email/{token}", f"/account/email/{token}")
        assert (confirmed.status_code, confirmed.headers["location"]) == (303, "/account")
        assert "Your email is now rex2@example.com" in (await page.get("/account")).text
        again = await post_form(page, "/account", f"/account/email/{token}")
        assert again.status_code == 404 and "invalid, used or expired" in again.text

    async with browser(app) as page:  # the link asks for the account's log-in first
        moved = await page.get(f"/account/email/{token}")
        assert moved.status_code == 303 and moved.headers["location"].startswith("/login?next=")


async def _api(client: httpx.AsyncClient, address: str, password: str) -> Account:
    body = (await client.post(f"{API}/auth/login", json={"email": address, "password": password})).json()
    return Account(id=body["user"]["id"], email=address, token=body["secret"])


async def test_account_forms_need_the_csrf_token(app: Litestar, client: httpx.AsyncClient) -> None:
    await sign_up(client, "ty@example.com", name="Ty")
    async with browser(app) as page:
        await log_in(page, "ty@example.com")
        for action, data in [("/account/name", {"name": "X"}), ("/account/password", {"current_password": PASSWORD, "password": "x" * 12}),
                             ("/account/email", {"email": "ty2@example.com", "email_current_password": PASSWORD}), ("/account/link", {})]:
            assert (await page.post(action, data=data)).status_code == 403, action
        assert "Ty</a>" in (await page.get("/account")).text
