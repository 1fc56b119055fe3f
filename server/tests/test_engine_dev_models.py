import json

import torch
from transformers import AutoConfig, AutoTokenizer

from pictale_server.engine.dev.models import ensure_dev_models, recipe_hash

pytest_plugins = ["engine_fixtures"]

QWEN_SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|endoftext|>",
]
TEKKEN_SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4}


def test_the_dev_models_have_the_reference_architectures(dev_model_paths):
    vision = json.loads((dev_model_paths.vision / "config.json").read_text())
    writer = json.loads((dev_model_paths.writer / "config.json").read_text())
    assert vision["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert writer["architectures"] == ["MistralForCausalLM"]


def test_the_tiny_vision_config_is_consistent(dev_model_paths):
    config = AutoConfig.from_pretrained(dev_model_paths.vision)
    text = config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    tokenizer = AutoTokenizer.from_pretrained(dev_model_paths.vision)
    assert text.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert (
        text.bos_token_id == text.pad_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    )
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert text.vocab_size == len(tokenizer)
    assert config.vision_config.out_hidden_size == text.hidden_size
    # Kept from the reference: the patch geometry the pixel budget depends on.
    assert (config.vision_config.patch_size, config.vision_config.spatial_merge_size) == (14, 2)


def test_special_tokens_are_single_ids(dev_model_paths):
    qwen = AutoTokenizer.from_pretrained(dev_model_paths.vision)
    for token in QWEN_SPECIALS:
        assert len(qwen.encode(token, add_special_tokens=False)) == 1, token
    tekken = AutoTokenizer.from_pretrained(dev_model_paths.writer)
    for token, expected in TEKKEN_SPECIALS.items():
        assert tekken.encode(token, add_special_tokens=False) == [expected]
    ids = tekken.encode("<s>[INST]Hello[/INST]", add_special_tokens=False)
    assert ids[:2] == [1, 3] and ids[-1] == 4


def test_a_second_call_reuses_the_build(dev_cache_dir, dev_model_paths):
    weights = dev_model_paths.writer / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert ensure_dev_models(dev_cache_dir) == dev_model_paths
    assert weights.stat().st_mtime_ns == stamp
    assert recipe_hash() in str(dev_model_paths.writer)


def test_the_build_is_deterministic(tmp_path, dev_model_paths):
    from safetensors.torch import load_file

    again = ensure_dev_models(tmp_path)
    for name in ("writer", "vision"):
        first = load_file(getattr(dev_model_paths, name) / "model.safetensors")
        second = load_file(getattr(again, name) / "model.safetensors")
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)
    tokens = (dev_model_paths.writer / "tokenizer.json").read_text()
    assert tokens == (again.writer / "tokenizer.json").read_text()
