"""Errors in Stripe's shape: the status code picks the SDK's exception class (400/404
InvalidRequestError or IdempotencyError, 401 AuthenticationError, 402 CardError, 403
PermissionError)."""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
        error.update(self.extra)
        return {"error": error}


class ParameterError(SandboxError):
    """The request's parameters failed validation before the endpoint ran: Stripe saves no
    idempotent answer for these (the same key may be retried with corrected parameters)."""


def no_such(kind: str, object_id: str, param: str = "id") -> SandboxError:
    return SandboxError(f"No such {kind}: '{object_id}'", status=404, param=param, code="resource_missing")
