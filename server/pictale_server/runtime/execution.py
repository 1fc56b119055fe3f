"""One run from the moment its route admits it to its final state: the only code that ends runs.

A route builds a `RunExecution` around a new run, calls `start(build_flow, may_wait=...)`, then
hands it to delivery (api/delivery.py), which iterates `events()` for an SSE stream or a JSON
body and calls `abandon()` if the client goes away. Every way a run can end (its flow's `done`,
an error before or after the stream opened, a cancel, a disconnect, a failed model load) passes
through `finish()`, which asks `RunRegistry.finish` to decide the final state once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from pictale_server.runtime.flows import Flow
from pictale_server.runtime.lifecycle import ModelLifecycle
from pictale_server.runtime.runs import Run, RunRegistry
from pictale_server.runtime.stages import Event


class RunExecution:
    def __init__(self, runs: RunRegistry, run: Run, lifecycle: ModelLifecycle) -> None:
        self.run = run
        self._runs = runs
        self._lifecycle = lifecycle
        self._flow: Flow | None = None
        self._started = False

    def start(self, build_flow: Callable[[], Flow], *, may_wait: bool) -> None:
        """Build the flow and queue its first job, or, for a stream (`may_wait`) that finds the
        models still loading, leave that to `events()` once they are resident.

        Raises what building or queueing raises (e.g. 429 `queue_full`), after ending the run.
        """
        try:
            self._flow = build_flow()
            if self._lifecycle.ready or not may_wait:
                self._flow.start()
                self._started = True
        except BaseException:
            self.finish()
            raise

    async def events(self) -> AsyncIterator[Event]:
        """The run's events up to `done`; the run has ended by the time this returns or raises."""
        if self._flow is None:
            raise RuntimeError("RunExecution.events() before start()")
        completed = False
        try:
            if not self._started:
                yield "status", {"state": "loading"}
                await self._lifecycle.wait_ready()  # raises not_ready if the load fails
                self._flow.start()
                self._started = True
            async for name, data in self._flow.events():
                if name == "done":
                    completed = True
                yield name, data
        finally:
            self.finish(completed=completed)

    def cancelled_done(self) -> dict | None:
        """The flow's `done` data for a run cancelled before it started (run_driver.py)."""
        return self._flow.cancelled_done() if self._flow is not None and not self._started else None

    @property
    def started(self) -> bool:
        """Its flow has queued its first job (a stream waiting for the models has not)."""
        return self._started

    def abandon(self) -> None:
        """The client went away (perhaps before the first byte): stop the work, end the run."""
        self.run.request_cancel()
        self.finish()

    def finish(self, *, completed: bool = False) -> None:
        """End the run (idempotent); `RunRegistry.finish` decides done, cancelled or error."""
        self._runs.finish(self.run, completed=completed)
