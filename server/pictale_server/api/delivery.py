"""How a run's events reach the client: an SSE stream, or one JSON body at the end.

Delivery never decides how a run ended: it iterates `RunExecution.events()` (whose end ends the
run) and calls `RunExecution.abandon()` when the client goes away — a stream when its
connection closes, a plain request through a task that waits for the ASGI `http.disconnect`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol
from contextlib import aclosing

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from pictale_server.api.request_context import RequestContext
from pictale_server.api.sse import PING, SSE_HEADERS, SSE_MEDIA_TYPE, EventEncoder
from pictale_server.errors import ApiError
from pictale_server.runtime.engine_errors import contract_error
from pictale_server.runtime.execution import RunExecution

_END = object()


class StreamRenderer(Protocol):
    """How one dialect writes a run's events as SSE bytes (b"" writes nothing)."""

    ping: bytes

    def opening(self) -> bytes: ...

    def event(self, name: str, data: dict[str, Any]) -> bytes: ...

    def error(self, error: ApiError, request_id: str) -> bytes: ...


class ContractRenderer:
    """The contract's stream (docs/protocol.md): `run` first, then each event as it is."""

    ping = PING

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self._encoder = EventEncoder()

    def opening(self) -> bytes:
        return self._encoder.encode("run", {"id": self._run_id})

    def event(self, name: str, data: dict[str, Any]) -> bytes:
        return self._encoder.encode(name, data)

    def error(self, error: ApiError, request_id: str) -> bytes:
        return self._encoder.encode("error", error.event_data(request_id))


def stream_response(
    context: RequestContext,
    execution: RunExecution,
    *,
    ping_interval_s: float,
    renderer: StreamRenderer | None = None,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    run = execution.run
    render = renderer if renderer is not None else ContractRenderer(run.id)

    async def produce(queue: asyncio.Queue) -> None:
        try:
            async with aclosing(execution.events()) as events:
                async for event in events:
                    await queue.put(event)
        except Exception as exc:  # everything after the stream opened becomes an `error` event
            error = contract_error(exc)
            context.record_error(error.code)
            await queue.put(error)
        finally:
            await queue.put(_END)

    finished = False
    producer: asyncio.Task | None = None

    async def body() -> AsyncIterator[bytes]:
        nonlocal finished, producer
        opening = render.opening()
        if opening:
            yield opening
        queue: asyncio.Queue = asyncio.Queue()
        producer = asyncio.create_task(produce(queue))
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ping_interval_s)
            except TimeoutError:
                yield render.ping
                continue
            if item is _END:
                finished = True
                return
            if isinstance(item, ApiError):
                chunk = render.error(item, context.request_id)
            else:
                name, data = item
                chunk = render.event(name, data)
            if chunk:
                yield chunk

    def on_close() -> None:
        if finished:
            return
        # The client went away, perhaps before the first byte: stop the run's work.
        execution.abandon()
        if producer is not None:
            producer.cancel()

    return _RunStreamResponse(body(), on_close=on_close, headers=headers)


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


async def _abandon_on_disconnect(request: Request, execution: RunExecution) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            execution.run.request_cancel()  # the flow still completes, with what it has
            return


async def json_response(
    request: Request,
    execution: RunExecution,
    *,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The run's `done` data as one JSON body (`shape` turns it into a dialect's body)."""
    watcher = asyncio.create_task(_abandon_on_disconnect(request, execution))
    result: dict | None = None
    try:
        # Iterated to the end (`done` is last), so the run has ended before the answer goes out.
        async with aclosing(execution.events()) as events:
            async for name, data in events:
                if name == "done":
                    result = data
    except ApiError:
        raise
    except Exception as exc:
        raise contract_error(exc) from exc
    finally:
        watcher.cancel()
    if result is None:
        raise contract_error(RuntimeError("the flow ended without a result"))
    return JSONResponse(shape(result) if shape is not None else result, headers=headers)
