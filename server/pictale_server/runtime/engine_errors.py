"""Engine errors as contract errors: the one place that knows which request field each
engine failure is about."""

from __future__ import annotations

import logging

from pictale_server.engine.errors import (
    ImageUnprocessable,
    MalformedConversation,
    NotLoaded,
    PromptTooLong,
)
from pictale_server.errors import ApiError

logger = logging.getLogger("pictale.server")

NOT_LOADED_RETRY_AFTER_S = 5


def contract_error(exc: BaseException) -> ApiError:
    """The ApiError a failed stage answers with; anything unexpected is a logged `internal`."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PromptTooLong):
        if exc.model == "vision":
            param, shorten = "prompt", "the prompt"
        else:
            param = "history" if exc.has_history else "context"
            shorten = f"the {param}"
        return ApiError(
            "invalid_request", f"{exc} — shorten {shorten} or lower max_tokens", param=param
        )
    if isinstance(exc, MalformedConversation):
        return ApiError("invalid_request", str(exc), param="history" if exc.model == "writer" else "prompt")
    if isinstance(exc, ImageUnprocessable):
        return ApiError("invalid_image", str(exc), param="image")
    if isinstance(exc, NotLoaded):
        return ApiError("not_ready", "The models are still loading.", retry_after=NOT_LOADED_RETRY_AFTER_S)
    logger.error("generation failed: %s", type(exc).__name__, exc_info=exc)
    return ApiError("internal", "The model failed while generating.")
