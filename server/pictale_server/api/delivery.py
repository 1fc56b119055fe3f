"""How a flow's events reach the client: an SSE stream, or one JSON body at the end.

Both paths end the run in the registry with its final state, and both cancel the run when the
client goes away: a stream when its connection closes, a plain request through a task that
waits for the ASGI `http.disconnect` message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from pictale_server.errors import ApiError
from pictale_server.runtime.flows import Flow
from pictale_server.runtime.readiness import ModelLoader
from pictale_server.runtime.runs import Run, RunRegistry
from pictale_server.api.sse import PING, SSE_HEADERS, SSE_MEDIA_TYPE, EventEncoder
from pictale_server.runtime.engine_errors import contract_error
from pictale_server.runtime.stages import Event

_END = object()


async def _drive(runs: RunRegistry, run: Run, flow: Flow) -> AsyncIterator[Event]:
    """The flow's events; records how the run ended, however the iteration stops."""
    completed = False
    try:
        async for name, data in flow.events():
            if name == "done":
                completed = True
            yield name, data
    finally:
        if completed and not run.cancel.is_set:
            runs.end(run, "done")
        elif run.cancel.is_set:
            runs.end(run, "cancelled")
        else:
            runs.end(run, "error")


def record_error_code(request: Request, code: str) -> None:
    """For the access log line (request_context.py)."""
    request.state.error_code = code


def stream_response(
    request: Request,
    runs: RunRegistry,
    run: Run,
    flow: Flow,
    *,
    loader: ModelLoader,
    started: bool,
    ping_interval_s: float,
) -> StreamingResponse:
    """`started`: the route already queued the flow's first job; otherwise wait for the models."""
    request_id: str = request.state.request_id

    async def produce(queue: asyncio.Queue) -> None:
        try:
            if not started:
                await queue.put(("status", {"state": "loading"}))
                await loader.wait()
                flow.start()
            async for event in _drive(runs, run, flow):
                await queue.put(event)
        except Exception as exc:  # everything after the stream opened becomes an `error` event
            error = contract_error(exc)
            if not run.ended:
                runs.end(run, "cancelled" if run.cancel.is_set else "error")
            record_error_code(request, error.code)
            await queue.put(("error", error.event_data(request_id)))
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
        run.request_cancel()
        if producer is not None:
            producer.cancel()  # its iteration of the flow ends the run in the registry
        elif not run.ended:
            runs.end(run, "cancelled")

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


async def _cancel_on_disconnect(request: Request, run: Run) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            run.request_cancel()
            return


async def json_response(request: Request, runs: RunRegistry, run: Run, flow: Flow) -> JSONResponse:
    watcher = asyncio.create_task(_cancel_on_disconnect(request, run))
    result: dict | None = None
    try:
        # Iterated to the end (`done` is last), so the run is recorded as ended before answering.
        async for name, data in _drive(runs, run, flow):
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
