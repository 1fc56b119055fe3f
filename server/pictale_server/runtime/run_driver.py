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
from collections.abc import Callable
from contextlib import aclosing
from typing import Literal

from pictale_server.errors import ApiError
from pictale_server.runtime.engine_errors import contract_error
from pictale_server.runtime.execution import RunExecution
from pictale_server.runtime.run_store import RunMirror, RunStore
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
        log.append("run", {"id": run.id})
        try:
            async with aclosing(execution.events()) as events:
                async for name, data in events:
                    log.append(name, data)
        except asyncio.CancelledError:  # cancelled while it waited for the models to load
            execution.finish()
            log.end()
            on_end(run)
            raise
        except Exception as exc:  # everything after the run started becomes an `error` event
            error = contract_error(exc)
            on_error(error)
            log.fail(error, error.event_data(request_id))
            on_end(run)
            return
        log.end()
        on_end(run)

    task = asyncio.create_task(to_the_end(), name=f"run {run.id}")
    run.driver = task
    # A cancel that comes while the run still waits for the models must not wait with it.
    run.on_cancel(lambda: task.cancel() if not execution.started else None)
    return task


def reader_left(run: Run, *, when_abandoned: WhenAbandoned, grace_s: float) -> None:
    """A connection following `run` closed; decide whether the run goes on."""
    if run.ended or run.log.readers > 0 or run.background:
        return
    if when_abandoned == "cancel" or grace_s <= 0:
        run.request_cancel()
        return

    def after_grace() -> None:
        if not run.ended and run.log.readers == 0:
            logger.info("run %s: no reader came back within %.0f s, cancelling", run.id, grace_s)
            run.request_cancel()

    asyncio.get_running_loop().call_later(grace_s, after_grace)


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
