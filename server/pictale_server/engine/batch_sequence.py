"""One request in a model's batch, as its consumer and the decoder thread share it.

The consumer (the request's worker thread, through `stream_tokens`) reads tokens from the
sequence's queue and may send a `Rewind` or close; the decoder thread (batch_decoder.py) puts
tokens in and reads the consumer's commands at its next step. Each token carries the epoch of
the rewind it follows: the decoder runs ahead of a slow reader, so tokens made before a rewind
took effect are skipped, never shown.

Before it decodes, a sequence may wait in the decoder's line for a region of the KV pool; the
decoder tells its `admission` (engine/base.py) its place there and when it is admitted, and a
request cancelled meanwhile leaves the line at once (its `cancel` calls `Decoder.withdraw`):
the consumer blocks on the queue then, so it could not look at the flag itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Protocol

import torch

from pictale_server.engine.base import Admission, Cancel, Sampling
from pictale_server.engine.kv_pool import Region
from pictale_server.engine.request_sampler import Rewind


@dataclass(frozen=True)
class Ended:
    """No more tokens in this epoch: max_tokens reached (or the decoder stopped)."""

    epoch: int
    error: BaseException | None = None


@dataclass(eq=False)
class Sequence:
    inputs: object  # the prompt as the model's runner takes it (runners.py)
    prompt_ids: torch.Tensor  # (1, L) int64
    sampling: Sampling
    seed: int
    cancel: Cancel | None = None  # the request's stop flag: set while waiting, it withdraws
    admission: Admission | None = None  # hears the place in line and the admission
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # (epoch, token) | Ended
    # Set by the consumer, read by the decoder at its next step:
    closed: threading.Event = field(default_factory=threading.Event)
    commands: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # (epoch, Rewind)
    # The decoder's own:
    region: Region | None = None
    lane: int | None = None
    place: int | None = None  # the place in line last told to `admission`; None: never told
    epoch: int = 0
    answer: int = 0  # answer tokens delivered in this epoch
    pending: int = 0  # tokens of this epoch in a launched step, not delivered yet
    rewinding: bool = False  # this step samples a rewound index (its bans lift after)
    waits_for_reader: bool = False  # too many tokens unread: the lane sits steps out

    @property
    def prompt_tokens(self) -> int:
        return int(self.prompt_ids.shape[-1])

    @property
    def worst_case_tokens(self) -> int:
        return self.prompt_tokens + self.sampling.max_tokens


class Decoder(Protocol):
    def submit(self, sequence: Sequence) -> None: ...

    def wake(self) -> None:
        """A consumer sent a command or closed: look at it now even if nothing else runs."""

    def withdraw(self, sequence: Sequence) -> None:
        """Take `sequence` out of the line if it still waits there; its tokens end (none)."""


def stream_tokens(sequence: Sequence, decoder: Decoder) -> Generator[int, Rewind | None, None]:
    """The consumer's side: submit `sequence` at the first `next()`, then yield its tokens as
    the decoder makes them; a `Rewind` sent in takes effect at the decoder's next step and the
    next token yielded is the one that replaces the banned one. Closing the generator (or
    leaving it unfinished) frees the sequence's lane and region at the decoder's next step.
    Setting the sequence's `cancel` while it waits for admission ends it without tokens."""
    decoder.submit(sequence)
    # After submitting: a flag set before is seen at once (on_set calls the hook now).
    forget = sequence.cancel.on_set(lambda: decoder.withdraw(sequence)) if sequence.cancel else None
    epoch = 0
    try:
        while True:
            item = sequence.out.get()
            if sequence.waits_for_reader:
                decoder.wake()
            if isinstance(item, Ended):
                if item.error is not None:
                    raise item.error
                if item.epoch == epoch:
                    return
                continue
            made_in, token = item
            if made_in != epoch:
                continue
            command = yield token
            if command is not None:
                epoch += 1
                sequence.commands.put((epoch, command))
                decoder.wake()
    finally:
        if forget is not None:
            forget()
        sequence.closed.set()
        decoder.wake()
