"""Runs across containers: each run's events and state mirrored to a shared store.

On Modal a resume (`GET /v1/runs/{id}/events`) or a `GET /v1/runs/{id}` can reach another
container than the one running the job. The container that runs it mirrors the run into a
`RunStore`; another container that does not know the run reads it from there and follows its
tail by polling (`StoredRun`). A single local server needs none of this (no store).

The store is a `modal.Dict` on Modal (`DictRunStore`), chosen over `modal.Queue` because
readers need random access (replay from any event, many readers, again and again), which a
queue's consume-once partitions do not give; a Dict entry lives until 7 days without reads or
writes, past the runs' one-hour visibility, which `ended_at` enforces here. Keys are strings:
`{run_id}` for the state, `{run_id}:{seq}` for each event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pictale_server.runtime.run_log import LoggedEvent

logger = logging.getLogger("pictale.server")

POLL_S = 0.25  # how often a follower on another container looks for new events
CANCEL_POLL_S = 1.0  # how often a running run looks for a cancel sent to another container


HEARTBEAT_S = 2.0  # how often a follower on another container says it is still reading
# A live run whose stored events have not moved for this long has lost its container: queue
# waits and model loads take minutes, not ten.
STALE_S = 600.0


def cancel_key(run_id: str) -> str:
    return f"{run_id}:cancel"


def reader_key(run_id: str) -> str:
    """When a follower on another container last read the run (Unix time)."""
    return f"{run_id}:reader"


class RunStore(Protocol):
    async def put(self, key: str, value: Any) -> None: ...

    async def get(self, key: str) -> Any: ...


class DictRunStore:
    """A `modal.Dict` (or anything with its `put`/`get` and their `.aio` forms)."""

    def __init__(self, backing: Any) -> None:
        self._dict = backing

    async def put(self, key: str, value: Any) -> None:
        await self._dict.put.aio(key, value)

    async def get(self, key: str) -> Any:
        return await self._dict.get.aio(key)


class RunMirror:
    """Writes one run's events and state to the store, in order, off the run's own path: a
    slow store never slows the stream, and a failing one is logged, never fatal."""

    def __init__(self, store: RunStore, run_id: str, caller: str, on_cancel_request=None) -> None:
        self._store = store
        self._run_id = run_id
        self._caller = caller
        self._queue: asyncio.Queue = asyncio.Queue()
        self._ended = False
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._write(), name=f"mirror {run_id}")
        if on_cancel_request is not None:  # a cancel that reached another container
            self._watch = loop.create_task(self._watch_cancel(on_cancel_request), name=f"cancel watch {run_id}")

    async def _watch_cancel(self, on_cancel_request) -> None:
        while not self._ended:
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                if await self._store.get(cancel_key(self._run_id)):
                    on_cancel_request()
                    return
            except Exception as exc:  # noqa: BLE001
                logger.warning("run %s: reading the run store failed: %s", self._run_id, exc)

    def event(self, event: LoggedEvent) -> None:
        self._queue.put_nowait(("event", event))

    def state(self, state: str, last_seq: int, *, ended: bool, error: dict | None = None) -> None:
        self._ended = self._ended or ended
        self._queue.put_nowait(("state", (state, last_seq, ended, error)))

    async def _write(self) -> None:
        while True:
            kind, item = await self._queue.get()
            try:
                if kind == "event":
                    await self._store.put(f"{self._run_id}:{item.seq}", {"name": item.name, "data": item.data})
                else:
                    state, last_seq, ended, error = item
                    await self._store.put(self._run_id, {
                        "caller": self._caller, "state": state, "events": last_seq, "ended": ended,
                        "ended_at": time.time() if ended else None, "error": error,
                    })
                    if ended:
                        return
            except Exception as exc:  # noqa: BLE001 - the store is a mirror, not the run
                logger.warning("run %s: mirroring to the run store failed: %s", self._run_id, exc)


class StoredRun:
    """A run another container runs, as read from the store."""

    def __init__(self, store: RunStore, run_id: str, state: dict[str, Any]) -> None:
        self._store = store
        self.id = run_id
        self.status = state

    @classmethod
    async def find(cls, store: RunStore, run_id: str, caller: str, retention_s: float) -> StoredRun | None:
        state = await store.get(run_id)
        if not isinstance(state, dict) or state.get("caller") != caller:
            return None
        ended_at = state.get("ended_at")
        if ended_at is not None and time.time() - ended_at > retention_s:
            return None
        return cls(store, run_id, state)

    async def request_cancel(self) -> None:
        """Ask the container running it to cancel it (it looks every CANCEL_POLL_S)."""
        await self._store.put(cancel_key(self.id), True)

    async def refresh(self) -> None:
        state = await self._store.get(self.id)
        if isinstance(state, dict):
            self.status = state

    async def event(self, seq: int) -> LoggedEvent | None:
        stored = await self._store.get(f"{self.id}:{seq}")
        return LoggedEvent(seq, stored["name"], stored["data"]) if isinstance(stored, dict) else None

    async def result(self) -> dict | None:
        if self.status.get("state") != "done":
            return None
        last = await self.event(self.status["events"])
        return last.data if last is not None and last.name == "done" else None

    async def follow(self, after: int) -> AsyncIterator[LoggedEvent | None]:
        """Each stored event after `after`, then new ones as they arrive, until the run ended;
        None when a poll found nothing (a chance to ping)."""
        seq = after
        beat = 0.0
        moved = time.monotonic()
        while True:
            if time.monotonic() - beat >= HEARTBEAT_S:  # the running container's grace counts us
                beat = time.monotonic()
                try:
                    await self._store.put(reader_key(self.id), time.time())
                except Exception as exc:  # noqa: BLE001
                    logger.warning("run %s: writing the reader heartbeat failed: %s", self.id, exc)
            event = await self.event(seq + 1)
            if event is not None:
                seq += 1
                moved = time.monotonic()
                yield event
                continue
            await self.refresh()
            if self.status.get("ended") and seq >= self.status.get("events", 0):
                return
            if time.monotonic() - moved > STALE_S:  # its container is gone: stop following
                logger.warning("run %s: no event for %.0f s in the run store; stopped following", self.id, STALE_S)
                return
            yield None
            await asyncio.sleep(POLL_S)
