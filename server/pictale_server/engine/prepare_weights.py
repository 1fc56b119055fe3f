"""Offline weight preparation: a Hub model at a pinned revision → a pre-quantized NF4 checkpoint.

Serving reads ~16 GB of NF4 weights instead of ~41 GB of bf16 and skips quantizing at every
cold start. `prepare` turns a model on the Hugging Face Hub (at a pinned revision) into such a
checkpoint, once, on a machine with a CUDA GPU (bitsandbytes quantizes on the GPU).

The layout it writes is checkpoints.py's.

A checkpoint is built in `<dir>.partial` and renamed into place, so an interrupted run never
leaves a directory that looks complete. Models whose manifest already matches are skipped.
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pictale_server.engine import model_sources as ref
from pictale_server.engine.checkpoints import (
    DOWNLOADS_SUBDIR,
    PARTIAL_SUFFIX,
    Manifest,
    checkpoint_dir,
    find_checkpoint,
    matches,
    read_manifest,
    write_manifest,
)

if TYPE_CHECKING:
    from pictale_server.settings import Settings

Role = Literal["vision", "writer"]


# Never downloaded: other serializations of the same weights.
IGNORED_DOWNLOADS = (
    "*.bin",
    "*.pth",
    "*.pt",
    "*.gguf",
    "*.onnx",
    "*.msgpack",
    "*.h5",
    "original/*",
)
# Files that save_pretrained writes for the quantized model; everything else in the snapshot
# (tokenizer, processor, chat template) is copied over unchanged.
MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json")


@dataclass(frozen=True)
class HubModel:
    """One model to prepare: its role in pictale and its Hub repository at a revision."""

    role: Role
    repo_id: str
    revision: str


@dataclass(frozen=True)
class Prepared:
    source: HubModel
    path: Path
    skipped: bool  # True when a matching checkpoint was already there


Downloader = Callable[[HubModel, Path], Path]
"""(source, downloads dir) -> local snapshot directory; its name is the commit hash."""
Quantizer = Callable[[HubModel, Path, Path], None]
"""(source, snapshot dir, output dir) -> writes the NF4 model into output dir."""


def hub_models(settings: Settings) -> list[HubModel]:
    """The Hub models the configured profile serves; local directories need no preparing."""
    if settings.profile == "custom":
        vision_id = settings.vision_model or ref.REFERENCE_VISION_ID
        writer_id = settings.writer_model or ref.REFERENCE_WRITER_ID
        vision_revision = settings.vision_revision or "main"
        writer_revision = settings.writer_revision or "main"
    else:
        vision_id, writer_id = ref.REFERENCE_VISION_ID, ref.REFERENCE_WRITER_ID
        vision_revision = settings.vision_revision or ref.REFERENCE_VISION_REVISION
        writer_revision = settings.writer_revision or ref.REFERENCE_WRITER_REVISION
    models = [
        HubModel("vision", vision_id, vision_revision),
        HubModel("writer", writer_id, writer_revision),
    ]
    return [model for model in models if not Path(model.repo_id).expanduser().is_dir()]


def missing_checkpoints(settings: Settings) -> list[HubModel]:
    """Models of the configured profile that have no prepared checkpoint under weights_dir."""
    if settings.weights_dir is None:
        return []
    return [
        model
        for model in hub_models(settings)
        if find_checkpoint(settings.weights_dir, model.repo_id, model.revision) is None
    ]


def copy_support_files(snapshot: Path, output: Path) -> list[str]:
    """Copy tokenizer/processor/template files from a snapshot; returns the names copied."""
    copied = []
    for path in sorted(Path(snapshot).rglob("*")):
        relative = path.relative_to(snapshot).as_posix()
        if not path.is_file() or _matches_any(relative, MODEL_FILES + IGNORED_DOWNLOADS):
            continue
        destination = Path(output) / relative
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        copied.append(relative)
    return copied


def prepare(
    weights_dir: Path,
    sources: Iterable[HubModel],
    *,
    download: Downloader,
    quantize: Quantizer,
    on_prepared: Callable[[Prepared], None] = lambda _: None,
) -> list[Prepared]:
    """Make an NF4 checkpoint for every source that lacks a matching one."""
    results = []
    for source in sources:
        target = checkpoint_dir(weights_dir, source.repo_id)
        if matches(read_manifest(target), source.repo_id, source.revision):
            result = Prepared(source, target, skipped=True)
        else:
            _build(weights_dir, source, target, download, quantize)
            result = Prepared(source, target, skipped=False)
        on_prepared(result)
        results.append(result)
    return results


def _build(
    weights_dir: Path,
    source: HubModel,
    target: Path,
    download: Downloader,
    quantize: Quantizer,
) -> None:
    downloads = Path(weights_dir) / DOWNLOADS_SUBDIR
    snapshot = download(source, downloads)
    staging = target.with_name(target.name + PARTIAL_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    quantize(source, snapshot, staging)
    copy_support_files(snapshot, staging)
    manifest = Manifest(source.repo_id, source.revision, Path(snapshot).name)
    write_manifest(staging, manifest)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    shutil.rmtree(downloads, ignore_errors=True)


def _matches_any(relative: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


# --- the real download and quantization (need the Hub, and a CUDA GPU for bitsandbytes) ---


def hub_download(source: HubModel, downloads: Path) -> Path:
    """Download a pinned snapshot (HF_TOKEN from the environment authorizes gated repos)."""
    from huggingface_hub import snapshot_download

    path = snapshot_download(
        source.repo_id,
        revision=source.revision,
        cache_dir=downloads,
        ignore_patterns=list(IGNORED_DOWNLOADS),
    )
    return Path(path)


def quantize_nf4(source: HubModel, snapshot: Path, output: Path) -> None:
    """Load the bf16 snapshot with the engine's NF4 config on the GPU and save it quantized."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2_5_VLForConditionalGeneration

    from pictale_server.engine.quantization import assert_quantization_layout, nf4_config

    # The same classes the engine loads them with (engine/transformers_engine.py).
    model_class = (
        Qwen2_5_VLForConditionalGeneration if source.role == "vision" else AutoModelForCausalLM
    )
    model = model_class.from_pretrained(
        snapshot,
        quantization_config=nf4_config(),
        dtype=torch.bfloat16,
        device_map={"": 0},
    )
    assert_quantization_layout(model)
    model.save_pretrained(output)
    del model
    torch.cuda.empty_cache()
