"""What the creative samplers need to know about a model's vocabulary, as token masks.

- DRY's sequence breakers are strings; a token breaks a sequence when its text contains one of
  them (a token "\\n\\n" or "." + "\\n" breaks at a line break as "\\n" does).
- XTC never removes a token whose text holds a line break, nor an end-of-text token: cutting
  those makes answers run on.

Each token's text is decoded once per model, at the first request that needs it; masks are
kept per set of breakers (front ends send the same few sets).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Collection

import torch

BREAKER_SETS_KEPT = 16


class SamplerVocabulary:
    def __init__(self, tokenizer, vocab_size: int, end_ids: Collection[int], device: torch.device) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._end_ids = tuple(end_ids)
        self._device = device
        self._lock = threading.Lock()
        self._texts: list[str] | None = None
        self._xtc_keep: torch.Tensor | None = None
        self.breakers = functools.lru_cache(maxsize=BREAKER_SETS_KEPT)(self._breakers)

    def texts(self) -> list[str]:
        """Each token id's own text ("" past the tokenizer's end: the model's padding rows)."""
        with self._lock:
            if self._texts is None:
                known = min(len(self._tokenizer), self._vocab_size)
                decoded = self._tokenizer.batch_decode([[i] for i in range(known)], skip_special_tokens=False)
                self._texts = list(decoded) + [""] * (self._vocab_size - known)
            return self._texts

    def _mask(self, chosen: list[bool]) -> torch.Tensor:
        return torch.tensor(chosen, dtype=torch.bool).to(self._device)

    def _breakers(self, strings: tuple[str, ...]) -> torch.Tensor:
        wanted = [s for s in strings if s]
        if not wanted:
            return self._mask([False] * self._vocab_size)
        # One compiled alternation searched per token: the same cost for 1 breaker or 64.
        pattern = re.compile("|".join(map(re.escape, wanted)))
        return self._mask([pattern.search(text) is not None for text in self.texts()])

    @property
    def xtc_keep(self) -> torch.Tensor:
        if self._xtc_keep is None:
            keep = ["\n" in text for text in self.texts()]
            for end in self._end_ids:
                if 0 <= end < self._vocab_size:
                    keep[end] = True
            self._xtc_keep = self._mask(keep)
        return self._xtc_keep
