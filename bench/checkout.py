"""Checkout speed against a bare Litestar endpoint measured in the same run.

    python bench/checkout.py [--requests 1000] [--concurrency 16]

Uses COMMUNITY_DATABASE_URL / COMMUNITY_REDIS_URL when set, else embedded services in a
temporary directory; works in a fresh database bench_<random>, dropped at the end. Stripe is the
local sandbox (over HTTP, as in production). Progress on stderr; on stdout `key=value` lines:
- bare_rps: a bare Litestar JSON endpoint (framework cost only),
- landing_rps / landing_ratio: an offer's landing page (markdown, custom code),
- checkout_form_rps / checkout_form_ratio: the checkout page (GET),
- checkout_rps / checkout_ratio: the checkout POST of a paid offer: our record, a discount
  reservation when a code is given, and a Stripe Checkout Session created through the sandbox,
- webhook_rps / webhook_ratio: signed webhooks accepted (signature check, stored once, queued).
Ratios are requests/s over bare_rps (higher is better). All in one process over ASGI, no sockets
(except the Stripe sandbox, which runs in its own thread as a real HTTP server).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import re
import time

import httpx
import stripe
from harness import log, out, scratch_settings, timed
from litestar import Litestar, get

from community.app import create_app
from community.migrate import upgrade
from community.settings import Settings
from stripe_sandbox import StripeSandbox

logging.getLogger("httpx").setLevel(logging.WARNING)
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
WEBHOOK_SECRET = "whsec_bench_connect"


async def main(requests: int, concurrency: int) -> None:
    async with scratch_settings() as scratch:
        with StripeSandbox(api_key="sk_test_bench") as sandbox:
            settings = dataclasses.replace(
                scratch, stripe_secret_key="sk_test_bench", stripe_api_base=sandbox.url, stripe_connect_webhook_secret=WEBHOOK_SECRET
            )
            await bench(settings, sandbox, requests, concurrency)


async def bench(settings: Settings, sandbox: StripeSandbox, requests: int, concurrency: int) -> None:
    await upgrade(settings.database_url)
    app = create_app(settings)

    @get("/bare", sync_to_thread=False)
    def bare() -> dict:
        return {"ok": True}

    bare_app = Litestar([bare])
    async with app.lifespan(), bare_app.lifespan():
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
        bare_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=bare_app), base_url="http://bench")
        owner = (await api.post("/api/v1/auth/signup", json={"email": f"owner{time.time_ns()}@bench.example", "password": "bench password"})).json()
        headers = {"Authorization": f"Bearer {owner['secret']}"}
        community = (await api.post("/api/v1/communities", json={"name": f"Bench shop {time.time_ns()}"}, headers=headers)).json()
        base = f"/api/v1/communities/{community['id']}"
        onboarding = await api.post(f"{base}/stripe/onboarding", headers=headers)
        assert onboarding.status_code == 201, onboarding.text
        account_id = (await api.get(f"{base}/stripe", headers=headers)).json()["account_id"]
        sandbox.complete_onboarding(account_id)
        await api.get(f"{base}/stripe", headers=headers)
        hub = (await api.post(f"{base}/hubs", json={"name": "Hub"}, headers=headers)).json()
        group = (await api.post(f"{base}/hubs/{hub['id']}/groups", json={"name": "Group"}, headers=headers)).json()
        offer = (await api.post(f"{base}/offers", json={
            "title": "Bench offer", "pricing": "one_time", "amount": 4900, "currency": "USD",
            "landing_page": {"headline": "Bench", "body": "## A landing page\n\n" + "Some **markdown** text. " * 40},
            "checkout_code_head": "<script>window.pixel = 1;</script>",
        }, headers=headers)).json()
        await api.put(f"{base}/offers/{offer['id']}/groups", json={"add": [group["id"]]}, headers=headers)
        await api.post(f"{base}/offers/{offer['id']}/publish", headers=headers)
        path = f"{settings.pages_origin(community['slug'])}/o/{community['slug']}/{offer['slug']}"  # on its community's origin

        buyer = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
        token = CSRF.search((await buyer.get(f"{path}/checkout")).text).group(1)

        async def bare_call(n: int) -> None:
            assert (await bare_client.get("/bare")).status_code == 200

        async def landing_call(n: int) -> None:
            assert (await api.get(path)).status_code == 200

        async def form_call(n: int) -> None:
            assert (await api.get(f"{path}/checkout")).status_code == 200

        async def checkout_call(n: int) -> None:
            response = await buyer.post(f"{path}/checkout", data={"_csrf_token": token, "email": f"b{n}-{time.time_ns()}@bench.example"})
            assert response.status_code == 303, response.text[:300]

        async def webhook_call(n: int) -> None:
            payload = json.dumps({"id": f"evt_bench_{n}_{time.time_ns()}", "type": "checkout.session.completed", "account": account_id, "data": {"object": {"id": f"cs_unknown_{n}"}}})
            stamp = int(time.time())
            signature = stripe.WebhookSignature._compute_signature(f"{stamp}.{payload}", WEBHOOK_SECRET)
            response = await api.post("/api/v1/webhooks/stripe/connect", content=payload, headers={"Stripe-Signature": f"t={stamp},v1={signature}"})
            assert response.status_code == 200, response.text

        for call in (bare_call, landing_call, form_call, checkout_call, webhook_call):
            for n in range(20):
                await call(n)
        log(f"requests={requests} concurrency={concurrency} (one process, in-process ASGI; Stripe sandbox over HTTP)")
        bare_rps = await timed(requests, concurrency, bare_call)
        out("bare_rps", f"{bare_rps:.0f}")
        for name, call, total in (
            ("landing", landing_call, requests),
            ("checkout_form", form_call, requests),
            ("checkout", checkout_call, max(requests // 4, 50)),
            ("webhook", webhook_call, requests),
        ):
            rps = await timed(total, concurrency, call)
            out(f"{name}_rps", f"{rps:.0f}")
            out(f"{name}_ratio", f"{rps / bare_rps:.3f}")
        for client in (api, bare_client, buyer):
            await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency))
