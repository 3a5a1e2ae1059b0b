from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, description="Compared case-insensitively.")]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
Name = Annotated[str, msgspec.Meta(max_length=200)]
TokenName = Annotated[str, msgspec.Meta(max_length=100)]


class SignUp(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Name = ""


class LogIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    token_name: TokenName = "login"


class LoginLinkRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class LoginLinkRedeem(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=10, max_length=200)]
    token_name: TokenName = "login link"


class ProfileUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    password: Password | None = None
    current_password: Password | None = None


class EmailChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Move the account to another address: a link is sent there, and the change happens when
    it is confirmed. Someone with a password gives it."""

    email: Email
    current_password: Password | None = None


class EmailChangeConfirm(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=10, max_length=200, description="The token at the end of the emailed link.")]


class EmailChangeOut(msgspec.Struct):
    """An address waiting for its link to be confirmed."""

    new_email: str
    requested_at: dt.datetime
    expires_at: dt.datetime


class EmailState(msgspec.Struct):
    email: str
    pending: EmailChangeOut | None


def email_change_out(change) -> EmailChangeOut:
    return EmailChangeOut(new_email=change.new_email, requested_at=change.created_at, expires_at=change.expires_at)


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: TokenName
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class UserOut(msgspec.Struct):
    id: int
    email: str
    name: str
    has_password: bool
    created_at: dt.datetime


class TokenOut(msgspec.Struct):
    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None


class TokenCreated(msgspec.Struct):
    token: TokenOut
    secret: str  # shown once; only its hash is kept


class Session(msgspec.Struct):
    """A bearer token for the API, returned by sign-up and log-in."""

    user: UserOut
    token: TokenOut
    secret: str


def user_out(user) -> UserOut:
    return UserOut(
        id=user.id, email=user.email, name=user.name, has_password=user.password_hash is not None, created_at=user.created_at
    )


def token_out(token) -> TokenOut:
    return TokenOut(
        id=token.id, name=token.name, created_at=token.created_at, last_used_at=token.last_used_at, expires_at=token.expires_at
    )
