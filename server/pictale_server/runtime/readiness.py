"""Loads the models in a background thread at startup; routes ask it whether they may run.

Health reads the engine's own `vision_loaded`/`writer_loaded`; streaming routes `wait()` here
while sending `status: loading`, plain routes answer 503 `not_ready` until `ready`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from pictale_server.engine.base import Engine
from pictale_server.errors import ApiError

logger = logging.getLogger("pictale.server")

NOT_READY_RETRY_AFTER_S = 5


class ModelLoader:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._done = asyncio.Event()
        self.failed = False

    @property
    def ready(self) -> bool:
        return self._engine.vision_loaded and self._engine.writer_loaded

    def start(self) -> None:
        """Call on the event loop (the app's lifespan; it may run more than once)."""
        self._done = asyncio.Event()
        if self.ready:
            self._done.set()
            return
        loop = asyncio.get_running_loop()
        done = self._done
        threading.Thread(
            target=self._load, args=(loop, done), name="pictale-load", daemon=True
        ).start()

    def _load(self, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
        started = time.perf_counter()
        try:
            self._engine.load()
            logger.info("models loaded in %.1f s", time.perf_counter() - started)
        except Exception as exc:
            self.failed = True
            logger.error("model loading failed: %s", type(exc).__name__, exc_info=exc)
        try:
            loop.call_soon_threadsafe(done.set)
        except RuntimeError:  # the app shut down while loading
            pass

    def check_ready(self) -> None:
        """For plain (non-streaming) requests."""
        if self.failed:
            raise ApiError("internal", "The models failed to load; see the server log.")
        if not self.ready:
            raise ApiError(
                "not_ready", "The models are still loading.", retry_after=NOT_READY_RETRY_AFTER_S
            )

    async def wait(self) -> None:
        """For streams: returns once the models are resident."""
        await self._done.wait()
        self.check_ready()
