"""Which checkpoints each profile loads, and from where.

REVISIONS ARE NOT YET PINNED TO COMMITS. The commit hashes of the two reference repositories
could not be looked up when this was written, so both constants say "main". Before a
production deploy, replace them with the commit hashes (`huggingface-cli repo info` or the
repository's "Files" page) — or set PICTALE_VISION_REVISION / PICTALE_WRITER_REVISION. The
pre-quantized checkpoints record the commit they were built from in their manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pictale_server.engine.checkpoints import find_checkpoint
from pictale_server.settings import Profile, Settings

REFERENCE_VISION_ID = "huihui-ai/Qwen2.5-VL-7B-Instruct-abliterated"
REFERENCE_VISION_REVISION = "main"  # not a commit hash: see the module docstring
REFERENCE_WRITER_ID = "anthracite-org/magnum-v4-12b"
REFERENCE_WRITER_REVISION = "main"  # not a commit hash: see the module docstring

DEV_VISION_ID = "pictale-dev/tiny-qwen2.5-vl"
DEV_WRITER_ID = "pictale-dev/tiny-mistral-nemo"


@dataclass(frozen=True)
class ModelSource:
    """One model: the id reported to clients and what `from_pretrained` is given."""

    id: str
    location: str | None  # Hub id or local directory; None for dev models until they are built
    revision: str | None
    local_files_only: bool


def resolve_profile(settings: Settings, *, cuda_available: bool) -> Profile:
    if settings.profile is not None:
        return settings.profile
    return "reference" if cuda_available else "dev"


def _hub_source(settings: Settings, repo_id: str, revision: str, *, offline: bool) -> ModelSource:
    """From a prepared NF4 checkpoint when one matches, else from the Hub (cache)."""
    if settings.weights_dir is not None:
        checkpoint = find_checkpoint(settings.weights_dir, repo_id, revision)
        if checkpoint is not None:
            return ModelSource(repo_id, str(checkpoint), None, local_files_only=True)
    return ModelSource(repo_id, repo_id, revision, local_files_only=offline)


def _custom_source(settings: Settings, location: str, revision: str | None) -> ModelSource:
    """A local directory as it is, or any Hub id (downloaded on first load if not cached)."""
    local = Path(location).expanduser()
    if local.is_dir():
        return ModelSource(location, str(local), None, local_files_only=True)
    return _hub_source(settings, location, revision or "main", offline=False)


def model_sources(settings: Settings, profile: Profile) -> tuple[ModelSource, ModelSource]:
    """(vision, writer) for a profile."""
    if profile == "dev":
        return (
            ModelSource(DEV_VISION_ID, None, None, local_files_only=True),
            ModelSource(DEV_WRITER_ID, None, None, local_files_only=True),
        )
    vision_revision = settings.vision_revision or REFERENCE_VISION_REVISION
    writer_revision = settings.writer_revision or REFERENCE_WRITER_REVISION
    if profile == "reference":
        # Serving never downloads the reference models: they are prepared ahead (weights.py).
        return (
            _hub_source(settings, REFERENCE_VISION_ID, vision_revision, offline=True),
            _hub_source(settings, REFERENCE_WRITER_ID, writer_revision, offline=True),
        )
    return (
        _custom_source(
            settings, settings.vision_model or REFERENCE_VISION_ID, settings.vision_revision
        ),
        _custom_source(
            settings, settings.writer_model or REFERENCE_WRITER_ID, settings.writer_revision
        ),
    )
