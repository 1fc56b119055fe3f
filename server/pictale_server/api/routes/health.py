"""GET /health: no auth; `ok`, `loading` or `failed` (with the failure), from the lifecycle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from pictale_server import PROTOCOL_VERSION, __version__
from pictale_server.api.dependencies import get_services
from pictale_server.api.schemas import Health, HealthFailure
from pictale_server.runtime.services import Services

router = APIRouter()

_STATUS = {"ready": "ok", "loading": "loading", "failed": "failed"}


@router.get("/health", response_model=Health, response_model_exclude_none=True)
def health(services: Annotated[Services, Depends(get_services)]) -> Health:
    engine, lifecycle = services.engine, services.lifecycle
    state, failure = lifecycle.state, lifecycle.failure
    return Health(
        status=_STATUS[state],
        profile=engine.profile,
        models={
            "vision": {"id": engine.vision_id, "loaded": engine.vision_loaded, "decode": engine.decode_info("vision")},
            "writer": {"id": engine.writer_id, "loaded": engine.writer_loaded, "decode": engine.decode_info("writer")},
        },
        version=PROTOCOL_VERSION,
        queue=services.scheduler.queue_sizes(),
        server_version=__version__,
        failure=(
            HealthFailure(reason=failure.reason, message=failure.message)
            if state == "failed" and failure is not None
            else None
        ),
    )
