"""Everything one app instance owns, built by `create_app` and kept on `app.state.services`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PIL.Image import Image

from .engine.base import Engine
from .readiness import ModelLoader
from .runs import RunRegistry
from .scheduler import Scheduler
from .settings import Settings

ImageLoader = Callable[[Any], Awaitable[Image]]


@dataclass
class Services:
    engine: Engine
    settings: Settings
    scheduler: Scheduler
    runs: RunRegistry
    loader: ModelLoader
    gate: Any  # safety.gate.SafetyGate or a stand-in with check_text / check_image
    load_image: ImageLoader
