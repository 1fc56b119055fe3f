"""Runs driven to their end by the runtime, whoever is (or is no longer) listening.

`drive` starts a task that iterates the run's `RunExecution.events()` into its `RunLog`: the
`run` event first, then every event up to `done`, or an `error` event. Connections only follow
the log (api/delivery.py), so a stream that breaks loses nothing: the client reconnects to
`GET /v1/runs/{id}/events` and goes on from the last event it saw.

When the last reader of a run goes away before it ended (`reader_left`):
- a background run (`background: true`) goes on to its end;
- a run of the contract's routes waits `resume_grace_s` for a reader to come back, then is
  cancelled as a dropped request always was (the GPU is not held for nobody);
- a run of the compatibility routes is cancelled at once: their clients cannot resume, and a
  front end's "stop" is a closed connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Literal

from pictale_server.errors import ApiError
from pictale_server.runtime.engine_errors import contract_error
from pictale_server.runtime.execution import RunExecution
from pictale_server.runtime.run_store import HEARTBEAT_S, RunMirror, RunStore, reader_key
from pictale_server.runtime.runs import Run

logger = logging.getLogger("pictale.server")

WhenAbandoned = Literal["grace", "cancel"]


def drive(
    execution: RunExecution,
    request_id: str,
    *,
    on_error: Callable[[ApiError], None] = lambda error: None,
    on_end: Callable[[Run], None] = lambda run: None,
    store: RunStore | None = None,
) -> asyncio.Task:
    """Start the run's task; it lives on the run (`run.driver`) until the run ends, then
    `on_end(run)` (its webhook) sees the final state. With a `store`, the run is mirrored
    there for other containers (run_store.py)."""
    run = execution.run
    log = run.log
    if store is not None:
        _mirror(run, store, request_id)

    async def to_the_end() -> None:
        try:
            log.append("run", {"id": run.id})
            async with aclosing(execution.events()) as events:
                async for name, data in events:
                    log.append(name, data)
        except asyncio.CancelledError:  # cancelled while it waited for the models to load
            done = execution.cancelled_done()
            if done is not None and not log.ended:  # a follower still gets the stream's end
                log.append("done", done)
            raise
        except Exception as exc:  # everything after the run started becomes an `error` event
            error = contract_error(exc)
            on_error(error)
            log.fail(error, error.event_data(request_id))
        finally:  # however it ends: ended, and said so
            settle()

    settled = []

    def settle() -> None:
        if not settled:
            settled.append(True)
            execution.finish()
            log.end()
            on_end(run)

    task = asyncio.create_task(to_the_end(), name=f"run {run.id}")
    # A task cancelled before its first step never runs its body (nor its `finally`).
    task.add_done_callback(lambda _: settle())
    run.driver = task
    # A cancel that comes while the run still waits for the models must not wait with it.
    run.on_cancel(lambda: task.cancel() if not execution.started else None)
    return task


def reader_left(
    run: Run, *, when_abandoned: WhenAbandoned, grace_s: float, store: RunStore | None = None
) -> None:
    """A connection following `run` closed; decide whether the run goes on. One grace timer
    per run, restarted by every drop: a client that resumed and dropped again gets a full
    grace again. With a store, a reader on another container (its heartbeat) counts too."""
    if run.ended or run.log.readers > 0 or run.background:
        return
    if when_abandoned == "cancel" or grace_s <= 0:
        run.request_cancel()
        return
    if run.grace_timer is not None:
        run.grace_timer.cancel()
    loop = asyncio.get_running_loop()

    async def read_elsewhere() -> bool:
        if store is None:
            return False
        try:
            beat = await store.get(reader_key(run.id))
        except Exception:  # noqa: BLE001 - the store is a mirror: without it, no remote readers
            return False
        # A follower beats every HEARTBEAT_S: three missed beats, or the grace, and it is gone.
        return isinstance(beat, (int, float)) and time.time() - beat < max(grace_s, 3 * HEARTBEAT_S)

    async def decide() -> None:
        if run.ended or run.log.readers > 0:
            return
        if await read_elsewhere():
            run.grace_timer = loop.call_later(grace_s, lambda: loop.create_task(decide()))
            return
        logger.info("run %s: no reader came back within %.0f s, cancelling", run.id, grace_s)
        run.request_cancel()

    run.grace_timer = loop.call_later(grace_s, lambda: loop.create_task(decide()))


def _mirror(run: Run, store: RunStore, request_id: str) -> None:
    mirror = RunMirror(store, run.id, run.caller or "", on_cancel_request=run.request_cancel)
    written = [""]

    def on_event(event) -> None:
        mirror.event(event)
        if run.state != written[0] and not run.ended:
            written[0] = run.state
            mirror.state(run.state, event.seq, ended=False)

    def on_end() -> None:
        error = run.log.error.event_data(request_id) if run.log.error is not None else None
        mirror.state(run.state, run.log.last_seq, ended=True, error=error)

    run.log.listeners.append(on_event)
    run.log.end_listeners.append(on_end)
