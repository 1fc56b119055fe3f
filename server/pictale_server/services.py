"""Everything one app instance owns, built by `create_app` and kept on `app.state.services`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PIL.Image import Image

from .engine.base import Engine
from .readiness import ModelLoader
from .runs import RunRegistry
from .scheduler import Scheduler
from .settings import Settings

ImageLoader = Callable[[Any], Awaitable[Image]]


class Gate(Protocol):
    """The safety gate as the routes use it (pictale_server.safety.gate.SafetyGate)."""

    def check_text(self, fields: dict[str, str], *, request_id: str | None = None) -> None:
        """Raise ApiError content_refused; cheap, called on the event loop before queueing."""

    def check_image(self, image: Image, engine: Engine, *, request_id: str | None = None) -> None:
        """Raise ApiError content_refused; blocking, called on the vision worker thread."""


@dataclass
class Services:
    engine: Engine
    settings: Settings
    scheduler: Scheduler
    runs: RunRegistry
    loader: ModelLoader
    gate: Gate
    load_image: ImageLoader
