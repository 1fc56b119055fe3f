"""Profile and checkpoint resolution, and the loading plan: plain functions, no model loads."""

import pytest
import torch

from pictale_server.engine import loading
from pictale_server.engine.loader import load_engine
from pictale_server.engine.loading import LoadPlan, from_pretrained_kwargs, plan_for
from pictale_server.engine.model_sources import (
    DEV_VISION_ID,
    DEV_WRITER_ID,
    REFERENCE_VISION_ID,
    REFERENCE_VISION_REVISION,
    REFERENCE_WRITER_ID,
    ModelSource,
    model_sources,
    resolve_profile,
)
from pictale_server.settings import Settings
from pictale_server.engine.checkpoints import Manifest, checkpoint_dir, write_manifest

HUB = ModelSource("acme/model", "acme/model", "main", local_files_only=True)


def test_profile_defaults_to_dev_without_cuda_and_reference_with_it():
    assert resolve_profile(Settings(), cuda_available=False) == "dev"
    assert resolve_profile(Settings(), cuda_available=True) == "reference"
    assert resolve_profile(Settings(profile="custom"), cuda_available=False) == "custom"


def test_load_engine_picks_the_dev_profile_without_cuda_and_loads_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    engine = load_engine(Settings(cache_dir=tmp_path))
    assert (engine.profile, engine.vision_id, engine.writer_id) == (
        "dev",
        DEV_VISION_ID,
        DEV_WRITER_ID,
    )
    assert list(tmp_path.iterdir()) == []


def test_reference_models_come_from_the_hub_cache_offline_at_the_pinned_revision():
    vision, writer = model_sources(Settings(), "reference")
    assert vision == ModelSource(
        REFERENCE_VISION_ID, REFERENCE_VISION_ID, REFERENCE_VISION_REVISION, True
    )
    assert writer.id == REFERENCE_WRITER_ID and writer.local_files_only


def test_a_revision_setting_overrides_the_pin():
    vision, _ = model_sources(Settings(vision_revision="abc123"), "reference")
    assert vision.revision == "abc123"


def test_a_prepared_nf4_checkpoint_is_preferred(tmp_path):
    directory = checkpoint_dir(tmp_path, REFERENCE_WRITER_ID)
    directory.mkdir(parents=True)
    write_manifest(directory, Manifest(REFERENCE_WRITER_ID, "main", "f" * 40))
    vision, writer = model_sources(Settings(weights_dir=tmp_path), "reference")
    assert writer == ModelSource(REFERENCE_WRITER_ID, str(directory), None, True)
    assert vision.location == REFERENCE_VISION_ID  # none prepared: the Hub cache
    # A checkpoint made with nested quantization does not match.
    write_manifest(directory, Manifest(REFERENCE_WRITER_ID, "main", "f" * 40, double_quant=True))
    _, writer = model_sources(Settings(weights_dir=tmp_path), "reference")
    assert writer.location == REFERENCE_WRITER_ID


def test_custom_models_may_be_local_directories_or_hub_ids(tmp_path):
    settings = Settings(
        vision_model=str(tmp_path), writer_model="acme/writer", writer_revision="v2"
    )
    vision, writer = model_sources(settings, "custom")
    assert vision == ModelSource(str(tmp_path), str(tmp_path), None, True)
    assert writer == ModelSource("acme/writer", "acme/writer", "v2", False)


def test_cpu_loads_float32_with_sdpa_and_no_quantization():
    plan = plan_for(HUB, device=torch.device("cpu"), quantize=True)
    assert plan == LoadPlan(torch.device("cpu"), torch.float32, quantize=False)
    kwargs = from_pretrained_kwargs(HUB, plan)
    assert kwargs == {
        "local_files_only": True,
        "revision": "main",
        "dtype": torch.float32,
        "attn_implementation": "pictale_sdpa",
    }


def test_gpu_loads_bf16_nf4_onto_the_card(monkeypatch):
    monkeypatch.setattr(loading, "is_prequantized", lambda source: False)
    plan = plan_for(HUB, device=torch.device("cuda", 0), quantize=True)
    assert (plan.dtype, plan.quantize) == (torch.bfloat16, True)
    kwargs = from_pretrained_kwargs(HUB, plan)
    assert kwargs["device_map"] == {"": 0}
    config = kwargs["quantization_config"]
    assert config.bnb_4bit_use_double_quant is False  # the fast kernel reads fp32 absmax
    assert config.bnb_4bit_quant_type == "nf4" and config.llm_int8_skip_modules == [
        "model.visual",
        "visual",
        "lm_head",
    ]


def test_a_prequantized_checkpoint_is_not_quantized_again(monkeypatch):
    monkeypatch.setattr(loading, "is_prequantized", lambda source: True)
    plan = plan_for(HUB, device=torch.device("cuda", 0), quantize=True)
    assert plan.quantize is False
    assert "quantization_config" not in from_pretrained_kwargs(HUB, plan)

