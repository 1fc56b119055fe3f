"""Runs by id: `GET /v1/runs/{id}` (state, and the result or error once ended),
`GET /v1/runs/{id}/events` (its events from a point on, then the live tail: how a client
resumes a broken stream), `POST /v1/runs/{id}/cancel`.

A run is visible only to the caller that made it (the same API key, or the same client address
when the server has no keys): to anyone else it does not exist (404). With a run store (Modal),
a run another container runs is read, followed and cancelled through the store
(runtime/run_store.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from pictale_server.api.delivery import stored_stream_response, stream_response
from pictale_server.api.dependencies import RequestContext, get_request_context, get_services
from pictale_server.api.schemas import CancelResult, ErrorBody, RunStatus
from pictale_server.errors import ApiError
from pictale_server.runtime.run_store import StoredRun
from pictale_server.runtime.runs import Run
from pictale_server.runtime.services import Services

router = APIRouter()

_ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 413, 500)}
_Services = Annotated[Services, Depends(get_services)]
_Context = Annotated[RequestContext, Depends(get_request_context)]


def _not_found(services: Services) -> ApiError:
    hours = services.settings.run_retention_s / 3600
    return ApiError(
        "not_found", f"No such run (ended runs are kept for {hours:g} h, and only for the key that made them).",
        param="id",
    )


async def _run(services: Services, context: RequestContext, run_id: str) -> Run | StoredRun:
    """The run, here or (with a run store) on another container."""
    caller = context.caller or ""
    run = services.runs.get_for(caller, run_id)
    if run is not None:
        return run
    if services.run_store is not None:
        stored = await StoredRun.find(services.run_store, run_id, caller, services.settings.run_retention_s)
        if stored is not None:
            return stored
    raise _not_found(services)


@router.get("/v1/runs/{run_id}", response_model=RunStatus, response_model_exclude_none=True, responses=_ERRORS)
async def get_run(run_id: str, services: _Services, context: _Context) -> dict[str, Any]:
    run = await _run(services, context, run_id)
    if isinstance(run, StoredRun):
        status = {"id": run.id, "state": run.status["state"], "events": run.status["events"]}
        result = await run.result()
        if result is not None:
            status["result"] = result
        if run.status.get("error"):
            status["error"] = run.status["error"]
        return status
    status: dict[str, Any] = {"id": run.id, "state": run.state, "events": run.log.last_seq}
    if run.log.result is not None:
        status["result"] = run.log.result
    if run.log.error is not None:
        status["error"] = run.log.error.event_data(context.request_id)
    return status


@router.get(
    "/v1/runs/{run_id}/events",
    responses={200: {"content": {"text/event-stream": {}}, "description": "the run's events (SSE)"}, **_ERRORS},
    response_class=StreamingResponse,
)
async def run_events(
    run_id: str,
    services: _Services,
    context: _Context,
    after: Annotated[int | None, Query(ge=0, description="the last event id seen")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The run's events after event `after` (or the `Last-Event-ID` header: what an SSE client
    sends when it reconnects), then the live tail until the run ends."""
    run = await _run(services, context, run_id)
    if after is None and last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise ApiError("invalid_request", "Last-Event-ID must be an event id.", param="Last-Event-ID")
        after = int(last_event_id)
    after = after or 0
    settings = services.settings
    if isinstance(run, StoredRun):
        # The mirror may lag the stream the client saw: past the stored events of a live run
        # is "wait for them", not an error; only an ended run's end is a hard limit.
        if run.status.get("ended") and after > run.status.get("events", 0):
            raise ApiError("invalid_request", "after is past this run's events.", param="after")
        return stored_stream_response(run, after=after, ping_interval_s=settings.ping_interval_s)
    if after > run.log.last_seq:
        raise ApiError(
            "invalid_request", f"This run has {run.log.last_seq} events so far; after must be 0-{run.log.last_seq}.",
            param="after",
        )
    return stream_response(
        context, run, ping_interval_s=settings.ping_interval_s, after=after, grace_s=settings.resume_grace_s,
        store=services.run_store,
    )


@router.post("/v1/runs/{run_id}/cancel", response_model=CancelResult, responses=_ERRORS)
async def cancel_run(run_id: str, services: _Services, context: _Context) -> CancelResult:
    run = await _run(services, context, run_id)
    if isinstance(run, StoredRun):
        if run.status.get("ended"):
            return CancelResult(id=run.id, cancelled=False, state=run.status["state"])
        await run.request_cancel()  # the container running it stops it within about a second
        return CancelResult(id=run.id, cancelled=True, state="cancelled")
    if run.request_cancel():
        return CancelResult(id=run.id, cancelled=True, state="cancelled")
    return CancelResult(id=run.id, cancelled=False, state=run.state)
