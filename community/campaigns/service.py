"""Campaigns: an owner's one email to a segment of the members.

- **Audience**: a segment of the members directory (a built-in smart segment or a saved one),
  counted exactly as the directory counts it (directory.count); members who unsubscribed from
  this community's campaigns are in the count and said apart: they are skipped.
- **Queueing is set-based**: sending (now, or at `send_at` by the cron) writes every recipient
  with one INSERT ... SELECT from the segment's query into campaign_recipients, keyed by
  (campaign, user), so queueing twice adds nobody twice; unsubscribed members land as `skipped`.
- **Delivery** is campaigns/sender.py (a job, throttled, each recipient at most once).
- **Cancel** while it sends: the queued rows become `cancelled`; a sender stops at its next batch.
- **Unsubscribe** is per member and community (a signed token in each message), honoured for
  later campaigns at queue time and again at send time; never for transactional mail.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import case, exists, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs
from community.accounts.models import Member, User
from community.campaigns.models import (
    FORMATS,
    RECIPIENT_STATES,
    Campaign,
    CampaignRecipient,
    Unsubscribe,
)
from community.db import utcnow
from community.errors import Conflict, Invalid, NotFound, check_storable
from community.members import directory
from community.settings import Settings
from community.web import derived_key

DELIVER = "campaigns.deliver"
SUBJECT_MAX = 200
BODY_MAX = 100_000
EDITABLE = ("draft",)
CANCELLABLE = ("draft", "scheduled", "sending")
# The variables an owner may use in the subject and the body (Jinja2, sandboxed).
VARIABLES = {
    "name": "the member's name (may be empty)",
    "email": "the member's email address",
    "community_name": "the community's name",
    "unsubscribe_url": "the member's own unsubscribe link (every message also ends with it)",
}
SAMPLE = {"name": "Ada Lovelace", "email": "ada@example.com", "community_name": "Your community",
          "unsubscribe_url": "https://example.com/unsubscribe/sample"}

templates = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


def render(template: Any, values: dict[str, str]) -> str:
    """One render of a compiled owner template with only these variables (the environment's
    globals are not merged in: a shared context costs a tenth of Template.render's)."""
    return "".join(template.root_render_func(template.new_context(values, shared=True)))


# ---------------------------------------------------------------- checking what an owner wrote


def check_template(source: str, field: str) -> str:
    """A template that cannot render (a syntax error, a refused attribute) is refused at save
    with a 422 naming the field, never a failed send later."""
    try:
        render(templates.from_string(source), SAMPLE)
    except TemplateError as exc:
        raise Invalid(f"is not a template that renders: {exc.message or exc}", field=field) from None
    return source


def clean_subject(subject: str) -> str:
    value = " ".join(check_storable(subject, "subject").split())
    if not 1 <= len(value) <= SUBJECT_MAX:
        raise Invalid(f"a subject has 1 to {SUBJECT_MAX} characters", field="subject")
    return check_template(value, "subject")


def clean_body(body: str) -> str:
    value = check_storable(body, "body").strip("\n")
    if not value.strip() or len(value) > BODY_MAX:
        raise Invalid(f"a body has 1 to {BODY_MAX} characters", field="body")
    return check_template(value, "body")


def clean_format(value: str) -> str:
    if value not in FORMATS:
        raise Invalid("one of text or markdown", field="format")
    return value


async def check_segment(session: AsyncSession, community_id: int, segment: str) -> directory.Filters:
    """The directory's filters of a segment; an unknown one (or another community's) is a 422."""
    if not segment or not segment.strip():
        raise Invalid("choose a segment", field="segment")
    f = directory.parse_filters({"segment": segment})
    assert f.segment is not None
    await directory.segment_conditions(session, community_id, f.segment)
    return f


def check_send_at(send_at: dt.datetime | None) -> dt.datetime | None:
    if send_at is not None and send_at.tzinfo is None:
        raise Invalid("needs a time zone (UTC)", field="send_at")
    return send_at


# ---------------------------------------------------------------- audience


@dataclass(frozen=True)
class Audience:
    members: int  # as the directory counts the segment
    unsubscribed: int  # of them, skipped

    @property
    def reaches(self) -> int:
        return self.members - self.unsubscribed


def _unsubscribed(community_id: int):
    return exists().where(Unsubscribe.community_id == community_id, Unsubscribe.user_id == Member.user_id)


async def _segment_where(session: AsyncSession, community_id: int, segment: str) -> list[Any]:
    """The directory's conditions of a segment, statuses brought up to now, for a statement over
    up to every member (JIT compiling costs more than it saves there: about 0.9 s)."""
    f = await check_segment(session, community_id, segment)
    await session.execute(text("SET LOCAL jit = off"))
    await directory.recount_due(session, community_id)
    return await directory.conditions(session, community_id, f)


async def audience(session: AsyncSession, community_id: int, segment: str) -> Audience:
    where = await _segment_where(session, community_id, segment)
    total, unsubscribed = (
        await session.execute(
            select(func.count(), func.count().filter(_unsubscribed(community_id))).select_from(Member).where(*where)
        )
    ).one()
    return Audience(int(total), int(unsubscribed))


# ---------------------------------------------------------------- drafts


async def get_campaign(session: AsyncSession, community_id: int, campaign_id: int, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.community_id == community_id, Campaign.id == campaign_id)
    campaign = await session.scalar(query.with_for_update() if lock else query)
    if campaign is None:
        raise NotFound("campaign not found")
    return campaign


async def list_campaigns(session: AsyncSession, community_id: int, *, before: int | None = None, limit: int = 50) -> list[Campaign]:
    query = select(Campaign).where(Campaign.community_id == community_id).order_by(Campaign.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Campaign.id < before)
    return list((await session.scalars(query)).all())


async def create_campaign(
    session: AsyncSession, community_id: int, *, author_id: int, subject: str, body: str, format: str,
    segment: str, send_at: dt.datetime | None,
) -> Campaign:
    campaign = Campaign(
        community_id=community_id, created_by_id=author_id, subject=clean_subject(subject), body=clean_body(body),
        format=clean_format(format), segment=(await check_segment(session, community_id, segment)).segment,
        send_at=check_send_at(send_at), state="draft",
    )
    session.add(campaign)
    await session.flush()
    await session.refresh(campaign)
    return campaign


async def update_campaign(
    session: AsyncSession, community_id: int, campaign_id: int, *, subject: str | None = None, body: str | None = None,
    format: str | None = None, segment: str | None = None, send_at: dt.datetime | None = None, clear_send_at: bool = False,
) -> Campaign:
    campaign = await get_campaign(session, community_id, campaign_id, lock=True)
    if campaign.state not in EDITABLE:
        raise Conflict(f"this campaign is {campaign.state}: only a draft can be edited", field="state")
    if subject is not None:
        campaign.subject = clean_subject(subject)
    if body is not None:
        campaign.body = clean_body(body)
    if format is not None:
        campaign.format = clean_format(format)
    if segment is not None:
        campaign.segment = (await check_segment(session, community_id, segment)).segment
    if send_at is not None or clear_send_at:
        campaign.send_at = check_send_at(send_at)
    campaign.updated_at = utcnow()
    await session.flush()
    return campaign


# ---------------------------------------------------------------- sending


async def send(session: AsyncSession, community_id: int, campaign_id: int, *, expected: int | None = None) -> Campaign:
    """Send a draft: at its `send_at` if that is ahead (scheduled), else now (queued at once).
    `expected`: the audience count the sender confirmed; if the segment moved since, 409 with
    the new count, so nobody sends to more people than they agreed to."""
    campaign = await get_campaign(session, community_id, campaign_id, lock=True)
    if campaign.state != "draft":
        raise Conflict(f"this campaign is {campaign.state}: only a draft can be sent", field="state")
    if expected is not None:
        now_reaches = (await audience(session, community_id, campaign.segment)).reaches
        if now_reaches != expected:
            raise Conflict(f"the segment now reaches {now_reaches} members, not {expected}: confirm again", field="expected")
    if campaign.send_at is not None and campaign.send_at > utcnow():
        campaign.state = "scheduled"
        await session.flush()
        return campaign
    await start(session, campaign)
    return campaign


async def start(session: AsyncSession, campaign: Campaign) -> int:
    """Queue every recipient (one INSERT ... SELECT) and the delivery job, in the caller's
    transaction. Returns how many rows were queued (skipped ones included)."""
    queued = await queue_recipients(session, campaign)
    campaign.state = "sending"
    campaign.queued_at = utcnow()
    campaign.recipients_total = queued
    await jobs.enqueue(session, DELIVER, community_id=campaign.community_id, campaign_id=campaign.id)
    await session.flush()
    return queued


async def queue_recipients(session: AsyncSession, campaign: Campaign) -> int:
    cid = campaign.community_id
    where = await _segment_where(session, cid, campaign.segment)
    skipped = _unsubscribed(cid)
    rows = (
        select(
            literal(campaign.id).label("campaign_id"), Member.user_id, User.email, User.name,
            case((skipped, "skipped"), else_="queued").label("state"),
            case((skipped, "unsubscribed"), else_=None).label("detail"),
        )
        .select_from(Member)
        .join(User, User.id == Member.user_id)
        .where(*where)
    )
    statement = (
        pg_insert(CampaignRecipient)
        .from_select(["campaign_id", "user_id", "email", "name", "state", "detail"], rows)
        .on_conflict_do_nothing(index_elements=["campaign_id", "user_id"])
    )
    result = await session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def start_due(session: AsyncSession, *, limit: int = 20) -> int:
    """The cron's step: scheduled campaigns whose time has come are queued (skipping rows another
    worker holds, so two workers never queue one twice)."""
    due = (
        await session.scalars(
            select(Campaign)
            .where(Campaign.state == "scheduled", Campaign.send_at <= func.now())
            .order_by(Campaign.send_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for campaign in due:
        await start(session, campaign)
    return len(due)


async def cancel(session: AsyncSession, community_id: int, campaign_id: int) -> int:
    """Cancel a draft, a scheduled campaign or one that is sending: its queued rows become
    `cancelled` (a sender stops at its next batch; what it already claimed goes out). Returns
    how many recipients will not get it."""
    campaign = await get_campaign(session, community_id, campaign_id, lock=True)
    if campaign.state not in CANCELLABLE:
        raise Conflict(f"this campaign is {campaign.state}: there is nothing left to cancel", field="state")
    campaign.state = "cancelled"
    campaign.finished_at = utcnow()
    result = await session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "queued")
        .values(state="cancelled", updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- reading progress


async def counts(session: AsyncSession, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per campaign, how many recipients are in each state."""
    if not campaign_ids:
        return {}
    out: dict[int, dict[str, int]] = {i: {} for i in campaign_ids}
    rows = await session.execute(
        select(CampaignRecipient.campaign_id, CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id.in_(list(campaign_ids)))
        .group_by(CampaignRecipient.campaign_id, CampaignRecipient.state)
    )
    for cid, state, n in rows:
        out[cid][state] = int(n)
    return out


async def recipients(
    session: AsyncSession, community_id: int, campaign_id: int, *, state: str | None = None,
    after: int | None = None, limit: int = 50,
) -> list[CampaignRecipient]:
    """A keyset page (by user id) of a campaign's recipients, optionally of one state."""
    await get_campaign(session, community_id, campaign_id)
    query = (
        select(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign_id)
        .order_by(CampaignRecipient.user_id)
        .limit(limit)
    )
    if state is not None:
        if state not in RECIPIENT_STATES:
            raise Invalid(f"unknown state: one of {', '.join(RECIPIENT_STATES)}", field="state")
        query = query.where(CampaignRecipient.state == state)
    if after is not None:
        query = query.where(CampaignRecipient.user_id > after)
    return list((await session.scalars(query)).all())


# ---------------------------------------------------------------- unsubscribe


@lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return derived_key(secret, "unsubscribe")


def _signature(settings: Settings, community_id: int, user_id: int) -> str:
    mac = hmac.digest(_key(settings.secret_key), f"{community_id}.{user_id}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac[:18]).decode()


def unsubscribe_token(settings: Settings, community_id: int, user_id: int) -> str:
    return f"{community_id}.{user_id}.{_signature(settings, community_id, user_id)}"


def unsubscribe_url(settings: Settings, community_id: int, user_id: int) -> str:
    return f"{settings.base_url}/unsubscribe/{unsubscribe_token(settings, community_id, user_id)}"


def read_token(settings: Settings, token: str) -> tuple[int, int]:
    """(community id, user id) of a token we signed; anything else is a 404."""
    parts = token.split(".")
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and len(parts[0]) < 19 and len(parts[1]) < 19:
        cid, uid = int(parts[0]), int(parts[1])
        if hmac.compare_digest(parts[2].encode(), _signature(settings, cid, uid).encode()):
            return cid, uid
    raise NotFound("this unsubscribe link is not valid")


async def unsubscribe(session: AsyncSession, community_id: int, user_id: int) -> None:
    """Idempotent; recipients of campaigns still sending are skipped at send time."""
    await session.execute(
        pg_insert(Unsubscribe).values(community_id=community_id, user_id=user_id).on_conflict_do_nothing()
    )


async def is_unsubscribed(session: AsyncSession, community_id: int, user_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(Unsubscribe.community_id == community_id, Unsubscribe.user_id == user_id))))

