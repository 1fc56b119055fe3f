"""Everything one app instance owns, built by `create_app`.

Routes reach it through the `get_services` dependency (api/dependencies.py), never by reading
app state themselves.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL.Image import Image

from pictale_server.engine.base import Engine
from pictale_server.runtime.lifecycle import ModelLifecycle
from pictale_server.runtime.runs import RunRegistry
from pictale_server.runtime.scheduler import Scheduler
from pictale_server.settings import Settings

ImageLoader = Callable[[Any], Awaitable[Image]]


class Gate(Protocol):
    """The safety gate as the routes use it (pictale_server.safety.gate.SafetyGate)."""

    def check_text(self, fields: dict[str, str], *, request_id: str | None = None) -> None:
        """Raise ApiError content_refused; blocking (a few hundred ms at most), so callers run it
        in a worker thread (asyncio.to_thread), never on the event loop."""

    def check_image(self, image: Image, engine: Engine, *, request_id: str | None = None) -> None:
        """Raise ApiError content_refused; blocking, called on the vision worker thread."""


@dataclass
class Services:
    engine: Engine
    settings: Settings
    scheduler: Scheduler
    runs: RunRegistry
    lifecycle: ModelLifecycle
    gate: Gate
    load_image: ImageLoader
    started_at: int = field(default_factory=lambda: int(time.time()))  # Unix time the app was built
    webhooks: Any = None  # webhooks.WebhookSender when PICTALE_WEBHOOK_SECRET is set
    run_store: Any = None  # run_store.RunStore shared by containers (Modal), or None
