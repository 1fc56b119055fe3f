"""Pick and construct the engine for the configured profile (cheap: `engine.load()` loads)."""

from __future__ import annotations

import torch

from pictale_server.engine.model_sources import model_sources, resolve_profile
from pictale_server.engine.transformers_engine import TransformersEngine
from pictale_server.settings import Settings


def load_engine(settings: Settings) -> TransformersEngine:
    cuda = torch.cuda.is_available()
    profile = resolve_profile(settings, cuda_available=cuda)
    vision, writer = model_sources(settings, profile)
    return TransformersEngine(
        profile=profile,
        vision=vision,
        writer=writer,
        settings=settings,
        device=torch.device("cuda:0" if cuda else "cpu"),
        # The dev models are tiny: NF4 would only add a dependency; they run in bf16 on a GPU.
        quantize=cuda and profile != "dev",
    )
