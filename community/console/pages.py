"""The console's home screen: the first steps (while any is left, above everything), then the
community's numbers (console/numbers.py, the same as GET .../numbers) with a chart of the last
90 days drawn on the server (inline SVG, no script) and the same figures in a table; failed
background jobs with a Retry button for owners and admins (the jobs API's retry)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.billing.entitlement_pages import utc
from community.console import numbers, service
from community.errors import Forbidden
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, console_page
from community.money import format_amount
from community.web import Db, ObjectId

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 180, 8


def chart(found: numbers.Numbers, currency: str | None) -> dict[str, Any]:
    """One currency's net revenue per day (bars) and new members per day (a line), each on its
    own scale from 0; coordinates only (the template draws them). No currency: members alone."""
    days = found.days
    money_top = max([0, *(d.revenue.get(currency, 0) for d in days)]) if currency else 0
    people_top = max([1, *(d.new_members for d in days)])
    step = (CHART_WIDTH - 2 * CHART_PAD) / len(days)
    inner = CHART_HEIGHT - 2 * CHART_PAD
    base = CHART_HEIGHT - CHART_PAD

    bars, points = [], []
    for n, day in enumerate(days):
        x = CHART_PAD + n * step
        net = day.revenue.get(currency, 0) if currency else 0
        height = round(max(net, 0) * inner / money_top, 1) if money_top else 0
        label = f"{day.date:%d %b %Y}: {day.new_members} new member{'s' * (day.new_members != 1)}"
        if currency:
            label += f", {format_amount(net, currency)} net"
        bars.append({"x": round(x, 1), "y": round(base - height, 1), "width": round(step * 0.72, 1), "height": height, "label": label})
        points.append(f"{round(x + step * 0.36, 1)},{round(base - day.new_members * inner / people_top, 1)}")
    total_net = sum(d.revenue.get(currency, 0) for d in days) if currency else 0
    best = max(days, key=lambda d: d.revenue.get(currency, 0)) if currency else None
    new = sum(d.new_members for d in days)
    description = f"New members per day, line, scale 0 to {people_top}: {new} in all."
    if currency and best is not None:
        description = (
            f"Net revenue per day in {currency}, bars, scale 0 to {format_amount(money_top, currency)}: "
            f"{format_amount(total_net, currency)} in all, the most on {best.date:%d %B} "
            f"({format_amount(best.revenue.get(currency, 0), currency)}). " + description
        )
    return {
        "key": currency or "members", "currency": currency, "width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD,
        "bars": bars, "line": " ".join(points), "money_top": format_amount(money_top, currency) if currency else None,
        "people_top": people_top, "first": days[0].date, "last": days[-1].date, "description": description,
    }


class ConsoleHome(Controller):
    path = "/dashboard/communities/{community_id:int}"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def home(self, frame: CurrentFrame, db: Db) -> Template:
        steps = await service.first_steps(db, frame.community.id)
        found = await numbers.numbers(db, frame.community.id, with_jobs=frame.can_edit)
        charts = [chart(found, currency) for currency in found.currencies] or [chart(found, None)]
        return console_page(
            "console/home.html", frame, "home", steps=steps, numbers=found, charts=charts,
            money=format_amount, utc=utc, window_days=numbers.WINDOW_DAYS, series_days=numbers.SERIES_DAYS,
        )

    @post("/jobs/{job_id:int}/retry")
    async def retry(self, job_id: ObjectId, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        if not frame.can_edit:
            raise Forbidden("only owners and admins retry background jobs")
        row = await numbers.retry_job(db, frame.community.id, job_id)
        if row is None:
            flash(request, f"Job {job_id} is not failed any more: it was retried already.", "info")
        else:
            flash(request, f"Job {job_id} ({row.name}) will run again shortly.", "success")
        return Redirect(frame.base, status_code=303)
