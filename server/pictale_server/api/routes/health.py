"""GET /health: no auth; loading until both models are resident."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pictale_server import PROTOCOL_VERSION, __version__
from pictale_server.api.schemas import Health

router = APIRouter()


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    services = request.app.state.services
    engine = services.engine
    vision, writer = engine.vision_loaded, engine.writer_loaded
    return Health(
        status="ok" if vision and writer else "loading",
        profile=engine.profile,
        models={
            "vision": {"id": engine.vision_id, "loaded": vision},
            "writer": {"id": engine.writer_id, "loaded": writer},
        },
        version=PROTOCOL_VERSION,
        queue=services.scheduler.queue_sizes(),
        server_version=__version__,
    )
