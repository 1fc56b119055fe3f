"""POST /v1/describe, /v1/narrate, /v1/pipeline.

Each route: validate (pydantic) → text gate → readiness (runtime/lifecycle.py) → image →
run → queue the first job → answer as a stream or one JSON body. Everything refused before the
stream opens is a plain HTTP error; after that it is an `error` event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response

from pictale_server.api.admission import admit
from pictale_server.api.delivery import json_response, stream_response
from pictale_server.api.dependencies import RequestContext, get_request_context, get_services
from pictale_server.api.schemas import (
    DescribeRequest,
    ErrorBody,
    NarrateRequest,
    PipelineRequest,
    PipelineResult,
    StageRunResult,
    StartedRun,
    WebhookSpec,
)
from pictale_server.errors import ApiError
from pictale_server.runtime.execution import RunExecution
from pictale_server.runtime.run_driver import drive
from pictale_server.runtime.runs import Run
from pictale_server.webhooks import WebhookTarget, events_or_default
from pictale_server.runtime.flows import DescribeFlow, Flow, FlowContext, NarrateFlow, PipelineFlow
from pictale_server.runtime.services import Services

router = APIRouter()

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")

_ERROR_STATUSES = (400, 401, 403, 404, 413, 415, 429, 500, 503)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": "Error (docs/protocol.md, Errors)"}
    for status in _ERROR_STATUSES
}
# One SSE event as a fuzzer or client sees it: `data` is compact JSON (docs/protocol.md).
_SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"enum": ["run", "status", "stage-start", "delta", "stage-end", "done", "error"]},
        "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
        "data": {"type": "string", "pattern": "^\\{.*\\}$"},
    },
    "required": ["event", "id", "data"],
}
_STREAM_CONTENT = {"text/event-stream": {"schema": _SSE_EVENT_SCHEMA}}


def _responses(result_model: type) -> dict[int | str, dict[str, Any]]:
    started = {"model": StartedRun, "description": "background: true — the run started; fetch it by id"}
    return {200: {"model": result_model, "content": _STREAM_CONTENT}, 202: started, **_RESPONSES}


def _wants_stream(request: Request, stream_field: bool) -> bool:
    return stream_field or "text/event-stream" in request.headers.get("accept", "")


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(
            "invalid_request",
            "Idempotency-Key must be 1-128 printable ASCII characters.",
            param="Idempotency-Key",
        )
    return value


def _text_fields(**fields: str | None) -> dict[str, str]:
    return {name: value for name, value in fields.items() if value}


def _history_fields(prefix: str, history: list | None) -> dict[str, str]:
    return {f"{prefix}.{i}.content": turn.content for i, turn in enumerate(history or [])}


async def _serve(
    request: Request,
    context: RequestContext,
    services: Services,
    *,
    stream: bool,
    background: bool,
    webhook: WebhookSpec | None,
    idempotency_key: str | None,
    build_flow: Callable[[FlowContext], Flow],
) -> Response:
    target = await _webhook_target(services, webhook)
    run = services.runs.create(context.arrived, context.caller or "", idempotency_key, background=background)
    run.webhook = target
    execution = RunExecution(services.runs, run, services.lifecycle)
    flow_context = FlowContext(
        run, services.engine, services.scheduler, services.gate, context.request_id
    )
    # Only a stream or a background run may wait for the models (plain requests were 503).
    execution.start(lambda: build_flow(flow_context), may_wait=stream or background)
    drive(
        execution, context.request_id,
        on_error=lambda error: context.record_error(error.code),
        on_end=lambda ended: _tell_webhook(services, ended, context.request_id),
        store=services.run_store,
    )
    settings = services.settings
    if background:
        return JSONResponse(StartedRun(id=run.id, state=run.state).model_dump(), status_code=202)
    if stream:
        return stream_response(
            context, run, ping_interval_s=settings.ping_interval_s, grace_s=settings.resume_grace_s,
            store=services.run_store,
        )
    # A plain request's client cannot resume (it has no run id until the answer): gone is gone.
    return await json_response(request, run, when_abandoned="cancel")


async def _webhook_target(services: Services, webhook: WebhookSpec | None) -> WebhookTarget | None:
    if webhook is None:
        return None
    if services.webhooks is None:
        raise ApiError(
            "invalid_request", "This server sends no webhooks (it has no PICTALE_WEBHOOK_SECRET).", param="webhook"
        )
    await services.webhooks.check(webhook.url)
    return WebhookTarget(webhook.url, events_or_default(webhook.events))


def _tell_webhook(services: Services, run: Run, request_id: str) -> None:
    if run.webhook is None or services.webhooks is None:
        return
    error = run.log.error.event_data(request_id) if run.log.error is not None else None
    services.webhooks.run_ended(run.webhook, run.id, run.state, run.log.result, error)


async def _admit(
    request: Request,
    context: RequestContext,
    services: Services,
    body_stream: bool,
    idempotency_key: str | None,
    texts: dict[str, str],
    *,
    background: bool = False,
) -> tuple[bool, str | None]:
    """The Idempotency-Key's form, then admission (api/admission.py)."""
    key = _idempotency_key(idempotency_key)
    stream = _wants_stream(request, body_stream)
    await admit(services, context, texts, stream=stream or background)
    return stream, key


