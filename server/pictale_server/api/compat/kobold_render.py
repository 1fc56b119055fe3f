"""A completion run in KoboldCpp's shapes.

`/api/v1/generate` answers `{"results": [{"text", "finish_reason", "logprobs",
"prompt_tokens", "completion_tokens"}]}`. `/api/extra/generate/stream` sends `event: message`
with `data: {"token": ..., "finish_reason": null}` per piece of text and ends with
`{"token": "", "finish_reason": "stop" | "length"}`, no `[DONE]` (KoboldCpp clients parse every
data line as JSON). An error after the stream opened is an `event: error` with KoboldCpp's
error body.
"""

from __future__ import annotations

import json
from typing import Any

from pictale_server.api.error_bodies import kobold_error
from pictale_server.errors import ApiError


def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def generate_body(done: dict[str, Any]) -> dict[str, Any]:
    result = done["choices"][0] if done["choices"] else None
    stages = [*done["descriptions"], *done["choices"]]
    return {
        "results": [
            {
                "text": result["text"] if result else "",
                "finish_reason": _finish_reason(result["finish_reason"] if result else "stop"),
                "logprobs": None,
                "prompt_tokens": sum(s["usage"]["input_tokens"] for s in stages),
                "completion_tokens": sum(s["usage"]["output_tokens"] for s in stages),
            }
        ]
    }


class KoboldStream:
    """delivery.StreamRenderer for /api/extra/generate/stream."""

    ping = b": ping\n\n"

    def opening(self) -> bytes:
        return b""

    def event(self, seq: int, name: str, data: dict[str, Any]) -> bytes:
        if "image" in data:  # describing a picture first: progress only
            return f": describing picture {data['image'] + 1}\n\n".encode() if name == "stage-start" else b""
        if name == "delta":
            return _sse("message", {"token": data["text"], "finish_reason": None})
        if name == "stage-end":
            return _sse("message", {"token": "", "finish_reason": _finish_reason(data["finish_reason"])})
        if name == "status" and data.get("state") == "queued":
            return f": queued, position {data.get('position')}\n\n".encode()
        return b""

    def error(self, seq: int, error: ApiError, request_id: str) -> bytes:
        return _sse("error", kobold_error(error, request_id))
