"""Keeps this container's record (container_status.py) in the store the status endpoint reads.

`start` writes it and begins the heartbeat thread, `set` rewrites it at once, `stop` ends the
thread and deletes it. A store that fails is logged and tried again on the next beat: the
status endpoint may lag, the server never stops for it.

Writes go one at a time, each with the state as of its own turn, so a slow write never lands
after a newer one; once `stop` has begun nothing is written, so no write re-creates the record
after the delete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pictale_server.hosting.container_status import HEARTBEAT_S, container_record, forgotten
from pictale_server.runtime.lifecycle import FailedLoad, ModelState

logger = logging.getLogger("pictale.server")

# How long `stop` waits for a write in flight before deleting the record anyway: past it, a write
# that still lands leaves a record that goes stale within STALE_AFTER_S.
STOP_WAIT_S = 5.0


class SharedStore(Protocol):
    """The blocking side of a `modal.Dict` (or a plain-dict fake)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def put(self, key: str, value: Any) -> Any: ...

    def pop(self, key: str, default: Any = None) -> Any: ...

    def items(self) -> Any: ...


class StatusPublisher:
    def __init__(
        self,
        store: SharedStore,
        key: str,
        *,
        app_id: str,
        clock: Callable[[], float] = time.time,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self._store = store
        self._key = key
        self._app_id = app_id
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._state: ModelState = "loading"
        self._failure: FailedLoad | None = None
        self._since = clock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return self._key

    def start(self, state: ModelState) -> None:
        self._forget_dead_containers()
        self.set(state)
        self._thread = threading.Thread(target=self._beat, name="pictale-status", daemon=True)
        self._thread.start()

    def set(self, state: ModelState, failure: FailedLoad | None = None) -> None:
        with self._lock:
            if state != self._state:
                self._since = self._clock()
            self._state, self._failure = state, failure
        self._write()

    def stop(self) -> None:
        self._stopped.set()
        waited = self._lock.acquire(timeout=STOP_WAIT_S)  # for a write already in flight
        try:
            self._store.pop(self._key, None)
        except Exception:
            logger.warning("could not delete this container's status record", exc_info=True)
        finally:
            if waited:
                self._lock.release()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)

    def _beat(self) -> None:
        while not self._stopped.wait(self._heartbeat_s):
            self._write()

    def _write(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            record = container_record(
                self._state, app_id=self._app_id, now=self._clock(), since=self._since, failure=self._failure
            )
            try:
                self._store.put(self._key, record)
            except Exception:
                logger.warning("could not write this container's status record", exc_info=True)

    def _forget_dead_containers(self) -> None:
        try:
            for key in forgotten(list(self._store.items()), self._clock()):
                self._store.pop(key, None)
        except Exception:
            logger.warning("could not tidy the status records", exc_info=True)
