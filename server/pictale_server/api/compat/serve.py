"""Run a `Completion` (runtime/completion_flow.py) and answer in a dialect's shapes.

The run is a real run: it has an id (in `X-Pictale-Run-Id`, so `POST /v1/runs/{id}/cancel`
works for it too), waits in the model's queue (a full queue answers 429 before any byte is
sent), ends when the client goes away, and its stream waits for loading models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from pictale_server.api.delivery import StreamRenderer, json_response, stream_response
from pictale_server.api.request_context import RequestContext
from pictale_server.errors import ApiError
from pictale_server.runtime.completion_flow import Completion, CompletionFlow
from pictale_server.runtime.execution import RunExecution
from pictale_server.runtime.flows import FlowContext
from pictale_server.runtime.run_driver import drive
from pictale_server.runtime.runs import Run
from pictale_server.runtime.services import Services

RUN_ID_HEADER = "X-Pictale-Run-Id"
COMPAT_TAG = "compat"  # KoboldCpp's abort without a genkey stops the caller's runs of these routes


async def load_images(services: Services, specs: list[tuple[str, Any]]) -> list:
    """Each (param, spec) through the server's image loader (SSRF-safe fetch, limits); an
    error names the field it came from."""
    images = []
    for param, spec in specs:
        try:
            images.append(await services.load_image(spec))
        except ApiError as error:
            error.param = param
            raise
    return images


async def serve_completion(
    request: Request,
    context: RequestContext,
    services: Services,
    completion: Completion,
    *,
    stream: bool,
    renderer: Callable[[Run], StreamRenderer],
    shape: Callable[[Run, dict[str, Any]], dict[str, Any]],
    headers: dict[str, str],
    genkey: str | None = None,
) -> Response:
    run = services.runs.create(context.arrived, context.caller or "", genkey, tag=COMPAT_TAG)
    execution = RunExecution(services.runs, run, services.lifecycle)
    flow_context = FlowContext(run, services.engine, services.scheduler, services.gate, context.request_id)
    execution.start(lambda: CompletionFlow(flow_context, completion), may_wait=stream)
    drive(
        execution, context.request_id, on_error=lambda error: context.record_error(error.code),
        store=services.run_store,
    )
    headers = {RUN_ID_HEADER: run.id, **headers}
    # These clients cannot resume: a closed connection is their "stop".
    if stream:
        return stream_response(
            context, run, ping_interval_s=services.settings.ping_interval_s,
            renderer=renderer(run), headers=headers, when_abandoned="cancel",
        )
    return await json_response(
        request, run, shape=lambda done: shape(run, done), headers=headers, when_abandoned="cancel"
    )
