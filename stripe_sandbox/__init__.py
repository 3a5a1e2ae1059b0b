"""A local Stripe sandbox: a small stateful HTTP server speaking the part of Stripe's API we call.

The real `stripe` SDK reaches it through its base-address setting::

    with StripeSandbox() as sandbox:
        client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.url, "connect": sandbox.url},
                                     http_client=stripe.HTTPXClient())
        session = await client.v1.checkout.sessions.create_async(params={...}, options={"stripe_account": acct})
        sandbox.pay(session.id)                       # the buyer pays on the hosted page
        sandbox.advance_clock(31 * 86400)             # the subscription renews

It serves accounts and account links, checkout sessions with a hosted page, customers, coupons,
payment intents, charges, refunds, disputes, subscriptions, invoices, invoice payments, billing
portal sessions and events, in the shapes of the SDK's API version (2026-10-28), with `expand[]`
as Stripe's (expand.py); signs webhook deliveries like Stripe and retries them; and has a test
clock. It refuses live keys. Nothing here ever talks to the real Stripe.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any, Self

import uvicorn

from stripe_sandbox.app import SandboxApp
from stripe_sandbox.delivery import Deliverer, Delivery, sign
from stripe_sandbox.errors import SandboxError
from stripe_sandbox.state import OUTCOMES, SandboxState

__all__ = ["OUTCOMES", "Delivery", "SandboxError", "StripeSandbox", "sign"]


class StripeSandbox:
    def __init__(
        self,
        api_key: str = "sk_test_sandbox",
        host: str = "127.0.0.1",
        port: int = 0,
        retry_delays: Iterable[float] = (1, 5, 25, 125),
    ) -> None:
        if not api_key.startswith("sk_test_"):
            raise ValueError("the Stripe sandbox takes only test secret keys (sk_test_...); it refuses live keys")
        self.api_key = api_key
        self.host = host
        self.port = port
        self.state = SandboxState(self.url)
        self.deliverer = Deliverer(retry_delays)
        self.state.on_event = self.deliverer.on_event
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # ---- running -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StripeSandbox:
        """Serves in a background thread with its own event loop; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections (with proto 0 it
        # does not, and every keep-alive response waits 40 ms for a delayed ACK)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self.state.base_url = self.url
        config = uvicorn.Config(
            SandboxApp(self.state, self.deliverer, self.api_key),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = server = uvicorn.Server(config)

        async def serve() -> None:
            await self.deliverer.start()
            try:
                await server.serve(sockets=[sock])
            finally:
                await self.deliverer.close()

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._failure = exc

        self._thread = threading.Thread(target=run, name=f"stripe-sandbox:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"the Stripe sandbox did not start: {self._failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the Stripe sandbox did not start within 10 s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- webhooks ----------------------------------------------------------------------------

    def add_webhook_endpoint(
        self, url: str | None, secret: str, *, connect: bool, events: Iterable[str] | None = None
    ) -> str:
        """An endpoint for platform events (connect=False) or connected accounts' events (connect=True,
        payload carries "account"). url=None: a manual endpoint whose deliveries wait for
        `take_deliveries`. `events` optionally limits the types (patterns like "invoice.*")."""
        with self.state.lock:
            return self.deliverer.add_endpoint(url, secret, connect=connect, events=events)

    def remove_webhook_endpoint(self, endpoint_id: str) -> None:
        with self.state.lock:
            self.deliverer.remove_endpoint(endpoint_id)

    def take_deliveries(self, endpoint_id: str) -> list[Delivery]:
        """A manual endpoint's deliveries so far (oldest first), each signed now; empties its queue."""
        with self.state.lock:
            return self.deliverer.take(endpoint_id)

    def wait_deliveries(self, timeout: float = 10.0) -> bool:
        """Waits until every delivery to a URL endpoint succeeded or ran out of retries."""
        return self.deliverer.wait_idle(timeout)

    def delivery_attempts(self, endpoint_id: str) -> list[dict[str, Any]]:
        """Each HTTP attempt to a URL endpoint: event_id, type, attempt (1-based), status, error, ok, at."""
        with self.state.lock:
            return list(self.deliverer.endpoints[endpoint_id].attempts)

    # ---- the buyer's and owner's side, and the clock --------------------------------------------

    def pay(
        self, session_id: str, outcome: str = "success", *, name: str | None = None, email: str | None = None
    ) -> dict[str, Any]:
        """As if the buyer clicked on the hosted page: "success", "decline", "trial_without_card" or
        "async_pending". Returns the session."""
        return self.state.pay(session_id, outcome, name=name, email=email)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """What reaching `expires_at` does to an open checkout session (`checkout.session.expired`), now.
        Checkout sessions keep to the wall clock, as in Stripe: `advance_clock` does not expire them."""
        return self.state.expire_session(session_id)

    def settle_async(self, session_id: str, succeeded: bool) -> dict[str, Any]:
        return self.state.settle_async(session_id, succeeded)

    def complete_onboarding(self, account_id: str, charges_enabled: bool = True) -> dict[str, Any]:
        return self.state.complete_onboarding(account_id, charges_enabled)

    def advance_clock(self, seconds: int) -> int:
        """Moves sandbox time forward and runs what falls due; returns the new sandbox time."""
        return self.state.advance_clock(seconds)

    def set_card_declines(self, customer_id: str, declines: bool) -> dict[str, Any]:
        return self.state.set_card_declines(customer_id, declines)

    # ---- refunds, disputes, idempotency and outages --------------------------------------------

    def hold_refunds(self, charge_id: str, held: bool = True) -> dict[str, Any]:
        """The charge's new refunds stay `pending` until `settle_refund` (or succeed at once again)."""
        return self.state.hold_refunds(charge_id, held)

    def settle_refund(self, refund_id: str, status: str, failure_reason: str | None = None) -> dict[str, Any]:
        """A pending refund becomes `succeeded`, `failed` or `canceled`; a succeeded one `failed`."""
        return self.state.settle_refund(refund_id, status, failure_reason)

    def dispute(
        self, charge_id: str, *, amount: int | None = None, reason: str = "fraudulent", inquiry: bool = False
    ) -> dict[str, Any]:
        """The cardholder disputes the charge: a chargeback (money withdrawn now) or an inquiry."""
        return self.state.dispute(charge_id, amount=amount, reason=reason, inquiry=inquiry)

    def escalate_dispute(self, dispute_id: str) -> dict[str, Any]:
        return self.state.escalate_dispute(dispute_id)

    def respond_to_dispute(self, dispute_id: str) -> dict[str, Any]:
        return self.state.respond_to_dispute(dispute_id)

    def close_dispute(self, dispute_id: str, won: bool | None = None) -> dict[str, Any]:
        """The decision on a chargeback or appeal (won or lost); an inquiry closes without one."""
        return self.state.close_dispute(dispute_id, won)

    def appeal_dispute(self, dispute_id: str) -> dict[str, Any]:
        return self.state.appeal_dispute(dispute_id)

    def prevent_dispute(
        self, charge_id: str, *, amount: int | None = None, reason: str = "fraudulent", resolution: bool = False
    ) -> dict[str, Any]:
        return self.state.prevent_dispute(charge_id, amount=amount, reason=reason, resolution=resolution)

    def age_idempotency_keys(self, seconds: int) -> int:
        """Saved idempotency keys become `seconds` older (Stripe forgets them at 24 hours)."""
        return self.state.age_idempotency_keys(seconds)

    def fail_next(self, method: str, path: str, status: int = 500) -> None:
        """The next `method path` API request answers Stripe's api_error with `status`, changing nothing."""
        self.state.fail_next(method, path, status)

    def now(self) -> int:
        return self.state.now()

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        return self.state.events(type)

    def get(self, object_id: str) -> dict[str, Any]:
        """Any object by id, whichever account owns it."""
        return self.state.get(object_id)
