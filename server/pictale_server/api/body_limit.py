"""Refuses request bodies over `max_body_bytes` with 413 `request_too_large` before parsing.

The body is read here, counting bytes (so chunked uploads cannot slip past), and replayed to the
app. Once a body is known to be too large, what the client is still sending is read and thrown
away — up to `drain_bytes` more, for at most `DRAIN_TIMEOUT_S` — before the 413 goes out: a
client that sends the whole body before reading the answer (Python's urllib and requests do)
would otherwise see the connection reset, because a server that closes a socket with unread
data in it makes the kernel answer with a TCP reset, which discards the 413 on the way.

Not drained: a declared `Content-Length` beyond the limit plus `drain_bytes` (refused at once;
such a client may see a reset), and a request that sent `Expect: 100-continue` (it has sent no
body yet and reads the 413 instead of a `100 Continue`).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pictale_server.api.request_context import context_of, error_response_messages
from pictale_server.errors import ApiError

DRAIN_TIMEOUT_S = 5.0


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Default: bodies up to twice the limit still get their 413 cleanly.
        self.drain_bytes = max_body_bytes if drain_bytes is None else drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = self._header(scope, b"content-length")
        if declared is not None and _int(declared) > self.max_body_bytes:
            length = _int(declared)
            if self._header(scope, b"expect") is None and length <= self._drain_limit:
                await self._drain(receive, length)
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                chunks.clear()
                if more:
                    await self._drain(receive, self._drain_limit - size)
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not more:
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @property
    def _drain_limit(self) -> int:
        return self.max_body_bytes + self.drain_bytes

    @staticmethod
    async def _drain(receive: Receive, budget: int) -> None:
        """Read and discard the rest of the body: at most `budget` bytes and DRAIN_TIMEOUT_S."""
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while budget > 0:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    budget -= len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            return

    @staticmethod
    def _header(scope: Scope, name: bytes) -> bytes | None:
        for key, value in scope.get("headers", []):
            if key == name:
                return value
        return None

    async def _refuse(self, scope: Scope, send: Send) -> None:
        context = context_of(scope)
        context.record_error("request_too_large")
        mib = self.max_body_bytes / (1024 * 1024)
        error = ApiError("request_too_large", f"Request bodies are limited to {mib:g} MiB.")
        for message in error_response_messages(error, context.request_id, scope.get("path", "")):
            await send(message)


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
