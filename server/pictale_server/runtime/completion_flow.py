"""The compatibility routes' run: describe the attached images, then one answer per choice.

OpenAI's chat/completions and KoboldCpp's generate ask for one thing: an answer to messages or
a prompt, `n` times. A `Completion` says what to answer with and from what; the flow runs it as
stages on the model workers, as the contract's flows do, and yields the same events (`status`,
`stage-start`, `delta`, `stage-end`) with an `image` or `choice` index added, then `done` with
every stage's result. The routes turn those into their own wire shapes (api/compat/).

- Images for the writer (the `pictale` model, and the writer when a request attaches images)
  are described one by one with the pipeline's scene prompt, each checked by the image gate
  after describing, as the pipeline does; the descriptions pass the text gate and reach the
  writer as scene context in a system turn (prompts.scene_context).
- The vision model answers the client's own messages about its one image; that is a custom
  prompt, so the image gate runs before it (as /v1/describe with a custom prompt).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from PIL.Image import Image

from pictale_server.engine.base import ChatMessage, Sampling
from pictale_server.runtime import prompts
from pictale_server.runtime.flows import FlowContext, sampling_for, vision_runner, writer_runner
from pictale_server.runtime.stages import Event, StageRunner

Target = Literal["writer", "vision"]


@dataclass(frozen=True)
class Completion:
    """One compatibility request, resolved: which model answers, from what, how many times.

    Exactly one of `messages` (a chat) and `prompt` (text the client templated, writer only).
    `images`: for the vision model its one image; for the writer the pictures to describe
    first. `sampling` holds one entry per choice (their seeds differ).
    """

    target: Target
    sampling: Sequence[Sampling]
    messages: Sequence[ChatMessage] | None = None
    prompt: str | None = None
    images: Sequence[Image] = ()

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a completion has messages or a prompt")
        if not self.sampling:
            raise ValueError("a completion has at least one choice")
        if self.target == "vision" and (len(self.images) != 1 or self.prompt is not None):
            raise ValueError("the vision model answers messages about exactly one image")


def _seeded(sampling: Sampling, seed: int | None, offset: int) -> Sampling:
    """`sampling` with seed + offset, where the request has a seed (so what it samples repeats)."""
    return sampling if seed is None else replace(sampling, seed=(seed + offset) % 2**63)


def choice_sampling(sampling: Sampling, n: int) -> list[Sampling]:
    """`n` choices: with a seed, choice i samples with seed + i, so each is reproducible."""
    return [_seeded(sampling, sampling.seed, i) for i in range(n)]


def describe_sampling(seed: int | None, index: int) -> Sampling:
    """The scene description of attached image `index`: with the request's seed, seeded from
    it (seed + index), so a seeded request repeats its descriptions and so its answers."""
    return _seeded(sampling_for("describe", "scene", {}), seed, index)


def _scene(descriptions: Sequence[str]) -> str | None:
    texts = [d.strip() for d in descriptions if d.strip()]
    if not texts:
        return None
    if len(texts) == 1:
        return prompts.scene_context(texts[0])
    return prompts.scene_context("\n\n".join(f"Picture {i}:\n{t}" for i, t in enumerate(texts, 1)))


def with_scene(messages: Sequence[ChatMessage], descriptions: Sequence[str]) -> list[ChatMessage]:
    """The client's messages with the pictures' descriptions as scene context (a system turn,
    which the writer's format places in front of the last user turn)."""
    scene = _scene(descriptions)
    if scene is None:
        return list(messages)
    return [*messages, ChatMessage(role="system", content=scene)]


def prompt_with_scene(prompt: str, descriptions: Sequence[str]) -> str:
    """A templated prompt with the pictures' descriptions in front of it, where KoboldCpp puts
    the images themselves (after a BOS the prompt opens with)."""
    scene = _scene(descriptions)
    if scene is None:
        return prompt
    bos = "<s>" if prompt.startswith("<s>") else ""
    return f"{bos}{scene}\n\n{prompt[len(bos):]}"


class CompletionFlow:
    def __init__(self, ctx: FlowContext, completion: Completion) -> None:
        self._ctx = ctx
        self._completion = completion
        self._prompt = completion.prompt
        self.descriptions: list[dict[str, Any]] = []
        self.choices: list[dict[str, Any]] = []
        describing = completion.target == "writer" and completion.images
        self._first = self._describe(0) if describing else self._answer(0, completion.messages)

    def start(self) -> None:
        self._first.submit()

    def cancelled_done(self) -> dict[str, Any]:
        return {"id": self._ctx.run.id, "descriptions": [], "choices": []}

    def _describe(self, index: int) -> StageRunner:
        ctx = self._ctx
        image = self._completion.images[index]
        seed = self._completion.sampling[0].seed
        messages = prompts.describe_messages("scene")
        engine, cancel = ctx.engine, ctx.run.cancel

        def check_unless_cancelled(finished) -> None:
            if finished.finish_reason != "cancelled":
                ctx.gate.check_image(image, engine, request_id=ctx.request_id)

        sampling = describe_sampling(seed, index)
        return vision_runner(
            ctx,
            lambda admission: engine.stream_vision(image, messages, sampling, cancel, admission=admission),
            after=check_unless_cancelled,
        )

    def _answer(self, choice: int, messages: Sequence[ChatMessage] | None) -> StageRunner:
        ctx, completion = self._ctx, self._completion
        engine, cancel = ctx.engine, ctx.run.cancel
        sampling = completion.sampling[choice]
        if completion.target == "vision":
            image = completion.images[0]

            def check_image() -> None:
                ctx.gate.check_image(image, engine, request_id=ctx.request_id)

            return vision_runner(
                ctx,
                lambda admission: engine.stream_vision(image, messages, sampling, cancel, admission=admission),
                before=check_image if choice == 0 else None,
            )
        if completion.prompt is not None:
            prompt = self._prompt
            return writer_runner(
                ctx,
                lambda admission: engine.stream_writer_text(
                    prompt, sampling, cancel, admission=admission
                ),
            )
        return writer_runner(
            ctx,
            lambda admission: engine.stream_writer(messages, sampling, cancel, admission=admission),
        )

    async def _stage(self, runner: StageRunner, key: str, index: int) -> AsyncIterator[Event]:
        async for name, data in runner.events():
            yield name, {**data, key: index}

    async def events(self) -> AsyncIterator[Event]:
        ctx, completion = self._ctx, self._completion
        run = ctx.run
        messages = completion.messages
        runner: StageRunner | None = self._first
        if completion.target == "writer" and completion.images:
            for index in range(len(completion.images)):
                if run.cancel.is_set:
                    break
                runner = self._first if index == 0 else self._describe(index)
                if index > 0:
                    runner.submit()
                async for event in self._stage(runner, "image", index):
                    yield event
                self.descriptions.append(runner.result)
            runner = None
            if not run.cancel.is_set:
                texts = [d["text"] for d in self.descriptions]
                await asyncio.to_thread(
                    ctx.gate.check_text,
                    {f"image.{i}.description": text for i, text in enumerate(texts)},
                    request_id=ctx.request_id,
                )
                if messages is not None:
                    messages = with_scene(messages, texts)
                else:
                    self._prompt = prompt_with_scene(completion.prompt or "", texts)
        for choice in range(len(completion.sampling)):
            if run.cancel.is_set:
                break
            if runner is None:
                runner = self._answer(choice, messages)
                runner.submit()
            async for event in self._stage(runner, "choice", choice):
                yield event
            self.choices.append(runner.result)
            runner = None
        yield "done", {"id": run.id, "descriptions": self.descriptions, "choices": self.choices}
