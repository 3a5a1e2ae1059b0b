"""Email settings, in the console: the catalogue with each message on or off, a message's
subject and body with its variables and a preview rendered with sample data, a test sent to
yourself, per-offer overrides, per-staff choices, and the delivery log.

The same service calls as the API (notifications/api.py). Managers read and set their own staff
choices; owners and admins change everything."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.errors import DomainError, Forbidden
from community.forms import FORM, FormBody, Posted, refusal
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.notifications import service
from community.notifications.catalogue import (
    ENTRIES,
    MEMBER,
    STAFF,
    SWITCHABLE,
    SYSTEM,
    MessageKey,
)
from community.offers import service as offers
from community.web import MAX_ID, Db, ObjectId

StateFilter = Annotated[str | None, QueryParameter(max_length=20, description="queued, sending, sent, failed or bounced")]
Before = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]
AUDIENCES = {STAFF: "To staff", MEMBER: "To members"}
LOG_SIZE = 50


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins change email settings")


def _page(template: str, frame: Frame, **context: Any) -> Template:
    return console_page(template, frame, "emails", audiences=AUDIENCES, **context)


def _errors(exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    errors = refusal(exc)
    return {(k if k in fields else FORM): v for k, v in errors.items()}


class EmailSettingsPages(Controller):
    path = "/dashboard/communities/{community_id:int}/emails"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def catalogue(self, frame: CurrentFrame, db: Db) -> Template:
        views = await service.messages(db, frame.community.id)
        all_offers = await offers.list_offers(db, frame.community.id, after=None, limit=200)
        return _page(
            "emails/catalogue.html", frame, views=views, offers=all_offers,
            system=[e for e in ENTRIES if e.audience == SYSTEM],
        )

    @post("/switches")
    async def switches(self, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        """One form: every message's checkbox (PATCH .../messages/{key} {enabled} for each)."""
        _editor(frame)
        form = Posted(data)
        for item in SWITCHABLE:
            await service.update_message(db, frame.community.id, item.key, enabled=form.checked(f"on-{item.key}"))
        flash(request, "Email settings saved.", "success")
        return Redirect(f"{frame.base}/emails", status_code=303)

    # ------------------------------------------------------------ one message

    @get("/messages/{key:str}")
    async def message(self, key: MessageKey, frame: CurrentFrame, db: Db) -> Template:
        view = await service.message(db, frame.community.id, key)
        form = Posted({"subject": view.subject, "body": view.body})
        preview = service.render_preview(view.entry, view.subject, view.body)
        return _page("emails/message.html", frame, view=view, form=form, errors={}, preview=preview)

    @post("/messages/{key:str}")
    async def save(self, key: MessageKey, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        """Save (PATCH .../messages/{key}) or only preview the texts typed (POST .../preview)."""
        form = Posted(data)
        view = await service.message(db, frame.community.id, key)
        subject, body = form.text("subject"), form.text("body")
        try:
            if form.text("action") == "preview":
                preview = await service.preview(db, frame.community.id, key, subject=subject, body=body)
                return _page("emails/message.html", frame, view=view, form=form, errors={}, preview=preview, unsaved=True)
            _editor(frame)
            async with db.begin_nested():
                await service.update_message(db, frame.community.id, key, subject=subject, body=body)
        except DomainError as exc:
            if isinstance(exc, Forbidden):
                raise
            return _page(
                "emails/message.html", frame, view=view, form=form, errors=_errors(exc, ("subject", "body")),
                preview=None, status_code=exc.status_code,
            )
        flash(request, f"“{view.entry.title}” saved.", "success")
        return Redirect(f"{frame.base}/emails/messages/{key}", status_code=303)

    @post("/messages/{key:str}/reset")
    async def reset(self, key: MessageKey, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        _editor(frame)
        view = await service.update_message(db, frame.community.id, key, reset=True)
        flash(request, f"“{view.entry.title}” is back to the default text.", "success")
        return Redirect(f"{frame.base}/emails/messages/{key}", status_code=303)

    @post("/messages/{key:str}/test")
    async def test(self, key: MessageKey, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        await service.send_test(db, frame.community.id, key, to=frame.user.email)
        flash(request, f"A test was sent to {frame.user.email}, with sample data.", "success")
        return Redirect(f"{frame.base}/emails/messages/{key}", status_code=303)

    # ------------------------------------------------------------ per offer

    @get("/offers/{offer_id:int}")
    async def offer(self, offer_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        overrides = await service.offer_overrides(db, frame.community.id, offer.id)
        views = await service.messages(db, frame.community.id)
        return _page("emails/offer.html", frame, offer=offer, overrides=overrides, views=views)

    @post("/offers/{offer_id:int}")
    async def save_offer(self, offer_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        _editor(frame)
        form = Posted(data)
        choice = {"on": True, "off": False}
        changes = {item.key: choice.get(form.text(f"o-{item.key}")) for item in SWITCHABLE}
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        await service.set_offer_overrides(db, frame.community.id, offer.id, changes)
        flash(request, f"Emails for {offer.title} saved.", "success")
        return Redirect(f"{frame.base}/emails/offers/{offer.id}", status_code=303)

    # ------------------------------------------------------------ per staff person

    @get("/staff")
    async def staff(self, frame: CurrentFrame, db: Db) -> Template:
        people = await service.staff_choices(db, frame.community.id)
        staff_entries = [e for e in SWITCHABLE if e.audience == STAFF]
        return _page("emails/staff.html", frame, people=people, staff_entries=staff_entries)

    @post("/staff/{user_id:int}")
    async def save_staff(self, user_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        if user_id != frame.user.id:
            _editor(frame)
        form = Posted(data)
        changes = {e.key: form.checked(f"s-{user_id}-{e.key}") for e in SWITCHABLE if e.audience == STAFF}
        person = await service.set_staff_choices(db, frame.community.id, user_id, changes)
        flash(request, f"Staff emails for {person.email} saved.", "success")
        return Redirect(f"{frame.base}/emails/staff", status_code=303)

    # ------------------------------------------------------------ the log

    @get("/log")
    async def log(self, frame: CurrentFrame, db: Db, status: StateFilter = None, before: Before = None) -> Template:
        rows = await service.deliveries(db, frame.community.id, state=status, before_id=before, limit=LOG_SIZE)
        titles = {e.key: e.title for e in ENTRIES}
        return _page(
            "emails/log.html", frame, rows=rows, status=status, titles=titles,
            next=rows[-1].id if len(rows) == LOG_SIZE else None,
        )
