"""How many fresh containers a deployment whose models fail to load may ask for.

A load can fail for reasons a new container fixes (a bad host, a GPU that came up wrong, a
volume read that broke) or for reasons it cannot (no checkpoint, a model id that does not
exist). Each failed load is recorded in the store the containers share, under the app's own key;
while fewer than `limit` failures lie within `window_s`, the failing container asks to be
replaced. Past that, it stays up to report the failure instead, so a deployment that cannot load
never starts GPUs in a loop, and the status endpoint answers `failed` until the window passes
(`restarts_spent`), also once that container has scaled down. A successful load clears the record.

Two containers that fail at the same moment may both read the same count: at worst one extra
fresh container, which is why a plain read-then-write is enough here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# Standard library only at run time: the status endpoint reads the record too (container_status.py).
if TYPE_CHECKING:
    from pictale_server.hosting.status_publisher import SharedStore

KEY_PREFIX = "load-failures:"
DEFAULT_LIMIT = 2  # fresh containers asked for; with the first, three tries in all
DEFAULT_WINDOW_S = 3600.0


def budget_key(app_id: str) -> str:
    """The app's record of failed loads: a `modal serve` of the same file counts its own."""
    return KEY_PREFIX + app_id


def recent_failures(recorded: Any, now: float, window_s: float) -> list[float]:
    """The times of the failed loads in a stored record that lie within `window_s` before `now`,
    oldest first.

    A time ahead of `now` (written by a container whose clock runs fast) counts as `now`: taken
    as written, it would stay inside the window for as long as that clock was ahead.
    """
    if not isinstance(recorded, list):
        return []
    times = [min(float(t), now) for t in recorded if isinstance(t, (int, float)) and not isinstance(t, bool)]
    return sorted(t for t in times if now - t < window_s)


def restarts_spent(recorded: Any, now: float, *, limit: int, window_s: float) -> bool:
    """Whether the last failed load found the budget spent, so its container was not replaced:
    true until the oldest of those failures leaves the window."""
    return len(recent_failures(recorded, now, window_s)) > limit


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
        app_id: str,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("limit must be ≥ 0 and window_s > 0")
        self._store = store
        self._key = budget_key(app_id)
        self._limit = limit
        self._window_s = window_s
        self._clock = clock

    def spend(self) -> Verdict:
        """Record a failed load and say whether to ask for a fresh container."""
        now = self._clock()
        recent = recent_failures(self._store.get(self._key, None), now, self._window_s)
        replace = len(recent) < self._limit
        recent.append(now)
        self._store.put(self._key, recent[-(self._limit + 1) :])
        return Verdict(replace, len(recent), self._limit, self._window_s)

    def clear(self) -> None:
        """The models loaded: later failures start counting from zero."""
        self._store.pop(self._key, None)
