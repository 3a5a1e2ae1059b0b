"""The campaigns API's structs in and out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from community.campaigns import service
from community.campaigns.models import Campaign, CampaignRecipient
from community.inputs import Instant

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=service.SUBJECT_MAX)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=service.BODY_MAX)]
Segment = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Format = Literal["text", "markdown"]


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True):
    """A draft. `body` is plain text or Markdown (`format`); subject and body may use the
    variables {{ name }}, {{ email }}, {{ community_name }}, {{ unsubscribe_url }} (Jinja2,
    sandboxed; a template that cannot render is a 422 naming the field). `segment`: a built-in
    segment's key or a saved segment's id (GET .../segments). `send_at` (UTC): sending then
    schedules it for that time; null sends at once."""

    subject: Subject
    body: Body
    segment: Segment
    format: Format = "text"
    send_at: Instant | None = None


class CampaignPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only a draft changes; a field left out stays. `send_at: null` clears the time."""

    subject: Subject | msgspec.UnsetType = msgspec.UNSET
    body: Body | msgspec.UnsetType = msgspec.UNSET
    segment: Segment | msgspec.UnsetType = msgspec.UNSET
    format: Format | msgspec.UnsetType = msgspec.UNSET
    send_at: Instant | None | msgspec.UnsetType = msgspec.UNSET


class SendIn(msgspec.Struct, forbid_unknown_fields=True):
    """`expected`: how many members the sender was told it reaches (GET .../audience); if the
    segment reaches another number now, 409 with it, nothing sent."""

    expected: Annotated[int, msgspec.Meta(ge=0)] | None = None


class AudienceOut(msgspec.Struct):
    segment: str
    members: int  # as the members directory counts the segment
    unsubscribed: int  # of them: skipped
    reaches: int


class CampaignOut(msgspec.Struct):
    id: int
    subject: str
    body: str
    format: str
    segment: str
    state: str  # draft, scheduled, sending, sent, cancelled
    send_at: dt.datetime | None
    created_at: dt.datetime
    queued_at: dt.datetime | None
    finished_at: dt.datetime | None
    recipients: int  # rows queued (skipped ones included)
    counts: dict[str, int]  # recipients per state: queued, sending, sent, failed, bounced, skipped, cancelled


class PreviewOut(msgspec.Struct):
    subject: str
    text: str
    html: str | None


class RecipientOut(msgspec.Struct):
    user_id: int
    email: str
    name: str
    state: str
    detail: str | None  # the server's answer (failed, bounced) or why skipped
    updated_at: dt.datetime | None


class RecipientPageOut(msgspec.Struct):
    items: list[RecipientOut]
    next: int | None  # pass as `after`: the last user id of this page


class CancelledOut(msgspec.Struct):
    campaign: CampaignOut
    not_sent: int  # queued recipients who will not get it


def campaign_out(c: Campaign, counts: dict[str, int] | None = None) -> CampaignOut:
    return CampaignOut(
        id=c.id, subject=c.subject, body=c.body, format=c.format, segment=c.segment, state=c.state,
        send_at=c.send_at, created_at=c.created_at, queued_at=c.queued_at, finished_at=c.finished_at,
        recipients=c.recipients_total, counts=dict(counts or {}),
    )


def recipient_out(r: CampaignRecipient) -> RecipientOut:
    return RecipientOut(user_id=r.user_id, email=r.email, name=r.name, state=r.state, detail=r.detail, updated_at=r.updated_at)
