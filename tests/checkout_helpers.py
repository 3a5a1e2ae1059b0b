"""Helpers for checkout tests: a connected community, offers for sale, the buyer's form posts,
and Stripe's webhook deliveries (taken from the sandbox, posted to our endpoints)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from community.settings import Settings
from stripe_sandbox import StripeSandbox
from tests.conftest import Account, StripeFixture
from tests.helpers import run_jobs
from tests.test_access import make_group  # noqa: F401 - re-exported for the checkout tests

API = "/api/v1"
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def connect_stripe(client: httpx.AsyncClient, owner: Account, community_id: int, sandbox: StripeSandbox) -> str:
    """Onboard the community's Stripe account; returns its id."""
    started = await client.post(f"{API}/communities/{community_id}/stripe/onboarding", headers=owner.headers)
    assert started.status_code == 201, started.text
    account_id = (await client.get(f"{API}/communities/{community_id}/stripe", headers=owner.headers)).json()["account_id"]
    sandbox.complete_onboarding(account_id)
    status = (await client.get(f"{API}/communities/{community_id}/stripe", headers=owner.headers)).json()
    assert status["charges_enabled"] is True, status
    return account_id


async def offer_for_sale(
    client: httpx.AsyncClient, owner: Account, community_id: int, *, groups: list[int], **fields: Any
) -> dict[str, Any]:
    """A published offer granting `groups`."""
    body = {"title": "Pro Membership", "pricing": "one_time", "amount": 4900, "currency": "USD", **fields}
    created = await client.post(f"{API}/communities/{community_id}/offers", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    offer = created.json()
    linked = await client.put(
        f"{API}/communities/{community_id}/offers/{offer['id']}/groups", json={"add": groups}, headers=owner.headers
    )
    assert linked.status_code == 200, linked.text
    published = await client.post(f"{API}/communities/{community_id}/offers/{offer['id']}/publish", headers=owner.headers)
    assert published.status_code == 200, published.text
    return published.json()


# The suite's settings (base_url http://testserver) leave COMMUNITY_PAGES_URL to its default,
# http://{community}.localhost: each community's offer pages answer on that origin only.
PAGES = "http://{slug}.localhost"


def community_origin(community_slug: str) -> str:
    return PAGES.format(slug=community_slug)


def offer_path(community: dict[str, Any], offer: dict[str, Any]) -> str:
    """The offer's landing page, on its community's origin."""
    return f"{community_origin(community['slug'])}/o/{community['slug']}/{offer['slug']}"


def on_its_origin(path: str) -> str:
    """/o/{community}/... as an absolute URL on that community's origin (other URLs as they are)."""
    if path.startswith("/o/"):
        return community_origin(path.split("/")[2]) + path
    return path


async def submit_checkout(client: httpx.AsyncClient, path: str, **form: str) -> httpx.Response:
    """The buyer fills in the checkout page and presses the button (CSRF token included)."""
    path = on_its_origin(path)
    page = await client.get(f"{path}/checkout")
    assert page.status_code == 200, page.text
    token = CSRF.search(page.text)
    assert token, "the checkout form carries a CSRF token"
    return await client.post(f"{path}/checkout", data={"_csrf_token": token.group(1), **form})


async def deliver(client: httpx.AsyncClient, stripe_env: StripeFixture) -> list[httpx.Response]:
    """Post every pending webhook to our matching route, as Stripe would."""
    responses = []
    for endpoint, route in ((stripe_env.connect_endpoint, f"{API}/webhooks/stripe/connect"), (stripe_env.platform_endpoint, f"{API}/webhooks/stripe")):
        for delivery in stripe_env.sandbox.take_deliveries(endpoint):
            responses.append(await client.post(route, content=delivery.payload, headers=delivery.headers))
    return responses


async def deliver_and_process(client: httpx.AsyncClient, stripe_env: StripeFixture, settings: Settings) -> None:
    for response in await deliver(client, stripe_env):
        assert response.status_code == 200, response.text
    await run_jobs(settings)
