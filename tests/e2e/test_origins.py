"""Owner code in a real browser, with the default settings (every community on its own
`http://{slug}.localhost:{port}` origin, the platform on 127.0.0.1).

Community B's owner writes code, as an attacker would, that runs on B's landing, checkout and
thanks pages while a member of community A, logged in on the platform, walks through them: it
tries to read the platform's dashboard, A's billing page and A's offer pages, to find a CSRF
token in any of them, and to post the platform's log-out and cancel forms. It writes what it
achieved into its page (and its own origin's localStorage) for the test to read. Then the
buyer's journey still works on a community's origin: a resell link, landing, checkout, the
sandbox's payment page, completion on the platform, thanks with a conversion pixel, the
community."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from community.billing.models import Checkout
from tests.checkout_helpers import (
    connect_stripe,
    deliver_and_process,
    make_group,
    offer_for_sale,
    submit_checkout,
)
from tests.conftest import Account, StripeFixture, create_community, sign_up
from tests.e2e.conftest import LiveServer
from tests.test_access import comp

PASSWORD = "correct horse battery"
MEMBER = "member-of-a@example.com"

# B's owner's code. {names} are filled in with what an attacker would know or guess.
ATTACK = """<script>
(async () => {
  const P = "%(platform)s", A = "%(a_origin)s";
  const kind = location.pathname.endsWith("/thanks") ? "thanks" : location.pathname.endsWith("/checkout") ? "checkout" : "landing";
  const out = {kind, origin: location.origin, reads: {}, tokens: [], posts: {}, own_token: false, frame: null};
  const token = (text) => { const m = /name="_csrf_token" value="([^"]+)"/.exec(text || ""); return m ? m[1] : null; };
  const targets = {
    dashboard: P + "/dashboard",
    billing: P + "/communities/%(a_id)s/billing",
    a_landing: A + "%(a_offer)s",
    a_checkout: A + "%(a_offer)s/checkout",
  };
  for (const [name, url] of Object.entries(targets)) {
    for (const mode of ["cors", "no-cors"]) {
      try {
        const r = await fetch(url, {credentials: "include", mode});
        const text = await r.text();
        out.reads[name + ":" + mode] = {type: r.type, status: r.status, length: text.length, member: text.includes("%(member)s")};
        if (token(text)) out.tokens.push(name + ":" + mode);
      } catch (e) { out.reads[name + ":" + mode] = {error: String(e)}; }
    }
  }
  // The dashboard in a frame: its document (and any token in it) is out of this page's reach.
  out.frame = await new Promise((done) => {
    const f = document.createElement("iframe");
    f.src = targets.dashboard; f.style.display = "none";
    f.onload = () => { try { done({read: f.contentDocument.documentElement.outerHTML.length}); } catch (e) { done({error: String(e)}); } };
    setTimeout(() => done({error: "no load"}), 1500);
    document.body.appendChild(f);
  });
  // The control: this origin's own checkout page is readable, token and all.
  try { out.own_token = !!token(await (await fetch("%(b_offer)s/checkout")).text()); } catch (e) { out.own_token = String(e); }
  localStorage.setItem("attack:" + kind, JSON.stringify(out));  // (the thanks page forwards after 2 s)
  const guess = token(await (await fetch("%(b_offer)s/checkout")).text()) || "";
  const forms = {logout: P + "/logout", cancel: P + "/communities/%(a_id)s/billing/%(entitlement)s/cancel"};
  for (const [name, url] of Object.entries(forms)) {
    try {
      const r = await fetch(url, {method: "POST", credentials: "include", mode: "no-cors", body: new URLSearchParams({_csrf_token: guess})});
      out.posts[name + ":fetch"] = r.type;
    } catch (e) { out.posts[name + ":fetch"] = String(e); }
    // A real form, posted into a hidden frame (the page itself stays).
    out.posts[name + ":form"] = await new Promise((done) => {
      const sink = document.createElement("iframe");
      sink.name = "sink-" + name; sink.style.display = "none";
      sink.onload = () => done("sent");
      setTimeout(() => done("timeout"), 1500);
      document.body.appendChild(sink);
      const form = document.createElement("form");
      form.method = "POST"; form.action = url; form.target = sink.name;
      const field = document.createElement("input");
      field.type = "hidden"; field.name = "_csrf_token"; field.value = guess;
      form.appendChild(field); document.body.appendChild(form); form.submit();
    });
  }
  localStorage.setItem("attack:" + kind, JSON.stringify(out));
  const pre = document.createElement("pre");
  pre.id = "attack"; pre.textContent = JSON.stringify(out); pre.dataset.done = "1";
  document.body.appendChild(pre);
  if (location.hash === "#leave") {  // last: the whole page posts the log-out form, as a top-level navigation
    const form = document.createElement("form");
    form.method = "POST"; form.action = forms.logout;
    const field = document.createElement("input");
    field.type = "hidden"; field.name = "_csrf_token"; field.value = guess;
    form.appendChild(field); document.body.appendChild(form); form.submit();
  }
})();
</script>"""

# A conversion pixel: on the thanks step it sees the purchase and keeps it in its own origin's
# first-party cookie and storage.
PIXEL = """<script>
if (window.communityPurchase) {
  const p = window.communityPurchase;
  document.cookie = "pixel=" + encodeURIComponent(p.offer + "|" + p.amount + "|" + p.currency) + "; path=/; max-age=3600";
  localStorage.setItem("pixel", JSON.stringify(p));
  document.documentElement.dataset.pixel = p.amount_decimal + " " + p.currency;
}
</script>"""


def screenshots_dir(tmp_path: Path) -> Path:
    """Where the page screenshots go (COMMUNITY_SCREENSHOTS, or the test's own directory)."""
    folder = Path(os.environ.get("COMMUNITY_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def log_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"/dashboard$"))


async def stored(context: BrowserContext, origin: str) -> dict[str, str]:
    """The localStorage the pages of `origin` wrote (read from the browser, not from the page)."""
    state = await context.storage_state()
    return {item["name"]: item["value"] for o in state["origins"] if o["origin"] == origin for item in o["localStorage"]}


async def membership(http: httpx.AsyncClient, account: Account, community_id: int) -> dict[str, Any]:
    response = await http.get(f"/api/v1/communities/{community_id}/me/memberships", headers=account.headers)
    assert response.status_code == 200, response.text
    [held] = response.json()
    return held


async def test_another_communitys_code_reads_no_member_page_and_posts_no_platform_form(
    page: Page, context: BrowserContext, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture
) -> None:
    settings = live_server.settings
    # Community A: a monthly membership the member pays for (so there is something to cancel).
    owner_a = await sign_up(http, "owner-a@example.com")
    a = await create_community(http, owner_a, "Alpha Makers")
    await connect_stripe(http, owner_a, a["id"], stripe_env.sandbox)
    a_offer = await offer_for_sale(
        http, owner_a, a["id"], groups=[await make_group(http, owner_a, a["id"], "Alpha room")],
        title="Alpha monthly", pricing="recurring", amount=1500, interval_months=1,
    )
    a_origin, a_path = settings.pages_origin(a["slug"]), f"/o/{a['slug']}/{a_offer['slug']}"
    member = await sign_up(http, MEMBER, password=PASSWORD)
    bought = await submit_checkout(http, f"{a_origin}{a_path}", email=MEMBER)
    assert bought.status_code == 303, bought.text
    stripe_env.sandbox.pay(bought.headers["location"].rstrip("/").split("/")[-1], outcome="success")
    await deliver_and_process(http, stripe_env, settings)
    held = await membership(http, member, a["id"])
    assert held["live"] and held["can_cancel"], held

    # Community B: a free offer whose owner's code attacks, on all three pages.
    owner_b = await sign_up(http, "owner-b@example.com")
    b = await create_community(http, owner_b, "Beta Crafts")
    b_origin = settings.pages_origin(b["slug"])
    b_path = f"/o/{b['slug']}/bait"
    attack = ATTACK % {
        "platform": live_server.url, "a_origin": a_origin, "a_id": a["id"], "a_offer": a_path,
        "b_offer": b_path, "entitlement": held["entitlement_id"], "member": MEMBER,
    }
    await offer_for_sale(
        http, owner_b, b["id"], groups=[await make_group(http, owner_b, b["id"], "Beta room")], slug="bait",
        title="Free pattern", pricing="free", amount=None, currency=None,
        landing_page={"headline": "A free pattern", "body": "Take it.", "call_to_action": "Get it"},
        checkout_code_body=attack,
    )

    # The member is logged in on the platform, then opens B's landing page.
    await log_in(page, MEMBER)
    await page.goto(f"{b_origin}{b_path}")
    assert page.url.startswith(b_origin)
    await page.wait_for_selector("#attack[data-done]", state="attached", timeout=20_000)
    await page.get_by_role("link", name="Get it").click()
    await page.wait_for_url(f"{b_origin}{b_path}/checkout")
    await page.wait_for_selector("#attack[data-done]", state="attached", timeout=20_000)
    await page.get_by_label("Email").fill(MEMBER)
    await page.locator("#pay").click()
    # Completion on the platform (the member's own session), then thanks on B's origin.
    await page.wait_for_url(re.compile(rf"^{re.escape(b_origin)}/checkout/[^/]+/thanks$"), timeout=15_000)
    await page.wait_for_url(f"{live_server.url}/communities/{b['id']}", timeout=15_000)  # thanks forwards by itself

    results = {kind: json.loads(value) for kind, value in (await stored(context, b_origin)).items() if kind.startswith("attack:")}
    assert set(results) == {"attack:landing", "attack:checkout", "attack:thanks"}, results.keys()
    for kind, got in results.items():
        assert got["origin"] == b_origin, kind
        assert got["own_token"] is True, (kind, got)  # the script works: it reads its own origin's page
        assert got["tokens"] == [], (kind, got)  # and no CSRF token anywhere else
        for target, read in got["reads"].items():
            # Either the fetch failed outright, or the answer was opaque: nothing to read.
            assert "error" in read or (read["type"] == "opaque" and read["length"] == 0), (kind, target, read)
            assert not read.get("member"), (kind, target, read)
        assert "error" in got["frame"], (kind, got["frame"])  # the dashboard's document stayed out of reach

    # The member is still logged in, and the membership in A is not cancelled.
    await page.goto("/dashboard")
    assert page.url == f"{live_server.url}/dashboard"
    await expect(page.get_by_role("heading", name=f"Hello {MEMBER.split('@')[0]}")).to_be_visible()
    held_after = await membership(http, member, a["id"])
    assert held_after["live"] and held_after["can_cancel"] and held_after["status"] == "active", held_after

    # Last, the page itself posts the log-out form (a top-level navigation): refused too.
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url == f"{live_server.url}/logout", timeout=20_000
    ) as posted:
        await page.goto(f"{b_origin}{b_path}#leave")
    assert (await posted.value).status == 403
    await page.wait_for_url(f"{live_server.url}/logout")  # the refusal page, loaded before we move on
    await page.goto("/dashboard")
    assert page.url == f"{live_server.url}/dashboard"  # still logged in


async def test_a_resell_link_then_the_buyers_journey_on_the_communitys_origin(
    page: Page, context: BrowserContext, http: httpx.AsyncClient, live_server: LiveServer, stripe_env: StripeFixture,
    sessions, tmp_path: Path,
) -> None:
    settings = live_server.settings
    owner = await sign_up(http, "owner-c@example.com")
    community = await create_community(http, owner, "Woodland Guild")
    await connect_stripe(http, owner, community["id"], stripe_env.sandbox)
    group = await make_group(http, owner, community["id"], "Carving circle")
    offer = await offer_for_sale(
        http, owner, community["id"], groups=[group], title="Carving course", amount=3900,
        landing_page={"headline": "Learn to carve", "body": "Eight **hands-on** evenings.", "call_to_action": "Join the course"},
        checkout_code_head=PIXEL, resell_enabled=True, resell_commission_bps=2000,
    )
    discount = await http.post(
        f"/api/v1/communities/{community['id']}/discount-codes", json={"code": "FRIEND", "kind": "percent", "percent_bps": 1000},
        headers=owner.headers,
    )
    assert discount.status_code == 201, discount.text
    affiliate = await sign_up(http, "reseller@example.com")
    await comp(http, owner, community["id"], offer["id"], affiliate.email)
    link = (await http.post("/api/v1/me/affiliates", json={"offer_id": offer["id"]}, headers=affiliate.headers)).json()
    origin = settings.pages_origin(community["slug"])
    assert link["link"] == f"{origin}/r/{link['code']}"
    shots = screenshots_dir(tmp_path)

    await page.goto(link["link"])  # the resell link, on the community's origin
    await page.wait_for_url(f"{origin}/o/{community['slug']}/{offer['slug']}")
    await expect(page.get_by_role("heading", name="Learn to carve")).to_be_visible()
    await page.screenshot(path=str(shots / "landing-on-community-origin.png"), full_page=True)
    cookies = {c["name"]: c for c in await context.cookies(origin)}
    assert f"ref_{offer['id']}" in cookies and cookies[f"ref_{offer['id']}"]["domain"] == httpx.URL(origin).host

    await page.get_by_role("link", name="Join the course").click()
    await page.wait_for_url(f"{origin}/o/{community['slug']}/{offer['slug']}/checkout")
    await page.get_by_label("Email").fill("carver@example.com")
    await page.get_by_label("Name").fill("Cara Carver")
    await page.get_by_label("Discount code").fill("FRIEND")
    await expect(page.locator("#quote")).to_contain_text("35.10 USD")  # the preview, asked on this origin
    await page.locator("#pay").click()
    await page.wait_for_url(re.compile(re.escape(stripe_env.sandbox.url)))
    await page.locator("#pay-success").click()

    # Completion on the platform, then the thanks step on the community's origin: the pixel sees the purchase.
    await page.wait_for_url(re.compile(rf"^{re.escape(origin)}/checkout/[^/]+/thanks$"), timeout=15_000)
    await expect(page.locator("html")).to_have_attribute("data-pixel", "35.10 USD")
    await page.screenshot(path=str(shots / "thanks-on-community-origin.png"), full_page=True)
    await page.wait_for_url(f"{live_server.url}/communities/{community['id']}", timeout=15_000)
    await expect(page.locator("li.group")).to_have_text(re.compile("Carving circle"))

    pixel = json.loads((await stored(context, origin))["pixel"])
    assert (pixel["offer"], pixel["amount"], pixel["currency"]) == ("Carving course", 3510, "USD")
    first_party = {c["name"]: c for c in await context.cookies(origin)}
    assert first_party["pixel"]["value"] == "Carving%20course%7C3510%7CUSD"
    platform_cookies = {c["name"] for c in await context.cookies(live_server.url)}
    assert "community_session" in platform_cookies or "community_session-0" in platform_cookies  # logged in there...
    assert not any(n.startswith("community_session") for n in first_party)  # ...and never on the community's origin

    async with sessions() as session:
        checkout = (await session.scalars(select(Checkout).where(Checkout.email == "carver@example.com"))).one()
    assert checkout.affiliate_id == link["id"]  # the resell link attributed the sale
