"""Pre-quantized NF4 checkpoints: where they live and how a complete one is recognised.

Layout under the weights directory (a Modal Volume in deployment):

    nf4/<owner>--<name>/            one checkpoint per model: safetensors, config with the
                                    quantization settings, tokenizer/processor files, and
        pictale-weights.json        the manifest, written last: its presence means "complete"
    downloads/                      Hub cache while preparing; emptied after each model

Making them is offline work (prepare_weights.py); serving only finds them (model_sources.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

CHECKPOINTS_SUBDIR = "nf4"
DOWNLOADS_SUBDIR = "downloads"
MANIFEST_NAME = "pictale-weights.json"
PARTIAL_SUFFIX = ".partial"
# Bumped when the checkpoint layout or quantization recipe changes: old checkpoints get rebuilt.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    repo_id: str
    revision: str  # as requested (a commit hash, or a branch/tag name)
    commit: str  # the commit actually downloaded
    # Always False when written: the fast decode kernel reads plain fp32 absmax, so nested
    # (double) quantization is not offered. Kept so manifests written with it are not matched.
    double_quant: bool = False
    format_version: int = FORMAT_VERSION


def checkpoint_dir(weights_dir: Path, repo_id: str) -> Path:
    """Where the NF4 checkpoint of `repo_id` lives under `weights_dir`."""
    if repo_id.count("/") != 1 or any(part in ("", ".", "..") for part in repo_id.split("/")):
        raise ValueError(f"not a Hub model id (owner/name): {repo_id!r}")
    return Path(weights_dir) / CHECKPOINTS_SUBDIR / repo_id.replace("/", "--")


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest of a checkpoint directory, or None when absent or unreadable."""
    try:
        data = json.loads((Path(directory) / MANIFEST_NAME).read_text())
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (Path(directory) / MANIFEST_NAME).write_text(json.dumps(asdict(manifest), indent=2) + "\n")


def matches(manifest: Manifest | None, repo_id: str, revision: str) -> bool:
    """Whether a checkpoint with `manifest` is this model at this revision, in the current format."""
    return (
        manifest is not None
        and manifest.format_version == FORMAT_VERSION
        and manifest.repo_id == repo_id
        and revision in (manifest.revision, manifest.commit)
        and not manifest.double_quant
    )


def find_checkpoint(weights_dir: Path, repo_id: str, revision: str) -> Path | None:
    """The prepared checkpoint for this model, or None (the loader then reads the Hub cache)."""
    directory = checkpoint_dir(weights_dir, repo_id)
    return directory if matches(read_manifest(directory), repo_id, revision) else None


