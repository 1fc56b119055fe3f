"""`create_app(engine, settings)`: the FastAPI app, with no globals and no Modal.

The lifespan starts the model workers and the model lifecycle (runtime/lifecycle.py), which
loads the models in a background thread unless the engine is already loaded; on shutdown it
cancels live runs and stops the workers. The layers: api/ (HTTP), runtime/ (runs, scheduling,
model state), engine/ (the models).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from pictale_server import __version__
from pictale_server.api.auth import make_authenticate, make_rate_limit
from pictale_server.api.body_limit import BodyLimitMiddleware
from pictale_server.api.cors import Cors, cors_origins
from pictale_server.api.dependencies import attach_services
from pictale_server.api.error_handlers import install_error_handlers
from pictale_server.api.rate_limit import RateLimiter
from pictale_server.api.request_context import RequestContextMiddleware
from pictale_server.api.routes import generate, health, kobold_compat, openai_compat, runs
from pictale_server.engine.base import Engine
from pictale_server.runtime.lifecycle import LoadHooks, ModelLifecycle
from pictale_server.runtime.run_store import RunStore
from pictale_server.runtime.runs import RunRegistry
from pictale_server.runtime.scheduler import Scheduler
from pictale_server.runtime.services import Gate, ImageLoader, Services
from pictale_server.settings import Settings


def _default_gate(settings: Settings) -> Gate:
    from pictale_server.safety.gate import SafetyGate

    return SafetyGate.from_settings(settings)


def _default_image_loader(settings: Settings) -> ImageLoader:
    from pictale_server.images import ImagePolicy, load_image

    policy = ImagePolicy.from_settings(settings)

    async def load(spec: Any) -> Any:
        return await load_image(spec, policy)

    return load


def _webhooks(settings: Settings) -> Any:
    if not settings.webhook_secret:
        return None
    from pictale_server.images import ImagePolicy
    from pictale_server.webhooks import WebhookSender

    return WebhookSender(
        settings.webhook_secret, ImagePolicy.from_settings(settings), backoff_s=settings.webhook_backoff_s
    )


def create_app(
    engine: Engine,
    settings: Settings,
    *,
    gate: Gate | None = None,
    image_loader: ImageLoader | None = None,
    run_store: RunStore | None = None,
    load_hooks: LoadHooks | None = None,
) -> FastAPI:
    services = Services(
        engine=engine,
        settings=settings,
        scheduler=Scheduler(
            settings.queue_depth, settings.caller_queue_share, settings.writer_streams, settings.vision_streams
        ),
        runs=RunRegistry(
            settings.run_retention_s, log_bytes_per_caller=settings.run_log_bytes_per_caller
        ),
        lifecycle=ModelLifecycle(engine, load_hooks),
        gate=gate if gate is not None else _default_gate(settings),
        load_image=image_loader if image_loader is not None else _default_image_loader(settings),
        webhooks=_webhooks(settings),
        run_store=run_store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.scheduler.start()
        services.lifecycle.start()
        try:
            yield
        finally:
            for run in services.runs.live():
                run.request_cancel()
            services.scheduler.stop()

    app = FastAPI(
        title="pictale",
        version=__version__,
        summary="Turns a picture into a story: describe, narrate, pipeline (docs/protocol.md).",
        lifespan=lifespan,
    )
    attach_services(app, services)

    authenticate = make_authenticate(settings.api_keys)
    limiter = (
        RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
    )
    admit = make_rate_limit(limiter, authenticate)
    # FastAPI decodes a JSON body before it runs route dependencies; the validation handler
    # admits the caller first, so a malformed body never answers before the key is checked.
    install_error_handlers(app, admit_generation=admit)
    app.include_router(health.router)
    app.include_router(generate.router, dependencies=[Depends(admit)])
    app.include_router(openai_compat.router, dependencies=[Depends(admit)])
    app.include_router(kobold_compat.generate_router, dependencies=[Depends(admit)])
    app.include_router(runs.router, dependencies=[Depends(authenticate)])
    app.include_router(openai_compat.models_router, dependencies=[Depends(authenticate)])
    app.include_router(kobold_compat.router, dependencies=[Depends(authenticate)])

    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    origins = cors_origins(settings.cors_origins, engine.profile)
    if origins:  # outermost: a preflight never meets auth or the body limit
        app.add_middleware(Cors, origins=origins)
    return app
