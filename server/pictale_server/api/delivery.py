"""How a run's events reach a client: an SSE stream that follows the run's log, or one JSON
body once the run has ended.

Delivery never drives a run: the runtime does (runtime/run_driver.py), into the run's log
(runtime/run_log.py). A response follows the log from an event on; when its client goes away
before the run ended, `reader_left` decides whether the run goes on (background), waits for
the client to resume (the contract's routes), or stops (the compatibility routes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from pictale_server.api.request_context import RequestContext
from pictale_server.api.sse import PING, SSE_HEADERS, SSE_MEDIA_TYPE, encode_event
from pictale_server.errors import ApiError
from pictale_server.runtime.engine_errors import contract_error
from pictale_server.runtime.run_driver import WhenAbandoned, reader_left
from pictale_server.runtime.run_store import RunStore, StoredRun
from pictale_server.runtime.runs import Run


class StreamRenderer(Protocol):
    """How one dialect writes a run's logged events as SSE bytes (b"" writes nothing)."""

    ping: bytes

    def opening(self) -> bytes: ...

    def event(self, seq: int, name: str, data: dict[str, Any]) -> bytes: ...

    def error(self, seq: int, error: ApiError, request_id: str) -> bytes: ...


class ContractRenderer:
    """The contract's stream (docs/protocol.md): each event with its number in the run as `id:`
    (`run` is 1), which is what a resuming client sends back as `Last-Event-ID`."""

    ping = PING

    def opening(self) -> bytes:
        return b""

    def event(self, seq: int, name: str, data: dict[str, Any]) -> bytes:
        return encode_event(seq, name, data)

    def error(self, seq: int, error: ApiError, request_id: str) -> bytes:
        return encode_event(seq, "error", error.event_data(request_id))


def stream_response(
    context: RequestContext,
    run: Run,
    *,
    ping_interval_s: float,
    after: int = 0,
    renderer: StreamRenderer | None = None,
    headers: dict[str, str] | None = None,
    when_abandoned: WhenAbandoned = "grace",
    grace_s: float = 0.0,
    store: RunStore | None = None,
) -> StreamingResponse:
    """The run's events after event number `after`, then its live tail, until it ends."""
    render = renderer if renderer is not None else ContractRenderer()
    log = run.log
    reader = log.reader()  # from now: a grace timer sees this connection
    finished = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal finished
        try:
            opening = render.opening()
            if opening:
                yield opening
            seen = after
            while True:
                for event in log.events_after(seen):
                    seen = event.seq
                    if event.name == "error" and log.error is not None:
                        chunk = render.error(event.seq, log.error, context.request_id)
                    else:
                        chunk = render.event(event.seq, event.name, event.data)
                    if chunk:
                        yield chunk
                if log.ended and seen == log.last_seq:
                    finished = True
                    return
                if not await log.changed(seen, ping_interval_s):
                    yield render.ping
        finally:
            reader.close()

    def on_close() -> None:
        reader.close()
        if not finished:
            reader_left(run, when_abandoned=when_abandoned, grace_s=grace_s, store=store)

    return _RunStreamResponse(body(), on_close=on_close, headers=headers)


def stored_stream_response(
    stored: StoredRun, *, after: int, ping_interval_s: float
) -> StreamingResponse:
    """A run another container runs, followed through the run store (runtime/run_store.py):
    the same events, ids and framing; pings while it polls."""
    render = ContractRenderer()

    async def body() -> AsyncIterator[bytes]:
        quiet_since = asyncio.get_running_loop().time()
        async for event in stored.follow(after):
            now = asyncio.get_running_loop().time()
            if event is None:
                if now - quiet_since >= ping_interval_s:
                    quiet_since = now
                    yield render.ping
                continue
            quiet_since = now
            yield render.event(event.seq, event.name, event.data)

    return _RunStreamResponse(body(), on_close=lambda: None)


class _RunStreamResponse(StreamingResponse):
    """An SSE response that calls `on_close` however it ends: done, error or disconnect."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_close: Callable[[], None],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(content, media_type=SSE_MEDIA_TYPE, headers={**SSE_HEADERS, **(headers or {})})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _watch_disconnect(request: Request, on_disconnect: Callable[[], None]) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            on_disconnect()
            return


async def json_response(
    request: Request,
    run: Run,
    *,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    when_abandoned: WhenAbandoned = "grace",
    grace_s: float = 0.0,
) -> JSONResponse:
    """The run's `done` data as one JSON body once it ends (`shape` turns it into a dialect's
    body); an error it ended with is raised, to be answered as an HTTP error."""
    log = run.log
    reader = log.reader()

    def gone() -> None:
        reader.close()
        reader_left(run, when_abandoned=when_abandoned, grace_s=grace_s)

    watcher = asyncio.create_task(_watch_disconnect(request, gone))
    try:
        while not log.ended:
            await log.changed(log.last_seq, 3600.0)
    finally:
        watcher.cancel()
        reader.close()
    if log.error is not None:
        raise log.error
    result = log.result
    if result is None:
        raise contract_error(RuntimeError("the run ended without a result"))
    return JSONResponse(shape(result) if shape is not None else result, headers=headers)
