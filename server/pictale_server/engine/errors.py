"""The engine's own errors. It knows models, tokens and images, not HTTP or request fields:
the runtime's stage layer (runtime/engine_errors.py) turns these into contract errors."""

from __future__ import annotations

from typing import Literal

ModelRole = Literal["vision", "writer"]
LoadFailure = Literal["model_not_found", "out_of_memory", "unsupported_gpu", "load_error"]


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class NotLoaded(EngineError):
    """A generation call reached a model that is not resident (yet)."""

    def __init__(self, model: ModelRole) -> None:
        super().__init__(f"the {model} model is not loaded")
        self.model = model


class PromptTooLong(EngineError):
    """The prompt plus the tokens to generate do not fit the model's context."""

    def __init__(
        self, model: ModelRole, *, prompt_tokens: int, max_tokens: int, limit: int, has_history: bool = False
    ) -> None:
        super().__init__(
            f"the prompt takes {prompt_tokens} tokens; with max_tokens {max_tokens} that exceeds "
            f"the {model} model's context of {limit} tokens"
        )
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.limit = limit
        self.has_history = has_history  # the writer's conversation had earlier turns


class MalformedConversation(EngineError):
    """The messages cannot be put into the model's chat format (e.g. roles out of order)."""

    def __init__(self, model: ModelRole, reason: str) -> None:
        super().__init__(reason)
        self.model = model


class TokenOutOfVocabulary(EngineError):
    """A logit bias names a token id the model does not have."""

    def __init__(self, model: ModelRole, token: int, vocab_size: int) -> None:
        super().__init__(f"token id {token} is not in the {model} model's vocabulary (0-{vocab_size - 1})")
        self.model = model


class ImageUnprocessable(EngineError):
    """The vision model's preprocessing refuses the image (e.g. an extreme aspect ratio)."""


class ModelLoadFailed(EngineError):
    """`load()` could not make a model resident; `reason` is one of LoadFailure."""

    def __init__(self, reason: LoadFailure, message: str) -> None:
        super().__init__(message)
        self.reason: LoadFailure = reason
        self.message = message
