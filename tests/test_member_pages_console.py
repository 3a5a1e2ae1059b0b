"""The members console over HTTP (issue 14): a filtered view is a link its sort, pages and CSV
carry; a bad filter is a 422 next to its field; saved segments and bulk tags with their
confirmation; a member's notes and tags forms; removing a member and deleting an account;
foreign ids answer 404; managers read and change nothing."""

from __future__ import annotations

import csv
import io
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.checkout_helpers import CSRF
from tests.conftest import Account, create_community, sign_up
from tests.test_communities import staff_account
from tests.test_console_access_pages import form_post
from tests.test_members_directory import add_person, listing, people
from tests.test_memberships import login


def console(cid: int) -> str:
    return f"/dashboard/communities/{cid}/members"


def shown_users(html: str) -> list[int]:
    return [int(u) for u in re.findall(r'<tr data-user="(\d+)"', html)]


def href(html: str, element_id: str) -> str:
    found = re.search(rf'href="([^"]*)"[^>]*id="{element_id}"|id="{element_id}"[^>]*href="([^"]*)"', html)
    assert found, element_id
    return unescape(found.group(1) or found.group(2))


async def test_a_filtered_view_is_a_link_its_sorts_pages_and_csv_carry(client: httpx.AsyncClient, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    u = w["users"]
    await login(client, owner)
    url = console(community["id"])
    everyone = await client.get(url)
    assert everyone.status_code == 200, everyone.text
    assert set(shown_users(everyone.text)) >= {u["ann"], u["bob"], u["fay"]}
    assert "50.00 USD" in everyone.text and "20.00 EUR" in everyone.text and ">5000<" not in everyone.text  # major units
    assert 'aria-current="page">Members<' in everyone.text  # the sidebar entry

    # A filter and a search: the view is a link; sort links keep the filters.
    vip = await client.get(url, params={"tag": "vip", "sort": "name"})
    assert vip.status_code == 200 and shown_users(vip.text) == [u["ann"], u["fay"]]
    assert "2 members match" in vip.text
    by_name = href(vip.text, "sort-name")
    assert parse_qs(urlsplit(by_name).query) == {"tag": ["vip"], "sort": ["name"], "order": ["desc"]}
    assert shown_users((await client.get(by_name)).text) == [u["fay"], u["ann"]]
    assert shown_users((await client.get(url, params={"q": "EXAMPLE.COM", "status": "active"})).text) == [u["ann"]]
    spent = await client.get(url, params={"spent_above": "29.99", "sort": "total_spent", "order": "desc"})
    assert shown_users(spent.text) == [u["ann"]]  # 50.00 USD; cat's 30.00 less 10.00 refunded is 20.00
    fay_joined = next(r for r in await listing(client, community, owner) if r["user_id"] == u["fay"])["joined_at"][:10]
    joined = await client.get(url, params={"joined_from": fay_joined})
    assert u["fay"] in shown_users(joined.text) and u["ann"] not in shown_users(joined.text)

    # The CSV carries the view (through the API's export).
    export = href(vip.text, "export-link")
    assert parse_qs(urlsplit(export).query) == {"tag": ["vip"], "sort": ["name"]}
    rows = list(csv.DictReader(io.StringIO((await client.get(export)).text)))
    assert [r["email"] for r in rows] == ["ann@example.com", "fay@example.com"]

    # Keyset pages: the next page's link carries the cursor and the view.
    async with sessions() as session, session.begin():
        for i in range(55):
            await add_person(session, community["id"], f"extra{i:02}@example.com", f"Extra {i:02}")
    first = await client.get(url, params={"q": "extra", "sort": "email"})
    assert len(shown_users(first.text)) == 50 and "55 members match" in first.text
    nxt = href(first.text, "next-page")
    assert parse_qs(urlsplit(nxt).query)["q"] == ["extra"] and "after" in parse_qs(urlsplit(nxt).query)
    second = await client.get(nxt)
    assert len(shown_users(second.text)) == 5 and not set(shown_users(second.text)) & set(shown_users(first.text))


async def test_bad_filter_values_are_refused_next_to_their_field(client, owner: Account, community, sessions) -> None:
    await people(sessions, community)
    await login(client, owner)
    url = console(community["id"])
    for params, field, words in [
        ({"status": "gone"}, "status", "unknown status"),
        ({"spent_above": "ten"}, "spent_above", "must be an amount in USD"),
        ({"joined_from": "yesterday"}, "joined_from", "must be a date and time in UTC"),
        ({"joined_from": "2026-05-02", "joined_to": "2026-05-01"}, "joined_to", "must be after joined_from"),
        ({"segment": "vips"}, "segment", "unknown segment"),
        ({"segment": "987654321"}, "segment", "no such segment"),
        ({"offer": "x"}, "offer", "must be a whole number"),
    ]:
        response = await client.get(url, params=params)
        assert response.status_code == 422, (params, response.status_code)
        assert f'id="e-{field}"' in response.text and words in response.text, params
        assert shown_users(response.text) == []
    for params, words in [({"sort": "age"}, "unknown sort"), ({"after": "garbage"}, "not a cursor"), ({"colour": "red"}, "unknown parameter")]:
        response = await client.get(url, params=params)
        assert response.status_code == 422 and 'class="form-error"' in response.text and words in response.text, params
    refused_export = await client.get(f"{url}/export", params={"status": "gone"})
    assert refused_export.status_code == 422 and 'id="e-status"' in refused_export.text


async def test_segments_and_bulk_tags_with_their_confirmation(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    u = w["users"]
    await login(client, owner)
    url = console(community["id"])
    page = await client.get(url)
    assert 'data-segment="customers"' in page.text and "Customers (ever paid)</a> <span class=\"count\">(4)" in page.text

    # Save a view as a segment; a taken or empty name is refused next to the name.
    view_url = f"{url}?status=active&tag=vip"
    saved = await form_post(client, view_url, f"{url}/segments", {"status": "active", "tag": "vip", "segment_name": "Active VIPs"})
    assert saved.status_code == 303, saved.text
    segment_id = parse_qs(urlsplit(saved.headers["location"]).query)["segment"][0]
    listed = await client.get(saved.headers["location"])
    assert shown_users(listed.text) == [u["ann"]] and f'data-segment="{segment_id}"' in listed.text
    again = await form_post(client, view_url, f"{url}/segments", {"status": "active", "tag": "vip", "segment_name": "active vips"})
    assert again.status_code == 409 and 'id="e-segment_name"' in again.text and "a segment with this name exists" in again.text
    blank = await form_post(client, view_url, f"{url}/segments", {"status": "active", "segment_name": " "})
    assert blank.status_code == 422 and 'id="e-segment_name"' in blank.text

    # Bulk: ticked members, after a confirmation that says how many.
    confirm = await form_post(client, url, f"{url}/bulk", {"scope": "selected", "action": "add", "bulk_tag": "Spring", "user_id": [str(u["bob"]), str(u["cat"])]})
    assert confirm.status_code == 200 and "2 members" in confirm.text
    assert "spring" not in {t.lower() for r in await listing(client, community, owner) for t in r["tags"]}  # nothing yet
    token = CSRF.search(confirm.text).group(1)
    applied = await client.post(f"{url}/bulk/apply", data={"_csrf_token": token, "scope": "selected", "action": "add", "bulk_tag": "Spring", "user_id": [str(u["bob"]), str(u["cat"])]})
    assert applied.status_code == 303
    assert "Added the tag “Spring” to 2 members." in (await client.get(applied.headers["location"])).text
    assert {r["user_id"] for r in await listing(client, community, owner, tag="Spring")} == {u["bob"], u["cat"]}

    # Bulk: a segment (the view), the confirmation counting what it matches.
    seg_view = f"{url}?segment={segment_id}"
    confirm = await form_post(client, seg_view, f"{url}/bulk", {"segment": segment_id, "scope": "filter", "action": "remove", "bulk_tag": "vip"})
    assert confirm.status_code == 200 and "1 member" in confirm.text
    token = CSRF.search(confirm.text).group(1)
    applied = await client.post(f"{url}/bulk/apply", data={"_csrf_token": token, "segment": segment_id, "scope": "filter", "action": "remove", "bulk_tag": "vip"})
    assert applied.status_code == 303 and applied.headers["location"] == seg_view
    assert {r["user_id"] for r in await listing(client, community, owner, tag="vip")} == {u["fay"]}
    nobody = await form_post(client, url, f"{url}/bulk", {"scope": "selected", "action": "add", "bulk_tag": "x"})
    assert nobody.status_code == 422 and 'id="e-scope"' in nobody.text
    no_tag = await form_post(client, url, f"{url}/bulk", {"scope": "filter", "action": "add", "bulk_tag": ""})
    assert no_tag.status_code == 422 and 'id="e-bulk_tag"' in no_tag.text

    # Delete the saved segment, after a confirmation.
    ask = await client.get(f"{url}/segments/{segment_id}/delete")
    assert ask.status_code == 200 and "Only the saved filters go" in ask.text
    gone = await form_post(client, f"{url}/segments/{segment_id}/delete", f"{url}/segments/{segment_id}/delete", {})
    assert gone.status_code == 303 and f'data-segment="{segment_id}"' not in (await client.get(url)).text


async def test_notes_and_tags_forms_on_a_members_page(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    ann = w["users"]["ann"]
    await login(client, owner)
    page_url = f"{console(community['id'])}/{ann}"
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    assert 'href="mailto:ann@example.com"' in page.text and "50.00 USD" in page.text
    assert re.search(r'data-tag="yogi"><span>yogi</span> <span class="tag"[^>]*>from an offer', page.text)
    assert f"/dashboard/communities/{community['id']}/payments/" in page.text

    empty = await form_post(client, page_url, f"{page_url}/notes", {"body": "  "})
    assert empty.status_code == 422 and 'id="e-body"' in empty.text
    added = await form_post(client, page_url, f"{page_url}/notes", {"body": "Asked about yoga mats"})
    assert added.status_code == 303
    shown = await client.get(page_url)
    note_id = re.search(r'data-note="(\d+)"', shown.text).group(1)
    assert "Asked about yoga mats" in shown.text and "Note added." in shown.text
    edit = f"{page_url}/notes/{note_id}/edit"
    assert (await form_post(client, edit, edit, {"body": "Mats sent"})).status_code == 303
    assert "Mats sent" in (await client.get(page_url)).text and "edited by" in (await client.get(page_url)).text
    delete = f"{page_url}/notes/{note_id}/delete"
    assert "Delete this note?" in (await client.get(delete)).text
    assert (await form_post(client, delete, delete, {})).status_code == 303
    assert "Mats sent" not in (await client.get(page_url)).text

    assert (await form_post(client, page_url, f"{page_url}/tags", {"tag": "Mentor"})).status_code == 303
    assert 'data-tag="Mentor"' in (await client.get(page_url)).text
    long = await form_post(client, page_url, f"{page_url}/tags", {"tag": "x" * 61})
    assert long.status_code == 422 and 'id="e-tag"' in long.text
    assert (await form_post(client, page_url, f"{page_url}/tags/remove", {"tag": "Mentor"})).status_code == 303
    assert 'data-tag="Mentor"' not in (await client.get(page_url)).text
    missing = await form_post(client, page_url, f"{page_url}/tags/remove", {"tag": "nope"})
    assert missing.status_code == 404 and "this member has no such tag" in missing.text


async def test_removing_a_member_and_deleting_an_account(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    u = w["users"]
    await login(client, owner)
    url = console(community["id"])
    remove = f"{url}/{u['ann']}/remove"
    ask = await client.get(remove)
    assert ask.status_code == 200 and "Every membership is cancelled now: Yoga" in ask.text and "history is kept" in ask.text
    done = await form_post(client, remove, remove, {})
    assert done.status_code == 303 and done.headers["location"] == url
    after = await client.get(url)
    assert "ann@example.com was removed" in after.text and u["ann"] not in shown_users(after.text)
    assert (await client.get(f"{url}/{u['ann']}")).status_code == 404

    paid = f"{url}/{u['eve']}/delete-account"
    refused = await form_post(client, paid, paid, {})
    assert refused.status_code == 409 and "this account made purchases" in refused.text
    free = f"{url}/{u['fay']}/delete-account"
    deleted = await form_post(client, free, free, {})
    assert deleted.status_code == 303 and u["fay"] not in shown_users((await client.get(url)).text)


async def test_foreign_ids_answer_404_and_managers_only_read(client, owner: Account, community, sessions) -> None:
    w = await people(sessions, community)
    ann = w["users"]["ann"]
    cid = community["id"]
    await login(client, owner)
    page_url = f"{console(cid)}/{ann}"
    assert (await form_post(client, page_url, f"{page_url}/notes", {"body": "Kept"})).status_code == 303
    note_id = re.search(r'data-note="(\d+)"', (await client.get(page_url)).text).group(1)
    saved = await form_post(client, console(cid), f"{console(cid)}/segments", {"status": "active", "segment_name": "Mine"})
    segment_id = parse_qs(urlsplit(saved.headers["location"]).query)["segment"][0]
    stranger = await sign_up(client, "stranger@example.com")
    assert (await client.get(f"{console(cid)}/{stranger.id}")).status_code == 404  # no member here
    assert (await client.get(f"{console(cid)}/{w['users']['bob']}/notes/{note_id}/edit")).status_code == 404  # another member's note
    manager = await staff_account(client, community, owner, "manager@example.com", "manager")
    await client.post("/logout", data={"_csrf_token": CSRF.search((await client.get(console(cid))).text).group(1)})

    other_owner = await sign_up(client, "other@example.com")
    other = await create_community(client, other_owner, "Elsewhere")
    await login(client, other_owner)
    mine = console(other["id"])
    assert (await client.get(mine)).status_code == 200
    for path in (
        f"/{ann}", f"/{ann}/notes/{note_id}/edit", f"/{ann}/notes/{note_id}/delete", f"/{ann}/remove",
        f"/{ann}/delete-account", f"/segments/{segment_id}/delete",
    ):
        assert (await client.get(mine + path)).status_code == 404, path  # A's ids in B
        assert (await client.get(console(cid) + path)).status_code == 404, path  # A itself
    assert (await client.get(mine, params={"segment": segment_id})).status_code == 422
    await client.post("/logout", data={"_csrf_token": CSRF.search((await client.get(mine)).text).group(1)})

    await login(client, manager)
    listed = await client.get(console(cid))
    assert listed.status_code == 200 and ann in shown_users(listed.text)
    assert 'id="bulk"' not in listed.text and 'id="save-segment"' not in listed.text and "/delete" not in listed.text
    page = await client.get(page_url)
    assert page.status_code == 200 and 'id="read-only"' in page.text and 'id="add-note"' not in page.text and "Kept" in page.text
    token = CSRF.search(page.text).group(1)
    for action, data in [
        (f"{page_url}/notes", {"body": "x"}), (f"{page_url}/notes/{note_id}/edit", {"body": "x"}),
        (f"{page_url}/notes/{note_id}/delete", {}), (f"{page_url}/tags", {"tag": "x"}), (f"{page_url}/tags/remove", {"tag": "vip"}),
        (f"{page_url}/remove", {}), (f"{page_url}/delete-account", {}), (f"{console(cid)}/segments", {"segment_name": "x"}),
        (f"{console(cid)}/segments/{segment_id}/delete", {}), (f"{console(cid)}/bulk", {"scope": "filter"}),
        (f"{console(cid)}/bulk/apply", {"scope": "filter", "action": "add", "bulk_tag": "x"}),
    ]:
        assert (await client.post(action, data={"_csrf_token": token, **data})).status_code == 403, action
    for path in (f"/{ann}/remove", f"/{ann}/notes/{note_id}/edit", f"/segments/{segment_id}/delete"):
        assert (await client.get(console(cid) + path)).status_code == 403, path
    assert "Kept" in (await client.get(page_url)).text and ann in shown_users((await client.get(console(cid))).text)
