"""What each generation route does, as contract events: describe, narrate, pipeline.

A flow is built by its route after validation, the text gate and the image load. `start()`
queues its first job (a full queue raises `queue_full` while the route can still answer a plain
429); `events()` then yields the route's events up to and including `done`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from PIL.Image import Image

from pictale_server.engine.base import Admission, ChatMessage, Chunk, Engine, Finished, Sampling
from pictale_server.runtime import prompts
from pictale_server.runtime.runs import Run
from pictale_server.runtime.scheduler import ModelWorker, Scheduler
from pictale_server.api.schemas import (
    DescribeOverrides,
    DescribeRequest,
    NarrateOverrides,
    NarrateRequest,
    PipelineRequest,
)
from pictale_server.runtime.services import Gate
from pictale_server.runtime.stages import (
    Event,
    Stage,
    StageRunner,
    admitted_generation_work,
    cancelled_result,
    generation_work,
)

_SAMPLING_FIELDS = {f.name for f in fields(Sampling)}


class Flow(Protocol):
    def start(self) -> None: ...

    def events(self) -> AsyncIterator[Event]: ...

    def cancelled_done(self) -> dict[str, Any]:
        """The `done` data of this flow cancelled before any stage ran (while the models
        loaded): every stage's result empty, `finish_reason: "cancelled"`."""


@dataclass
class FlowContext:
    run: Run
    engine: Engine
    scheduler: Scheduler
    gate: Gate
    request_id: str


def sampling_for(stage: str, style: str | None, overrides: dict[str, Any]) -> Sampling:
    values = {**prompts.default_sampling(stage, style), **overrides}
    for name in ("stop", "dry_sequence_breakers", "banned_phrases"):
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    if values.get("logit_bias") is not None:
        values["logit_bias"] = tuple((int(token), float(bias)) for token, bias in values["logit_bias"].items())
    return Sampling(**{k: v for k, v in values.items() if k in _SAMPLING_FIELDS and v is not None})


def has_custom_vision_prompt(request: DescribeRequest | DescribeOverrides) -> bool:
    return request.prompt is not None or request.system is not None


def _history(request: NarrateRequest | NarrateOverrides) -> list[ChatMessage]:
    return [{"role": turn.role, "content": turn.content} for turn in request.history or []]


def _describe_runner(
    ctx: FlowContext,
    image: Image,
    request: DescribeRequest | DescribeOverrides,
    style: str,
    *,
    check_before: bool,
    check_after: bool,
) -> StageRunner:
    messages = prompts.describe_messages(style, request.prompt, request.system)
    sampling = sampling_for("describe", style, request.sampling_overrides())
    engine, cancel = ctx.engine, ctx.run.cancel

    def check_image() -> None:
        ctx.gate.check_image(image, engine, request_id=ctx.request_id)

    def check_unless_cancelled(finished: Finished) -> None:
        if finished.finish_reason != "cancelled":
            check_image()

    return vision_runner(
        ctx,
        lambda admission: engine.stream_vision(image, messages, sampling, cancel, admission=admission),
        before=check_image if check_before else None,
        after=check_unless_cancelled if check_after else None,
    )


def vision_runner(
    ctx: FlowContext,
    open_stream: Callable[[Admission | None], Iterator[Chunk]],
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[Finished], None] | None = None,
) -> StageRunner:
    """A describe stage on the vision model; `before` and `after` run on the worker thread
    around the stream (the image's checks)."""
    engine = ctx.engine
    return _model_stage(
        ctx, "describe", ctx.scheduler.vision, engine.vision_id, engine.vision_admission, open_stream, before, after
    )


def writer_runner(
    ctx: FlowContext, open_stream: Callable[[Admission | None], Iterator[Chunk]]
) -> StageRunner:
    """A narrate stage on the writer."""
    engine = ctx.engine
    return _model_stage(ctx, "narrate", ctx.scheduler.writer, engine.writer_id, engine.writer_admission, open_stream)


