"""Request and result bodies of the wire contract (docs/protocol.md), with its bounds.

Validation errors raised here are reshaped by the app into `invalid_request` with a dotted
`param`. Unknown request fields are ignored, as the contract asks of both sides.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pictale_server.engine.errors import LoadFailure

Style = Literal["caption", "detailed", "scene"]
FinishReason = Literal["stop", "length", "cancelled"]

MAX_HISTORY_TURNS = 100
MAX_HISTORY_CHARS = 64_000
SEED_MAX = 2**63 - 1

# --- images -----------------------------------------------------------------------------------

_IMAGE_JSON_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "pattern": "^(https?://|data:)",
            "description": "an http(s) URL or a data:image/...;base64 URL",
        },
        {
            "type": "object",
            "properties": {"url": {"type": "string", "pattern": "^https?://"}},
            "required": ["url"],
        },
        {
            "type": "object",
            "properties": {
                "data": {"type": "string", "minLength": 1},
                "media_type": {"type": "string"},
            },
            "required": ["data"],
        },
    ]
}


def _image_spec(value: Any) -> str | dict[str, str]:
    """Shape check only; the image loader decides what the bytes and URLs are worth."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        url, data, media_type = value.get("url"), value.get("data"), value.get("media_type")
        if isinstance(url, str) and url and data is None:
            return {"url": url}
        if isinstance(data, str) and data and url is None:
            if media_type is None:
                return {"data": data}
            if isinstance(media_type, str):
                return {"data": data, "media_type": media_type}
    raise PydanticCustomError(
        "image_type",
        'image must be a URL string, {"url": ...} or {"data": <base64>, "media_type"?: ...}',
    )


ImageSpec = Annotated[
    str | dict[str, str], PlainValidator(_image_spec), WithJsonSchema(_IMAGE_JSON_SCHEMA)
]

# --- sampling ---------------------------------------------------------------------------------

StopString = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A token id as a JSON object key (OpenAI's logit_bias form), and its bias: -100 bans it.
TokenKey = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
Bias = Annotated[float, Field(ge=-100, le=100)]
Breaker = Annotated[str, StringConstraints(min_length=1, max_length=40)]
BannedPhrase = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
MAX_LOGIT_BIAS = 300
MAX_BREAKERS = 64
MAX_BANNED_PHRASES = 256


class _Body(BaseModel):
    # strict: "5" is not a number and 1 is not a bool; ints still pass for floats.
    model_config = ConfigDict(strict=True, extra="ignore")


class _SamplingFields(_Body):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=1000)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, ge=0.5, le=2)
    stop: list[StopString] | None = Field(None, max_length=8)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    # The tokens depend only on the input and seed, not on the batch (docs/protocol.md, "Sampling").
    deterministic: bool | None = None
    # The creative samplers (engine/creative_samplers.py, docs/protocol.md "Sampling").
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[TokenKey, Bias] | None = Field(None, max_length=MAX_LOGIT_BIAS)
    dry_multiplier: float | None = Field(None, ge=0, le=10)
    dry_base: float | None = Field(None, ge=1, le=8)
    dry_allowed_length: int | None = Field(None, ge=1, le=50)
    dry_penalty_last_n: int | None = Field(None, ge=-1, le=1_000_000)
    dry_sequence_breakers: list[Breaker] | None = Field(None, max_length=MAX_BREAKERS)
    xtc_threshold: float | None = Field(None, ge=0, le=1)
    xtc_probability: float | None = Field(None, ge=0, le=1)
    banned_phrases: list[BannedPhrase] | None = Field(None, max_length=MAX_BANNED_PHRASES)

    def sampling_overrides(self) -> dict[str, Any]:
        """The sampling fields the client actually set, ready to lay over the defaults."""
        names = ("max_tokens", *_SamplingFields.model_fields)
        return {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}


class _DescribeFields(_SamplingFields):
    style: Style | None = None
    prompt: str | None = Field(None, max_length=4_000)
    system: str | None = Field(None, max_length=8_000)
    max_tokens: int | None = Field(None, ge=1, le=2048)


class HistoryTurn(_Body):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_HISTORY_CHARS)


