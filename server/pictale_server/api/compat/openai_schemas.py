"""OpenAI's chat/completions and completions request bodies, as pictale accepts them.

Open where clients differ (ints for floats, `stop` as a string or a list, content as a string
or parts, unknown fields ignored); strict about JSON types, and where a guess would lose
content: a part type pictale cannot read, a `tool` turn, `echo` or `logprobs` are refused with
`invalid_request` naming the field. docs/compatibility.md is the field table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pictale_server.api.compat.sampling_fields import MAX_ANSWER_TOKENS, CompatSampling

MAX_CHOICES = 8
MAX_MESSAGES = 1000
MAX_MESSAGE_CHARS = 200_000
MAX_PROMPT_CHARS = 400_000

class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Body):
    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class ImageUrl(_Body):
    url: str = Field(min_length=1)
    detail: str | None = None  # the vision model sees every image at the server's pixel budget


class ImagePart(_Body):
    type: Literal["image_url"]
    image_url: ImageUrl | str

    @property
    def url(self) -> str:
        return self.image_url if isinstance(self.image_url, str) else self.image_url.url


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessageIn(_Body):
    # `developer` is what newer OpenAI clients call the system turn.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_MESSAGE_CHARS:
            raise ValueError(f"a message holds at most {MAX_MESSAGE_CHARS} characters")
        return value

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if isinstance(part, TextPart))

    def image_urls(self) -> list[str]:
        if not isinstance(self.content, list):
            return []
        return [part.url for part in self.content if isinstance(part, ImagePart)]


class StreamOptions(_Body):
    include_usage: bool = False


class _OpenAISampling(CompatSampling):
    """What both OpenAI routes take besides the prompt (sampling_fields.py has the rest)."""

    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    user: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_OpenAISampling):
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_ANSWER_TOKENS)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("logprobs are not available from pictale")
        return value

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("tool calling is not available from pictale")
        return value

    def answer_tokens(self) -> int | None:
        return self.max_completion_tokens or super().answer_tokens()


class CompletionRequest(_OpenAISampling):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        prompts = [value] if isinstance(value, str) else value
        if len(prompts) != 1:
            raise ValueError("send one prompt per request (use n for several completions)")
        if len(prompts[0]) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt holds at most {MAX_PROMPT_CHARS} characters")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not available from pictale")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> int | None:
        if value:
            raise ValueError("logprobs are not available from pictale")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("suffix (insertion) is not available from pictale")
        return value

    @field_validator("best_of")
    @classmethod
    def _no_best_of(cls, value: int | None) -> int | None:
        if value is not None and value > 1:
            raise ValueError("best_of is not available from pictale (use n)")
        return value

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
