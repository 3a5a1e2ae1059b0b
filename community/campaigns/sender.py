"""Delivering a campaign: batches claimed from the queue, sent on one reused SMTP connection,
throttled to COMMUNITY_CAMPAIGN_RATE messages a second, each recipient at most once.

**At most once, and how.** A batch is *claimed* in its own committed transaction: its rows go
from `queued` to `sending` (`FOR UPDATE SKIP LOCKED`, so two workers never claim one row;
unsubscribed members go to `skipped` in the same step). Only then does SMTP see them; after the
server's answers the batch's outcomes are written in one UPDATE (`sent`, `failed` with the
server's answer, `bounced` on a permanent 5xx). A row in `sending` is never claimed again: if
a worker dies between the server accepting a message and our write (at most one batch), those
rows stay `sending` and, once older than STALE, are marked `failed` with "outcome unknown". The
tradeoff, chosen on purpose: such a member may miss the campaign (rare, visible on the
campaign's page), never get it twice. A connection lost mid-batch puts the rows not yet tried
back to `queued` (they were never handed to SMTP); the one in flight is `failed` (unknown).

A rerun of the job (or a second worker) claims only `queued` rows, so it sends nothing twice.
Cancelling turns the `queued` rows into `cancelled`: the sender finds nothing to claim at its
next batch and stops (the claim reads the campaign's state under a share lock, so a cancel
waits for a claim in progress and the other way round).
"""

from __future__ import annotations

import asyncio
import binascii
import datetime as dt
import html
import logging
import re
import secrets
import time
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

import aiosmtplib
from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community.campaigns import service
from community.campaigns.models import Campaign
from community.hubs import service as hubs
from community.mail.delivery import Mailer, refusal_outcome
from community.markdown import render_markdown
from community.settings import Settings

log = logging.getLogger("community.campaigns")

BATCH_MAX = 200
STALE = dt.timedelta(minutes=15)  # a claim this old has no live sender (the job timeout is 9 minutes)

CLAIM = text("""
WITH picked AS (
    SELECT user_id FROM campaign_recipients
    WHERE campaign_id = :campaign AND state = 'queued'
    ORDER BY user_id LIMIT :n FOR UPDATE SKIP LOCKED
)
UPDATE campaign_recipients r
SET state = CASE WHEN EXISTS (SELECT 1 FROM campaign_unsubscribes u WHERE u.community_id = :community AND u.user_id = r.user_id) THEN 'skipped' ELSE 'sending' END,
    detail = CASE WHEN EXISTS (SELECT 1 FROM campaign_unsubscribes u WHERE u.community_id = :community AND u.user_id = r.user_id) THEN 'unsubscribed' END,
    updated_at = now()
FROM picked
WHERE r.campaign_id = :campaign AND r.user_id = picked.user_id
RETURNING r.user_id, r.email, r.name, r.state
""")
RECORD = text("""
UPDATE campaign_recipients r SET state = v.state, detail = v.detail, updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), CAST(:details AS text[])) AS v(id, state, detail)
WHERE r.campaign_id = :campaign AND r.user_id = v.id AND r.state = 'sending'
""")
RELEASE = text("UPDATE campaign_recipients SET state = 'queued', updated_at = now() "
               "WHERE campaign_id = :campaign AND user_id = ANY(CAST(:ids AS bigint[])) AND state = 'sending'")
UNKNOWN = "outcome unknown: the sender stopped between handing it to the mail server and recording the answer; not retried, so that nobody gets it twice"
STALE_SENDING = text("""
UPDATE campaign_recipients SET state = 'failed', detail = :detail, updated_at = now()
WHERE campaign_id = :campaign AND state = 'sending' AND updated_at < now() - make_interval(secs => :stale)
""")
FINISH = text("""
UPDATE campaigns SET state = 'sent', finished_at = now()
WHERE id = :campaign AND state = 'sending' AND NOT EXISTS (
    SELECT 1 FROM campaign_recipients WHERE campaign_id = :campaign AND state IN ('queued', 'sending'))
""")


SETTLE_STALE = text("""
UPDATE campaign_recipients SET state = 'failed', detail = :detail, updated_at = now()
WHERE campaign_id IN (SELECT id FROM campaigns WHERE state = 'sending')
  AND state = 'sending' AND updated_at < now() - make_interval(secs => :stale)
""")
FINISH_ALL = text("""
UPDATE campaigns c SET state = 'sent', finished_at = now()
WHERE c.state = 'sending' AND NOT EXISTS (
    SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = c.id AND r.state IN ('queued', 'sending'))
""")


