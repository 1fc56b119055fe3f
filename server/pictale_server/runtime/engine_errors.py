"""Engine errors as contract errors: the one place that knows which request field each
engine failure is about."""

from __future__ import annotations

import logging

from pictale_server.engine.errors import (
    ImageUnprocessable,
    MalformedConversation,
    NotLoaded,
    PromptTooLong,
    TokenOutOfVocabulary,
)
from pictale_server.errors import ApiError
from pictale_server.runtime.lifecycle import not_ready_error

logger = logging.getLogger("pictale.server")


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
        param = "history" if exc.model == "writer" else "prompt"
        return ApiError("invalid_request", str(exc), param=param)
    if isinstance(exc, TokenOutOfVocabulary):
        return ApiError("invalid_request", str(exc), param="logit_bias")
    if isinstance(exc, ImageUnprocessable):
        return ApiError("invalid_image", str(exc), param="image")
    if isinstance(exc, NotLoaded):
        return not_ready_error("loading", None)
    logger.error("generation failed: %s", type(exc).__name__, exc_info=exc)
    return ApiError("internal", "The model failed while generating.")
