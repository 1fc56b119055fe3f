"""The contract's error codes and the one exception type that carries them.

Everything the server refuses is raised as `ApiError`; the app turns it into the contract's
body (`{"error": {...}}`) or, once a stream is open, an `error` event. docs/protocol.md lists
the codes; extend, never rename.

`not_ready` says why in `state`: `"loading"` (retryable, with Retry-After) or `"failed"` (the
models could not be loaded; `reason` is the load failure's code and retrying cannot help).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# code -> (HTTP status, retryable)
ERROR_CODES: dict[str, tuple[int, bool]] = {
    "invalid_request": (400, False),
    "invalid_image": (400, False),
    "unsupported_media_type": (415, False),
    "image_too_large": (413, False),
    "request_too_large": (413, False),
    "image_fetch_failed": (400, False),
    "url_not_allowed": (400, False),
    "unauthorized": (401, False),
    "content_refused": (403, False),
    "not_found": (404, False),
    "queue_full": (429, True),
    "rate_limited": (429, True),
    "internal": (500, True),
    "not_ready": (503, True),
}


@dataclass
class ApiError(Exception):
    code: str
    message: str
    param: str | None = None
    retry_after: int | None = None
    details: list[dict[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Optional body fields, present only when set: the server's model state for `not_ready`
    # ("loading" | "failed") and, when failed, the load failure's reason code.
    state: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.code not in ERROR_CODES:
            raise ValueError(f"unknown error code {self.code!r}")
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return ERROR_CODES[self.code][0]

    @property
    def retryable(self) -> bool:
        if self.state == "failed":
            return False  # the models will not load by themselves: a retry cannot succeed
        return ERROR_CODES[self.code][1]

    def _extra_fields(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self.state is not None:
            extra["state"] = self.state
        if self.reason is not None:
            extra["reason"] = self.reason
        return extra

    def body(self, request_id: str) -> dict:
        error: dict = {"code": self.code, "message": self.message, "request_id": request_id}
        if self.param is not None:
            error["param"] = self.param
        if self.details:
            error["details"] = self.details
        error.update(self._extra_fields())
        return {"error": error}

    def event_data(self, request_id: str) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "request_id": request_id,
            **self._extra_fields(),
        }

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.code == "unauthorized":
            headers.setdefault("WWW-Authenticate", "Bearer")
        return headers
