"""The compatibility routes' answers as OpenAPI documents them (the /docs page, fuzzing).

The routes build these bodies as dicts (openai_render.py, kobold_render.py); these models
describe them, and the error bodies the dialects answer with (api/error_bodies.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class OpenAIErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None
    code: str  # the contract's error code (docs/protocol.md, Errors)
    request_id: str


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorInfo


class KoboldErrorInfo(BaseModel):
    msg: str
    type: str  # the contract's error code
    request_id: str
    param: str | None = None  # the request field at fault, when one is


class KoboldErrorBody(BaseModel):
    detail: KoboldErrorInfo


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelEntry]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: None


class TextChoice(BaseModel):
    index: int
    text: str
    logprobs: None
    finish_reason: Literal["stop", "length"]


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage
    system_fingerprint: None


class KoboldResult(BaseModel):
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None
    prompt_tokens: int
    completion_tokens: int


class KoboldGenerateResult(BaseModel):
    results: list[KoboldResult]


_ERROR_STATUSES = (400, 401, 403, 404, 413, 415, 429, 500, 503)
# One SSE event as schemathesis and a reader see it: OpenAI's are unnamed `data:` lines (JSON,
# or `[DONE]` last), KoboldCpp's are named `message` (or `error`) with JSON data.
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"enum": ["message", "error"]},
        "data": {"type": "string", "pattern": "^(\\{.*\\}|\\[DONE\\])$"},
    },
    "required": ["data"],
}
_SSE = {"text/event-stream": {"schema": _SSE_EVENT}}


def openai_responses(result: type[BaseModel] | None = None, *, streams: bool = False) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": OpenAIErrorBody, "description": "Error, in OpenAI's shape"} for status in _ERROR_STATUSES
    }
    if result is not None:
        responses[200] = {"model": result, **({"content": _SSE} if streams else {})}
    return responses


def kobold_responses(result: type[BaseModel] | None = None, *, streams: bool = False) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": KoboldErrorBody, "description": "Error, in KoboldCpp's shape"} for status in _ERROR_STATUSES
    }
    if result is not None:
        responses[200] = {"model": result, **({"content": _SSE} if streams else {})}
    return responses