async def settle_stale(session: AsyncSession) -> None:
    """The cron's step for campaigns whose last sender died mid-batch: its claims, once stale,
    end `failed` (outcome unknown, not retried) and the campaign is finished."""
    await session.execute(SETTLE_STALE, {"detail": UNKNOWN, "stale": STALE.total_seconds()})
    await session.execute(FINISH_ALL)


def batch_size(rate: float) -> int:
    """About five seconds of sending at the configured rate, at most BATCH_MAX: a dead worker
    leaves at most one such batch without a known outcome."""
    return BATCH_MAX if rate <= 0 else max(1, min(BATCH_MAX, int(rate * 5)))


# ---------------------------------------------------------------- the message

# Owner's Jinja tokens, kept out of the Markdown renderer: the body's Markdown is rendered once
# per campaign (about 1 ms a render), then each recipient's HTML is a Jinja render (autoescaped).
_TOKEN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_html_templates = ImmutableSandboxedEnvironment(autoescape=True, keep_trailing_newline=True)


def _html_template(body: str) -> Any | None:
    """The body's HTML as one Jinja template: Markdown rendered with each Jinja token replaced by
    a placeholder, the tokens put back. None if that does not compile (then each recipient's
    body is rendered through Markdown on its own)."""
    tokens: list[str] = []

    def hide(match: re.Match[str]) -> str:
        tokens.append(match.group(0))
        return f"zqjinja{len(tokens) - 1}zq"

    rendered = render_markdown(_TOKEN.sub(hide, body))
    if any(f"zqjinja{i}zq" not in rendered for i in range(len(tokens))):
        return None
    for i, token in enumerate(tokens):
        rendered = rendered.replace(f"zqjinja{i}zq", token, 1)
    try:
        return _html_templates.from_string(rendered)
    except TemplateError:
        return None


def _header(value: str) -> str:
    """A header value: ASCII as is (one line), else RFC 2047 encoded words (folded)."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode()


_dates: dict[int, str] = {}


def _date() -> str:
    """The Date header, formatted once a second."""
    now = int(time.time())
    if now not in _dates:
        _dates.clear()
        _dates[now] = formatdate(now, usegmt=True)
    return _dates[now]


def _part(content_type: str, body: str) -> bytes:
    data = binascii.b2a_qp(body.replace("\r\n", "\n").encode(), istext=True).replace(b"\n", b"\r\n")
    return (f"Content-Type: {content_type}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + data


@dataclass
class Renderer:
    """Compiled once per campaign; renders each recipient's message as MIME bytes (built by
    hand: the standard library's EmailMessage costs about 6 ms a message, more than SMTP)."""

    settings: Settings
    campaign_id: int
    community_id: int
    community_name: str
    subject: Any
    body: Any
    html: Any | None  # the HTML part's template (markdown only); None: render Markdown per recipient
    markdown: bool
    sender: str
    from_header: str

    @classmethod
    def of(cls, settings: Settings, campaign: Campaign, community_name: str) -> Renderer:
        markdown = campaign.format == "markdown"
        name, address = parseaddr(settings.mail_from)
        return cls(
            settings, campaign.id, campaign.community_id, community_name,
            service.templates.from_string(campaign.subject), service.templates.from_string(campaign.body),
            _html_template(campaign.body) if markdown else None, markdown, address or "no-reply@localhost",
            formataddr((name, address or "no-reply@localhost"), "utf-8"),
        )

    def variables(self, user_id: int, email: str, name: str) -> dict[str, str]:
        return {"name": name, "email": email, "community_name": self.community_name,
                "unsubscribe_url": service.unsubscribe_url(self.settings, self.community_id, user_id)}

    def parts(self, user_id: int, email: str, name: str) -> tuple[str, str, str | None, str]:
        """(subject, text, html or None, unsubscribe url) for one recipient: the preview shows exactly this."""
        values = self.variables(user_id, email, name)
        url = values["unsubscribe_url"]
        subject = " ".join(service.render(self.subject, values).split())[: service.SUBJECT_MAX] or "(no subject)"
        body = service.render(self.body, values)
        because = f"You get this because you are a member of {self.community_name}."
        text_part = f"{body.rstrip()}\n\n-- \n{because} Unsubscribe: {url}\n"
        html_part = None
        if self.markdown:
            inner = service.render(self.html, values) if self.html is not None else render_markdown(body)
            html_part = (f'{inner}<hr>\n<p>{html.escape(because)} <a href="{html.escape(url)}">Unsubscribe</a></p>\n')
        return subject, text_part, html_part, url

    def message(self, user_id: int, email: str, name: str) -> bytes:
        subject, text_part, html_part, url = self.parts(user_id, email, name)
        head = (
            f"From: {self.from_header}\r\nTo: {_header(email)}\r\nSubject: {_header(subject)}\r\n"
            f"Date: {_date()}\r\nMessage-ID: <campaign-{self.campaign_id}-{user_id}@community>\r\n"
            f"List-Unsubscribe: <{url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n"
        ).encode()
        if html_part is None:
            return head + _part("text/plain", text_part)
        boundary = f"=_campaign_{secrets.token_hex(12)}"
        return (
            head + f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n".encode()
            + _part("text/plain", text_part) + f"\r\n--{boundary}\r\n".encode()
            + _part("text/html", html_part) + f"\r\n--{boundary}--\r\n".encode()
        )


