"""What the serving layer needs from a model engine, and nothing more.

The app, the scheduler and the safety gate talk to this protocol only; the transformers engine
implements it for real models (dev, reference, custom profiles) and the API tests use a
scripted fake. Engine calls are blocking and run on the scheduler's worker thread for that
model: one job at a time per model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict, Union

from PIL.Image import Image

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled"]


class ChatMessage(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class Sampling:
    """Sampling settings after defaults are applied (docs/protocol.md, "Sampling")."""

    max_tokens: int
    temperature: float = 0.8
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Shrink max_tokens to what the context leaves after the prompt instead of refusing the
    # request (the compatibility routes: their clients send a budget, not a promise).
    fit_context: bool = False
    # The creative samplers (engine/creative_samplers.py); these defaults leave them off.
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias); -100 or less bans
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = 0  # <= 0: the whole text
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    xtc_threshold: float = 0.1
    xtc_probability: float = 0.0
    # Phrases the answer never contains: generation rewinds and resamples (banned_phrases.py).
    banned_phrases: tuple[str, ...] = ()
    # Every step of this request runs the batch-invariant kernels, so its tokens depend only on
    # its input and seed, never on which requests share its model's batch (docs/protocol.md,
    # "Sampling").
    deterministic: bool = False


@dataclass(frozen=True)
class Delta:
    """Decoded text, safe to show: never ends inside a multi-byte character or a stop string."""

    text: str


@dataclass(frozen=True)
class Finished:
    """Last item of every generation stream."""

    finish_reason: FinishReason
    input_tokens: int
    output_tokens: int


Chunk = Union[Delta, Finished]


@dataclass
class Cancel:
    """A job's stop flag. The decode loop checks it every step; a request that has no steps
    yet (one a model's batch holds back until it has memory for it) hears of it through
    `on_set` instead."""

    event: threading.Event = field(default_factory=threading.Event)
    _hooks: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set(self) -> None:
        with self._lock:
            self.event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    def on_set(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call `hook` once, when the flag is set, on the thread that sets it (now, if it is
        set already). Returns a function that forgets the hook."""
        with self._lock:
            already = self.event.is_set()
            if not already:
                self._hooks.append(hook)
        if already:
            hook()

        def forget() -> None:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return forget


class Admission(Protocol):
    """How an engine that holds requests back until it has room to decode them (the writer's
    batch waits for KV memory: batch_decoder.py) says where one stands. Called on the engine's
    own thread, in order."""

    def waiting(self, place: int) -> None:
        """The request waits for room, at `place` (1-based) in the engine's line, which is first
        come first served; called again whenever the place changes."""

    def admitted(self) -> None:
        """The request starts: its prompt is prefilled next. Called once, after any `waiting`;
        a request withdrawn while it waits (its Cancel set) never is."""


class Engine(Protocol):
    profile: str  # "dev" | "reference" | "custom"
    vision_id: str
    writer_id: str
    # True when the writer holds requests back until it has room for them and says so through
    # the `admission` of stream_writer / stream_writer_text: the serving layer then reports a
    # writer job as running only once it is admitted. False: every request starts when called.
    writer_admission: bool
    vision_admission: bool  # the same for the vision model and stream_vision

    @property
    def vision_loaded(self) -> bool: ...

    @property
    def writer_loaded(self) -> bool: ...

    def load(self) -> None:
        """Load both models (blocking, idempotent). Health says "loading" until it returns;
        a failure raises engine.errors.ModelLoadFailed with a reason code."""

    def decode_info(self, model: Literal["vision", "writer"]) -> dict[str, str] | None:
        """How a loaded model decodes: {"path": "fast" | "reference", "reason": why not fast}."""

    def stream_vision(
        self,
        image: Image,
        messages: Sequence[ChatMessage],
        sampling: Sampling,
        cancel: Cancel,
        *,
        admission: Admission | None = None,
    ) -> Iterator[Chunk]:
        """Generate from the vision model; `messages`' last user turn is about `image`.
        `admission` as for stream_writer, where `vision_admission`.

        Raises engine.errors.EngineError subclasses (e.g. PromptTooLong) before the first chunk.
        """

    def stream_writer(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling,
        cancel: Cancel,
        *,
        admission: Admission | None = None,
    ) -> Iterator[Chunk]:
        """Generate from the writer model (templated in its own chat format). Where the writer
        holds requests back (`writer_admission`), `admission` hears where this one stands once
        the stream is first read."""

    def stream_writer_text(
        self, prompt: str, sampling: Sampling, cancel: Cancel, *, admission: Admission | None = None
    ) -> Iterator[Chunk]:
        """Generate from the writer, continuing `prompt` as written: a prompt the client
        templated itself (its control tokens are meant), BOS in front unless it has one;
        `admission` as for stream_writer."""

    def writer_token_ids(self, text: str, *, special: bool = True) -> list[int]:
        """The writer tokenizer's ids for `text`, no BOS added; `special`: control-token text
        (`[INST]`) is the control token, else the plain characters."""

    @property
    def writer_context_tokens(self) -> int:
        """The most tokens a writer prompt and its answer may hold together."""

    def score_vision_options(
        self, image: Image, messages: Sequence[ChatMessage], options: Sequence[str]
    ) -> list[float]:
        """Log-probability of each option as the complete assistant answer (safety assessment)."""
