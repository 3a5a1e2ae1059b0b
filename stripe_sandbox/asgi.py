"""A few lines of ASGI plumbing: the sandbox needs no framework, only requests and responses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY = 1 << 20


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def form(self) -> dict[str, str]:
        """A flat form or JSON body (the sandbox's pages and controls)."""
        if self.headers.get("content-type", "").startswith("application/json"):
            data = json.loads(self.body or b"{}")
            return data if isinstance(data, dict) else {}
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def args(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), [("content-type", "application/json"), *(headers or [])])


def html_response(html: str, status: int = 200) -> Response:
    return Response(
        status, html.encode(), [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]
    )


def redirect(url: str) -> Response:
    return Response(303, b"", [("location", url)])


Handler = Callable[..., Response]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]] | None:
        for route_method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found and route_method == method:
                return handler, found.groups()
        return None


async def read_request(scope: dict[str, Any], receive: Callable[[], Any]) -> Request | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=b"".join(chunks),
    )


async def send_response(send: Callable[[dict[str, Any]], Any], response: Response) -> None:
    # with a Content-Length the server sends no chunked-encoding trailer of its own
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
