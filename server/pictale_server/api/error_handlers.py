"""Every error the app answers, in the contract's body: `{"error": {code, message, ...}}`.

`ApiError` is the only way the server refuses; FastAPI's own validation errors (422) and
Starlette's 404/405 are reshaped here so clients see one shape with one set of codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pictale_server.api.error_bodies import error_body
from pictale_server.api.request_context import get_request_context
from pictale_server.errors import ApiError


def error_json(request: Request, error: ApiError, status: int | None = None) -> JSONResponse:
    context = get_request_context(request)
    context.record_error(error.code)
    return JSONResponse(
        error_body(error, context.request_id, request.url.path),
        status_code=status or error.status,
        headers=error.response_headers(),
    )


def _param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(part) for part in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or None


def _first_line(message: str) -> str:
    return message.split("\n", 1)[0]


_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type", "missing"}


def validation_error(exc: RequestValidationError) -> ApiError:
    errors = list(exc.errors())
    if not errors:
        return ApiError("invalid_request", "The request is invalid.")
    if any(error.get("type") == "json_invalid" for error in errors):
        return ApiError("invalid_request", "The request body is not valid JSON.")
    if any(_param(e.get("loc", ())) is None and e.get("type") in _NOT_AN_OBJECT for e in errors):
        return ApiError(
            "invalid_request",
            "The request body must be a JSON object (sent with Content-Type: application/json).",
        )
    details = []
    for error in errors:
        param = _param(error.get("loc", ()))
        detail = {"message": _first_line(str(error.get("msg", "invalid")))}
        if param:
            detail["param"] = param
        details.append(detail)
    first = details[0]
    message = f"{first['param']}: {first['message']}" if "param" in first else first["message"]
    return ApiError("invalid_request", message, param=first.get("param"), details=details)


def _body_never_decoded(exc: RequestValidationError) -> bool:
    """A body that is not JSON fails before any route dependency has run."""
    return any(error.get("type") == "json_invalid" for error in exc.errors())


def install_error_handlers(
    app: FastAPI, admit_generation: Callable[[Request], object] | None = None
) -> None:
    """`admit_generation`: the generation routes' auth and rate limit, which the validation
    handler applies to a body that never decoded (FastAPI decodes a JSON body before it runs
    route dependencies, so a malformed body must not answer before the key is checked)."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_json(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _body_never_decoded(exc):
            if admit_generation is not None:
                try:
                    admit_generation(request)  # auth and rate limit: the route never ran
                except ApiError as error:
                    return error_json(request, error)
        return error_json(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_json(request, ApiError("not_found", f"No route {request.url.path}."))
        if exc.status_code == 405:
            # Keeps HTTP's 405 and Allow header; the code is the contract's nearest, not_found.
            error = ApiError(
                "not_found",
                f"{request.method} is not allowed on {request.url.path}.",
                headers=dict(exc.headers or {}),
            )
            return error_json(request, error, status=405)
        if exc.status_code == 400:
            return error_json(
                request, ApiError("invalid_request", "The request body could not be read.")
            )
        error = ApiError("internal", "Internal server error.")
        return error_json(request, error)
