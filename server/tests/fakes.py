"""Scripted stand-ins for the engine and the safety gate, for fast API tests.

`FakeEngine` implements `pictale_server.engine.base.Engine`: each model streams a scripted
token list, can hold after N tokens until the test releases it (checking the stop flag while it
waits, as the real decode loop does every step), can fail mid-stream, and records every call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from PIL.Image import Image

from pictale_server.engine.base import Cancel, ChatMessage, Chunk, Delta, Finished, Sampling
from pictale_server.errors import ApiError

WAIT_S = 10.0  # upper bound for a test waiting on the server; never an assertion on speed


@dataclass
class Script:
    tokens: list[str]
    input_tokens: int = 12
    hold_after: int | None = None  # after this many tokens, wait for FakeEngine.release
    fail_after: int | None = None  # after this many tokens, raise RuntimeError
    error_first: ApiError | None = None  # raised before the first chunk


@dataclass
class Call:
    model: str
    messages: list[ChatMessage]
    sampling: Sampling
    image: Image | None
    thread: str
    finish_reason: str | None = None
    prompt: str | None = None  # stream_writer_text's prompt


@dataclass
class FakeEngine:
    vision: Script = field(default_factory=lambda: Script(["A red ", "circle."]))
    writer: Script = field(default_factory=lambda: Script(["Once ", "upon ", "a time."]))
    loaded: bool = True
    load_gate: threading.Event | None = None  # load() blocks on it when given
    load_error: Exception | None = None  # load() raises it when given
    profile: str = "dev"
    vision_id: str = "fake/vision"
    writer_id: str = "fake/writer"
    writer_admission: bool = False  # every request starts when called: Started means running
    vision_admission: bool = False

    def __post_init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[Call] = []
        self.scored: list[str] = []
        self._cond = threading.Condition()

    # --- Engine protocol ---------------------------------------------------------------------

    @property
    def vision_loaded(self) -> bool:
        return self.loaded

    @property
    def writer_loaded(self) -> bool:
        return self.loaded

    def decode_info(self, model: str) -> dict[str, str] | None:
        return {"path": "reference", "reason": "no CUDA GPU"} if self.loaded else None

    def load(self) -> None:
        if self.load_gate is not None:
            self.load_gate.wait(WAIT_S)
        if self.load_error is not None:
            raise self.load_error
        self.loaded = True

    def stream_vision(
        self, image: Image, messages: Sequence[ChatMessage], sampling: Sampling, cancel: Cancel, *, admission=None
    ) -> Iterator[Chunk]:
        return self._stream("vision", self.vision, image, messages, sampling, cancel)

    def stream_writer(
        self, messages: Sequence[ChatMessage], sampling: Sampling, cancel: Cancel, *, admission=None
    ) -> Iterator[Chunk]:
        return self._stream("writer", self.writer, None, messages, sampling, cancel)

    def stream_writer_text(
        self, prompt: str, sampling: Sampling, cancel: Cancel, *, admission=None
    ) -> Iterator[Chunk]:
        return self._stream("writer", self.writer, None, [], sampling, cancel, prompt=prompt)

    def writer_token_ids(self, text: str, *, special: bool = True) -> list[int]:
        """One id per character; `[INST]` is one id when `special`."""
        ids, rest = [], text
        while rest:
            if special and rest.startswith("[INST]"):
                ids.append(3)
                rest = rest[len("[INST]"):]
            else:
                ids.append(1000 + ord(rest[0]))
                rest = rest[1:]
        return ids

    writer_context_tokens: int = 2048

    def score_vision_options(
        self, image: Image, messages: Sequence[ChatMessage], options: Sequence[str]
    ) -> list[float]:
        self.scored.append(threading.current_thread().name)
        return [0.0 for _ in options]

    # --- test helpers ------------------------------------------------------------------------

    def wait_for_calls(self, count: int) -> list[Call]:
        """Block until `count` generations have started (or fail after WAIT_S)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.calls) >= count, WAIT_S):
                raise AssertionError(f"expected {count} engine calls, saw {len(self.calls)}")
            return list(self.calls)

    def wait_for_finish(self, index: int) -> str:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(self.calls) > index and self.calls[index].finish_reason is not None,
                WAIT_S,
            )
            if not ok:
                raise AssertionError(f"engine call {index} did not finish")
            return self.calls[index].finish_reason

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _finish(self, call: Call, reason: str) -> None:
        with self._cond:
            call.finish_reason = reason
            self._cond.notify_all()

    def _stream(
        self,
        model: str,
        script: Script,
        image: Image | None,
        messages: Sequence[ChatMessage],
        sampling: Sampling,
        cancel: Cancel,
        prompt: str | None = None,
    ) -> Iterator[Chunk]:
        call = Call(model, list(messages), sampling, image, threading.current_thread().name, prompt=prompt)
        self._record(call)
        if script.error_first is not None:
            self._finish(call, "error")
            raise script.error_first
        tokens = script.tokens[: sampling.max_tokens]
        produced = 0
        for index, token in enumerate(tokens):
            if index == script.hold_after:
                while not self.release.wait(0.005) and not cancel.is_set:
                    pass
            if index == script.fail_after:
                self._finish(call, "error")
                raise RuntimeError("scripted engine failure")
            if cancel.is_set:
                self._finish(call, "cancelled")
                yield Finished("cancelled", script.input_tokens, produced)
                return
            produced += 1
            yield Delta(token)
        reason = "length" if len(script.tokens) > sampling.max_tokens else "stop"
        self._finish(call, reason)
        yield Finished(reason, script.input_tokens, produced)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class FakeGate:
    """Refuses text containing `refuse_marker`; refuses every image when `refuse_images`."""

    def __init__(self, refuse_marker: str = "REFUSE-ME", refuse_images: bool = False) -> None:
        self.refuse_marker = refuse_marker
        self.refuse_images = refuse_images
        self.texts: list[dict[str, str]] = []
        self.text_on_loop: list[bool] = []  # per check_text call: ran on an event loop thread?
        self.image_threads: list[str] = []
        self.request_ids: list[str | None] = []

    def check_text(self, fields: dict[str, str], *, request_id: str | None = None) -> None:
        self.texts.append(dict(fields))
        self.text_on_loop.append(_on_event_loop())
        self.request_ids.append(request_id)
        if any(self.refuse_marker in value for value in fields.values()):
            raise ApiError(
                "content_refused", "This request was refused by the content policy (text)."
            )

    def check_image(self, image: Image, engine: object, *, request_id: str | None = None) -> None:
        self.image_threads.append(threading.current_thread().name)
        self.request_ids.append(request_id)
        if self.refuse_images:
            raise ApiError(
                "content_refused", "This request was refused by the content policy (image_minor)."
            )
