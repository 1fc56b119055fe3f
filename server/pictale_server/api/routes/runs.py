"""POST /v1/runs/{id}/cancel: set a run's stop flag; ended runs report their final state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from pictale_server.api.dependencies import get_services
from pictale_server.api.schemas import CancelResult, ErrorBody
from pictale_server.errors import ApiError
from pictale_server.runtime.services import Services

router = APIRouter()

_ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 413, 500)}


@router.post("/v1/runs/{run_id}/cancel", response_model=CancelResult, responses=_ERRORS)
def cancel_run(run_id: str, services: Annotated[Services, Depends(get_services)]) -> CancelResult:
    run = services.runs.get(run_id)
    if run is None:
        raise ApiError("not_found", "No such run (ended runs are kept for 10 minutes).", param="id")
    if run.request_cancel():
        return CancelResult(id=run.id, cancelled=True, state="cancelled")
    return CancelResult(id=run.id, cancelled=False, state=run.state)
