"""Worker threads per model, each model's draining one bounded FIFO queue of blocking jobs.

Engine calls block (they read a GPU decode batch's tokens), so each model gets as many threads
as it runs jobs at once: one per stream of its batch (each model decodes its streams together:
engine/batch_decoder.py). The asyncio side submits `Job`s and reads what
the worker reports from the job's `sink`: `Queued(position)` while waiting (re-sent whenever
the position changes), `Started`, whatever the job's work emits, then `Ended` (or `Dropped`
then `Ended` for a job cancelled before it ran).

A job can also wait after it started: a model's batch holds a request back until a lane and a
region of its KV pool are free. Its work then reports `Waiting(place)` (its place in the engine's own
line) and later `Admitted`. The worker counts such "held" jobs in every position: positions
are 1-based over everything that waits for the model, the held jobs first, in the engine's
order (they start before any job that has no thread yet, which, once it has one, joins the
engine's line behind them), then the queued jobs. A held job is told `Queued(position)` as a
queued one is, and nothing more once it is admitted. Held jobs hold a thread already: they do
not count against the queue's depth.

A full queue refuses new jobs with 429 `queue_full`, and so does a queue that already holds
the caller's share of waiting jobs (`per_caller`): first come, first served, but one client
cannot take every place in a queue that others share. Where a model runs several jobs at once
(each model's batch), a caller running half of them lets other callers' jobs start first.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pictale_server.engine.base import Cancel
from pictale_server.errors import ApiError

Emit = Callable[[Any], None]


@dataclass(frozen=True)
class Queued:
    position: int  # 1-based place among the jobs waiting for this model


@dataclass(frozen=True)
class Started:
    at: float  # time.perf_counter()


@dataclass(frozen=True)
class Waiting:
    """From a job's work: the engine holds the started job back for room, at `place` in its
    own line. The worker turns it into the job's `Queued` position (never forwarded itself)."""

    place: int


@dataclass(frozen=True)
class Admitted:
    """From a job's work: the engine started it, after any `Waiting` (forwarded)."""

    at: float  # time.perf_counter()


@dataclass(frozen=True)
class Dropped:
    """Cancelled while waiting: the work never ran."""


@dataclass(frozen=True)
class Ended:
    error: BaseException | None = None