def preview(settings: Settings, campaign: Campaign, community_name: str, *, name: str, email: str, user_id: int) -> tuple[str, str, str | None]:
    """(subject, text, html) of the message as this person would get it: the console's preview."""
    subject, text_part, html_part, _ = Renderer.of(settings, campaign, community_name).parts(user_id, email, name)
    return subject, text_part, html_part


# ---------------------------------------------------------------- SMTP


# ---------------------------------------------------------------- the loop


@dataclass
class Pace:
    """At most `rate` messages a second from this sender, counted from its start."""

    rate: float
    start: float = 0.0
    sent: int = 0

    async def wait(self) -> None:
        if self.rate <= 0:
            return
        if not self.start:
            self.start = time.monotonic()
        ahead = self.start + self.sent / self.rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        self.sent += 1


async def deliver_campaign(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, campaign_id: int, *,
    budget: float | None = None, mailer: Mailer | None = None,
) -> str:
    """Send what is queued of a campaign, batch after batch. Returns `done` (nothing left to
    claim), `more` (the time budget ran out; call again) or `stopped` (not sending: cancelled)."""
    async with sessions() as session, session.begin():
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None or campaign.state != "sending":
            return "stopped"
        renderer = Renderer.of(settings, campaign, (await hubs.get_community(session, campaign.community_id)).name)
        await session.execute(STALE_SENDING, {"campaign": campaign_id, "detail": UNKNOWN, "stale": STALE.total_seconds()})
    community_id = renderer.community_id
    own_mailer = mailer is None
    mailer = mailer or Mailer(settings)
    pace = Pace(settings.campaign_rate)
    until = None if budget is None else time.monotonic() + budget
    size = batch_size(settings.campaign_rate)
    try:
        while True:
            if until is not None and time.monotonic() > until:
                return "more"
            async with sessions() as session, session.begin():
                state = (await session.execute(
                    text("SELECT state FROM campaigns WHERE id = :c FOR SHARE"), {"c": campaign_id})).scalar()
                if state != "sending":
                    return "stopped"
                claimed = (await session.execute(CLAIM, {"campaign": campaign_id, "community": community_id, "n": size})).all()
                if not claimed:
                    await session.execute(FINISH, {"campaign": campaign_id})
                    return "done"
            batch = [r for r in claimed if r.state == "sending"]
            if batch:
                await send_batch(sessions, renderer, mailer, pace, batch)
    finally:
        if own_mailer:
            await mailer.close()


async def send_batch(sessions: async_sessionmaker[AsyncSession], renderer: Renderer, mailer: Mailer, pace: Pace, batch: list[Any]) -> None:
    ids: list[int] = []
    states: list[str] = []
    details: list[str | None] = []
    untried: list[int] = []
    try:
        await mailer.connect()
    except Exception:
        async with sessions() as session, session.begin():  # nothing was handed to SMTP: back in line
            await session.execute(RELEASE, {"campaign": renderer.campaign_id, "ids": [r.user_id for r in batch]})
        raise
    for n, r in enumerate(batch):
        message = renderer.message(r.user_id, r.email, r.name)
        await pace.wait()
        try:
            await mailer.send(renderer.sender, r.email, message, f"campaign-{renderer.campaign_id}-{r.user_id}")
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
            state, detail = refusal_outcome(exc)
        except (aiosmtplib.SMTPException, OSError) as exc:  # the connection is gone: this one unknown, the rest untried
            ids.append(r.user_id)
            states.append("failed")
            details.append(f"{UNKNOWN} ({type(exc).__name__}: {exc})"[:2000])
            untried = [x.user_id for x in batch[n + 1 :]]
            await mailer.close()
            break
        else:
            state, detail = "sent", None
        ids.append(r.user_id)
        states.append(state)
        details.append(detail)
    async with sessions() as session, session.begin():
        await session.execute(RECORD, {"campaign": renderer.campaign_id, "ids": ids, "states": states, "details": details})
        if untried:
            await session.execute(RELEASE, {"campaign": renderer.campaign_id, "ids": untried})
