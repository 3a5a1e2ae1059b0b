"""The campaigns console without a browser: the form refuses next to the field in the API's
words, the draft's page shows the audience and the preview, the send confirmation says how many,
the campaign's page shows each recipient's status; managers read; another community's id is 404."""

from __future__ import annotations

import html

from tests.checkout_helpers import CSRF
from tests.conftest import create_community, sign_up
from tests.test_campaigns import add_members, news_segment
from tests.test_discount_pages import form_post
from tests.test_memberships import login


async def test_write_see_the_audience_send_and_follow_each_recipient(client, owner, community, sessions, settings) -> None:
    cid = community["id"]
    await add_members(sessions, cid, 4)
    segment = await news_segment(client, community, owner)
    await login(client, owner)
    console = f"/dashboard/communities/{cid}/campaigns"
    assert "No campaigns yet" in (await client.get(console)).text
    form = {"segment": segment, "subject": "Hi {{ name }}", "format": "markdown", "body": "Hello {{ name ", "when": "now", "send_at": ""}
    r = await form_post(client, f"{console}/new", f"{console}/new", form)
    assert r.status_code == 422 and 'id="e-body"' in r.text and "is not a template that renders" in html.unescape(r.text)
    r = await form_post(client, f"{console}/new", f"{console}/new", {**form, "body": "Hello", "when": "at", "send_at": "soon"})
    assert r.status_code == 422 and 'id="e-send_at"' in r.text
    r = await form_post(client, f"{console}/new", f"{console}/new", {**form, "body": "Hello **{{ name }}**"})
    assert r.status_code == 303
    page_url = r.headers["location"]
    page = await client.get(page_url)
    text = html.unescape(page.text)
    assert "it would reach 4" in " ".join(text.split()).replace("<strong>", "").replace("</strong>", "")
    assert "Hi Olivia Owner" in text and "Hello <strong>Olivia Owner</strong>" in text

    confirm = await client.get(f"{page_url}/send")
    assert "Send to 4 members" in confirm.text
    token = CSRF.search(confirm.text).group(1)
    r = await client.post(f"{page_url}/send", data={"_csrf_token": token, "expected": "3"})
    assert r.status_code == 409 and "now reaches 4 members, not 3" in r.text
    r = await client.post(f"{page_url}/send", data={"_csrf_token": token, "expected": "4"})
    assert r.status_code == 303
    page = await client.get(page_url)
    assert "Sending to 4 members" in page.text and page.text.count("m1@example.com") == 1 and "Queued: 4" in page.text
    assert (await client.get(f"{page_url}?status=nope")).status_code == 422
    listing = await client.get(console)
    assert "Hi {{ name }}" in html.unescape(listing.text) and "Sending" in listing.text

    r = await form_post(client, f"{page_url}/cancel", f"{page_url}/cancel", {})
    assert r.status_code == 303
    assert "Cancelled: 4" in (await client.get(page_url)).text

    other_owner = await sign_up(client, "other@example.com")
    await create_community(client, other_owner, "Other Guild")
    client.cookies.clear()
    await login(client, other_owner)
    assert (await client.get(page_url)).status_code == 404
