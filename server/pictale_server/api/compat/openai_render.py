"""A completion run in OpenAI's shapes: `chat.completion(.chunk)` and `text_completion`.

Streams follow OpenAI's exactly: per choice a first chunk with the assistant role, content
deltas, a chunk with its `finish_reason`; with `stream_options.include_usage` every chunk has
`usage: null` and a last chunk with empty `choices` carries the usage; then `data: [DONE]`. An
error after the stream opened is one `data: {"error": {...}}` (which the `openai` clients
raise) before `[DONE]`. While the pictures are described or the run waits in the queue,
`: comment` lines say so (clients skip them; they keep proxies from timing the stream out).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pictale_server.api.error_bodies import openai_error
from pictale_server.errors import ApiError

Kind = Literal["chat", "text"]
DONE = b"data: [DONE]\n\n"


def _finish_reason(reason: str) -> str:
    # OpenAI has no "cancelled": a cancelled answer simply stopped.
    return "length" if reason == "length" else "stop"


def usage(done: dict[str, Any]) -> dict[str, int]:
    """Every model call the request made: the pictures' descriptions and each choice."""
    stages = [*done["descriptions"], *done["choices"]]
    prompt = sum(stage["usage"]["input_tokens"] for stage in stages)
    completion = sum(stage["usage"]["output_tokens"] for stage in stages)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choices(done: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """One result per choice asked for; a run cancelled before a choice ran gives it empty."""
    empty = {"text": "", "finish_reason": "cancelled"}
    return [done["choices"][i] if i < len(done["choices"]) else empty for i in range(n)]


class OpenAIShape:
    def __init__(self, kind: Kind, run_id: str, model: str, n: int) -> None:
        self.kind = kind
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + run_id.removeprefix("run_")
        self.model = model
        self.n = n
        self.created = int(time.time())

    @property
    def object(self) -> str:
        return "chat.completion" if self.kind == "chat" else "text_completion"

    def body(self, done: dict[str, Any]) -> dict[str, Any]:
        choices = []
        for index, result in enumerate(_choices(done, self.n)):
            choice: dict[str, Any] = {"index": index}
            if self.kind == "chat":
                choice["message"] = {"role": "assistant", "content": result["text"]}
            else:
                choice["text"] = result["text"]
            choice["logprobs"] = None
            choice["finish_reason"] = _finish_reason(result["finish_reason"])
            choices.append(choice)
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage(done),
            "system_fingerprint": None,
        }


class OpenAIStream:
    """delivery.StreamRenderer for `stream: true`."""

    ping = b": ping\n\n"

    def __init__(self, shape: OpenAIShape, *, include_usage: bool) -> None:
        self._shape = shape
        self._include_usage = include_usage
        self._opened: set[int] = set()

    def opening(self) -> bytes:
        return b""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        shape = self._shape
        chunk: dict[str, Any] = {
            "id": shape.id,
            "object": shape.object + ".chunk" if shape.kind == "chat" else shape.object,
            "created": shape.created,
            "model": shape.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return b"data: " + json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

    def _choice(self, index: int, text: str | None, finish: str | None) -> dict[str, Any]:
        if self._shape.kind == "text":
            return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, Any] = {}
        if index not in self._opened:
            self._opened.add(index)
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    def event(self, seq: int, name: str, data: dict[str, Any]) -> bytes:
        if name == "status" and data.get("state") == "queued":
            return f": queued, position {data.get('position')}\n\n".encode()
        if name == "status" and data.get("state") == "loading":
            return b": the models are loading\n\n"
        if "image" in data:  # describing a picture for the writer: progress only
            if name == "stage-start":
                return f": describing picture {data['image'] + 1}\n\n".encode()
            return b""
        if name == "stage-start":  # chat: the choice's first chunk carries the role
            return self._chunk([self._choice(data["choice"], "", None)]) if self._shape.kind == "chat" else b""
        if name == "delta":
            return self._chunk([self._choice(data["choice"], data["text"], None)])
        if name == "stage-end":
            return self._chunk([self._choice(data["choice"], None, _finish_reason(data["finish_reason"]))])
        if name == "done":
            tail = b""
            if self._include_usage:
                tail = self._chunk([], usage=usage(data))
            return tail + DONE
        return b""

    def error(self, seq: int, error: ApiError, request_id: str) -> bytes:
        body = json.dumps(openai_error(error, request_id), separators=(",", ":"), ensure_ascii=False)
        return b"data: " + body.encode() + b"\n\n" + DONE
