"""Banned phrases: the answer never contains them, and text shown is never taken back.

Front ends cannot do this for themselves: once a model has written "shivers down her spine"
only the backend can go back. `PhraseGuard` watches the answer's text token by token. When the
text completes a banned phrase (case aside), it asks the decode loop to rewind to the token
where the phrase began and to sample that token again with the token it had chosen banned
there (request_sampler.Rewind); the KV cache is simply written over from that slot on.

Text is released to the client only up to the first token that could still begin a banned
phrase: while the text's end is a proper prefix of some phrase, the tokens that wrote that
prefix are held back. A rewind therefore only ever takes back text nobody has seen.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from pictale_server.engine.text_stream import IncrementalDetokenizer

# Rewinds one answer may take. A model that keeps finding new ways to spell a banned phrase
# ends its answer there instead ("stop") rather than loop.
MAX_REWINDS = 256


def _fold(text: str) -> str:
    """Lower case, character for character (offsets stay valid): "İ".lower() is two."""
    return "".join(lower if len(lower := ch.lower()) == 1 else ch for ch in text)


@dataclass(frozen=True)
class RewindTo:
    index: int  # the answer's token where the phrase began
    banned: int  # that token's id, banned there


class PhraseGuard:
    def __init__(self, tokenizer, phrases: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._phrases = tuple(dict.fromkeys(_fold(p) for p in phrases if p))
        self._detokenizer = IncrementalDetokenizer(tokenizer)
        self._longest = max(map(len, self._phrases), default=0)
        # Every proper beginning of every phrase: the text's end is held while it is one.
        self._beginnings = {p[:size] for p in self._phrases for size in range(1, len(p))}
        self.ids: list[int] = []
        self._starts: list[int] = []  # each token's first character in `_text`
        self._text = ""
        self._folded = ""  # `_text` folded, kept in step (never refolded whole: answers are long)
        self._released = 0  # characters of `_text` handed out
        self.rewinds = 0

    def push(self, token: int) -> RewindTo | None:
        """Add the answer's next token; a rewind when it completes a banned phrase."""
        piece = self._detokenizer.push(token)
        self.ids.append(token)
        self._starts.append(len(self._text))
        searched_from = max(0, len(self._text) - self._longest + 1)
        self._text += piece
        self._folded += _fold(piece)
        hits = [at for p in self._phrases if (at := self._folded.find(p, searched_from)) >= 0]
        if not hits:
            return None
        index = self._token_at(min(hits))
        rewind = RewindTo(index, self.ids[index])
        self._truncate(index)
        self.rewinds += 1
        return rewind

    def _token_at(self, char: int) -> int:
        """The first token of those that wrote character `char` (a character split over tokens
        is written by the last of them, which decode as "" before it)."""
        # `_starts` never decreases, and tokens that wrote "" share the next token's start:
        # the first token starting at the last start <= char is the one.
        return bisect.bisect_left(self._starts, self._starts[bisect.bisect_right(self._starts, char) - 1])

    def _truncate(self, index: int) -> None:
        kept = self.ids[:index]
        self._detokenizer = IncrementalDetokenizer(self._tokenizer)
        self.ids, self._starts, self._text = [], [], ""
        for token in kept:
            self._starts.append(len(self._text))
            self.ids.append(token)
            self._text += self._detokenizer.push(token)
        self._folded = _fold(self._text)

    def _held_from(self) -> int:
        """Where the longest end of the text that begins some banned phrase starts."""
        folded = self._folded
        for start in range(max(0, len(folded) - self._longest + 1), len(folded)):
            if folded[start:] in self._beginnings:
                return start
        return len(folded)

    def release(self) -> str:
        """Text that no banned phrase can claim any more."""
        held_from = self._held_from()
        if held_from < len(self._text):  # hold whole tokens: a rewind restarts at a token
            held_from = self._starts[self._token_at(held_from)]
        text = self._text[self._released : held_from] if held_from > self._released else ""
        self._released = max(self._released, held_from)
        return text

    def finish(self) -> str:
        """At the end of the answer: the rest (a phrase's beginning is not the phrase)."""
        self._text += self._detokenizer.flush()
        self._folded = _fold(self._text)
        text = self._text[self._released :]
        self._released = len(self._text)
        return text