def _history_total(history: list[HistoryTurn] | None) -> list[HistoryTurn] | None:
    if history and sum(len(turn.content) for turn in history) > MAX_HISTORY_CHARS:
        raise PydanticCustomError(
            "history_too_long", f"history holds more than {MAX_HISTORY_CHARS} characters in all"
        )
    return history


class _NarrateFields(_SamplingFields):
    system: str | None = Field(None, max_length=8_000)
    history: Annotated[list[HistoryTurn] | None, AfterValidator(_history_total)] = Field(
        None, max_length=MAX_HISTORY_TURNS
    )
    max_tokens: int | None = Field(None, ge=1, le=4096)


class WebhookSpec(_Body):
    """Where to POST, signed, when the run ends (webhooks.py); `events` picks which endings."""

    url: str = Field(min_length=1, max_length=2048)
    events: list[Literal["run.done", "run.failed", "run.cancelled"]] | None = Field(None, min_length=1, max_length=3)


class _Streamable(_Body):
    stream: bool = False
    # Answer 202 {id, state} at once; the run goes on to its end, fetched by id (GET /v1/runs/{id}).
    background: bool = False
    webhook: WebhookSpec | None = None


class DescribeRequest(_DescribeFields, _Streamable):
    image: ImageSpec


class NarrateRequest(_NarrateFields, _Streamable):
    instruction: str = Field(min_length=1, max_length=8_000)
    context: str | None = Field(None, max_length=16_000)


class DescribeOverrides(_DescribeFields):
    """`pipeline.describe`: the describe stage's knobs."""


class NarrateOverrides(_NarrateFields):
    """`pipeline.narrate`: the narrate stage's knobs."""


class PipelineRequest(_Streamable):
    image: ImageSpec
    instruction: str = Field(min_length=1, max_length=8_000)
    describe: DescribeOverrides = Field(default_factory=DescribeOverrides)
    narrate: NarrateOverrides = Field(default_factory=NarrateOverrides)


# --- results ----------------------------------------------------------------------------------


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class Timings(BaseModel):
    queued_ms: float
    first_token_ms: float
    total_ms: float
    tokens_per_second: float


class StageResult(BaseModel):
    text: str
    finish_reason: FinishReason
    model: str
    usage: Usage
    timings: Timings


class StageRunResult(StageResult):
    id: str


class PipelineResult(BaseModel):
    id: str
    description: StageResult
    story: StageResult


class StartedRun(BaseModel):
    """The answer to a `background: true` request: the run's id and state."""

    id: str
    state: Literal["queued", "running", "done", "error", "cancelled"]


class RunStatus(BaseModel):
    """`GET /v1/runs/{id}`: a run's state; its result (the `done` event's data) once done, or
    its error (the `error` event's data) once it failed."""

    id: str
    state: Literal["queued", "running", "done", "error", "cancelled"]
    events: int  # events so far: `GET /v1/runs/{id}/events?after=N` goes on from N
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class CancelResult(BaseModel):
    id: str
    cancelled: bool
    state: Literal["queued", "running", "done", "error", "cancelled"]


class DecodeInfo(BaseModel):
    """Which decode step serves a loaded model (engine/decode_choice.py), and why not the fast one."""

    path: Literal["fast", "reference"]
    reason: str  # "" on the fast path


class ModelHealth(BaseModel):
    id: str
    loaded: bool
    decode: DecodeInfo | None = None  # once loaded


class HealthFailure(BaseModel):
    """Why the models failed to load: the engine's reason code and its message."""

    reason: LoadFailure  # model_not_found | out_of_memory | unsupported_gpu | load_error
    message: str


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    profile: Literal["dev", "reference", "custom"]
    models: dict[Literal["vision", "writer"], ModelHealth]
    version: str
    queue: dict[Literal["vision", "writer"], int]
    server_version: str
    failure: HealthFailure | None = None  # present exactly when status is "failed"

    @model_validator(mode="after")
    def _failure_only_when_failed(self) -> Health:
        if (self.status == "failed") != (self.failure is not None):
            raise ValueError('"failure" is present exactly when "status" is "failed"')
        return self


class ErrorInfo(BaseModel):
    code: str
    message: str
    request_id: str
    param: str | None = None
    details: list[dict[str, str]] | None = None
    # not_ready only: the models' state, and the load failure's reason when it is "failed".
    state: Literal["loading", "failed"] | None = None
    reason: str | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo
