"""The error body a route answers with: the contract's, OpenAI's or KoboldCpp's.

The compatibility routes (api/compat/) answer in their clients' own error shape, so the
`openai` packages raise their typed errors with our message and front ends written for
KoboldCpp show it; the contract's code stays in each (`code`, `type`). Chosen by path, so a 413
from the body limit or a last-resort 500 has the same shape as the route's own errors.
"""

from __future__ import annotations

from typing import Any

from pictale_server.errors import ApiError

OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models")
KOBOLD_PREFIX = "/api/"

# OpenAI's `type` for each HTTP status the contract's codes use.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
}


def dialect_for(path: str) -> str:
    if any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS):
        return "openai"
    if path.startswith(KOBOLD_PREFIX):
        return "kobold"
    return "pictale"


def openai_error(error: ApiError, request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": _OPENAI_TYPES.get(error.status, "invalid_request_error"),
            "param": error.param,
            "code": error.code,
            "request_id": request_id,
        }
    }


def kobold_error(error: ApiError, request_id: str) -> dict[str, Any]:
    detail = {"msg": error.message, "type": error.code, "request_id": request_id}
    if error.param is not None:
        detail["param"] = error.param
    return {"detail": detail}


def error_body(error: ApiError, request_id: str, path: str) -> dict[str, Any]:
    dialect = dialect_for(path)
    if dialect == "openai":
        return openai_error(error, request_id)
    if dialect == "kobold":
        return kobold_error(error, request_id)
    return error.body(request_id)
