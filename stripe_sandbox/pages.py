"""The pages a person clicks through: hosted checkout, Connect onboarding, billing portal, and a
small dashboard (sandbox time, advance the clock, recent events).

Buttons have stable ids for browser tests: checkout `#pay-success`, `#pay-decline`,
`#trial-no-card`, `#pay-async` (and `#name`, `#email`, `#cancel`); onboarding
`#complete-onboarding`, `#leave-onboarding`; portal `#fix-card`, `#cancel-<sub id>`, `#return`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jinja2

from stripe_sandbox.asgi import (
    Request,
    Response,
    Router,
    html_response,
    redirect,
)
from stripe_sandbox.currencies import format_amount
from stripe_sandbox.errors import SandboxError
from stripe_sandbox.state import OUTCOMES, SandboxState

TEMPLATES = Path(__file__).resolve().parent / "templates"
ID = "([^/]+)"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
_env.filters["money"] = lambda amount, currency: format_amount(amount, currency)
_env.filters["when"] = lambda ts: dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def render(template: str, status: int = 200, **context: object) -> Response:
    return html_response(_env.get_template(template).render(**context), status)


def register(router: Router, state: SandboxState) -> None:
    def checkout_page(request: Request, session_id: str, error: str | None = None, status: int = 200) -> Response:
        try:
            view = state.session_view(session_id)
        except SandboxError:
            return render(
                "message.html",
                404,
                title="Unknown checkout session",
                message="This checkout link does not exist in this sandbox.",
            )
        return render("checkout.html", status, s=view, error=error or view["last_error"], now=state.now())

    def checkout_submit(request: Request, session_id: str) -> Response:
        form = request.form()
        outcome = form.get("outcome", "")
        if outcome not in OUTCOMES:
            return checkout_page(request, session_id, error="Choose one of the buttons.", status=400)
        try:
            session = state.pay(session_id, outcome, name=form.get("name") or None, email=form.get("email") or None)
        except SandboxError as exc:
            return checkout_page(request, session_id, error=exc.message, status=400)
        if session["status"] != "complete":
            return checkout_page(request, session_id, status=402)
        target = state.success_redirect(session_id)
        if target:
            return redirect(target)
        return render(
            "message.html", title="Payment complete", message="The sandbox has no success_url to send you to."
        )

    def onboarding_page(request: Request, token: str) -> Response:
        link = state.link(token)
        if link is None:
            return render("message.html", 404, title="Unknown link", message="This onboarding link does not exist.")
        if link["used"] or link["expires_at"] < state.wall():
            return redirect(link["refresh_url"])
        return render("onboarding.html", link=link, account=state.get(link["account"]))

    def onboarding_submit(request: Request, token: str) -> Response:
        if state.link(token) is None:
            return render("message.html", 404, title="Unknown link", message="This onboarding link does not exist.")
        return redirect(state.use_link(token, complete=request.form().get("action") == "complete"))

    def portal_page(request: Request, portal_id: str) -> Response:
        try:
            view = state.portal_view(portal_id)
        except SandboxError:
            return render("message.html", 404, title="Unknown portal session", message="This link does not exist.")
        return render("portal.html", **view)

    def portal_submit(request: Request, portal_id: str) -> Response:
        action = request.form().get("action", "")
        view = state.portal_view(portal_id)
        if action == "fix-card":
            state.set_card_declines(view["customer"]["id"], False)
        elif action.startswith("cancel:"):
            state.portal_cancel(portal_id, action.removeprefix("cancel:"))
        return redirect(f"/p/session/{portal_id}")

    def dashboard(request: Request) -> Response:
        return render("dashboard.html", now=state.now(), events=list(reversed(state.events()))[:50])

    def dashboard_advance(request: Request) -> Response:
        days = request.form().get("days", "0")
        if not days.isdigit():
            raise SandboxError("days must be a whole number", param="days")
        state.advance_clock(int(days) * 86400)
        return redirect("/_sandbox")

    router.add("GET", f"/c/pay/{ID}", checkout_page)
    router.add("POST", f"/c/pay/{ID}", checkout_submit)
    router.add("GET", f"/setup/{ID}", onboarding_page)
    router.add("POST", f"/setup/{ID}", onboarding_submit)
    router.add("GET", f"/p/session/{ID}", portal_page)
    router.add("POST", f"/p/session/{ID}", portal_submit)
    router.add("GET", "/_sandbox", dashboard)
    router.add("POST", "/_sandbox/dashboard/advance", dashboard_advance)
