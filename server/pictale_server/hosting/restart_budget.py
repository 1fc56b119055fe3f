"""How many fresh containers a deployment whose models fail to load may ask for.

A load can fail for reasons a new container fixes (a bad host, a GPU that came up wrong, a
volume read that broke) or for reasons it cannot (no checkpoint, a model id that does not
exist). Each failed load is recorded in the store the containers share; while fewer than
`limit` failures lie within `window_s`, the failing container asks to be replaced. Past that,
it stays up to report the failure instead, so a deployment that cannot load never starts GPUs
in a loop. A successful load clears the record.

Two containers that fail at the same moment may both read the same count: at worst one extra
fresh container, which is why a plain read-then-write is enough here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pictale_server.hosting.status_publisher import SharedStore

KEY = "load-failures"
DEFAULT_LIMIT = 2  # fresh containers asked for; with the first, three tries in all
DEFAULT_WINDOW_S = 3600.0


@dataclass(frozen=True)
class Verdict:
    replace: bool  # ask the host for a fresh container
    failures: int  # failed loads within the window, this one included
    limit: int
    window_s: float


class RestartBudget:
    def __init__(
        self,
        store: SharedStore,
        *,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("limit must be ≥ 0 and window_s > 0")
        self._store = store
        self._limit = limit
        self._window_s = window_s
        self._clock = clock

    def spend(self) -> Verdict:
        """Record a failed load and say whether to ask for a fresh container."""
        now = self._clock()
        recent = [t for t in self._recorded() if now - t < self._window_s]
        replace = len(recent) < self._limit
        recent.append(now)
        self._store.put(KEY, recent[-(self._limit + 1) :])
        return Verdict(replace, len(recent), self._limit, self._window_s)

    def clear(self) -> None:
        """The models loaded: later failures start counting from zero."""
        self._store.pop(KEY, None)

    def _recorded(self) -> list[float]:
        value = self._store.get(KEY, None)
        if not isinstance(value, list):
            return []
        return [t for t in value if isinstance(t, (int, float))]
