"""Campaigns in the console: the list with states and counts, writing and editing a draft
(subject, body, format, segment, send now or at a UTC time) with its audience and a preview,
sending after a confirmation that says how many members get it, and a campaign's page with
per-recipient status (keyset pages, filter by state) and Cancel (after a confirmation).

The same service calls as the JSON API (campaigns/api.py), with its input structs. Managers
read; owners and admins change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.campaigns import sender, service
from community.campaigns.models import RECIPIENT_STATES, Campaign
from community.campaigns.schemas import CampaignIn, SendIn
from community.db import utcnow
from community.errors import DomainError, Forbidden, Invalid
from community.forms import FormBody, Posted, read_input, refusal, utc_datetime
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.members import service as members
from community.web import Cursor, Db, ObjectId

SECTION = "campaigns"
PAGE_SIZE = 50
STATE_LABELS = {"draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "sent": "Sent", "cancelled": "Cancelled"}
STATE_TAGS = {"draft": "", "scheduled": "warn", "sending": "warn", "sent": "ok", "cancelled": ""}
RECIPIENT_LABELS = {
    "queued": "Queued", "sending": "Sending", "sent": "Sent", "failed": "Failed", "bounced": "Bounced",
    "skipped": "Skipped (unsubscribed)", "cancelled": "Cancelled",
}
FORMAT_CHOICES = [("text", "Plain text"), ("markdown", "Markdown (bold, links, lists)")]
WHEN_CHOICES = [("now", "When I press Send"), ("at", "At a time (UTC)")]


def utc(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%d %b %Y, %H:%M UTC") if moment else ""


def page(template: str, frame: Frame, **context: Any) -> Template:
    return console_page(
        template, frame, SECTION, utc=utc, now=utcnow(), state_labels=STATE_LABELS, state_tags=STATE_TAGS,
        recipient_labels=RECIPIENT_LABELS, **context,
    )


def require_editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins write and send campaigns")


async def segment_choices(db: Db, frame: Frame) -> list[tuple[str, str]]:
    return [(s.key, f"{s.name} ({s.count} members)") for s in await members.segments(db, frame.community.id)]


async def segment_names(db: Db, frame: Frame) -> dict[str, str]:
    return await members.segment_names(db, frame.community.id)


def _form_of(campaign: Campaign | None) -> dict[str, str]:
    if campaign is None:
        return {"subject": "", "body": "Hello {{ name }},\n\n", "format": "text", "segment": "active", "when": "now", "send_at": ""}
    return {
        "subject": campaign.subject, "body": campaign.body, "format": campaign.format, "segment": campaign.segment,
        "when": "at" if campaign.send_at else "now",
        "send_at": campaign.send_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M") if campaign.send_at else "",
    }


def _input(form: Posted) -> CampaignIn:
    """The API's CampaignIn from the form (send_at read as UTC); refusals name the field."""
    send_at = None
    if form.text("when") == "at":
        send_at = utc_datetime(form.text("send_at"), "send_at")
        if send_at is None:
            raise Invalid("give the time to send it at (UTC), or choose to send it when you press Send", field="send_at")
    return read_input(
        {"subject": form.text("subject"), "body": form.text("body"), "format": form.text("format") or "text",
         "segment": form.text("segment"), "send_at": send_at},
        CampaignIn,
    )


