"""Build the dev profile's tiny random-weight models once into a cache directory.

Same classes as the reference models (Qwen2_5_VLForConditionalGeneration, MistralForCausalLM),
scaled down from the reference configs; deterministic (fixed seed), seconds on CPU, no network.
The directory name is a hash of the build recipe, so changing the recipe rebuilds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import (
    MistralConfig,
    MistralForCausalLM,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from pictale_server.engine.dev.tokenizers import build_qwen_tokenizer, build_tekken_tokenizer

RECIPE_VERSION = 1
SEED = 20261126
REFERENCE_CONFIGS = Path(__file__).resolve().parent.parent / "reference_configs"

# Tiny sizes. head_dim 16 → mrope_section must sum to 8.
TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
TINY_VISION = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "fullatt_block_indexes": [1],
}
TINY_MROPE_SECTION = [2, 3, 3]
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class DevModelPaths:
    vision: Path
    writer: Path


def _reference_config(name: str) -> dict:
    raw = json.loads((REFERENCE_CONFIGS / name).read_text())
    return {key: value for key, value in raw.items() if not key.startswith("_")}


def _recipe() -> dict:
    return {
        "version": RECIPE_VERSION,
        "seed": SEED,
        "transformers": transformers.__version__,
        "text": TINY_TEXT,
        "vision": TINY_VISION,
        "mrope": TINY_MROPE_SECTION,
        "qwen": _reference_config("qwen2_5_vl_7b.config.json"),
        "mistral": _reference_config("mistral_nemo_12b.config.json"),
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "tokenizers": hashlib.sha256(
            (Path(__file__).parent / "tokenizers.py").read_bytes()
            + (Path(__file__).parent / "corpus.py").read_bytes()
        ).hexdigest(),
    }


def recipe_hash() -> str:
    encoded = json.dumps(_recipe(), sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def tiny_writer_config(vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> MistralConfig:
    values = _reference_config("mistral_nemo_12b.config.json")
    values.update(TINY_TEXT)
    head_dim = TINY_TEXT["hidden_size"] // TINY_TEXT["num_attention_heads"]
    values.update(
        head_dim=head_dim,
        vocab_size=vocab_size,
        max_position_embeddings=32768,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    values.pop("architectures", None)
    values.pop("model_type", None)
    values["dtype"] = values.pop("torch_dtype", "bfloat16")
    return MistralConfig(**values)


def qwen_token_ids(tokenizer) -> dict[str, int]:
    """The special-token ids a Qwen2.5-VL config needs, from the tokenizer that encodes prompts."""
    token_id = tokenizer.convert_tokens_to_ids
    return {
        "bos_token_id": token_id("<|endoftext|>"),
        "eos_token_id": token_id("<|im_end|>"),
        "pad_token_id": token_id("<|endoftext|>"),
        "vision_start_token_id": token_id("<|vision_start|>"),
        "vision_end_token_id": token_id("<|vision_end|>"),
        "vision_token_id": token_id("<|vision_pad|>"),
        "image_token_id": token_id("<|image_pad|>"),
        "video_token_id": token_id("<|video_pad|>"),
    }


def vision_config(tokenizer, *, text: dict, vision: dict) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config from the reference one, `text`/`vision` overrides and the tokenizer."""
    values = _reference_config("qwen2_5_vl_7b.config.json")
    ids = qwen_token_ids(tokenizer)
    text_config = {**copy.deepcopy(values["text_config"]), **text}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        text_config[key] = ids[key]
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config={**copy.deepcopy(values["vision_config"]), **vision},
        tie_word_embeddings=False,
        dtype="bfloat16",
        **ids,
    )


def image_processor() -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=28 * 28 * 1280, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
    )


def tiny_vision_config(tokenizer) -> Qwen2_5_VLConfig:
    return vision_config(
        tokenizer,
        text={
            **TINY_TEXT,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 32768,
            "max_window_layers": TINY_TEXT["num_hidden_layers"],
            "rope_scaling": {"type": "mrope", "mrope_section": TINY_MROPE_SECTION},
        },
        vision={**TINY_VISION, "out_hidden_size": TINY_TEXT["hidden_size"]},
    )


def dev_writer_model() -> tuple[MistralForCausalLM, object]:
    """The dev writer, freshly initialised from the recipe's seed, and its tokenizer."""
    tokenizer = build_tekken_tokenizer()
    config = tiny_writer_config(
        vocab_size=len(tokenizer),
        bos_id=tokenizer.bos_token_id,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    return MistralForCausalLM(config), tokenizer


def dev_vision_model() -> tuple[Qwen2_5_VLForConditionalGeneration, object]:
    """The dev vision model, freshly initialised from the recipe's seed, and its tokenizer."""
    tokenizer = build_qwen_tokenizer()
    config = tiny_vision_config(tokenizer)
    torch.manual_seed(SEED + 1)
    return Qwen2_5_VLForConditionalGeneration(config), tokenizer


def _build_writer(target: Path) -> None:
    model, tokenizer = dev_writer_model()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _build_vision(target: Path) -> None:
    model, tokenizer = dev_vision_model()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    image_processor().save_pretrained(target)


def ensure_dev_models(cache_dir: Path) -> DevModelPaths:
    """Return the dev models' directories, building them first if this recipe has no build."""
    root = Path(cache_dir) / f"dev-models-{recipe_hash()}"
    paths = DevModelPaths(vision=root / "vision", writer=root / "writer")
    if root.is_dir():
        return paths
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root.parent))
    try:
        _build_vision(staging / "vision")
        _build_writer(staging / "writer")
        try:
            os.rename(staging, root)  # atomic: a concurrent builder may win, which is fine
        except OSError:
            if not root.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths
