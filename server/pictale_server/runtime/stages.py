"""One stage (describe or narrate) as a job on its model's worker, seen as contract events.

`generation_work` is the blocking part that runs on the worker thread: it drives an engine
iterator, forwards its deltas and reports a `StageOutcome` with the thread-side timestamps.
`StageRunner` is the asyncio part: it submits the job and turns what the worker reports into
`status`, `stage-start`, `delta` and `stage-end` events, keeping the `StageResult`.

A stage runs from the moment its job has a thread (`Started`), except on an engine that holds
requests back until it has room for them (each model's batch, waiting for a lane and KV
memory: Engine.writer_admission, Engine.vision_admission). There the job's thread is only a place to wait: the stage stays
`queued`, with the position the worker computes over both waits, and runs from its admission
(`admitted_generation_work`, `StageRunner(admits=True)`). So a client never sees `queued`
after `running` for one stage, and `queued_ms` counts the wait for memory too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pictale_server.engine.base import Admission, Chunk, Delta, Finished
from pictale_server.runtime.engine_errors import contract_error
from pictale_server.runtime.runs import Run
from pictale_server.runtime.scheduler import (
    Admitted,
    Dropped,
    Emit,
    Ended,
    Job,
    LoopSink,
    ModelWorker,
    Queued,
    Started,
    Waiting,
)

logger = logging.getLogger("pictale.server")

Stage = Literal["describe", "narrate"]
Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class StageOutcome:
    finished: Finished
    started: float
    first_token: float | None
    ended: float


class JobAdmission:
    """The engine's `Admission` (engine/base.py) for one job: what the engine reports, as the
    worker's `Waiting` and `Admitted` items; `at` is when it was admitted."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.at: float | None = None

    def waiting(self, place: int) -> None:
        self._emit(Waiting(place))

    def admitted(self) -> None:
        self.at = time.perf_counter()
        self._emit(Admitted(self.at))


def generation_work(
    open_stream: Callable[[], Iterator[Chunk]],
    before: Callable[[], None] | None = None,
    after: Callable[[Finished], None] | None = None,
) -> Callable[[Emit], None]:
    """The worker-side body of a stage: `before`, the engine stream, the outcome, `after`.

    `after` runs once the outcome is reported (the pipeline's image check lives there, so the
    description's `stage-end` goes out before a refusal).
    """
    return _work(lambda admission: open_stream(), before, after, admits=False)


def admitted_generation_work(
    open_stream: Callable[[Admission], Iterator[Chunk]],
    before: Callable[[], None] | None = None,
    after: Callable[[Finished], None] | None = None,
) -> Callable[[Emit], None]:
    """The body of a stage on an engine that holds requests back (Engine.writer_admission,
    Engine.vision_admission): `open_stream` hands the engine the job's `Admission`, and the
    stage's start is the admission, not the thread's; a stage withdrawn before it was admitted
    never started. `before` and `after` as for generation_work (`before` runs while the stage
    is still queued)."""
    return _work(open_stream, before, after, admits=True)


def _work(
    open_stream: Callable[[Admission | None], Iterator[Chunk]],
    before: Callable[[], None] | None,
    after: Callable[[Finished], None] | None,
    *,
    admits: bool,
) -> Callable[[Emit], None]:
    def work(emit: Emit) -> None:
        started = time.perf_counter()
        admission = JobAdmission(emit) if admits else None
        if before is not None:
            before()
        first_token: float | None = None
        finished: Finished | None = None
        for chunk in open_stream(admission):
            if isinstance(chunk, Delta):
                if first_token is None:
                    first_token = time.perf_counter()
                emit(chunk)
            elif isinstance(chunk, Finished):
                finished = chunk
                break
        if finished is None:
            raise RuntimeError("the engine stream ended without a Finished chunk")
        ended = time.perf_counter()
        if admission is not None:
            started = admission.at if admission.at is not None else ended
        emit(StageOutcome(finished, started, first_token, ended))
        if after is not None:
            after(finished)

    return work


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 2)


def stage_result(model: str, text: str, outcome: StageOutcome, arrived: float) -> dict[str, Any]:
    finished = outcome.finished
    first = outcome.first_token if outcome.first_token is not None else outcome.ended
    decoding = outcome.ended - first
    rate = (
        (finished.output_tokens - 1) / decoding
        if finished.output_tokens >= 2 and decoding > 0
        else 0.0
    )
    return {
        "text": text,
        "finish_reason": finished.finish_reason,
        "model": model,
        "usage": {"input_tokens": finished.input_tokens, "output_tokens": finished.output_tokens},
        "timings": {
            "queued_ms": _ms(outcome.started - arrived),
            "first_token_ms": _ms(first - outcome.started),
            "total_ms": _ms(outcome.ended - outcome.started),
            "tokens_per_second": round(rate, 2),
        },
    }


def cancelled_result(model: str, arrived: float) -> dict[str, Any]:
    """A stage that never ran because its run was cancelled first."""
    now = time.perf_counter()
    outcome = StageOutcome(Finished("cancelled", 0, 0), now, now, now)
    return stage_result(model, "", outcome, arrived)


class StageRunner:
    """Submit once with `submit()` (raises `queue_full`), then iterate `events()`.

    `admits`: the work is `admitted_generation_work`, and the stage runs from the engine's
    `Admitted`, not from the job's `Started` (the module's docstring says why)."""

    def __init__(
        self,
        run: Run,
        stage: Stage,
        worker: ModelWorker,
        model: str,
        work: Callable[[Emit], None],
        *,
        admits: bool = False,
    ) -> None:
        self.run = run
        self.stage = stage
        self.model = model
        self.result: dict[str, Any] | None = None
        self._admits = admits
        self._worker = worker
        self._job = Job(
            work=work, cancel=run.cancel, sink=LoopSink(asyncio.get_running_loop()), caller=run.caller
        )

    def submit(self) -> None:
        self._worker.submit(self._job)
        self.run.on_cancel(lambda: self._worker.withdraw(self._job))

    async def events(self) -> AsyncIterator[Event]:
        parts: list[str] = []
        begun = False  # `stage-start` sent
        while True:
            item = await self._job.sink.queue.get()
            if isinstance(item, Queued):
                yield "status", {"state": "queued", "position": item.position}
            elif isinstance(item, Started | Admitted):
                # It runs from the job's start, or from the engine's admission where it has one.
                if not begun and isinstance(item, Admitted) == self._admits:
                    begun = True
                    self.run.mark_running()
                    yield "status", {"state": "running"}
                    yield "stage-start", {"stage": self.stage}
            elif isinstance(item, Delta):
                if item.text:
                    parts.append(item.text)
                    yield "delta", {"stage": self.stage, "text": item.text}
            elif isinstance(item, StageOutcome):
                if not begun:  # withdrawn while the engine held it back: it never ran
                    begun = True
                    yield "stage-start", {"stage": self.stage}
                self.result = stage_result(self.model, "".join(parts), item, self.run.arrived)
                yield "stage-end", {"stage": self.stage, **self.result}
            elif isinstance(item, Dropped):
                self.result = cancelled_result(self.model, self.run.arrived)
                yield "stage-start", {"stage": self.stage}
                yield "stage-end", {"stage": self.stage, **self.result}
            elif isinstance(item, Ended):
                if item.error is not None:
                    raise contract_error(item.error)
                if self.result is None:
                    raise contract_error(RuntimeError("stage ended without a result"))
                return
