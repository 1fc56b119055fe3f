"""A per-caller sliding one-minute window: at most `limit` requests in any 60 s."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from pictale_server.errors import ApiError

WINDOW_S = 60.0


class RateLimiter:
    def __init__(self, limit_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit_per_minute
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, caller: str) -> None:
        """Count one request for `caller`, or raise 429 `rate_limited` with Retry-After."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(caller, deque())
            while hits and hits[0] <= now - WINDOW_S:
                hits.popleft()
            if len(hits) >= self._limit:
                retry_after = max(1, math.ceil(hits[0] + WINDOW_S - now))
                raise ApiError(
                    "rate_limited",
                    f"Rate limit of {self._limit} requests per minute reached.",
                    retry_after=retry_after,
                )
            hits.append(now)
            self._forget_idle_locked(now)

    def _forget_idle_locked(self, now: float) -> None:
        if len(self._hits) < 1024:
            return
        for caller in [c for c, h in self._hits.items() if not h or h[-1] <= now - WINDOW_S]:
            del self._hits[caller]
