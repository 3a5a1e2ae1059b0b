"""The sandbox's HTTP side: Stripe's API under /v1, the hosted pages, and /_sandbox controls.

API requests are checked the way Stripe checks them: a test secret key (`Authorization:
Bearer sk_test_...`), the `Stripe-Account` header naming a connected account (objects are that
account's; another's answer 404), and `Idempotency-Key` (for 24 hours, the same key and
parameters get the first answer again, errors and 500s included; other parameters: 400
idempotency_error; see store.py). Bodies use Stripe's bracket notation.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from stripe_sandbox import pages
from stripe_sandbox.asgi import (
    Request,
    Response,
    Router,
    json_response,
    read_request,
    send_response,
)
from stripe_sandbox.delivery import Deliverer
from stripe_sandbox.errors import ParameterError, SandboxError
from stripe_sandbox.forms import Params, parse_form
from stripe_sandbox.state import API_VERSION, SandboxState, new_id

log = logging.getLogger(__name__)
MAX_IDEMPOTENCY_KEY = 255


def _retrieve(method: str) -> Any:
    def call(s: SandboxState, account: str | None, p: Params, object_id: str) -> Any:
        p.only()
        return getattr(s, method)(account, object_id)

    return call


def _with_params(method: str) -> Any:
    return lambda s, account, p, *ids: getattr(s, method)(account, p, *ids)


ID = "([^/]+)"
# (method, path, handler, what it answers: an object kind, or "list:<kind>"; see expand.py)
API_ROUTES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/accounts", _with_params("create_account"), "account"),
    ("GET", "/v1/accounts", _with_params("list_accounts"), "list:account"),
    ("GET", f"/v1/accounts/{ID}", _retrieve("retrieve_account"), "account"),
    ("POST", f"/v1/accounts/{ID}", _with_params("update_account"), "account"),
    ("DELETE", f"/v1/accounts/{ID}", _retrieve("delete_account"), "account"),
    ("POST", "/v1/account_links", _with_params("create_account_link"), "account_link"),
    ("POST", "/v1/checkout/sessions", _with_params("create_checkout_session"), "checkout.session"),
    ("GET", "/v1/checkout/sessions", _with_params("list_checkout_sessions"), "list:checkout.session"),
    ("GET", f"/v1/checkout/sessions/{ID}", _retrieve("retrieve_checkout_session"), "checkout.session"),
    ("GET", f"/v1/checkout/sessions/{ID}/line_items", _with_params("list_session_line_items"), "list:item"),
    ("POST", f"/v1/checkout/sessions/{ID}/expire", _with_params("expire_checkout_session"), "checkout.session"),
    ("POST", "/v1/customers", _with_params("create_customer"), "customer"),
    ("GET", "/v1/customers", _with_params("list_customers"), "list:customer"),
    ("GET", f"/v1/customers/{ID}", _retrieve("retrieve_customer"), "customer"),
    ("POST", f"/v1/customers/{ID}", _with_params("update_customer"), "customer"),
    ("POST", "/v1/coupons", _with_params("create_coupon"), "coupon"),
    ("GET", "/v1/coupons", _with_params("list_coupons"), "list:coupon"),
    ("GET", f"/v1/coupons/{ID}", _retrieve("retrieve_coupon"), "coupon"),
    ("DELETE", f"/v1/coupons/{ID}", _retrieve("delete_coupon"), "coupon"),
    ("GET", f"/v1/payment_methods/{ID}", _retrieve("retrieve_payment_method"), "payment_method"),
    ("GET", "/v1/payment_intents", _with_params("list_payment_intents"), "list:payment_intent"),
    ("GET", f"/v1/payment_intents/{ID}", _retrieve("retrieve_payment_intent"), "payment_intent"),
    ("GET", "/v1/charges", _with_params("list_charges"), "list:charge"),
    ("GET", f"/v1/charges/{ID}", _retrieve("retrieve_charge"), "charge"),
    ("POST", "/v1/refunds", _with_params("create_refund"), "refund"),
    ("GET", "/v1/refunds", _with_params("list_refunds"), "list:refund"),
    ("GET", f"/v1/refunds/{ID}", _retrieve("retrieve_refund"), "refund"),
    ("GET", "/v1/disputes", _with_params("list_disputes"), "list:dispute"),
    ("GET", f"/v1/disputes/{ID}", _retrieve("retrieve_dispute"), "dispute"),
    ("POST", f"/v1/disputes/{ID}", _with_params("update_dispute"), "dispute"),
    ("POST", f"/v1/disputes/{ID}/close", _with_params("close_dispute_api"), "dispute"),
    ("GET", "/v1/subscriptions", _with_params("list_subscriptions"), "list:subscription"),
    ("GET", f"/v1/subscriptions/{ID}", _retrieve("retrieve_subscription"), "subscription"),
    ("POST", f"/v1/subscriptions/{ID}", _with_params("update_subscription"), "subscription"),
    ("DELETE", f"/v1/subscriptions/{ID}", _with_params("cancel_subscription"), "subscription"),
    ("GET", "/v1/invoices", _with_params("list_invoices"), "list:invoice"),
    ("GET", f"/v1/invoices/{ID}", _retrieve("retrieve_invoice"), "invoice"),
    ("GET", "/v1/invoice_payments", _with_params("list_invoice_payments"), "list:invoice_payment"),
    ("GET", f"/v1/invoice_payments/{ID}", _retrieve("retrieve_invoice_payment"), "invoice_payment"),
    ("POST", "/v1/billing_portal/sessions", _with_params("create_portal_session"), "billing_portal.session"),
    ("GET", "/v1/events", _with_params("list_events"), "list:event"),
    ("GET", f"/v1/events/{ID}", _retrieve("retrieve_event"), "event"),
]


@dataclass(frozen=True)
class ApiRoute:
    call: Any
    returns: str


class SandboxApp:
    """The ASGI application."""

    def __init__(self, state: SandboxState, deliverer: Deliverer, api_key: str) -> None:
        self.state = state
        self.deliverer = deliverer
        self.api_key = api_key
        self.api = Router()
        for method, pattern, handler, returns in API_ROUTES:
            self.api.add(method, pattern, ApiRoute(handler, returns))
        self.other = Router()
        pages.register(self.other, state)
        _register_controls(self.other, state, deliverer)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        if request is None:
            await send_response(send, json_response(413, _error("Request body too large.")))
            return
        try:
            response = self.handle(request)
        except Exception:  # noqa: BLE001 - a bug in the sandbox: answer like Stripe's api_error, saying what broke
            log.error("stripe sandbox: %s %s failed\n%s", request.method, request.path, traceback.format_exc())
            response = json_response(500, _api_error(traceback.format_exc(limit=3)))
        await send_response(send, response)

    def handle(self, request: Request) -> Response:
        self.state.sweep()
        if request.path.startswith("/v1/"):
            return self.handle_api(request)
        found = self.other.match(request.method, request.path)
        if found is None:
            return json_response(404, _error(f"Not found: {request.method} {request.path}"))
        handler, groups = found
        try:
            return handler(request, *groups)
        except SandboxError as exc:
            return json_response(exc.status, exc.body())

    def handle_api(self, request: Request) -> Response:
        request_id = new_id("req_", 14)
        headers = [("request-id", request_id), ("stripe-version", API_VERSION)]
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if key != self.api_key:
            shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else key or "(none)"
            reason = " The sandbox refuses live keys." if key.startswith(("sk_live_", "rk_live_")) else ""
            return json_response(401, _error(f"Invalid API Key provided: {shown}.{reason}"), headers)
        found = self.api.match(request.method, request.path)
        if found is None:
            return json_response(
                404,
                _error(
                    f"Unrecognized request URL ({request.method}: {request.path}). The sandbox models only part "
                    "of Stripe's API (see stripe_sandbox/app.py)."
                ),
                headers,
            )
        route, ids = found
        account = request.headers.get("stripe-account") or None
        idempotency_key = request.headers.get("idempotency-key") if request.method == "POST" else None
        with self.state.lock:
            try:
                if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                    raise SandboxError(f"Idempotency keys are 1 to {MAX_IDEMPOTENCY_KEY} characters long.")
                params = parse_form(request.body if request.method == "POST" else request.query)
                if account:
                    self.state.check_account_header(account)
                if idempotency_key:
                    saved = self.state.replay(account, idempotency_key, request.method, request.path, params)
                    if saved is not None:
                        replayed = [*headers, ("idempotent-replayed", "true"), *_retry_advice(saved["status"])]
                        return json_response(saved["status"], saved["body"], replayed)
            except SandboxError as exc:
                return json_response(exc.status, exc.body(), headers)
            self.state.request = {"id": request_id, "idempotency_key": idempotency_key}
            began = True  # Stripe saves an answer once the endpoint began (not for invalid parameters)
            try:
                fault = self.state.take_fault(request.method, request.path)
                if fault is not None:
                    status, body = fault, _api_error("An error occurred with our connection to Stripe (injected by fail_next).")
                else:
                    status, body = 200, self.state.answer(route.call, route.returns, account, Params(params), *ids)
            except ParameterError as exc:
                status, body, began = exc.status, exc.body(), False
            except SandboxError as exc:
                status, body = exc.status, exc.body()
            except Exception:  # noqa: BLE001 - a bug in the sandbox: Stripe's api_error, saying what broke
                log.error("stripe sandbox: %s %s failed\n%s", request.method, request.path, traceback.format_exc())
                status, body = 500, _api_error(traceback.format_exc(limit=3))
            finally:
                self.state.request = {"id": None, "idempotency_key": None}
            if idempotency_key and began:
                self.state.remember(account, idempotency_key, request.method, request.path, params, status, body)
                headers.extend(_retry_advice(status))
        return json_response(status, body, headers)


def _retry_advice(status: int) -> list[tuple[str, str]]:
    # A 5xx saved under a key would only be replayed: Stripe tells the SDK not to retry it.
    return [("stripe-should-retry", "false")] if status >= 500 else []


def _api_error(message: str) -> dict[str, Any]:
    return {"error": {"type": "api_error", "message": message}}


def _error(message: str) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "message": message}}


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "yes", "on"):
        return True
    if str(value).lower() in ("false", "0", "no", "off"):
        return False
    raise SandboxError(f"{name} must be true or false", param=name)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SandboxError(f"{name} must be an integer", param=name) from None


def _register_controls(router: Router, state: SandboxState, deliverer: Deliverer) -> None:
    """/_sandbox/...: the same controls as the Python API, for other processes and the demo."""

    def add_endpoint(request: Request) -> Response:
        form = request.form()
        if not form.get("secret"):
            raise SandboxError("secret is required", param="secret")
        events = form.get("events")
        with state.lock:
            endpoint_id = deliverer.add_endpoint(
                form.get("url") or None,
                form["secret"],
                connect=_flag(form.get("connect", False), "connect"),
                events=events.split(",") if isinstance(events, str) and events else events or None,
            )
        return json_response(200, {"id": endpoint_id})

    def remove_endpoint(request: Request, endpoint_id: str) -> Response:
        with state.lock:
            deliverer.remove_endpoint(_endpoint(deliverer, endpoint_id))
        return json_response(200, {"id": endpoint_id, "deleted": True})

    def take(request: Request, endpoint_id: str) -> Response:
        with state.lock:
            taken = deliverer.take(_endpoint(deliverer, endpoint_id))
        return json_response(
            200,
            {
                "data": [
                    {"payload": d.payload.decode(), "headers": d.headers, "event_id": d.event_id, "type": d.type}
                    for d in taken
                ]
            },
        )

    def attempts(request: Request, endpoint_id: str) -> Response:
        with state.lock:
            return json_response(200, {"data": list(deliverer.endpoints[_endpoint(deliverer, endpoint_id)].attempts)})

    def pay(request: Request, session_id: str) -> Response:
        form = request.form()
        return json_response(
            200,
            state.pay(
                session_id,
                form.get("outcome", "success"),
                name=form.get("name") or None,
                email=form.get("email") or None,
            ),
        )

    def expire(request: Request, session_id: str) -> Response:
        return json_response(200, state.expire_session(session_id))

    def settle(request: Request, session_id: str) -> Response:
        return json_response(200, state.settle_async(session_id, _flag(request.form().get("succeeded"), "succeeded")))

    def onboard(request: Request, account_id: str) -> Response:
        charges = _flag(request.form().get("charges_enabled", True), "charges_enabled")
        return json_response(200, state.complete_onboarding(account_id, charges))

    def advance(request: Request) -> Response:
        return json_response(200, {"now": state.advance_clock(_int(request.form().get("seconds"), "seconds"))})

    def clock(request: Request) -> Response:
        return json_response(200, {"now": state.now()})

    def card(request: Request, customer_id: str) -> Response:
        return json_response(
            200, state.set_card_declines(customer_id, _flag(request.form().get("declines"), "declines"))
        )

    def dispute(request: Request, charge_id: str) -> Response:
        form = request.form()
        amount = form.get("amount")
        return json_response(
            200,
            state.dispute(
                charge_id,
                amount=None if amount in (None, "") else _int(amount, "amount"),
                reason=form.get("reason") or "fraudulent",
                inquiry=_flag(form.get("inquiry", False), "inquiry"),
            ),
        )

    def prevent_dispute(request: Request, charge_id: str) -> Response:
        form = request.form()
        amount = form.get("amount")
        return json_response(
            200,
            state.prevent_dispute(
                charge_id,
                amount=None if amount in (None, "") else _int(amount, "amount"),
                reason=form.get("reason") or "fraudulent",
                resolution=_flag(form.get("resolution", False), "resolution"),
            ),
        )

    def close_dispute(request: Request, dispute_id: str) -> Response:
        won = request.form().get("won")
        return json_response(200, state.close_dispute(dispute_id, None if won in (None, "") else _flag(won, "won")))

    def escalate_dispute(request: Request, dispute_id: str) -> Response:
        return json_response(200, state.escalate_dispute(dispute_id))

    def respond_to_dispute(request: Request, dispute_id: str) -> Response:
        text = request.form().get("text")
        return json_response(200, state.respond_to_dispute(dispute_id, *([text] if text else [])))

    def appeal_dispute(request: Request, dispute_id: str) -> Response:
        return json_response(200, state.appeal_dispute(dispute_id))

    def hold_refunds(request: Request, charge_id: str) -> Response:
        return json_response(200, state.hold_refunds(charge_id, _flag(request.form().get("held", True), "held")))

    def settle_refund(request: Request, refund_id: str) -> Response:
        form = request.form()
        return json_response(
            200, state.settle_refund(refund_id, form.get("status") or "", form.get("failure_reason") or None)
        )

    def age_idempotency_keys(request: Request) -> Response:
        return json_response(200, {"saved": state.age_idempotency_keys(_int(request.form().get("seconds"), "seconds"))})

    def fail_next(request: Request) -> Response:
        form = request.form()
        state.fail_next(form.get("method") or "", form.get("path") or "", _int(form.get("status", 500), "status"))
        return json_response(200, {"method": form.get("method"), "path": form.get("path")})

    def events(request: Request) -> Response:
        return json_response(200, {"data": state.events(request.args().get("type") or None)})

    def get(request: Request, object_id: str) -> Response:
        return json_response(200, state.get(object_id))

    router.add("POST", "/_sandbox/webhook_endpoints", add_endpoint)
    router.add("DELETE", f"/_sandbox/webhook_endpoints/{ID}", remove_endpoint)
    router.add("POST", f"/_sandbox/webhook_endpoints/{ID}/take", take)
    router.add("GET", f"/_sandbox/webhook_endpoints/{ID}/attempts", attempts)
    router.add("POST", f"/_sandbox/checkout_sessions/{ID}/pay", pay)
    router.add("POST", f"/_sandbox/checkout_sessions/{ID}/settle", settle)
    router.add("POST", f"/_sandbox/checkout_sessions/{ID}/expire", expire)
    router.add("POST", f"/_sandbox/accounts/{ID}/complete_onboarding", onboard)
    router.add("POST", "/_sandbox/clock/advance", advance)
    router.add("GET", "/_sandbox/clock", clock)
    router.add("POST", f"/_sandbox/customers/{ID}/card_declines", card)
    router.add("POST", f"/_sandbox/charges/{ID}/dispute", dispute)
    router.add("POST", f"/_sandbox/charges/{ID}/prevent_dispute", prevent_dispute)
    router.add("POST", f"/_sandbox/charges/{ID}/hold_refunds", hold_refunds)
    router.add("POST", f"/_sandbox/refunds/{ID}/settle", settle_refund)
    router.add("POST", f"/_sandbox/disputes/{ID}/close", close_dispute)
    router.add("POST", f"/_sandbox/disputes/{ID}/escalate", escalate_dispute)
    router.add("POST", f"/_sandbox/disputes/{ID}/respond", respond_to_dispute)
    router.add("POST", f"/_sandbox/disputes/{ID}/appeal", appeal_dispute)
    router.add("POST", "/_sandbox/idempotency_keys/age", age_idempotency_keys)
    router.add("POST", "/_sandbox/fail_next", fail_next)
    router.add("GET", "/_sandbox/events", events)
    router.add("GET", f"/_sandbox/objects/{ID}", get)


def _endpoint(deliverer: Deliverer, endpoint_id: str) -> str:
    if endpoint_id not in deliverer.endpoints:
        raise SandboxError(f"No such webhook endpoint: '{endpoint_id}'", status=404, code="resource_missing")
    return endpoint_id
