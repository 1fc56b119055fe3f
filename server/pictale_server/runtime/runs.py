"""Runs: one describe, narrate or pipeline call, its stop flag and its final state.

The registry answers `GET /v1/runs/{id}`, its events and `POST /v1/runs/{id}/cancel` (each
only to the caller that made the run), remembers ended runs for `run_retention_s` (an hour by
default) within a per-caller cap on their kept events, and implements `Idempotency-Key`: a new
run with the key of a run that is still live cancels the old one first, so a retried request
never holds a model twice.

A run's final state is decided and set in one place, `RunRegistry.finish`: `cancelled` when its
stop flag is set, `done` when its flow completed, `error` otherwise. Only the runtime's
`RunExecution` (runtime/execution.py) calls it, however the request ends.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pictale_server.engine.base import Cancel
from pictale_server.runtime.run_log import RunLog

RunState = Literal["queued", "running", "done", "error", "cancelled"]
ENDED_STATES = ("done", "error", "cancelled")
RETENTION_S = 600.0


def new_run_id() -> str:
    return "run_" + secrets.token_hex(12)


@dataclass(eq=False)
class Run:
    id: str
    arrived: float  # time.perf_counter() when the request arrived
    idempotency: tuple[str, str] | None = None  # (caller, key)
    caller: str | None = None
    tag: str | None = None  # which routes made it ("compat": OpenAI and KoboldCpp dialects)
    background: bool = False  # runs to its end whether or not anyone listens
    log: RunLog = field(default_factory=RunLog)  # its events, kept (run_log.py)
    driver: Any = None  # the task that drives it (run_driver.py)
    webhook: Any = None  # where to say that it ended (webhooks.WebhookTarget)
    grace_timer: Any = None  # the pending cancel of a run nobody follows (run_driver.py)
    cancel: Cancel = field(default_factory=Cancel)
    state: RunState = "queued"
    ended_at: float | None = None
    _on_cancel: list[Callable[[], None]] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def mark_running(self) -> None:
        """Its first job started on a model."""
        if self.state == "queued":
            self.state = "running"

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Run `hook` when the run is cancelled (now, if it already was)."""
        self._on_cancel.append(hook)
        if self.cancel.is_set:
            hook()

    def drop_hooks(self) -> None:
        """Once the run has ended: its hooks hold the request's work (image, prompts)."""
        self._on_cancel.clear()

    def request_cancel(self) -> bool:
        """Set the stop flag; False if the run had already ended."""
        if self.ended:
            return False
        self.cancel.set()
        for hook in list(self._on_cancel):
            hook()
        return True


class RunRegistry:
    def __init__(
        self,
        retention_s: float = RETENTION_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        log_bytes_per_caller: int | None = None,
    ) -> None:
        self._retention_s = retention_s
        self._log_bytes_per_caller = log_bytes_per_caller
        self._clock = clock
        self._runs: dict[str, Run] = {}
        self._by_key: dict[tuple[str, str], Run] = {}
        self._lock = threading.Lock()

    def create(
        self,
        arrived: float,
        caller: str,
        idempotency_key: str | None,
        *,
        tag: str | None = None,
        background: bool = False,
    ) -> Run:
        key = (caller, idempotency_key) if idempotency_key else None
        run = Run(
            id=new_run_id(), arrived=arrived, idempotency=key, caller=caller, tag=tag, background=background
        )
        with self._lock:
            self._prune_locked()
            self._cap_caller_locked(caller)
            previous = self._by_key.get(key) if key else None
            self._runs[run.id] = run
            if key:
                self._by_key[key] = run
        if previous is not None:
            previous.request_cancel()
        return run

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            self._prune_locked()
            return self._runs.get(run_id)

    def get_for(self, caller: str, run_id: str) -> Run | None:
        """The run, if `caller` made it: runs are visible only to their creator's key."""
        run = self.get(run_id)
        return run if run is not None and run.caller == caller else None

    def _cap_caller_locked(self, caller: str) -> None:
        """Forget the caller's oldest ended runs while their kept events exceed the cap."""
        if self._log_bytes_per_caller is None:
            return
        mine = [run for run in self._runs.values() if run.caller == caller]
        total = sum(run.log.bytes for run in mine)
        for run in sorted((r for r in mine if r.ended_at is not None), key=lambda r: r.ended_at or 0.0):
            if total <= self._log_bytes_per_caller:
                return
            total -= run.log.bytes
            del self._runs[run.id]

    def finish(self, run: Run, *, completed: bool) -> RunState:
        """End `run` and return its final state; the first call decides, later ones change nothing.

        `completed`: its flow produced its result (`done`). A set stop flag makes it `cancelled`
        either way (a cancelled stream still completes, with `finish_reason: "cancelled"`).
        """
        with self._lock:
            if run.ended:
                return run.state
            if run.cancel.is_set:
                run.state = "cancelled"
            elif completed:
                run.state = "done"
            else:
                run.state = "error"
            run.ended_at = self._clock()
            run.drop_hooks()
            if run.idempotency and self._by_key.get(run.idempotency) is run:
                del self._by_key[run.idempotency]
            return run.state

    def live_with_key(self, caller: str, key: str) -> Run | None:
        """The caller's live run created with `key`, if any."""
        with self._lock:
            return self._by_key.get((caller, key))

    def live_tagged(self, caller: str, tag: str) -> list[Run]:
        with self._lock:
            return [r for r in self._runs.values() if not r.ended and r.caller == caller and r.tag == tag]

    def live(self) -> list[Run]:
        with self._lock:
            return [run for run in self._runs.values() if not run.ended]

    def _prune_locked(self) -> None:
        horizon = self._clock() - self._retention_s
        expired = [
            run_id
            for run_id, run in self._runs.items()
            if run.ended_at is not None and run.ended_at < horizon
        ]
        for run_id in expired:
            del self._runs[run_id]
