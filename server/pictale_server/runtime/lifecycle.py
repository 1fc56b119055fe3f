"""The one owner of model state: `loading`, then `ready` or `failed`.

The app's lifespan calls `start()`, which loads the models in a background thread (unless the
engine is already loaded). Everything else asks here:

- `/health` reads `state` and, when failed, `failure` (the engine's reason code and message);
- plain generation requests call `check_ready()`: `503 not_ready` with `state: "loading"` and
  Retry-After while loading, with `state: "failed"` and the `reason` (no Retry-After) once the
  load failed;
- streams call `wait_ready()` while they send `status: loading`; it returns once the models are
  resident or raises the failed `not_ready` if the load fails.

`engine.load()` reports a failure as `ModelLoadFailed(reason, message)`, reason one of
`model_not_found | out_of_memory | unsupported_gpu | load_error`; any other exception is kept
as `load_error` with a generic message (its text stays in the server log).

A host can hook into the outcome (`LoadHooks`): on Modal a failed load words what happens next
and asks for a fresh container, and both outcomes are published for the status endpoint
(hosting/load_watch.py). A hook that raises is logged; the state still settles.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pictale_server.engine.base import Engine
from pictale_server.engine.errors import LoadFailure, ModelLoadFailed
from pictale_server.errors import ApiError

logger = logging.getLogger("pictale.server")

ModelState = Literal["loading", "ready", "failed"]
NOT_READY_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class FailedLoad:
    reason: LoadFailure  # model_not_found | out_of_memory | unsupported_gpu | load_error
    message: str


@dataclass(frozen=True)
class LoadHooks:
    """What the host does around a load; both run on the load thread. An engine loaded before the
    app was built (it starts `ready`) is never loaded here, so neither is called."""

    # Before a failure is reported: returns the failure to report (the host may add what it does
    # about it, e.g. that a fresh container is on its way).
    review_failure: Callable[[FailedLoad], FailedLoad] = lambda failure: failure
    # Once the state is final (`ready` or `failed`), with the failure as reported.
    settled: Callable[[ModelState, "FailedLoad | None"], None] = lambda state, failure: None


def failed_load(exc: BaseException) -> FailedLoad:
    """What a failed `engine.load()` is reported as."""
    if isinstance(exc, ModelLoadFailed):
        return FailedLoad(exc.reason, exc.message)
    return FailedLoad(
        "load_error",
        f"Loading the models failed unexpectedly ({type(exc).__name__}); see the server log.",
    )


def not_ready_error(state: ModelState, failure: FailedLoad | None) -> ApiError:
    """The `503 not_ready` a generation request gets in `state` (never called when ready)."""
    if state == "failed" and failure is not None:
        return ApiError(
            "not_ready",
            f"The models failed to load ({failure.reason}): {failure.message}",
            state="failed",
            reason=failure.reason,
        )
    return ApiError(
        "not_ready",
        "The models are still loading.",
        retry_after=NOT_READY_RETRY_AFTER_S,
        state="loading",
    )


class ModelLifecycle:
    def __init__(self, engine: Engine, hooks: LoadHooks | None = None) -> None:
        self._engine = engine
        self._hooks = hooks or LoadHooks()
        self._lock = threading.Lock()
        loaded = engine.vision_loaded and engine.writer_loaded
        self._state: ModelState = "ready" if loaded else "loading"
        self._failure: FailedLoad | None = None
        self._loading = False  # a load thread is running
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def state(self) -> ModelState:
        with self._lock:
            return self._state

    @property
    def failure(self) -> FailedLoad | None:
        """The engine's reason and message while `failed`, else None."""
        with self._lock:
            return self._failure

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def start(self) -> None:
        """Load the models in a background thread unless they are resident or already loading.

        Called by each run of the app's lifespan; after a failed load a new lifespan tries again.
        """
        with self._lock:
            if self._state == "ready" or self._loading:
                return
            self._state, self._failure, self._loading = "loading", None, True
        threading.Thread(target=self._load, name="pictale-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        failure: FailedLoad | None = None
        try:
            self._engine.load()
        except BaseException as exc:  # whatever it was, the state must leave `loading`
            failure = failed_load(exc)
            if isinstance(exc, ModelLoadFailed):
                logger.error("model loading failed (%s): %s", exc.reason, exc.message)
            else:
                logger.error("model loading failed: %s", type(exc).__name__, exc_info=exc)
        else:
            logger.info("models loaded in %.1f s", time.perf_counter() - started)
        if failure is not None:
            failure = self._reviewed(failure)
        self._settle(failure)
        try:
            self._hooks.settled("failed" if failure is not None else "ready", failure)
        except Exception:
            logger.exception("the host's hook after loading failed")

    def _reviewed(self, failure: FailedLoad) -> FailedLoad:
        try:
            return self._hooks.review_failure(failure)
        except Exception:
            logger.exception("the host's hook on a failed load failed")
            return failure

    def _settle(self, failure: FailedLoad | None) -> None:
        with self._lock:
            self._state = "failed" if failure is not None else "ready"
            self._failure = failure
            self._loading = False
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed: nobody is waiting there any more
                pass

    def not_ready(self) -> ApiError | None:
        """The error a generation request gets now, or None when the models are ready."""
        with self._lock:
            state, failure = self._state, self._failure
        return None if state == "ready" else not_ready_error(state, failure)

    def check_ready(self) -> None:
        """For plain requests: raise `not_ready` (loading or failed) unless ready."""
        error = self.not_ready()
        if error is not None:
            raise error

    def check_failed(self) -> None:
        """For streams, before they open: a failed load is a plain 503; loading is waited on."""
        error = self.not_ready()
        if error is not None and error.state == "failed":
            raise error

    async def wait_ready(self) -> None:
        """Return once the models are resident; raise the failed `not_ready` if loading fails."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._state == "loading":
                self._waiters.append(waiter)
            else:
                event.set()
        try:
            await event.wait()
        finally:
            with self._lock:
                if waiter in self._waiters:  # cancelled while waiting (the client went away)
                    self._waiters.remove(waiter)
        self.check_ready()
