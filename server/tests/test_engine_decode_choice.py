"""The one selection point for a model's decode step (engine/decode_choice.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from engine_fixtures import dev_engine  # noqa: F401 (fixture)
from transformers import MistralConfig, MistralForCausalLM

from pictale_server.engine import decode_choice
from pictale_server.engine.decode_choice import FastImplementation, choose_decode_step
from pictale_server.engine.decode_step import ReferenceStep
from pictale_server.engine.kv_pool import KVPool
from pictale_server.engine.runners import CausalLMRunner
from pictale_server.kernels.nf4_cuda import CudaKernelUnavailable
from pictale_server.settings import Settings

pytest_plugins = ["engine_fixtures"]


@pytest.fixture(scope="module")
def runner_and_caches():
    config = MistralConfig(
        sliding_window=None, vocab_size=128, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config).to(torch.bfloat16).eval()
    pool = KVPool(config, 512, dtype=torch.bfloat16, device=torch.device("cpu"))
    return CausalLMRunner(model), [pool.cache]


def choose(runner_and_caches, setting="auto", device=torch.device("cpu")):
    runner, caches = runner_and_caches
    return choose_decode_step("the writer", runner, caches, device, setting=setting, cache_tokens=64)


def test_without_a_gpu_the_reference_step_serves_and_says_why(runner_and_caches):
    choice = choose(runner_and_caches)
    assert choice.path == "reference" and isinstance(choice.step, ReferenceStep)
    assert choice.reason == "no CUDA GPU"


def test_off_never_asks_the_fast_path(runner_and_caches, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fast path must not be considered when the setting is off")

    monkeypatch.setattr(FastImplementation, "can_implement", refuse)
    choice = choose(runner_and_caches, setting="off")
    assert (choice.path, choice.reason) == ("reference", "PICTALE_FAST_PATH=off")


def test_weights_that_are_not_nf4_keep_the_reference_step_with_the_layer_named(runner_and_caches, monkeypatch):
    monkeypatch.setattr(decode_choice, "_gpu_unavailable", lambda device: "")
    runner, caches = runner_and_caches
    ok, reason = FastImplementation().can_implement(runner, caches, torch.device("cpu"))
    assert not ok
    assert reason == "layer 0 q_proj is not a bitsandbytes NF4 layer: the fast path reads NF4 weights"


def test_a_kernel_that_cannot_be_built_falls_back_to_the_reference_step(runner_and_caches, monkeypatch, caplog):
    monkeypatch.setattr(FastImplementation, "can_implement", lambda self, runner, caches, device: (True, ""))

    def build(self, runner, caches, *, cache_tokens):
        raise CudaKernelUnavailable("NVRTC compilation failed: unsupported instruction")

    monkeypatch.setattr(FastImplementation, "build", build)
    with caplog.at_level(logging.INFO, logger="pictale.engine"):
        choice = choose(runner_and_caches)
    assert choice.path == "reference"
    assert choice.reason == "the NF4 kernel could not be built: NVRTC compilation failed: unsupported instruction"
    assert "the writer decodes on the reference path" in caplog.text


def test_a_model_the_fast_path_serves_reports_no_reason(runner_and_caches, monkeypatch):
    class Step:
        path = "fast"

    monkeypatch.setattr(FastImplementation, "can_implement", lambda self, runner, caches, device: (True, ""))
    monkeypatch.setattr(FastImplementation, "build", lambda self, runner, caches, *, cache_tokens: Step())
    choice = choose(runner_and_caches)
    assert (choice.path, choice.reason) == ("fast", "")


def test_the_setting_accepts_only_auto_and_off():
    assert Settings().fast_path == "auto"
    with pytest.raises(ValueError):
        Settings(fast_path="on")


def test_the_loaded_engine_reports_each_models_decode_path(dev_engine):  # noqa: F811
    for model in ("vision", "writer"):
        assert dev_engine.decode_info(model) == {"path": "reference", "reason": "no CUDA GPU"}