_Context = Annotated[RequestContext, Depends(get_request_context)]
_Services = Annotated[Services, Depends(get_services)]
_IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/v1/describe", response_model=StageRunResult, responses=_responses(StageRunResult))
async def describe(
    body: DescribeRequest,
    request: Request,
    context: _Context,
    services: _Services,
    idempotency_key: _IdempotencyKey = None,
) -> Response:
    texts = _text_fields(prompt=body.prompt, system=body.system)
    stream, key = await _admit(
        request, context, services, body.stream, idempotency_key, texts, background=body.background
    )
    image = await services.load_image(body.image)
    return await _serve(
        request,
        context,
        services,
        stream=stream,
        background=body.background,
        webhook=body.webhook,
        idempotency_key=key,
        build_flow=lambda ctx: DescribeFlow(ctx, image, body),
    )


@router.post("/v1/narrate", response_model=StageRunResult, responses=_responses(StageRunResult))
async def narrate(
    body: NarrateRequest,
    request: Request,
    context: _Context,
    services: _Services,
    idempotency_key: _IdempotencyKey = None,
) -> Response:
    texts = {
        **_text_fields(instruction=body.instruction, context=body.context, system=body.system),
        **_history_fields("history", body.history),
    }
    stream, key = await _admit(
        request, context, services, body.stream, idempotency_key, texts, background=body.background
    )
    return await _serve(
        request,
        context,
        services,
        stream=stream,
        background=body.background,
        webhook=body.webhook,
        idempotency_key=key,
        build_flow=lambda ctx: NarrateFlow(ctx, body),
    )


@router.post("/v1/pipeline", response_model=PipelineResult, responses=_responses(PipelineResult))
async def pipeline(
    body: PipelineRequest,
    request: Request,
    context: _Context,
    services: _Services,
    idempotency_key: _IdempotencyKey = None,
) -> Response:
    texts = {
        **_text_fields(
            instruction=body.instruction,
            **{
                "describe.prompt": body.describe.prompt,
                "describe.system": body.describe.system,
                "narrate.system": body.narrate.system,
            },
        ),
        **_history_fields("narrate.history", body.narrate.history),
    }
    stream, key = await _admit(
        request, context, services, body.stream, idempotency_key, texts, background=body.background
    )
    image = await services.load_image(body.image)
    return await _serve(
        request,
        context,
        services,
        stream=stream,
        background=body.background,
        webhook=body.webhook,
        idempotency_key=key,
        build_flow=lambda ctx: PipelineFlow(ctx, image, body),
    )
