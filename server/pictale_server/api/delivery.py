"""How a run's events reach the client: an SSE stream, or one JSON body at the end.

Delivery never decides how a run ended: it iterates `RunExecution.events()` (whose end ends the
run) and calls `RunExecution.abandon()` when the client goes away — a stream when its
connection closes, a plain request through a task that waits for the ASGI `http.disconnect`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
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


def stream_response(
    context: RequestContext, execution: RunExecution, *, ping_interval_s: float
) -> StreamingResponse:
    run = execution.run

    async def produce(queue: asyncio.Queue) -> None:
        try:
            async with aclosing(execution.events()) as events:
                async for event in events:
                    await queue.put(event)
        except Exception as exc:  # everything after the stream opened becomes an `error` event
            error = contract_error(exc)
            context.record_error(error.code)
            await queue.put(("error", error.event_data(context.request_id)))
        finally:
            await queue.put(_END)

    finished = False
    producer: asyncio.Task | None = None

    async def body() -> AsyncIterator[bytes]:
        nonlocal finished, producer
        encoder = EventEncoder()
        yield encoder.encode("run", {"id": run.id})
        queue: asyncio.Queue = asyncio.Queue()
        producer = asyncio.create_task(produce(queue))
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ping_interval_s)
            except TimeoutError:
                yield PING
                continue
            if item is _END:
                finished = True
                return
            name, data = item
            yield encoder.encode(name, data)

    def on_close() -> None:
        if finished:
            return
        # The client went away, perhaps before the first byte: stop the run's work.
        execution.abandon()
        if producer is not None:
            producer.cancel()

    return _RunStreamResponse(body(), on_close=on_close)


class _RunStreamResponse(StreamingResponse):
    """An SSE response that calls `on_close` however it ends: done, error or disconnect."""

    def __init__(self, content: AsyncIterator[bytes], *, on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
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


async def json_response(request: Request, execution: RunExecution) -> JSONResponse:
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
    return JSONResponse(result)
