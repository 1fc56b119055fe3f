"""Shared fixtures for the engine tests: the dev models, built once per test session.

Import the fixtures you use into a test module (`from engine_fixtures import dev_engine`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pictale_server.engine.batch_decoder import BatchDecoder
from pictale_server.engine.decode_step import ReferenceStep
from pictale_server.engine.dev.models import DevModelPaths, ensure_dev_models
from pictale_server.engine.kv_pool import PAGE_TOKENS, KVPool
from pictale_server.engine.loader import load_engine
from pictale_server.engine.transformers_engine import TransformersEngine
from pictale_server.settings import Settings

DEV_CONTEXT_TOKENS = 1024


@pytest.fixture(scope="session")
def dev_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pictale-cache")


@pytest.fixture(scope="session")
def dev_model_paths(dev_cache_dir: Path) -> DevModelPaths:
    return ensure_dev_models(dev_cache_dir)


def dev_settings(cache_dir: Path, **overrides) -> Settings:
    values = {"profile": "dev", "cache_dir": cache_dir, "max_context_tokens": DEV_CONTEXT_TOKENS}
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="session")
def dev_engine(dev_cache_dir: Path, dev_model_paths: DevModelPaths) -> TransformersEngine:
    engine = load_engine(dev_settings(dev_cache_dir))
    engine.load()
    return engine


def scene_image(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A synthetic picture: coloured shapes on a plain background."""
    image = Image.new("RGB", size, (70, 130, 180))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w // 8, h // 8, w // 2, h // 2), fill=(220, 40, 40))
    draw.rectangle((w // 2, h // 2, w - w // 8, h - h // 8), fill=(240, 200, 40))
    return image


def decoder_of(
    engine: TransformersEngine, *, pages: int | None = None, lanes: int = 4, model: str = "writer"
) -> BatchDecoder:
    """A batch of its own over a dev model (a pool of `pages` pages where given: one request's
    worst case over 256 tokens then fills two)."""
    loaded = engine.loaded(model)
    shared: BatchDecoder = loaded.loop
    pool = shared.pool
    if pages is not None:
        pool = KVPool(loaded.model.config, (pages + 1) * PAGE_TOKENS, dtype=loaded.model.dtype, device=shared.device)
    return BatchDecoder(
        shared.runner, pool, shared.step, lanes=lanes, vocab_size=shared.vocab_size,
        context_tokens=shared.context_tokens, vocabulary=shared.samplers[0].vocabulary, name=shared.name,
    )


def reference_loop(runner, *, cache_tokens: int, vocab_size: int, lanes: int = 1) -> BatchDecoder:
    """A batch on the reference step over a fresh pool of `cache_tokens` slots, on the
    runner's device."""
    model = runner.model
    pool = KVPool(model.config, -(-cache_tokens // PAGE_TOKENS) * PAGE_TOKENS + PAGE_TOKENS, dtype=model.dtype, device=model.device)
    return BatchDecoder(
        runner, pool, ReferenceStep(runner), lanes=lanes, vocab_size=vocab_size, context_tokens=cache_tokens,
        name="the model",
    )


def guarded_tokens(steps, guard) -> list[int]:
    """Drive a decode loop's token generator as stream_chunks does with banned phrases: every
    token goes through `guard` (banned_phrases.PhraseGuard), and a completed phrase is sent
    back as a Rewind. Returns the answer indices rewound to, in order (the kept ids are
    `guard.ids`)."""
    from pictale_server.engine.request_sampler import Rewind

    command, rewound = None, []
    while True:
        try:
            token = steps.send(command)
        except StopIteration:
            return rewound
        command = None
        found = guard.push(token)
        if found is not None:
            rewound.append(found.index)
            command = Rewind(found.index, found.banned)
