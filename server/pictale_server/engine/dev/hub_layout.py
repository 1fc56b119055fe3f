"""Write a model's weights the way its Hub repository stores them: key names, bf16, shards, index.

Where weights cannot be downloaded (tests, GPU benchmarks), stand-in checkpoints are built from
random weights. They should meet prepare_weights.py and the engine's loader in the form the real
repositories have, not in whatever form this transformers version's `save_pretrained` writes
(5.24 writes the old key names back by default, `save_original_format=True`, but in the model's
own dtype and in one file up to its 50 GB default limit; that default is a version's choice):

- Key names. Both reference repositories predate transformers 5's module layout. Qwen2.5-VL
  checkpoints store `visual.*` (vision tower), `model.embed_tokens|layers|norm.*` (language model)
  and `lm_head.*`; transformers 5 names the same tensors `model.visual.*` and
  `model.language_model.*` and renames on load (its conversion_mapping.py, rules for
  `Qwen2VLForConditionalGeneration`, which `Qwen2_5_VLForConditionalGeneration` uses:
  `^visual` -> `model.visual`, `^model(?!\\.(language_model|visual))` ->
  `model.language_model`). Mistral checkpoints store `model.*` and `lm_head.*`, as transformers
  still names them.
- dtype: bf16 for every tensor, as both repositories publish.
- Sharding: `model-0000K-of-0000N.safetensors`, filled greedily in the model's tensor order up to
  a byte limit (huggingface_hub's `split_torch_state_dict_into_shards`, which transformers 4
  used), with `model.safetensors.index.json` = {"metadata": {"total_size"}, "weight_map"};
  safetensors metadata {"format": "pt"}.

Shard limits, from the repositories' file listings:
- anthracite-org/magnum-v4-12b: 5 shards of 4.87, 4.91, 4.91, 4.91, 4.91 GB and a 29.9 kB index
  (the Hub's file list for the repository). A 5 GB (5e9 byte) limit over Mistral-Nemo-12B's
  tensors reproduces exactly these sizes (tests/test_hub_layout_checkpoints.py checks it).
- Qwen/Qwen2.5-VL-7B-Instruct: 5 shards (`model-0000K-of-00005.safetensors`, named in scripts
  that download them one by one); Qwen's VL repositories of this size (Qwen2-VL-7B-Instruct)
  hold 3.9, 3.86, 3.86, 3.86 and 1.09 GB, i.e. a 4 GB limit with `lm_head` alone in the last
  shard, which a 4e9 limit over Qwen2.5-VL-7B's tensors reproduces (3.9, 3.865, 3.865, 3.865,
  1.09 GB). The listing of huihui-ai/Qwen2.5-VL-7B-Instruct-abliterated itself could not be
  read here. Qwen2.5-VL-7B derivatives re-saved with transformers 4's default 5 GB limit (and
  huihui-ai's own Qwen2-VL-7B-Instruct-abliterated) have 4 shards of 4.97, 4.99, 4.93, 1.69 GB,
  which a 5e9 limit over the same tensors also reproduces exactly; if the abliterated repository
  was re-saved that way, set VISION_LAYOUT's limit to 5e9. Key names and dtype are the same
  either way; only the shard boundaries differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class HubLayout:
    """How one reference repository stores its weights."""

    repo_id: str
    max_shard_bytes: int
    shards: int  # how many files the full-size model fills at that limit


VISION_LAYOUT = HubLayout("huihui-ai/Qwen2.5-VL-7B-Instruct-abliterated", 4_000_000_000, 5)
WRITER_LAYOUT = HubLayout("anthracite-org/magnum-v4-12b", 5_000_000_000, 5)

# transformers 5 name prefix -> Hub name prefix, per model type. Every key must match one.
KEY_PREFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "qwen2_5_vl": (
        ("model.visual.", "visual."),
        ("model.language_model.", "model."),
        ("lm_head.", "lm_head."),
    ),
    "mistral": (
        ("model.", "model."),
        ("lm_head.", "lm_head."),
    ),
}


def hub_key(model_type: str, name: str) -> str:
    """The name a tensor of this model type has in the Hub repositories' files."""
    try:
        rules = KEY_PREFIXES[model_type]
    except KeyError:
        raise ValueError(f"no Hub layout known for model type {model_type!r}") from None
    for ours, theirs in rules:
        if name.startswith(ours):
            return theirs + name[len(ours) :]
    raise ValueError(f"{name!r} is not a {model_type} weight the Hub layout knows")


def hub_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under their Hub names, in the model's own order."""
    config = model.config
    if config.get_text_config().tie_word_embeddings:
        raise ValueError("tied input/output embeddings: neither reference repository has them")
    return {hub_key(config.model_type, name): t for name, t in model.state_dict().items()}


def tensor_bytes(tensor: torch.Tensor, dtype: torch.dtype) -> int:
    """Bytes this tensor takes once written (floating point as `dtype`)."""
    itemsize = dtype.itemsize if tensor.is_floating_point() else tensor.element_size()
    return tensor.numel() * itemsize


def plan_shards(sizes: Iterable[tuple[str, int]], max_shard_bytes: int) -> list[list[str]]:
    """Group tensor names into shards as huggingface_hub's `split_torch_state_dict_into_shards`
    does: greedily, in order, a new shard when the next tensor would pass the limit; a tensor
    larger than the limit gets a shard of its own, listed before the shard being filled.
    """
    shards: list[list[str]] = []
    current: list[str] = []
    current_bytes = 0
    for name, size in sizes:
        if size > max_shard_bytes:
            shards.append([name])
            continue
        if current and current_bytes + size > max_shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append(name)
        current_bytes += size
    if current:
        shards.append(current)
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [WEIGHTS_NAME]
    return [f"model-{k:05d}-of-{count:05d}.safetensors" for k in range(1, count + 1)]


def save_in_hub_layout(
    model: torch.nn.Module,
    directory: Path,
    *,
    max_shard_bytes: int,
    dtype: torch.dtype = torch.bfloat16,
) -> list[Path]:
    """Write the weights as the Hub repositories hold them, then config.json and
    generation_config.json (last, so a config.json means the weights are complete). Copies one
    shard at a time to the CPU: a model on the GPU needs host memory for one shard only.
    Returns the weight files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = hub_state_dict(model)
    plan = plan_shards(((k, tensor_bytes(t, dtype)) for k, t in tensors.items()), max_shard_bytes)
    names = shard_names(len(plan))
    weight_map: dict[str, str] = {}
    written = []
    for keys, filename in zip(plan, names):
        shard = {key: _for_disk(tensors[key], dtype) for key in keys}
        save_file(shard, directory / filename, metadata={"format": "pt"})
        del shard
        weight_map.update(dict.fromkeys(keys, filename))
        written.append(directory / filename)
    if len(names) > 1:
        total = sum(tensor_bytes(t, dtype) for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    _save_configs(model, directory, dtype)
    return written


def _for_disk(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.to("cpu").contiguous()


def _save_configs(model: torch.nn.Module, directory: Path, dtype: torch.dtype) -> None:
    config = model.config
    config.architectures = [type(model).__name__]
    config.dtype = str(dtype).removeprefix("torch.")
    config.save_pretrained(directory)
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        generation_config.save_pretrained(directory)
