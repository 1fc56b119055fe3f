"""Full-size random-weight checkpoints of both reference architectures, for GPU benchmarks.

Same shapes as the real weights (which cannot be downloaded where benchmarks run), so memory
and speed are the real ones; the text is noise. Token ids come from the dev profile's locally
built tokenizers, which carry the real special tokens; vocabulary sizes stay the reference
ones, so embedding and `lm_head` cost what they cost in production.

The weights are written as the reference repositories hold them (engine/dev/hub_layout.py):
their key names, bf16, their shard limit and an index, so loading and quantizing meet the
files production meets, not this transformers version's `save_pretrained` output.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import MistralConfig, MistralForCausalLM, Qwen2_5_VLForConditionalGeneration

from pictale_server.engine.dev.hub_layout import (
    VISION_LAYOUT,
    WRITER_LAYOUT,
    HubLayout,
    save_in_hub_layout,
)
from pictale_server.engine.dev.models import _reference_config, image_processor, vision_config
from pictale_server.engine.dev.tokenizers import build_qwen_tokenizer, build_tekken_tokenizer


def writer_config(tokenizer) -> MistralConfig:
    values = _reference_config("mistral_nemo_12b.config.json")
    for key in ("architectures", "model_type"):
        values.pop(key, None)
    values.pop("torch_dtype", None)
    values.update(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="bfloat16",
    )
    return MistralConfig(**values)


def _build(model_class, config, target: Path, seed: int, layout: HubLayout) -> tuple[float, int]:
    """Build on the GPU in bf16 and write in the repository's layout: (seconds, shard files)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous)
    files = save_in_hub_layout(model, target, max_shard_bytes=layout.max_shard_bytes)
    del model
    torch.cuda.empty_cache()
    return time.perf_counter() - start, len(files)


def build_writer(target: Path) -> dict:
    tokenizer = build_tekken_tokenizer()
    seconds, shards = _build(
        MistralForCausalLM, writer_config(tokenizer), target, seed=1, layout=WRITER_LAYOUT
    )
    tokenizer.save_pretrained(target)
    return {"writer_build_s": seconds, "writer_shards": shards}


def build_vision(target: Path) -> dict:
    tokenizer = build_qwen_tokenizer()
    config = vision_config(tokenizer, text={}, vision={})
    seconds, shards = _build(
        Qwen2_5_VLForConditionalGeneration, config, target, seed=2, layout=VISION_LAYOUT
    )
    tokenizer.save_pretrained(target)
    image_processor().save_pretrained(target)
    return {"vision_build_s": seconds, "vision_shards": shards}
