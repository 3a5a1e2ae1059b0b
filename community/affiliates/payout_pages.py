"""Paying affiliates in the owner's console: what is payable now per affiliate and currency (with
the offer's minimum payout), a payout run (a page saying who will be paid how much, then
create), the payouts with their lines, marking one paid with the transfer reference, and the
CSVs (payouts with the list's filters, one payout's lines).

The same service calls as the JSON API (owner_api.py): payouts.balances, create_payouts,
list_payouts, get_payout, payout_lines, mark_paid (its input read through the API's PayoutPaid,
so a refusal is in the API's words), downloads.*. Managers read and download; owners and admins
create runs and mark payouts paid.
"""

from __future__ import annotations

from collections import defaultdict

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Stream, Template

from community.affiliates import downloads, payouts
from community.affiliates.console_pages import (
    AffiliateFilter,
    StateFilter,
    chosen,
    chosen_id,
    editor,
    query,
    resell_page,
)
from community.affiliates.models import PayoutState
from community.affiliates.owner_api import PayoutPaid
from community.errors import DomainError
from community.forms import FORM, FormBody, Posted, read_input, refusal
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame
from community.money import format_amount
from community.web import Cursor, Db, ObjectId

PAGE_SIZE = 50


def _totals(balances: list[payouts.Balance]) -> list[str]:
    """What a run pays, per currency, formatted."""
    sums: dict[str, int] = defaultdict(int)
    for b in balances:
        sums[b.currency] += b.amount
    return [format_amount(amount, currency) for currency, amount in sorted(sums.items())]


class PayoutPages(Controller):
    path = "/dashboard/communities/{community_id:int}/resell"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    # ------------------------------------------------------------ balances and a run

    @get("/balances")
    async def balances(self, frame: CurrentFrame, db: Db) -> Template:
        rows = await payouts.balances(db, frame.community.id)
        due = [b for b in rows if b.due]
        return resell_page(
            "affiliates/console_balances.html", frame, "balances", balances=rows, due=due, due_totals=_totals(due),
            people=await payouts.payee_details(db, frame.community.id, {b.affiliate_id for b in rows}),
        )

    @get("/payouts/new")
    async def run_form(self, frame: CurrentFrame, db: Db) -> Template:
        editor(frame)
        return await self._run_page(db, frame)

    @post("/payouts/new")
    async def run(self, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        editor(frame)
        try:
            async with db.begin_nested():
                made = await payouts.create_payouts(db, frame.community.id)
        except DomainError as exc:
            return await self._run_page(db, frame, refusal(exc), exc.status_code)
        if not made:
            flash(request, "Nothing was payable: no payout was created.", "info")
            return Redirect(f"{frame.base}/resell/balances", status_code=303)
        total = ", ".join(_totals([payouts.Balance(p.affiliate_id, p.currency, p.amount, 0) for p in made]))
        count = "1 payout" if len(made) == 1 else f"{len(made)} payouts"
        flash(request, f"Created {count} ({total}). Send the money, then mark each one paid.", "success")
        return Redirect(f"{frame.base}/resell/payouts?state=open", status_code=303)

    async def _run_page(self, db: Db, frame: Frame, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        rows = await payouts.balances(db, frame.community.id)
        due = [b for b in rows if b.due]
        return resell_page(
            "affiliates/console_payout_run.html", frame, "balances", due=due, due_totals=_totals(due),
            waiting=[b for b in rows if not b.due], errors=errors or {}, status_code=status_code,
            people=await payouts.payee_details(db, frame.community.id, {b.affiliate_id for b in rows}),
        )

    # ------------------------------------------------------------ payouts

    @get("/payouts")
    async def list_payouts(
        self, frame: CurrentFrame, db: Db, after: Cursor = None, in_state: StateFilter = None,
        affiliate_id: AffiliateFilter = None,
    ) -> Template:
        cid = frame.community.id
        state_, affiliate = chosen(in_state, PayoutState, "state"), chosen_id(affiliate_id, "affiliate_id")
        rows = await payouts.list_payouts(db, cid, after=after, limit=PAGE_SIZE, state=state_, affiliate_id=affiliate)
        ids = {p.affiliate_id for p in rows} | ({affiliate} if affiliate else set())
        return resell_page(
            "affiliates/console_payouts.html", frame, "payouts", rows=rows, people=await payouts.payee_details(db, cid, ids),
            state=state_.value if state_ else None, affiliate_id=affiliate, after=after,
            next=rows[-1].id if len(rows) == PAGE_SIZE else None,
        )

    @get("/payouts.csv")
    async def payouts_csv(
        self, frame: CurrentFrame, state: State, in_state: StateFilter = None, affiliate_id: AffiliateFilter = None
    ) -> Stream:
        return downloads.payouts_csv(
            state.sessions, frame.community.id, state=chosen(in_state, PayoutState, "state"),
            affiliate_id=chosen_id(affiliate_id, "affiliate_id"),
        )

    @get("/payouts/{payout_id:int}")
    async def payout(self, payout_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        return await self._payout_page(db, frame, payout_id, Posted(), {})

    @get("/payouts/{payout_id:int}/lines.csv")
    async def lines_csv(self, payout_id: ObjectId, frame: CurrentFrame, db: Db, state: State) -> Stream:
        return downloads.payout_lines_csv(state.sessions, await payouts.get_payout(db, frame.community.id, payout_id))

    @post("/payouts/{payout_id:int}/paid")
    async def mark_paid(
        self, payout_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db
    ) -> Template | Redirect:
        editor(frame)
        form = Posted(data)
        try:
            given = read_input({"reference": form.text("reference")}, PayoutPaid)
            async with db.begin_nested():
                paid = await payouts.mark_paid(db, frame.community.id, payout_id, given.reference)
        except DomainError as exc:
            errors = {(k if k == "reference" else FORM): v for k, v in refusal(exc).items()}
            return await self._payout_page(db, frame, payout_id, form, errors, exc.status_code)
        flash(request, f"Payout {paid.id} is marked paid ({paid.reference}).", "success")
        return Redirect(f"{frame.base}/resell/payouts/{paid.id}", status_code=303)

    async def _payout_page(
        self, db: Db, frame: Frame, payout_id: int, form: Posted, errors: dict[str, str], status_code: int = 200
    ) -> Template:
        payout = await payouts.get_payout(db, frame.community.id, payout_id)
        people = await payouts.payee_details(db, frame.community.id, {payout.affiliate_id})
        return resell_page(
            "affiliates/console_payout.html", frame, "payouts", payout=payout, payee=people.get(payout.affiliate_id),
            lines=await payouts.payout_lines(db, frame.community.id, payout.id), form=form, errors=errors,
            status_code=status_code, lines_csv=f"{frame.base}/resell/payouts/{payout.id}/lines.csv" + query(),
        )
