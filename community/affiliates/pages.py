"""The affiliate's pages (platform origin, logged-in buyers): programs they can join, and each
link's figures with a chart of clicks and sales per day (inline SVG, drawn on the server)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.accounts.guards import Viewer, provide_viewer
from community.affiliates import reports, service
from community.affiliates.service import Figures
from community.errors import Invalid, NotFound
from community.hubs import service as hubs
from community.hubs.member_area import MemberArea, member_area
from community.money import format_amount
from community.offers.models import Offer
from community.web import MAX_ID, Db

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 600, 160, 20


def chart(figures: Figures) -> dict[str, Any]:
    """Bars for clicks, a line of dots for sales, both on one scale; coordinates only (the
    template draws them)."""
    days = figures.days
    top = max([1, *(d.clicks for d in days), *(d.sales for d in days)])
    step = (CHART_WIDTH - 2 * CHART_PAD) / len(days)
    inner = CHART_HEIGHT - 2 * CHART_PAD

    def y(value: int) -> float:
        return round(CHART_HEIGHT - CHART_PAD - value * inner / top, 1)

    bars, dots = [], []
    for n, day in enumerate(days):
        x = round(CHART_PAD + n * step, 1)
        bars.append({"x": x, "y": y(day.clicks), "width": round(step * 0.7, 1), "height": round(day.clicks * inner / top, 1),
                     "label": f"{day.date.isoformat()}: {day.clicks} clicks, {day.sales} sales"})
        dots.append({"x": round(x + step * 0.35, 1), "y": y(day.sales)})
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD, "top": top, "bars": bars,
            "line": " ".join(f"{d['x']},{d['y']}" for d in dots), "first": days[0].date, "last": days[-1].date}


def earnings_row(totals: reports.Totals) -> dict[str, str]:
    """One currency's ledger buckets, formatted (the same numbers as the API's `earnings`)."""
    return {"currency": totals.currency, **{name: format_amount(getattr(totals, name), totals.currency)
                                            for name in ("pending", "approved", "paid")}}


def terms(offer: Offer) -> list[str]:
    """The program's terms in plain words: percents and major units, never basis points."""
    if offer.resell_commission_bps is not None:
        commission = f"{offer.resell_commission_bps / 100:g}% of"
    elif offer.resell_commission_flat is not None:
        commission = f"{format_amount(offer.resell_commission_flat, offer.currency)} for"
    else:
        commission = "a commission on"
    earns = {
        "first": "the first payment of each buyer you send",
        "all": "every payment of each buyer you send",
        "months": f"each payment in the first {offer.resell_earn_months} months of each buyer you send",
    }.get(offer.resell_earns, "the payments of the buyers you send")
    return [
        f"You earn {commission} {earns}.",
        f"A visitor who buys within {offer.resell_window_days} days of clicking your link counts as yours.",
        f"Commissions wait {offer.resell_hold_days} days (refunds may still change them), then go into your next payout.",
    ]


class AffiliatePages(Controller):
    include_in_schema = False
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/affiliates")
    async def programs(self, viewer: Viewer, db: Db, state: State) -> Template | Redirect:
        if viewer is None:
            return Redirect("/login")
        mine = await service.my_programs(db, viewer.user_id)
        joinable = await service.open_programs(db, viewer.user_id)
        me = await accounts.get_user(db, viewer.user_id)
        return Template("affiliates/programs.html", context={"me": me, "mine": mine, "joinable": joinable})

    @post("/affiliates/join")
    async def join(self, data: Form, viewer: Viewer, db: Db) -> Redirect:
        if viewer is None:
            return Redirect("/login", status_code=303)
        offer_id = data.get("offer_id", "")
        # ASCII digits only, and few: int() refuses "²" (which isdigit() accepts) and very long numbers.
        if not (offer_id.isascii() and offer_id.isdigit() and len(offer_id) <= 19) or not 1 <= int(offer_id) <= MAX_ID:
            raise Invalid("choose an offer", field="offer_id")
        affiliate = await service.enrol(db, user_id=viewer.user_id, offer_id=int(offer_id))
        return Redirect(f"/affiliates/{affiliate.id}", status_code=303)

    @get("/affiliates/{affiliate_id:int}")
    async def program(self, affiliate_id: FromPath[int], viewer: Viewer, db: Db, state: State) -> Template | Redirect:
        if viewer is None:
            return Redirect("/login")
        affiliate = await service.my_affiliate(db, viewer.user_id, affiliate_id)
        offer = await db.get_one(Offer, affiliate.offer_id)
        figures = await service.figures(db, affiliate, offer)
        try:  # in its community's member navigation
            area: MemberArea | None = await member_area(db, offer.community_id, viewer.user_id, resells=True)
        except NotFound:  # no longer a member there: the figures still show
            area = None
        return Template("affiliates/program.html", context={
            "area": area,
            "section": "resell",
            "me": await accounts.get_user(db, viewer.user_id),
            "community": await hubs.get_community(db, offer.community_id),
            "terms": terms(offer),
            "affiliate": affiliate,
            "offer": offer,
            "link": await service.link_url(db, state.settings, affiliate),
            "figures": figures,
            "earnings": [earnings_row(t) for t in figures.earnings],
            "conversion": f"{figures.conversion_bps / 100:.1f}%",
            "chart": chart(figures),
        })
