"""A run's events, kept: what a reconnecting client replays, and what `GET /v1/runs/{id}` answers.

Every event a run produces is appended here with its sequence number in the run (1, 2, ...),
which travels as the SSE `id:`. Readers follow the log: the events after the one they last saw,
then the live tail until the run ends. The run is driven to its end by the runtime, not by a
connection (run_driver.py), so a reader can leave and another can come back.

The log lives on the event loop: appends and reads happen on it, so an `asyncio.Event` per
append wakes the followers. `readers` counts the connections following it (`reader()`), which
is how the runtime knows a run has been left alone.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from pictale_server.errors import ApiError


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    name: str
    data: dict[str, Any]


class RunLog:
    def __init__(self) -> None:
        self._events: list[LoggedEvent] = []
        self._changed = asyncio.Event()
        self.ended = False
        self.error: ApiError | None = None  # how the run failed, when it did
        self.bytes = 0  # the events' JSON size: the store caps it per caller
        self.readers = 0  # connections following the log now
        self.listeners: list = []  # called with each LoggedEvent as it is appended (run_store.py)
        self.end_listeners: list = []  # called once the log has ended

    @property
    def last_seq(self) -> int:
        return len(self._events)

    @property
    def result(self) -> dict[str, Any] | None:
        """The `done` event's data, once the run completed."""
        if self._events and self._events[-1].name == "done":
            return self._events[-1].data
        return None

    def append(self, name: str, data: dict[str, Any]) -> int:
        if self.ended:
            raise RuntimeError("the run's log has ended")
        event = LoggedEvent(len(self._events) + 1, name, data)
        self._events.append(event)
        self.bytes += len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)) + len(name)
        for listener in self.listeners:
            listener(event)
        self._wake()
        return event.seq

    def fail(self, error: ApiError, data: dict[str, Any]) -> None:
        """The run ends with an `error` event."""
        self.error = error
        self.append("error", data)
        self.end()

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for listener in self.end_listeners:
            listener()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def events_after(self, seq: int) -> list[LoggedEvent]:
        return self._events[seq:]

    async def changed(self, seen: int, timeout_s: float) -> bool:
        """Wait for an event after `seen`, or the end; False when `timeout_s` passed first.
        Returns at once when one came while the caller was busy (a reader sending bytes)."""
        if self.last_seq > seen or self.ended:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def reader(self) -> Reader:
        """Count a connection as following the log until `Reader.close()`."""
        return Reader(self)


class Reader:
    def __init__(self, log: RunLog) -> None:
        self._log = log
        self._open = True
        log.readers += 1

    def close(self) -> None:
        if self._open:
            self._open = False
            self._log.readers -= 1
