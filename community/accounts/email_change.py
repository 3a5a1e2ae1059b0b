"""Changing an account's email: a link goes to the NEW address and the change happens only when
that link is confirmed (with a button: a mail scanner's prefetch of the link changes nothing),
once, before it expires, by the account that asked. The old address is told."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import EmailChange, LoginLink, User
from community.accounts.service import (
    check_current_password,
    find_user_by_email,
    get_user,
    hash_secret,
    normalize_email,
)
from community.db import utcnow
from community.errors import Conflict, Invalid, NotFound
from community.mail.service import queue_email

EMAIL_CHANGE_TTL = dt.timedelta(hours=24)
TAKEN = "an account with this email already exists"
LINK_REFUSED = "this email change link is invalid, used or expired; ask for a new one from your account page"


def confirm_path(secret: str) -> str:
    return f"/account/email/{secret}"


async def request_email_change(
    session: AsyncSession, user: User, *, new_email: str, current_password: str | None, base_url: str
) -> EmailChange:
    """Emails a confirmation link to the new address; an earlier request still waiting is void."""
    new_email = normalize_email(new_email)
    if new_email.lower() == user.email.lower():
        raise Invalid("this is already your email", field="email")
    await check_current_password(user, current_password)
    if await find_user_by_email(session, new_email) is not None:
        raise Conflict(TAKEN, field="email")
    now = utcnow()
    await session.execute(
        update(EmailChange).where(EmailChange.user_id == user.id, EmailChange.used_at.is_(None)).values(used_at=now)
    )
    secret = secrets.token_urlsafe(32)
    change = EmailChange(user_id=user.id, new_email=new_email, token_hash=hash_secret(secret), expires_at=now + EMAIL_CHANGE_TTL)
    session.add(change)
    await session.flush()
    await queue_email(
        session,
        to=new_email,
        template="email_change",
        name=user.name,
        old_email=user.email,
        new_email=new_email,
        link=base_url + confirm_path(secret),
        hours=int(EMAIL_CHANGE_TTL.total_seconds() // 3600),
        site_url=base_url,
    )
    return change


async def pending_email_change(session: AsyncSession, user_id: int) -> EmailChange | None:
    """The request still waiting for its link, if any."""
    return await session.scalar(
        select(EmailChange)
        .where(EmailChange.user_id == user_id, EmailChange.used_at.is_(None), EmailChange.expires_at > utcnow())
        .order_by(EmailChange.id.desc())
        .limit(1)
    )


async def waiting_change(session: AsyncSession, user_id: int, secret: str) -> EmailChange:
    """The request a link names, while it can still be confirmed by this user (the page that asks
    for the button shows its address). Another user's link is refused like an unknown one."""
    change = await session.scalar(
        select(EmailChange).where(
            EmailChange.token_hash == hash_secret(secret),
            EmailChange.user_id == user_id,
            EmailChange.used_at.is_(None),
            EmailChange.expires_at > utcnow(),
        )
    )
    if change is None:
        raise NotFound(LINK_REFUSED, field="token")
    return change


async def confirm_email_change(session: AsyncSession, user_id: int, secret: str, *, base_url: str) -> User:
    """One-time: the conditional UPDATE lets exactly one of two concurrent confirmations win."""
    now = utcnow()
    new_email = await session.scalar(
        update(EmailChange)
        .where(
            EmailChange.token_hash == hash_secret(secret),
            EmailChange.user_id == user_id,
            EmailChange.used_at.is_(None),
            EmailChange.expires_at > now,
        )
        .values(used_at=now)
        .returning(EmailChange.new_email)
    )
    if new_email is None:
        raise NotFound(LINK_REFUSED, field="token")
    user = await get_user(session, user_id)
    taken = await find_user_by_email(session, new_email)
    if taken is not None and taken.id != user.id:  # someone signed up with it since the request
        raise Conflict(TAKEN, field="email")
    old_email = user.email
    try:
        async with session.begin_nested():
            user.email = new_email
            await session.flush()
    except IntegrityError:  # taken at this very moment
        raise Conflict(TAKEN, field="email") from None
    # Links already sent to the old address no longer open the account, nor do other requests.
    await session.execute(
        update(LoginLink).where(LoginLink.user_id == user.id, LoginLink.used_at.is_(None)).values(used_at=now)
    )
    await session.execute(
        update(EmailChange).where(EmailChange.user_id == user.id, EmailChange.used_at.is_(None)).values(used_at=now)
    )
    await queue_email(
        session,
        to=old_email,
        template="email_changed",
        name=user.name,
        old_email=old_email,
        new_email=new_email,
        site_url=base_url,
    )
    return user
