"""Token ids → text deltas that are always safe to show.

`IncrementalDetokenizer` never emits half a UTF-8 character (byte-level tokens can split one);
`StopStringFilter` never emits any part of a stop string and holds back a tail that could
still become one.
"""

from __future__ import annotations

from collections.abc import Sequence

REPLACEMENT = "\ufffd"
# Tokens decoded again before the new ones, so merges at token boundaries decode correctly.
_CONTEXT_TOKENS = 6


class IncrementalDetokenizer:
    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_start = 0  # start of the already-emitted context window
        self._emitted_end = 0  # ids before this index are emitted

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text ("" while a character is incomplete)."""
        self._ids.append(token_id)
        prefix = self._decode(self._ids[self._prefix_start : self._emitted_end])
        full = self._decode(self._ids[self._prefix_start :])
        if len(full) <= len(prefix) or full.endswith(REPLACEMENT):
            return ""
        self._emitted_end = len(self._ids)
        self._prefix_start = max(0, self._emitted_end - _CONTEXT_TOKENS)
        return full[len(prefix) :]

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        prefix = self._decode(self._ids[self._prefix_start : self._emitted_end])
        full = self._decode(self._ids[self._prefix_start :])
        self._emitted_end = len(self._ids)
        return full[len(prefix) :] if len(full) > len(prefix) else ""


class StopStringFilter:
    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False

    def _held_tail_length(self) -> int:
        """Length of the longest pending suffix that is a proper prefix of some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def push(self, text: str) -> str:
        """Add decoded text; return what is safe to emit. Sets `stopped` at a stop string."""
        if self.stopped:
            return ""
        self._pending += text
        first = min(
            (index for stop in self._stops if (index := self._pending.find(stop)) >= 0),
            default=-1,
        )
        if first >= 0:
            self.stopped = True
            emitted, self._pending = self._pending[:first], ""
            return emitted
        held = self._held_tail_length()
        cut = len(self._pending) - held
        emitted, self._pending = self._pending[:cut], self._pending[cut:]
        return emitted

    def flush(self) -> str:
        """At the end of generation, the held tail was not a stop string after all."""
        emitted, self._pending = ("" if self.stopped else self._pending), ""
        return emitted