class CampaignPages(Controller):
    path = "/dashboard/communities/{community_id:int}/campaigns"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def list_page(self, frame: CurrentFrame, db: Db, before: Cursor = None) -> Template:
        rows = await service.list_campaigns(db, frame.community.id, before=before, limit=PAGE_SIZE)
        counts = await service.counts(db, [c.id for c in rows])
        return page(
            "campaigns/list.html", frame, rows=rows, counts=counts, names=await segment_names(db, frame), before=before,
            next=rows[-1].id if len(rows) == PAGE_SIZE else None,
        )

    async def _form(self, db: Db, frame: Frame, campaign: Campaign | None, form: dict[str, str], errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        return page(
            "campaigns/form.html", frame, campaign=campaign, form=form, errors=errors or {}, status_code=status_code,
            segments=await segment_choices(db, frame), formats=FORMAT_CHOICES, whens=WHEN_CHOICES, variables=service.VARIABLES,
        )

    @get("/new")
    async def new_form(self, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        return await self._form(db, frame, None, _form_of(None))

    @post("/new")
    async def create(self, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        try:
            given = _input(form)
            async with db.begin_nested():
                campaign = await service.create_campaign(
                    db, frame.community.id, author_id=frame.user.id, subject=given.subject, body=given.body,
                    format=given.format, segment=given.segment, send_at=given.send_at.plain() if given.send_at else None,
                )
        except DomainError as exc:
            return await self._form(db, frame, None, dict(form.data), refusal(exc), exc.status_code)  # type: ignore[arg-type]
        flash(request, "Saved the draft. Check the preview and the audience, then send it.", "success")
        return Redirect(f"{frame.base}/campaigns/{campaign.id}", status_code=303)

    @get("/{campaign_id:int}/edit")
    async def edit_form(self, campaign_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        campaign = await service.get_campaign(db, frame.community.id, campaign_id)
        return await self._form(db, frame, campaign, _form_of(campaign))

    @post("/{campaign_id:int}/edit")
    async def edit(self, campaign_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        campaign = await service.get_campaign(db, frame.community.id, campaign_id)
        form = Posted(data)
        try:
            given = _input(form)
            async with db.begin_nested():
                await service.update_campaign(
                    db, frame.community.id, campaign_id, subject=given.subject, body=given.body, format=given.format,
                    segment=given.segment, send_at=given.send_at.plain() if given.send_at else None,
                    clear_send_at=given.send_at is None,
                )
        except DomainError as exc:
            return await self._form(db, frame, campaign, dict(form.data), refusal(exc), exc.status_code)  # type: ignore[arg-type]
        flash(request, "Saved the draft.", "success")
        return Redirect(f"{frame.base}/campaigns/{campaign_id}", status_code=303)

    @get("/{campaign_id:int}")
    async def campaign_page(
        self, request: Request, campaign_id: ObjectId, frame: CurrentFrame, db: Db, state: State, after: Cursor = None,
    ) -> Template:
        campaign = await service.get_campaign(db, frame.community.id, campaign_id)
        only = request.query_params.get("status") or None
        errors: dict[str, str] = {}
        if only is not None and only not in RECIPIENT_STATES:
            errors = {"status": f"unknown status: one of {', '.join(RECIPIENT_STATES)}"}
            only = None
        rows = await service.recipients(db, frame.community.id, campaign_id, state=only, after=after, limit=PAGE_SIZE)
        audience = preview = None
        if campaign.state in ("draft", "scheduled"):
            audience = await service.audience(db, frame.community.id, campaign.segment)
            me = frame.user
            preview = sender.preview(state.settings, campaign, frame.community.name, name=me.name, email=me.email, user_id=me.id)
        return page(
            "campaigns/campaign.html", frame, campaign=campaign, counts=(await service.counts(db, [campaign.id]))[campaign.id],
            rows=rows, only=only, after=after, next=rows[-1].user_id if len(rows) == PAGE_SIZE else None, audience=audience,
            preview=preview, segment_name=(await segment_names(db, frame)).get(campaign.segment, campaign.segment),
            status_choices=[("", "All")] + [(s, RECIPIENT_LABELS[s]) for s in RECIPIENT_STATES], errors=errors,
            status_code=422 if errors else 200,
        )

    async def _send_page(self, db: Db, frame: Frame, campaign: Campaign, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        audience = await service.audience(db, frame.community.id, campaign.segment)
        scheduled = campaign.send_at is not None and campaign.send_at > utcnow()
        return page(
            "campaigns/send.html", frame, campaign=campaign, audience=audience, scheduled=scheduled, errors=errors or {},
            segment_name=(await segment_names(db, frame)).get(campaign.segment, campaign.segment), status_code=status_code,
        )

    @get("/{campaign_id:int}/send")
    async def send_form(self, campaign_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        return await self._send_page(db, frame, await service.get_campaign(db, frame.community.id, campaign_id))

    @post("/{campaign_id:int}/send")
    async def send(self, campaign_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        try:
            given = read_input({"expected": form.text("expected") or None}, SendIn)
            async with db.begin_nested():
                campaign = await service.send(db, frame.community.id, campaign_id, expected=given.expected)
        except DomainError as exc:
            campaign = await service.get_campaign(db, frame.community.id, campaign_id)
            return await self._send_page(db, frame, campaign, refusal(exc), exc.status_code)
        if campaign.state == "scheduled":
            flash(request, f"Scheduled for {utc(campaign.send_at)}.", "success")
        else:
            flash(request, f"Sending to {campaign.recipients_total} members. Their status updates below as it goes.", "success")
        return Redirect(f"{frame.base}/campaigns/{campaign_id}", status_code=303)

    @get("/{campaign_id:int}/cancel")
    async def cancel_form(self, campaign_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        campaign = await service.get_campaign(db, frame.community.id, campaign_id)
        counts = (await service.counts(db, [campaign.id]))[campaign.id]
        return page("campaigns/cancel.html", frame, campaign=campaign, counts=counts)

    @post("/{campaign_id:int}/cancel")
    async def cancel(self, campaign_id: ObjectId, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        try:
            async with db.begin_nested():
                not_sent = await service.cancel(db, frame.community.id, campaign_id)
        except DomainError as exc:
            flash(request, exc.detail, "error")
            return Redirect(f"{frame.base}/campaigns/{campaign_id}", status_code=303)
        flash(request, f"Cancelled. {not_sent} members still queued will not get it.", "success")
        return Redirect(f"{frame.base}/campaigns/{campaign_id}", status_code=303)
