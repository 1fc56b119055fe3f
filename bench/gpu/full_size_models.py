"""Full-size random-weight checkpoints of both reference architectures, for GPU benchmarks.

Same shapes as the real weights (which cannot be downloaded where benchmarks run), so memory
and speed are the real ones; the text is noise. Token ids come from the dev profile's locally
built tokenizers, which carry the real special tokens; vocabulary sizes stay the reference
ones, so embedding and `lm_head` cost what they cost in production.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from transformers import MistralConfig, MistralForCausalLM, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from pictale_server.engine.dev.models import IMAGE_MEAN, IMAGE_STD, _reference_config
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


def vision_config(tokenizer) -> Qwen2_5_VLConfig:
    values = _reference_config("qwen2_5_vl_7b.config.json")
    token_id = tokenizer.convert_tokens_to_ids
    ids = {
        "bos_token_id": token_id("<|endoftext|>"),
        "eos_token_id": token_id("<|im_end|>"),
        "pad_token_id": token_id("<|endoftext|>"),
    }
    text = copy.deepcopy(values["text_config"])
    text.update(ids)
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=copy.deepcopy(values["vision_config"]),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        vision_token_id=token_id("<|vision_pad|>"),
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        tie_word_embeddings=False,
        dtype="bfloat16",
        **ids,
    )


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
    seconds = _build(Qwen2_5_VLForConditionalGeneration, vision_config(tokenizer), target, seed=2)
    tokenizer.save_pretrained(target)
    Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=28 * 28 * 1280, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
    ).save_pretrained(target)
    return {"vision_build_s": seconds}
