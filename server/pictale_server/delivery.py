"""How a flow's events reach the client: an SSE stream, or one JSON body at the end.

Both paths end the run in the registry with its final state, and both cancel the run when the
client goes away: a stream when its connection closes, a plain request through a task that
waits for the ASGI `http.disconnect` message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from .errors import ApiError
from .flows import Flow
from .readiness import ModelLoader
from .runs import Run, RunRegistry
from .sse import PING, SSE_HEADERS, SSE_MEDIA_TYPE, EventEncoder
from .stages import Event, internal_error

logger = logging.getLogger("pictale.server")

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
            error = internal_error(exc)
            if not run.ended:
                runs.end(run, "cancelled" if run.cancel.is_set else "error")
            record_error_code(request, error.code)
            await queue.put(("error", error.event_data(request_id)))
        finally:
            await queue.put(_END)

    async def body() -> AsyncIterator[bytes]:
        encoder = EventEncoder()
        yield encoder.encode("run", {"id": run.id})
        queue: asyncio.Queue = asyncio.Queue()
        producer = asyncio.create_task(produce(queue))
        finished = False
        try:
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
        finally:
            if not finished:  # the client went away mid-stream
                run.request_cancel()
            producer.cancel()

    return StreamingResponse(body(), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)


async def _cancel_on_disconnect(request: Request, run: Run) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            run.request_cancel()
            return


async def json_response(request: Request, runs: RunRegistry, run: Run, flow: Flow) -> JSONResponse:
    watcher = asyncio.create_task(_cancel_on_disconnect(request, run))
    try:
        async for name, data in _drive(runs, run, flow):
            if name == "done":
                return JSONResponse(data)
    except ApiError:
        raise
    except Exception as exc:
        raise internal_error(exc) from exc
    finally:
        watcher.cancel()
    raise internal_error(RuntimeError("the flow ended without a result"))
