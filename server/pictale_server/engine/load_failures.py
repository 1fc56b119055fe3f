"""Why a model could not be loaded, as one of `LoadFailure`'s reason codes.

A missing checkpoint must fail at once with a reason an operator can act on, not leave the
server "loading": a local path that does not exist never reaches the Hub client (which would
retry a network it may not have), and everything `load()` raises is classified here.
"""

from __future__ import annotations

import re
from pathlib import Path

from pictale_server.engine.errors import LoadFailure, ModelLoadFailed, ModelRole
from pictale_server.engine.model_sources import ModelSource

# owner/name as the Hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_source(role: ModelRole, source: ModelSource) -> None:
    """Raise ModelLoadFailed("model_not_found") for a location that can only be a local path
    and is not a directory; a Hub id is left to the Hub client."""
    location = source.location
    if location is None or Path(location).expanduser().is_dir():
        return
    if source.local_files_only and Path(location).is_absolute():
        raise ModelLoadFailed("model_not_found", f"the {role} model's directory {location} does not exist")
    if not HUB_ID.match(location):
        raise ModelLoadFailed(
            "model_not_found",
            f"the {role} model {location!r} is neither an existing directory nor a Hub id (owner/name)",
        )


def classify(role: ModelRole, exc: BaseException) -> ModelLoadFailed:
    """The ModelLoadFailed that `exc`, raised while loading the `role` model, amounts to."""
    if isinstance(exc, ModelLoadFailed):
        return exc
    reason: LoadFailure = "load_error"
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in text.lower():
        reason = "out_of_memory"
    elif name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "LocalEntryNotFoundError") or isinstance(exc, FileNotFoundError):
        reason = "model_not_found"
    elif isinstance(exc, OSError) and ("does not appear to have" in text or "is not a local folder" in text or "not a valid model identifier" in text):
        reason = "model_not_found"
    elif name == "UnsupportedGpu":
        reason = "unsupported_gpu"
    first_line = text.strip().splitlines()[0] if text.strip() else name
    return ModelLoadFailed(reason, f"the {role} model failed to load: {first_line[:300]}")
