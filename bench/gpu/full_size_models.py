"""Full-size random-weight checkpoints of both reference architectures, for GPU benchmarks.

Same shapes as the real weights (which cannot be downloaded where benchmarks run), so memory
and speed are the real ones; the text is noise. Token ids come from the dev profile's locally
built tokenizers, which carry the real special tokens; vocabulary sizes stay the reference
ones, so embedding and `lm_head` cost what they cost in production.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import MistralConfig, MistralForCausalLM, Qwen2_5_VLForConditionalGeneration

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


def _build(model_class, config, target: Path, seed: int) -> float:
    start = time.perf_counter()
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = model_class(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(target)
    del model
    torch.cuda.empty_cache()
    return time.perf_counter() - start


def build_writer(target: Path) -> dict:
    tokenizer = build_tekken_tokenizer()
    seconds = _build(MistralForCausalLM, writer_config(tokenizer), target, seed=1)
    tokenizer.save_pretrained(target)
    return {"writer_build_s": seconds}


def build_vision(target: Path) -> dict:
    tokenizer = build_qwen_tokenizer()
    seconds = _build(Qwen2_5_VLForConditionalGeneration, vision_config(tokenizer, text={}, vision={}), target, seed=2)
    tokenizer.save_pretrained(target)
    image_processor().save_pretrained(target)
    return {"vision_build_s": seconds}
