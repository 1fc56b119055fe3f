"""Outermost middleware: the typed request context, the access log line, last-resort 500s.

Every HTTP request gets a `RequestContext` (request id, arrival time; the caller once auth has
run; the error code the request was answered with, for the log). Routes and dependencies read
it with `get_request_context`; ASGI middleware with `context_of(scope)`. Every response gets
`x-request-id` (the client's own when it is valid, else `req_` + 24 hex digits). Anything that
escapes the app before the response started becomes the contract's `internal` body; the log
gets the request id, route, status, duration and error code only.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pictale_server.api.error_bodies import error_body
from pictale_server.errors import ApiError

access_log = logging.getLogger("pictale.access")
logger = logging.getLogger("pictale.server")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CONTEXT_SCOPE_KEY = "pictale.context"  # where the middleware keeps the context in the ASGI scope


@dataclass
class RequestContext:
    request_id: str
    arrived: float  # time.perf_counter() when the request reached the app
    caller: str | None = None  # set by auth: "key:<digest prefix>" or "client:<address>"
    error_code: str | None = None  # the contract code the request was answered with, if any

    def record_error(self, code: str) -> None:
        self.error_code = code


def context_of(scope: Scope) -> RequestContext:
    """The context RequestContextMiddleware attached to this request's scope."""
    return scope[CONTEXT_SCOPE_KEY]


def get_request_context(request: Request) -> RequestContext:
    """FastAPI dependency: this request's context."""
    return context_of(request.scope)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _CLIENT_ID.match(candidate):
                return candidate
    return new_request_id()


def error_response_messages(
    error: ApiError, request_id: str, path: str, status: int | None = None
) -> list[Message]:
    body = json.dumps(error_body(error, request_id, path), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.response_headers().items()]
    return [
        {"type": "http.response.start", "status": status or error.status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        started = time.perf_counter()
        context = RequestContext(request_id=request_id, arrived=started)
        scope[CONTEXT_SCOPE_KEY] = context
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            logger.error("unhandled %s (request %s)", type(exc).__name__, request_id, exc_info=exc)
            context.record_error("internal")
            if status == 0:
                error = ApiError("internal", "Internal server error.")
                for message in error_response_messages(error, request_id, scope.get("path", "")):
                    await send_with_id(message)
        finally:
            route = scope.get("route")
            access_log.info(
                "request_id=%s method=%s route=%s status=%s ms=%.1f code=%s",
                request_id,
                scope.get("method"),
                getattr(route, "path", None) or scope.get("path", "")[:200],
                status or "-",
                (time.perf_counter() - started) * 1000,
                context.error_code or "-",
            )