class LoopSink:
    """Hands items from a worker thread to an asyncio queue on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            pass


@dataclass(eq=False)
class Job:
    work: Callable[[Emit], None]  # blocking; runs on the model's worker thread
    cancel: Cancel
    sink: LoopSink
    caller: str | None = None  # who asked (auth's caller id); None is nobody's share
    queued_at: float = field(default_factory=time.perf_counter)
    # The worker's own, under its lock:
    position: int | None = field(default=None, init=False)  # the last Queued position sent
    working: bool = field(default=False, init=False)  # its work runs on a thread now


class ModelWorker:
    def __init__(self, name: str, depth: int, per_caller: int | None = None, concurrency: int = 1) -> None:
        self.name = name
        self.depth = depth
        self.per_caller = per_caller or depth
        self.concurrency = concurrency  # jobs that run at once, one thread each
        self._waiting: deque[Job] = deque()
        self._held: dict[Job, int] = {}  # started jobs the engine holds back → its place for them
        self._running = 0
        self._running_by: Counter[str | None] = Counter()
        # Of several jobs at once, one caller's share while others wait: half of them.
        self.running_share = max(1, concurrency // 2)
        self._stopping = False
        self._cond = threading.Condition()
        self._recent_durations: deque[float] = deque(maxlen=16)
        self._threads: list[threading.Thread] = []

    @property
    def waiting(self) -> int:
        """Jobs waiting for the model: in its queue, or started and held back by the engine."""
        with self._cond:
            return len(self._waiting) + len(self._held)

    def start(self) -> None:
        """Start (or, after `stop`, restart) the threads; a no-op while they run."""
        with self._cond:
            if any(thread.is_alive() for thread in self._threads):
                return
            self._stopping = False
            names = [f"pictale-{self.name}"] if self.concurrency == 1 else [
                f"pictale-{self.name}-{index}" for index in range(self.concurrency)
            ]
            self._threads = [threading.Thread(target=self._loop, name=name, daemon=True) for name in names]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Drop waiting jobs and end the threads once their current jobs (if any) return."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping:
                raise ApiError("not_ready", "The server is shutting down.", retry_after=5)
            if len(self._waiting) >= self.depth:
                raise ApiError(
                    "queue_full",
                    f"The {self.name} model's queue is full; retry later.",
                    retry_after=self._retry_after_locked(),
                )
            if job.caller is not None:
                mine = sum(1 for waiting in self._waiting if waiting.caller == job.caller)
                if mine >= self.per_caller:
                    raise ApiError(
                        "queue_full",
                        f"You already have {mine} requests waiting for the {self.name} model, "
                        f"each caller's share of its queue; retry when one has started.",
                        retry_after=self._retry_after_locked(),
                    )
            self._waiting.append(job)
            self._announce_positions_locked()
            self._cond.notify_all()

    def withdraw(self, job: Job) -> None:
        """Take a cancelled job out of the queue so it never runs; no-op once it started."""
        with self._cond:
            try:
                index = self._waiting.index(job)
            except ValueError:
                return
            del self._waiting[index]
            self._announce_positions_locked()
        job.sink.put(Dropped())
        job.sink.put(Ended())

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                stopping = self._stopping
                if stopping:
                    dropped, self._waiting = list(self._waiting), deque()
                else:
                    index = self._next_index_locked()
                    job = self._waiting[index]
                    del self._waiting[index]
                    self._running += 1
                    self._running_by[job.caller] += 1
                    self._announce_positions_locked()
            if stopping:
                for waiting in dropped:
                    waiting.sink.put(Dropped())
                    waiting.sink.put(Ended())
                return
            error: BaseException | None = None
            try:
                error = self._run(job)
            finally:
                # The thread stops counting as running before the job's `Ended` goes out, so a
                # job submitted by whoever saw that end finds the thread free, not busy.
                with self._cond:
                    self._running -= 1
                    self._running_by[job.caller] -= 1
                    if not self._running_by[job.caller]:
                        del self._running_by[job.caller]
            job.sink.put(Ended(error))
            del job  # hold no finished request's image or prompts while idle

    def _next_index_locked(self) -> int:
        """First come, first served, except that a caller already running its share of the
        worker's jobs lets the first job of another caller go ahead; when every waiting job's
        caller is at its share, the first job runs anyway (no thread idles)."""
        for index, job in enumerate(self._waiting):
            if job.caller is None or self._running_by[job.caller] < self.running_share:
                return index
        return 0

    def _run(self, job: Job) -> BaseException | None:
        """The job's work, between its `Started` and (sent by the caller) its `Ended`: the
        error it raised, if any."""
        if job.cancel.is_set:
            job.sink.put(Dropped())
            return None
        started = time.perf_counter()
        with self._cond:
            job.working = True
        job.sink.put(Started(started))
        error: BaseException | None = None
        try:
            job.work(lambda item: self._report(job, item))
        except BaseException as exc:  # reported to the request that owns the job
            error = exc
        self._recent_durations.append(time.perf_counter() - started)
        with self._cond:
            job.working = False
            if self._held.pop(job, None) is not None:  # withdrawn while held: those behind move up
                self._announce_positions_locked()
        return error

    def _report(self, job: Job, item: Any) -> None:
        """What a running job's work emits, on whichever thread emits it (the engine reports
        `Waiting` and `Admitted` from its own). The job's own positions and its `Admitted` go
        out under the lock, so no `Queued` can follow its `Admitted`."""
        if isinstance(item, Waiting):
            with self._cond:
                if job.working:  # a report that lost the race with the job's end is dropped
                    self._held[job] = item.place
                    self._announce_positions_locked()
        elif isinstance(item, Admitted):
            with self._cond:
                job.sink.put(item)
                if self._held.pop(job, None) is not None:
                    self._announce_positions_locked()
        else:
            job.sink.put(item)

    def _announce_positions_locked(self) -> None:
        """Tell every waiting job whose position changed its new one: first the held jobs, in
        the engine's order, then the queued jobs that wait for a busy thread (one that a free
        thread takes next is not queued)."""
        held = sorted(self._held, key=self._held.__getitem__)
        for position, job in enumerate(held, 1):
            self._tell_locked(job, position)
        for index, job in enumerate(self._waiting):
            if self._running + index + 1 > self.concurrency:
                self._tell_locked(job, len(held) + index + 1)

    @staticmethod
    def _tell_locked(job: Job, position: int) -> None:
        if job.position != position:
            job.position = position
            job.sink.put(Queued(position))

    def _retry_after_locked(self) -> int:
        """Seconds until a place is likely free: the recent mean job time over the jobs that
        run at once, at least 1 s."""
        if not self._recent_durations:
            return 2
        mean = sum(self._recent_durations) / len(self._recent_durations)
        return max(1, min(60, math.ceil(mean / self.concurrency)))


class Scheduler:
    """The two model workers. `queue_depth` bounds each model's waiting jobs, `per_caller` one
    caller's share of them; `writer_streams` writer jobs and `vision_streams` describes run at
    once."""

    def __init__(
        self, queue_depth: int, per_caller: int | None = None, writer_streams: int = 1, vision_streams: int = 1
    ) -> None:
        self.vision = ModelWorker("vision", queue_depth, per_caller, concurrency=vision_streams)
        self.writer = ModelWorker("writer", queue_depth, per_caller, concurrency=writer_streams)

    def start(self) -> None:
        self.vision.start()
        self.writer.start()

    def stop(self) -> None:
        self.vision.stop()
        self.writer.stop()

    def queue_sizes(self) -> dict[str, int]:
        return {"vision": self.vision.waiting, "writer": self.writer.waiting}
