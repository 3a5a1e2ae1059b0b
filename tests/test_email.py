"""Email through the outbox: an .eml file in development, a real SMTP server when configured."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs
from community.jobs import MAX_TRIES, JobState, OutboxJob
from community.mail import service as mail
from community.mail import tasks
from community.settings import Settings
from tests.helpers import run_jobs

WAIT = 30.0
LINK = "http://testserver/login/link/abc123"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes]  # type: ignore[misc]


@dataclasses.dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    logins: list[tuple[str, str]]


def _start_smtp(**controller_kwargs: Any) -> tuple[Controller, SmtpServer]:
    inbox = Inbox()
    server = SmtpServer(port=free_port(), inbox=inbox, logins=[])
    controller = Controller(inbox, hostname="127.0.0.1", port=server.port, ready_timeout=10, **controller_kwargs)
    controller.start()
    return controller, server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    controller, server = _start_smtp()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_server_with_auth() -> Iterator[SmtpServer]:
    logins: list[tuple[str, str]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        logins.append((login, password))
        return AuthResult(success=(login, password) == ("mailer", "p@ss:word/1"))

    controller, server = _start_smtp(authenticator=authenticate, auth_require_tls=False)
    server.logins = logins
    try:
        yield server
    finally:
        controller.stop()


async def queue_login_email(sessions, to: str = "ada@example.com") -> int:
    async with sessions() as session, session.begin():
        row = await mail.queue_email(
            session, to=to, template="login_link", name="Ada", email=to, link=LINK, minutes=15, site_url="http://testserver"
        )
        return row.id


async def get_row(sessions, job_id: int) -> OutboxJob:
    async with sessions() as session:
        row = await session.get(OutboxJob, job_id)
        assert row is not None
        return row


def assert_login_email(message: EmailMessage, settings: Settings, job_id: int, to: str = "ada@example.com") -> None:
    assert message["To"] == to
    assert message["From"] == settings.mail_from
    assert message["Subject"] == "Your login link"
    assert message["Message-ID"] == f"<outbox-{job_id}@community>"
    text = message.get_body(("plain",)).get_content()
    assert "Hello Ada," in text and LINK in text and "15 minutes" in text
    html = message.get_body(("html",)).get_content()
    assert f'<a href="{LINK}">Log in</a>' in html


async def test_without_smtp_the_email_is_written_as_an_eml_file(settings: Settings, sessions) -> None:
    assert settings.smtp_url is None
    job_id = await queue_login_email(sessions)
    assert not (settings.data_dir / "mail").exists()  # nothing before the job runs

    await run_jobs(settings)

    files = sorted((settings.data_dir / "mail").iterdir())
    assert [f.name for f in files] == [f"outbox-{job_id}.eml"]
    assert_login_email(email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default), settings, job_id)
    assert (await get_row(sessions, job_id)).state is JobState.done


async def test_a_rerun_overwrites_the_eml_file(settings: Settings, sessions) -> None:
    """The job runs again after the mail went out (the worker died before its commit): one file."""
    crashes = [RuntimeError("worker died after delivering")]

    async def send_then_crash_once(session: AsyncSession, ctx: jobs.JobContext, **payload: Any) -> None:
        await tasks.send_email(session, ctx, **payload)
        if crashes:
            raise crashes.pop()

    job_id = await queue_login_email(sessions)
    await run_jobs(settings, handlers={mail.SEND_EMAIL: send_then_crash_once})

    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts) == (JobState.done, 2)
    files = list((settings.data_dir / "mail").iterdir())
    assert [f.name for f in files] == [f"outbox-{job_id}.eml"]
    assert_login_email(email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default), settings, job_id)


async def test_with_smtp_the_email_arrives_at_the_server(settings: Settings, sessions, smtp_server: SmtpServer) -> None:
    smtp_settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{smtp_server.port}")
    job_id = await queue_login_email(sessions, to="grace@example.com")

    await asyncio.wait_for(run_jobs(smtp_settings), WAIT)

    [envelope] = smtp_server.inbox.envelopes
    assert envelope.rcpt_tos == ["grace@example.com"]
    assert envelope.mail_from == "no-reply@localhost"
    [message] = smtp_server.inbox.messages()
    assert_login_email(message, smtp_settings, job_id, to="grace@example.com")
    assert (await get_row(sessions, job_id)).state is JobState.done
    assert not (settings.data_dir / "mail").exists()  # delivered, not written to a file


async def test_smtp_credentials_from_the_url_are_used(settings: Settings, sessions, smtp_server_with_auth: SmtpServer) -> None:
    server = smtp_server_with_auth
    url = f"smtp://mailer:p%40ss%3Aword%2F1@127.0.0.1:{server.port}"  # percent-encoded password
    job_id = await queue_login_email(sessions)

    await asyncio.wait_for(run_jobs(dataclasses.replace(settings, smtp_url=url)), WAIT)

    assert server.logins == [("mailer", "p@ss:word/1")]
    assert [m["To"] for m in server.inbox.messages()] == ["ada@example.com"]
    assert (await get_row(sessions, job_id)).state is JobState.done


async def test_unreachable_smtp_server_fails_the_job_for_retry(settings: Settings, sessions) -> None:
    smtp_settings = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}")  # nobody listens
    job_id = await queue_login_email(sessions)

    await asyncio.wait_for(run_jobs(smtp_settings), WAIT)

    row = await get_row(sessions, job_id)
    assert (row.state, row.attempts) == (JobState.failed, MAX_TRIES)
    assert row.last_error is not None and row.last_error.startswith("SMTPConnectError")
    assert not (settings.data_dir / "mail").exists()  # no silent fallback to a file
