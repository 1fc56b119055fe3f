import importlib.util

import pytest
import torch
from torch import nn

from pictale_server.engine import quantization
from pictale_server.engine.quantization import (
    assert_quantization_layout,
    attention_implementation,
    nf4_config,
    quantization_layout_errors,
)


class Linear4bit(nn.Linear):
    """Stands in for bitsandbytes' class: the check goes by class name, not import."""


def fake_vlm(*, visual_4bit=False, head_4bit=False) -> nn.Module:
    linear = lambda four_bit: (Linear4bit if four_bit else nn.Linear)(4, 4)
    model = nn.Module()
    model.model = nn.Module()
    model.model.visual = nn.Module()
    model.model.visual.blocks = nn.ModuleList([linear(visual_4bit), nn.Linear(4, 4)])
    model.model.language_model = nn.Module()
    model.model.language_model.q_proj = linear(True)
    model.lm_head = linear(head_4bit)
    return model


def test_nf4_config_matches_the_engine_recipe():
    config = nf4_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert config.bnb_4bit_use_double_quant is False
    assert config.llm_int8_skip_modules == ["model.visual", "visual", "lm_head"]


def test_a_correct_layout_passes():
    assert quantization_layout_errors(fake_vlm()) == []
    assert_quantization_layout(fake_vlm())


def test_a_4bit_layer_in_the_vision_tower_fails():
    errors = quantization_layout_errors(fake_vlm(visual_4bit=True))
    assert errors == ["model.visual.blocks.0 is 4-bit inside the vision tower"]
    with pytest.raises(RuntimeError, match="vision tower"):
        assert_quantization_layout(fake_vlm(visual_4bit=True))


def test_a_4bit_lm_head_fails():
    with pytest.raises(RuntimeError, match="lm_head is 4-bit"):
        assert_quantization_layout(fake_vlm(head_4bit=True))


def test_a_model_with_no_4bit_layer_fails():
    with pytest.raises(RuntimeError, match="no layer is 4-bit"):
        assert_quantization_layout(nn.Sequential(nn.Linear(2, 2)))


def test_attention_is_sdpa_with_the_decode_path_without_a_gpu_or_flash_attn(monkeypatch):
    assert attention_implementation(cuda=False) == "pictale_sdpa"
    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: None)
    assert attention_implementation(cuda=True) == "pictale_sdpa"


def test_attention_is_flash_attention_2_when_it_imports(monkeypatch):
    import sys
    import types

    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    assert attention_implementation(cuda=True) == "flash_attention_2"


def test_a_broken_flash_attn_install_falls_back_to_sdpa(monkeypatch):
    import sys

    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import raises ImportError
    assert attention_implementation(cuda=True) == "pictale_sdpa"
    assert importlib.util is quantization.importlib.util
