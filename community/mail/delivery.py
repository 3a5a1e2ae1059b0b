"""Deliver email through SMTP when COMMUNITY_SMTP_URL is set, else as .eml files: one message
(`deliver`, a connection each), or many on one kept connection (`Mailer`)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from community.settings import Settings

log = logging.getLogger("community.mail")


def build_message(
    settings: Settings, *, to: str, subject: str, text: str, html: str | None, message_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    # Derived from the outbox row: a re-sent duplicate carries the same id and can be spotted.
    message["Message-ID"] = f"<{message_id}@community>"
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


async def deliver(settings: Settings, message: EmailMessage, *, file_stem: str) -> Path | None:
    if settings.smtp_url:
        await _send_smtp(settings.smtp_url, message)
        return None
    path = _write_eml(settings, bytes(message), file_stem)
    log.info("email to %s (%s) written to %s", message["To"], message["Subject"], path)
    return path


def _write_eml(settings: Settings, message: bytes, stem: str) -> Path:
    folder = Path(settings.data_dir) / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.eml"
    path.write_bytes(message)  # same stem on a re-run: overwritten, not duplicated
    return path


async def _send_smtp(url: str, message: EmailMessage) -> None:
    async with _client(url) as client:
        await client.send_message(message)


def _client(url: str) -> aiosmtplib.SMTP:
    """smtp://user:pass@host:25 (STARTTLS when offered), smtps://host:465 (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("COMMUNITY_SMTP_URL must start with smtp:// or smtps://")
    implicit_tls = parts.scheme == "smtps"
    return aiosmtplib.SMTP(
        hostname=parts.hostname or "localhost",
        port=parts.port or (465 if implicit_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit_tls,
        start_tls=None if not implicit_tls else False,
        timeout=30,
    )


class Mailer:
    """One SMTP connection kept open across many messages (campaigns, an access run's messages),
    reconnected when lost; without COMMUNITY_SMTP_URL, messages are written as .eml files."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: aiosmtplib.SMTP | None = None

    async def connect(self) -> None:
        if self.client is not None and self.client.is_connected or not self.settings.smtp_url:
            return
        self.client = _client(self.settings.smtp_url)
        await self.client.connect()

    async def send(self, sender: str, to: str, message: bytes, stem: str) -> None:
        """A message already made into bytes (campaigns build theirs by hand)."""
        if not self.settings.smtp_url:
            _write_eml(self.settings, message, stem)
            return
        assert self.client is not None
        await self.client.sendmail(sender, [to], message)

    async def send_message(self, message: EmailMessage, stem: str) -> None:
        if not self.settings.smtp_url:
            _write_eml(self.settings, bytes(message), stem)
            return
        assert self.client is not None
        await self.client.send_message(message)

    async def close(self) -> None:
        if self.client is not None and self.client.is_connected:
            try:
                await self.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self.client.close()
        self.client = None


def refusal_outcome(exc: Exception) -> tuple[str, str]:
    """(state, detail) of an SMTP refusal: a permanent 5xx is a bounce, anything else a failure."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return ("bounced" if 500 <= exc.code < 600 else "failed"), f"{exc.code} {exc.message}"[:2000]
    return "failed", f"{type(exc).__name__}: {exc}"[:2000]
