"""OpenAI-compatible routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions.

Same auth, limits, safety gate, queue and cancellation as the contract's routes; OpenAI's
request, response, stream and error shapes (api/compat/). docs/compatibility.md has the
field table and the setup of each client.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pictale_server.api.admission import admit
from pictale_server.api.compat.model_names import ModelChoice, model_ids, resolve_model
from pictale_server.api.compat.openai_render import OpenAIShape, OpenAIStream
from pictale_server.api.compat.openai_schemas import (
    ChatCompletionRequest,
    ChatMessageIn,
    CompletionRequest,
)
from pictale_server.api.compat.response_models import (
    ChatCompletion,
    ModelList,
    TextCompletion,
    openai_responses,
)
from pictale_server.api.compat.sampling_fields import unapplied_headers
from pictale_server.api.compat.serve import load_images, serve_completion
from pictale_server.api.dependencies import RequestContext, get_request_context, get_services
from pictale_server.engine.base import ChatMessage
from pictale_server.errors import ApiError
from pictale_server.runtime import prompts
from pictale_server.runtime.completion_flow import Completion, choice_sampling
from pictale_server.runtime.flows import sampling_for
from pictale_server.runtime.services import Services

router = APIRouter(tags=["OpenAI-compatible"])
models_router = APIRouter(tags=["OpenAI-compatible"])

MAX_IMAGES = 4  # per request, all in the last user turn
# An answer's default length when the client sets none: OpenAI's is "until the model stops";
# this is that, bounded (and cut to what the context leaves).
DEFAULT_CHAT_TOKENS = 4096
DEFAULT_TEXT_TOKENS = 16  # OpenAI's default for /v1/completions

_Context = Annotated[RequestContext, Depends(get_request_context)]
_Services = Annotated[Services, Depends(get_services)]


@models_router.get("/v1/models", response_model=ModelList, responses=openai_responses())
def list_models(services: _Services) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": services.started_at, "owned_by": "pictale"}
            for model_id, _ in model_ids(services.engine)
        ],
    }


def _chat_messages(messages: list[ChatMessageIn]) -> tuple[list[ChatMessage], list[tuple[str, str]]]:
    """The conversation as the engine takes it, and the (param, url) of each image in the last
    user turn (images earlier in the history are not looked at again; their text stays)."""
    turns: list[ChatMessage] = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        turns.append(ChatMessage(role=role, content=message.text()))
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    images: list[tuple[str, str]] = []
    if users:
        last = users[-1]
        content = messages[last].content
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                if part.type == "image_url":
                    images.append((f"messages.{last}.content.{part_index}.image_url", part.url))
    if len(images) > MAX_IMAGES:
        raise ApiError(
            "invalid_request",
            f"At most {MAX_IMAGES} images per request (this one has {len(images)}).",
            param=images[MAX_IMAGES][0],
        )
    return turns, images


def _texts(messages: list[ChatMessageIn]) -> dict[str, str]:
    """Each message, and the conversation as one text: the writer's template merges system
    turns and consecutive turns of one role, so a phrase split across messages is checked
    whole."""
    texts = {f"messages.{i}.content": m.text() for i, m in enumerate(messages) if m.text()}
    if len(texts) > 1:
        texts["messages"] = "\n\n".join(texts.values())
    return texts


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=openai_responses(ChatCompletion, streams=True))
async def chat_completions(
    body: ChatCompletionRequest, request: Request, context: _Context, services: _Services
) -> Response:
    messages, image_urls = _chat_messages(body.messages)
    turns = [m for m in body.messages if m.role not in ("system", "developer")]
    one_question = len(turns) == 1 and turns[0].role == "user" and len(image_urls) == 1
    choice: ModelChoice = resolve_model(body.model, services.engine, a_question_about_one_picture=one_question)
    if choice.target == "vision" and len(image_urls) != 1:
        raise ApiError(
            "invalid_request",
            f"The vision model answers about one image in the last user turn; this request has "
            f"{len(image_urls)}. Ask model \"pictale\" to describe several and write about them.",
            param="messages",
        )
    await admit(services, context, _texts(body.messages), stream=body.stream)
    images = await load_images(services, image_urls)
    if choice.target == "vision":
        base = sampling_for("describe", prompts.DEFAULT_DESCRIBE_STYLE, body.sampling_overrides(DEFAULT_CHAT_TOKENS))
    else:
        base = sampling_for("narrate", None, body.sampling_overrides(DEFAULT_CHAT_TOKENS))
    completion = Completion(
        choice.target, choice_sampling(base, body.n), messages=messages, images=images
    )
    return await _serve("chat", body, choice, completion, request, context, services)


@router.post("/v1/completions", response_model=TextCompletion, responses=openai_responses(TextCompletion, streams=True))
async def completions(
    body: CompletionRequest, request: Request, context: _Context, services: _Services
) -> Response:
    choice = resolve_model(body.model, services.engine)
    if choice.target == "vision":
        raise ApiError(
            "invalid_request",
            "Text completion is the writer's: the vision model needs an image (use /v1/chat/completions).",
            param="model",
        )
    await admit(services, context, {"prompt": body.text}, stream=body.stream)
    base = sampling_for("narrate", None, body.sampling_overrides(DEFAULT_TEXT_TOKENS))
    completion = Completion("writer", choice_sampling(base, body.n), prompt=body.text)
    return await _serve("text", body, choice, completion, request, context, services)


async def _serve(
    kind: str,
    body: ChatCompletionRequest | CompletionRequest,
    choice: ModelChoice,
    completion: Completion,
    request: Request,
    context: RequestContext,
    services: Services,
) -> Response:
    def shape_for(run) -> OpenAIShape:
        return OpenAIShape(kind, run.id, choice.id, body.n)  # type: ignore[arg-type]

    return await serve_completion(
        request,
        context,
        services,
        completion,
        stream=body.stream,
        renderer=lambda run: OpenAIStream(shape_for(run), include_usage=body.include_usage),
        shape=lambda run, done: shape_for(run).body(done),
        headers=unapplied_headers(body.unapplied(), request.url.path),
    )
