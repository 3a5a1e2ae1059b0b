"""Accounts: sign-up, passwords, tokens (API and session), login links, staff roles."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import (
    AuthToken,
    LoginLink,
    Member,
    Role,
    TokenKind,
    User,
)
from community.db import utcnow
from community.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotAuthenticated,
    NotFound,
    check_storable,
)
from community.mail.service import queue_email

PASSWORD_MIN = 10
PASSWORD_MAX = 1024
LOGIN_LINK_TTL = dt.timedelta(minutes=20)
SESSION_TTL = dt.timedelta(days=30)
API_TOKEN_PREFIX = "cmt_"

# Row ids are PostgreSQL bigints; a number outside that range names no row (and the driver
# refuses to send it), so lookups answer "not found" without asking.
MAX_ID = 2**63 - 1

# argon2id at the library's defaults. The test suite sets COMMUNITY_PASSWORD_HASHING=cheapest
# (argon2's own profile for tests): the same algorithm and code paths, without ~50 ms of CPU per
# sign-up and log-in, thousands of times over. Nothing else should set it.
_hasher = (
    PasswordHasher.from_parameters(profiles.CHEAPEST)
    if os.environ.get("COMMUNITY_PASSWORD_HASHING") == "cheapest"
    else PasswordHasher()
)
# Verified when the email is unknown, so a miss costs as long as a hit (no account probing by timing).
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


# ---------------------------------------------------------------- users and passwords


def normalize_email(email: str, field: str = "email") -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise Invalid(str(exc), field=field) from None


def check_password_rules(password: str, field: str = "password") -> None:
    if len(password) < PASSWORD_MIN:
        raise Invalid(f"must be at least {PASSWORD_MIN} characters", field=field)
    if len(password) > PASSWORD_MAX:
        raise Invalid(f"must be at most {PASSWORD_MAX} characters", field=field)


async def _hash(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)  # argon2 is CPU-bound by design


async def _verify(password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _is_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    if "\x00" in email:
        return None  # no stored address holds one (and PostgreSQL text cannot)
    return await session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def names_of(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    """Display names (never addresses: pages show authors to other members)."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(sorted(user_ids))))
    return {row.id: row.name for row in rows}