def _model_stage(
    ctx: FlowContext,
    stage: Stage,
    worker: ModelWorker,
    model_id: str,
    admits: bool,
    open_stream: Callable[[Admission | None], Iterator[Chunk]],
    before: Callable[[], None] | None = None,
    after: Callable[[Finished], None] | None = None,
) -> StageRunner:
    """A stage on one model's worker; `open_stream(admission)` calls the engine. Where the
    engine holds that model's requests back until its batch has a lane and KV memory for them
    (`admits`: Engine.writer_admission, Engine.vision_admission), the stage runs from its
    admission and is queued until then (stages.py)."""
    if admits:
        work = admitted_generation_work(open_stream, before, after)
    else:
        work = generation_work(lambda: open_stream(None), before, after)
    return StageRunner(ctx.run, stage, worker, model_id, work, admits=admits)


def _narrate_runner(
    ctx: FlowContext, messages: Sequence[ChatMessage], sampling: Sampling
) -> StageRunner:
    engine, cancel = ctx.engine, ctx.run.cancel
    return writer_runner(
        ctx,
        lambda admission: engine.stream_writer(messages, sampling, cancel, admission=admission),
    )


class _SingleStageFlow:
    """A flow of one stage: its events, then `done` with its result."""

    _ctx: FlowContext
    _stage: StageRunner

    def start(self) -> None:
        self._stage.submit()

    async def events(self) -> AsyncIterator[Event]:
        async for event in self._stage.events():
            yield event
        yield "done", {"id": self._ctx.run.id, **self._stage.result}

    def cancelled_done(self) -> dict[str, Any]:
        return {"id": self._ctx.run.id, **cancelled_result(self._stage.model, self._ctx.run.arrived)}


class DescribeFlow(_SingleStageFlow):
    """The image gate runs only for a custom prompt or system (docs/server.md says why)."""

    def __init__(self, ctx: FlowContext, image: Image, request: DescribeRequest) -> None:
        self._ctx = ctx
        self._stage = _describe_runner(
            ctx,
            image,
            request,
            request.style or "detailed",
            check_before=has_custom_vision_prompt(request),
            check_after=False,
        )


class NarrateFlow(_SingleStageFlow):
    def __init__(self, ctx: FlowContext, request: NarrateRequest) -> None:
        self._ctx = ctx
        messages = prompts.narrate_messages(
            request.instruction, request.context, request.system, _history(request)
        )
        sampling = sampling_for("narrate", None, request.sampling_overrides())
        self._stage = _narrate_runner(ctx, messages, sampling)


class PipelineFlow:
    """describe → image gate (on the vision worker) → text gate on the description → narrate.

    With a custom describe prompt or system the image gate runs before describing instead.
    """

    def __init__(self, ctx: FlowContext, image: Image, request: PipelineRequest) -> None:
        self._ctx = ctx
        self._request = request
        custom = has_custom_vision_prompt(request.describe)
        self._describe = _describe_runner(
            ctx,
            image,
            request.describe,
            request.describe.style or "scene",
            check_before=custom,
            check_after=not custom,
        )

    def start(self) -> None:
        self._describe.submit()

    def cancelled_done(self) -> dict[str, Any]:
        run, engine = self._ctx.run, self._ctx.engine
        return {
            "id": run.id,
            "description": cancelled_result(engine.vision_id, run.arrived),
            "story": cancelled_result(engine.writer_id, run.arrived),
        }

    async def events(self) -> AsyncIterator[Event]:
        ctx, run = self._ctx, self._ctx.run
        async for event in self._describe.events():
            yield event
        description = self._describe.result
        if run.cancel.is_set:
            story = cancelled_result(ctx.engine.writer_id, run.arrived)
        else:
            overrides = self._request.narrate
            # Off the event loop, like the route's own text gate: a long description plus a
            # long instruction takes the gate a few hundred ms.
            await asyncio.to_thread(
                ctx.gate.check_text,
                {"instruction": self._request.instruction, "context": description["text"]},
                request_id=ctx.request_id,
            )
            messages = prompts.narrate_messages(
                self._request.instruction,
                description["text"],
                overrides.system,
                _history(overrides),
            )
            narrate = _narrate_runner(
                ctx, messages, sampling_for("narrate", None, overrides.sampling_overrides())
            )
            narrate.submit()
            async for event in narrate.events():
                yield event
            story = narrate.result
        yield "done", {"id": run.id, "description": description, "story": story}
