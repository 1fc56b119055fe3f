"""KoboldCpp-compatible routes: generate (plain and streamed), abort, token count, and the
info routes front ends probe to recognise a KoboldCpp server.

Same auth, limits, safety gate, queue and cancellation as the contract's routes. Routes
KoboldCpp has and pictale does not (generate/check polling, images, audio, admin) answer 404.
docs/compatibility.md has the field table.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pictale_server import __version__
from pictale_server.api.admission import admit
from pictale_server.api.compat.kobold_render import KoboldStream, generate_body
from pictale_server.api.compat.kobold_schemas import (
    DEFAULT_MAX_LENGTH,
    KoboldGenerateRequest,
    KoboldGenkey,
    KoboldTokenCount,
)
from pictale_server.api.compat.response_models import KoboldGenerateResult, kobold_responses
from pictale_server.api.compat.sampling_fields import unapplied_headers
from pictale_server.api.compat.serve import COMPAT_TAG, load_images, serve_completion
from pictale_server.api.dependencies import RequestContext, get_request_context, get_services
from pictale_server.runtime.completion_flow import Completion
from pictale_server.runtime.flows import sampling_for
from pictale_server.runtime.services import Services

router = APIRouter(tags=["KoboldCpp-compatible"])
generate_router = APIRouter(tags=["KoboldCpp-compatible"])

# The KoboldCpp API level whose routes and fields these mirror (its /api/extra/version).
KOBOLDCPP_API_VERSION = "1.102"
GENKEY_PREFIX = "genkey:"  # genkeys live beside Idempotency-Keys, in their own namespace

_Context = Annotated[RequestContext, Depends(get_request_context)]
_Services = Annotated[Services, Depends(get_services)]


async def _generate(
    body: KoboldGenerateRequest, request: Request, context: RequestContext, services: Services, *, stream: bool
) -> Response:
    # Each field, and what the writer reads: memory and prompt are one text to it, so a phrase
    # split across them is checked whole.
    texts = {"prompt": body.prompt, "memory": body.memory, "memory+prompt": body.full_prompt}
    await admit(services, context, {k: v for k, v in texts.items() if v}, stream=stream)
    images = await load_images(services, [(f"images.{i}", {"data": data}) for i, data in enumerate(body.images)])
    sampling = sampling_for("narrate", None, body.sampling_overrides(DEFAULT_MAX_LENGTH))
    completion = Completion("writer", [sampling], prompt=body.full_prompt, images=images)
    return await serve_completion(
        request,
        context,
        services,
        completion,
        stream=stream,
        renderer=lambda run: KoboldStream(),
        shape=lambda run, done: generate_body(done),
        headers=unapplied_headers(body.unapplied(), request.url.path),
        genkey=GENKEY_PREFIX + body.genkey if body.genkey else None,
    )


@generate_router.post("/api/v1/generate", response_model=KoboldGenerateResult, responses=kobold_responses())
async def generate(body: KoboldGenerateRequest, request: Request, context: _Context, services: _Services) -> Response:
    return await _generate(body, request, context, services, stream=False)


@generate_router.post("/api/extra/generate/stream", responses=kobold_responses(KoboldGenerateResult, streams=True))
async def generate_stream(
    body: KoboldGenerateRequest, request: Request, context: _Context, services: _Services
) -> Response:
    return await _generate(body, request, context, services, stream=True)


@router.post("/api/extra/abort", responses=kobold_responses())
def abort(context: _Context, services: _Services, body: KoboldGenkey | None = None) -> dict[str, str]:
    """Stop the caller's generation with this genkey; without one (SillyTavern sends none),
    every live generation the caller started on the compatibility routes. KoboldCpp's string
    booleans."""
    caller = context.caller or ""
    if body is not None and body.genkey:
        run = services.runs.live_with_key(caller, GENKEY_PREFIX + body.genkey)
        runs = [run] if run is not None else []
    else:
        runs = services.runs.live_tagged(caller, COMPAT_TAG)
    stopped = [run.request_cancel() for run in runs]
    success = "true" if any(stopped) else "false"
    return {"success": success, "done": success}


@router.post("/api/extra/tokencount", responses=kobold_responses())
async def token_count(body: KoboldTokenCount, services: _Services) -> dict[str, Any]:
    services.lifecycle.check_ready()
    ids = await asyncio.to_thread(services.engine.writer_token_ids, body.prompt, special=body.special)
    return {"value": len(ids), "ids": ids}


@router.get("/api/v1/model", responses=kobold_responses())
def model(services: _Services) -> dict[str, str]:
    # "koboldcpp/<name>" is how KoboldCpp names its model; front ends show the part after it.
    return {"result": "koboldcpp/" + services.engine.writer_id.rsplit("/", 1)[-1]}


@router.get("/api/v1/info/version", responses=kobold_responses())
def info_version() -> dict[str, str]:
    return {"result": "1.2.5"}  # the KoboldAI API version KoboldCpp reports


@router.get("/api/extra/version", responses=kobold_responses())
def extra_version(services: _Services) -> dict[str, Any]:
    return {
        "result": "KoboldCpp",
        "version": KOBOLDCPP_API_VERSION,
        "protected": bool(services.settings.api_keys),
        "llm": True,
        "vision": True,
        "txt2img": False,
        "audio": False,
        "transcribe": False,
        "multiplayer": False,
        "websearch": False,
        "tts": False,
        "embeddings": False,
        "savedata": False,
        "admin": 0,
        "guidance": False,
        "jinja": False,
        "server": "pictale",
        "server_version": __version__,
    }


@router.get("/api/extra/true_max_context_length", responses=kobold_responses())
def true_max_context_length(services: _Services) -> dict[str, int]:
    return {"value": services.engine.writer_context_tokens}


@router.get("/api/v1/config/max_context_length", responses=kobold_responses())
def max_context_length(services: _Services) -> dict[str, int]:
    return {"value": services.engine.writer_context_tokens}


@router.get("/api/v1/config/max_length", responses=kobold_responses())
def max_length() -> dict[str, int]:
    return {"value": DEFAULT_MAX_LENGTH}