async def sign_up(session: AsyncSession, *, email: str, password: str, name: str) -> User:
    email = normalize_email(email)
    check_password_rules(password)
    existing = await find_user_by_email(session, email)
    if existing is not None and existing.password_hash is None:
        # Invited by a community's staff: the email owner proves it through the login link.
        raise Conflict("this email was invited: log in with the link sent to it, then set a password", field="email")
    if existing is not None:
        raise Conflict("an account with this email already exists", field="email")
    name = check_storable(name, "name").strip()
    password_hash = await _hash(password)
    user = User(email=email, name=name, password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("an account with this email already exists", field="email") from None
    return user


async def ensure_user(session: AsyncSession, email: str) -> tuple[User, bool]:
    """The user with this email, created without a password if new (an invitation)."""
    email = normalize_email(email)
    user = await find_user_by_email(session, email)
    if user is not None:
        return user, False
    # Two communities may invite the same new address at the same moment: the second insert
    # does nothing and reads the first one's row.
    created = await session.scalar(
        pg_insert(User).values(email=email, name="", password_hash=None).on_conflict_do_nothing().returning(User.id)
    )
    user = await find_user_by_email(session, email)
    if user is None:  # pragma: no cover - the conflicting row is committed by then
        raise Conflict("this email is being registered right now; try again", field="email")
    return user, created is not None


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User:
    user = await find_user_by_email(session, email)
    ok = await _verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    if user is None or user.password_hash is None or not ok:
        raise NotAuthenticated("wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await _hash(password)
    user.last_login_at = utcnow()
    return user


async def check_current_password(user: User, given: str | None) -> None:
    """Someone with a password proves it is them before changing their password or address."""
    if user.password_hash is not None and not await _verify(user.password_hash, given or ""):
        raise Invalid("does not match your current password", field="current_password")


async def update_profile(
    session: AsyncSession,
    user: User,
    *,
    name: str | None,
    password: str | None,
    current_password: str | None,
    address_proven: bool = True,
) -> User:
    """`address_proven`: the caller came in through a link sent to the account's address (or an
    API token, which only a password or such a link gives). A buyer's account made at checkout
    logs its browser in once without that proof: whoever typed the address must open the
    emailed link before choosing the account's first password."""
    if name is not None:
        user.name = check_storable(name, "name").strip()
    if password is not None:
        check_password_rules(password)
        if user.password_hash is None and not address_proven:
            raise Forbidden(
                "open the login link sent to your email first: it proves the address is yours", field="password"
            )
        await check_current_password(user, current_password)
        user.password_hash = await _hash(password)
    await session.flush()
    return user


# ---------------------------------------------------------------- tokens


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    user_id: int,
    kind: TokenKind,
    name: str = "",
    ttl: dt.timedelta | None = None,
) -> tuple[AuthToken, str]:
    """Returns the row and the secret; only the secret's hash is stored."""
    secret = (API_TOKEN_PREFIX if kind is TokenKind.api else "") + secrets.token_urlsafe(32)
    token = AuthToken(
        user_id=user_id,
        kind=kind,
        name=check_storable(name, "name").strip(),
        token_hash=hash_secret(secret),
        expires_at=utcnow() + ttl if ttl else None,
    )
    session.add(token)
    await session.flush()
    return token, secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved once per request from a bearer token or a session cookie."""

    user_id: int
    token_id: int


LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


async def resolve_token(session: AsyncSession, secret: str, kind: TokenKind) -> Principal | None:
    """The hot path of every authenticated request: one indexed Core SELECT, no ORM objects.
    `last_used_at` is written at most once a minute per token, so reads stay reads."""
    now = utcnow()
    row = (
        await session.execute(
            select(AuthToken.id, AuthToken.user_id, AuthToken.last_used_at).where(
                AuthToken.token_hash == hash_secret(secret),
                AuthToken.kind == kind,
                AuthToken.revoked_at.is_(None),
                (AuthToken.expires_at.is_(None)) | (AuthToken.expires_at > now),
            )
        )
    ).first()
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
        await session.execute(
            update(AuthToken)
            .where(AuthToken.id == row.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return Principal(user_id=row.user_id, token_id=row.id)


async def list_api_tokens(session: AsyncSession, user_id: int) -> list[AuthToken]:
    return list(
        (
            await session.scalars(
                select(AuthToken)
                .where(AuthToken.user_id == user_id, AuthToken.kind == TokenKind.api, AuthToken.revoked_at.is_(None))
                .order_by(AuthToken.id)
            )
        ).all()
    )


async def revoke_token(session: AsyncSession, *, user_id: int, token_id: int, kind: TokenKind | None = None) -> None:
    if not _is_id(token_id):
        raise NotFound("token not found")
    query = (
        update(AuthToken)
        .where(AuthToken.id == token_id, AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(AuthToken.id)
    )
    if kind is not None:
        query = query.where(AuthToken.kind == kind)
    if (await session.execute(query)).first() is None:
        raise NotFound("token not found")


# ---------------------------------------------------------------- login links


async def request_login_link(session: AsyncSession, *, email: str, base_url: str) -> None:
    """Emails a one-time link if the account exists; says nothing either way (no account probing)."""
    user = await find_user_by_email(session, normalize_email(email))
    if user is None:
        return
    link = await create_login_link(session, user=user, base_url=base_url)
    await queue_email(
        session,
        to=user.email,
        template="login_link",
        name=user.name,
        email=user.email,
        link=link,
        minutes=int(LOGIN_LINK_TTL.total_seconds() // 60),
        site_url=base_url,
    )


async def create_login_link(session: AsyncSession, *, user: User, base_url: str) -> str:
    secret = secrets.token_urlsafe(32)
    session.add(LoginLink(user_id=user.id, token_hash=hash_secret(secret), expires_at=utcnow() + LOGIN_LINK_TTL))
    await session.flush()
    return f"{base_url}/login/link/{secret}"


async def redeem_login_link(session: AsyncSession, secret: str) -> User:
    """One-time: the conditional UPDATE lets exactly one of two concurrent redemptions win."""
    now = utcnow()
    user_id = await session.scalar(
        update(LoginLink)
        .where(LoginLink.token_hash == hash_secret(secret), LoginLink.used_at.is_(None), LoginLink.expires_at > now)
        .values(used_at=now)
        .returning(LoginLink.user_id)
    )
    if user_id is None:
        raise NotAuthenticated("this login link is invalid, used or expired; ask for a new one")
    user = await get_user(session, user_id)
    user.last_login_at = now
    return user


# ---------------------------------------------------------------- community roles

STAFF = (Role.owner, Role.admin, Role.manager)
EDITORS = (Role.owner, Role.admin)


async def membership(session: AsyncSession, community_id: int, user_id: int) -> Member | None:
    if not _is_id(community_id):
        return None
    return await session.scalar(
        select(Member).where(Member.community_id == community_id, Member.user_id == user_id)
    )


async def require_role(session: AsyncSession, community_id: int, user_id: int, roles: tuple[Role, ...]) -> Member:
    """404 for anyone outside the community (its existence is not revealed), 403 for a
    member whose role is not enough."""
    member = await membership(session, community_id, user_id)
    if member is None:
        raise NotFound("community not found")
    if member.role not in roles:
        raise Forbidden(f"this needs one of these roles: {', '.join(r.value for r in roles)}")
    return member


async def join(session: AsyncSession, *, community_id: int, user_id: int, role: Role | None = None) -> Member:
    member = await membership(session, community_id, user_id)
    if member is None:
        member = Member(community_id=community_id, user_id=user_id, role=role)
        session.add(member)
        await session.flush()
    elif role is not None:
        member.role = role
    return member


async def list_staff(session: AsyncSession, community_id: int) -> list[tuple[Member, User]]:
    rows = await session.execute(
        select(Member, User)
        .join(User, User.id == Member.user_id)
        .where(Member.community_id == community_id, Member.role.is_not(None))
        .order_by(Member.id)
    )
    return [(m, u) for m, u in rows.all()]


async def _lock_staff(session: AsyncSession, community_id: int, actor: Member) -> int:
    """Serialise changes to a community's staff: lock its owner rows (in id order, so two
    changes never deadlock), then re-read the actor's role, which a change that committed
    while we waited may have taken away. Returns the number of owners.

    Without the lock, two owners demoting or removing each other at the same moment both see
    two owners and both succeed: a community with no owner."""
    owners = (
        await session.scalars(
            select(Member.id)
            .where(Member.community_id == community_id, Member.role == Role.owner)
            .order_by(Member.id)
            .with_for_update()
        )
    ).all()
    await session.refresh(actor)
    return len(owners)


def _check_can_manage(actor: Member, current: Role | None, wanted: Role | None) -> None:
    if actor.role not in EDITORS:
        raise Forbidden("only owners and admins manage staff")
    if actor.role is not Role.owner and Role.owner in (current, wanted):
        raise Forbidden("only an owner can make, demote or remove an owner")


async def set_staff_role(
    session: AsyncSession,
    *,
    community_id: int,
    community_name: str,
    actor: Member,
    actor_name: str,
    email: str,
    role: Role,
    base_url: str,
) -> tuple[Member, User]:
    """Give the person with this email a staff role, inviting them if they have no account."""
    _check_can_manage(actor, None, role)  # refuse a manager, or an admin naming an owner, before any write
    owners = await _lock_staff(session, community_id, actor)
    user, _ = await ensure_user(session, email)
    existing = await membership(session, community_id, user.id)
    current = existing.role if existing else None
    _check_can_manage(actor, current, role)
    if current is Role.owner and role is not Role.owner and owners <= 1:
        raise Conflict("a community keeps at least one owner", field="role")
    member = await join(session, community_id=community_id, user_id=user.id, role=role)
    if current is not role:
        # No password yet (a new or never-activated invitee): the email carries a way in.
        link = await create_login_link(session, user=user, base_url=base_url) if user.password_hash is None else None
        await queue_email(
            session,
            to=user.email,
            template="staff_invite",
            community_id=community_id,
            name=user.name,
            email=user.email,
            role=role.value,
            community_name=community_name,
            inviter=actor_name,
            link=link,
            minutes=int(LOGIN_LINK_TTL.total_seconds() // 60),
            site_url=base_url,
        )
    return member, user


async def remove_staff(session: AsyncSession, *, community_id: int, actor: Member, member_id: int) -> None:
    """Takes the role away; the person stays a member of the community."""
    owners = await _lock_staff(session, community_id, actor)
    member = await session.scalar(
        select(Member).where(Member.id == member_id, Member.community_id == community_id).with_for_update()
    )
    if member is None or member.role is None:
        raise NotFound("staff member not found")
    _check_can_manage(actor, member.role, None)
    if member.role is Role.owner and owners <= 1:
        raise Conflict("a community keeps at least one owner")
    member.role = None
    await session.flush()
