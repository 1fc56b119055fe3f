"""Checkpoints in the reference repositories' layout meet prepare_weights and the engine's loader.

The real repositories cannot be downloaded here, so tiny models of the same two architectures
(the dev profile's) are written the way the Hub files are (engine/dev/hub_layout.py: Hub key
names, bf16, several shards and an index), then:
- loaded with the engine's classes and from_pretrained arguments: every tensor lands, none is
  left over, and the model computes what the written one does;
- taken through prepare_weights' whole path: prepare() with the real quantize_nf4 (bitsandbytes'
  CPU backend quantizes NF4; only the device placement is moved from GPU 0 to the CPU), then the
  saved NF4 checkpoint loaded as the engine loads a prepared one.
The full-size shard plans are checked against the repositories' published file sizes on meta
tensors (no memory, no weights).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import (
    AutoModelForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2_5_VLForConditionalGeneration,
)

from pictale_server.engine.dev.hub_layout import (
    INDEX_NAME,
    VISION_LAYOUT,
    WRITER_LAYOUT,
    hub_key,
    hub_state_dict,
    plan_shards,
    save_in_hub_layout,
    tensor_bytes,
)
from pictale_server.engine.dev.models import (
    _reference_config,
    dev_vision_model,
    dev_writer_model,
    image_processor,
    vision_config,
)
from pictale_server.engine.dev.tokenizers import build_qwen_tokenizer
from pictale_server.engine.loading import (
    LoadPlan,
    from_pretrained_kwargs,
    is_prequantized,
    plan_for,
)
from pictale_server.engine.model_sources import ModelSource

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# The classes the engine loads each role with (transformers_engine.py, prepare_weights.py).
ENGINE_CLASSES = {"vision": Qwen2_5_VLForConditionalGeneration, "writer": AutoModelForCausalLM}
# Published shard sizes (GB, as the Hub lists them; see hub_layout.py for the sources).
MAGNUM_V4_12B_GB = [4.87, 4.91, 4.91, 4.91, 4.91]
QWEN_VL_7B_GB = [3.9, 3.86, 3.86, 3.86, 1.09]
QWEN_2_5_VL_7B_RESAVED_GB = [4.97, 4.99, 4.93, 1.69]


class Written:
    def __init__(self, role: str, model: torch.nn.Module, tokenizer, path: Path) -> None:
        self.role, self.model, self.tokenizer, self.path = role, model, tokenizer, path


def _write(role: str, root: Path) -> Written:
    model, tokenizer = dev_vision_model() if role == "vision" else dev_writer_model()
    model = model.to(torch.bfloat16).eval()  # the repositories' dtype: what gets written is exact
    path = root / role
    total = sum(tensor_bytes(t, torch.bfloat16) for t in model.state_dict().values())
    save_in_hub_layout(model, path, max_shard_bytes=total // 4)  # several shards, as published
    tokenizer.save_pretrained(path)
    if role == "vision":
        image_processor().save_pretrained(path)
    return Written(role, model, tokenizer, path)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Written]:
    root = tmp_path_factory.mktemp("hub-layout")
    return {role: _write(role, root) for role in ("vision", "writer")}


def _inputs(item: Written, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    tokenizer = item.tokenizer
    text = tokenizer("A harbour at dusk, three boats.", add_special_tokens=False)["input_ids"]
    if item.role == "writer":
        return {"input_ids": torch.tensor([[tokenizer.bos_token_id, *text]])}
    picture = Image.new("RGB", (84, 56), (90, 140, 200))
    features = image_processor()(images=[picture], return_tensors="pt")
    grid = features["image_grid_thw"]
    token = tokenizer.convert_tokens_to_ids
    ids = [
        token("<|vision_start|>"),
        *[token("<|image_pad|>")] * (int(grid.prod()) // 4),
        token("<|vision_end|>"),
        *text,
    ]
    return {
        "input_ids": torch.tensor([ids]),
        "pixel_values": features["pixel_values"].to(dtype),
        "image_grid_thw": grid,
    }


def _logits(model: torch.nn.Module, item: Written) -> torch.Tensor:
    with torch.no_grad():
        return model(**_inputs(item, model.dtype)).logits.float()


def _load(cls, path: Path, plan: LoadPlan):
    """from_pretrained with exactly the engine's arguments for this source and plan."""
    source = ModelSource("test/model", str(path), None, local_files_only=True)
    kwargs = from_pretrained_kwargs(source, plan)
    model, info = cls.from_pretrained(source.location, output_loading_info=True, **kwargs)
    return model.eval(), info


def _assert_every_key_loaded(info: dict) -> None:
    assert not info["missing_keys"], sorted(info["missing_keys"])[:5]
    assert not info["unexpected_keys"], sorted(info["unexpected_keys"])[:5]
    assert not info["mismatched_keys"]
    assert not info["error_msgs"]


# --- the layout itself ---------------------------------------------------------------------------


def test_tensor_names_are_the_repositories_not_transformers_5s(written):
    vision = hub_state_dict(written["vision"].model)
    assert {name.split(".")[0] for name in vision} == {"visual", "model", "lm_head"}
    assert not [name for name in vision if "language_model" in name]
    for name in (
        "visual.patch_embed.proj.weight",
        "visual.blocks.0.attn.qkv.weight",
        "visual.merger.mlp.0.weight",
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ):
        assert name in vision, name
    assert len(vision) == len(written["vision"].model.state_dict())

    writer = hub_state_dict(written["writer"].model)
    assert {name.split(".")[0] for name in writer} == {"model", "lm_head"}
    assert "model.layers.1.mlp.down_proj.weight" in writer
    assert list(writer) == list(written["writer"].model.state_dict())


def test_names_outside_the_known_layout_are_refused():
    assert hub_key("qwen2_5_vl", "model.language_model.norm.weight") == "model.norm.weight"
    assert hub_key("qwen2_5_vl", "model.visual.merger.ln_q.weight") == "visual.merger.ln_q.weight"
    with pytest.raises(ValueError):
        hub_key("qwen2_5_vl", "model.embed_tokens.weight")  # transformers 5 never names it so
    with pytest.raises(ValueError):
        hub_key("llama", "model.norm.weight")


@pytest.mark.parametrize("role", ["vision", "writer"])
def test_files_are_bf16_shards_with_an_index(written, role):
    item = written[role]
    shards = sorted(item.path.glob("model-*.safetensors"))
    count = len(shards)
    assert count > 1
    assert [p.name for p in shards] == [
        f"model-{k:05d}-of-{count:05d}.safetensors" for k in range(1, count + 1)
    ]
    assert not (item.path / "model.safetensors").exists()

    index = json.loads((item.path / INDEX_NAME).read_text())
    expected = hub_state_dict(item.model)
    assert set(index) == {"metadata", "weight_map"}
    assert index["metadata"] == {"total_size": sum(t.numel() * 2 for t in expected.values())}
    assert set(index["weight_map"]) == set(expected)
    for shard in shards:
        with safe_open(shard, "pt") as f:
            assert f.metadata() == {"format": "pt"}
            names = set(f.keys())
            assert names == {k for k, v in index["weight_map"].items() if v == shard.name}
            for name in names:
                tensor = f.get_tensor(name)
                assert tensor.dtype == torch.bfloat16, name
                assert torch.equal(tensor, expected[name]), name

    config = json.loads((item.path / "config.json").read_text())
    assert config["architectures"] == [type(item.model).__name__]
    assert config["dtype"] == "bfloat16"


def _gigabytes(model: torch.nn.Module, max_shard_bytes: int) -> tuple[list[float], list[list[str]]]:
    sizes = {k: tensor_bytes(t, torch.bfloat16) for k, t in hub_state_dict(model).items()}
    plan = plan_shards(sizes.items(), max_shard_bytes)
    return [sum(sizes[k] for k in shard) / 1e9 for shard in plan], plan


def test_full_size_shard_plans_reproduce_the_published_files():
    writer_values = _reference_config("mistral_nemo_12b.config.json")
    for key in ("architectures", "model_type", "torch_dtype"):
        writer_values.pop(key, None)
    with torch.device("meta"):
        writer = MistralForCausalLM(MistralConfig(**writer_values))
        vision = Qwen2_5_VLForConditionalGeneration(
            vision_config(build_qwen_tokenizer(), text={}, vision={})
        )

    sizes, _ = _gigabytes(writer, WRITER_LAYOUT.max_shard_bytes)
    assert len(sizes) == WRITER_LAYOUT.shards
    assert sizes == pytest.approx(MAGNUM_V4_12B_GB, abs=0.006)

    sizes, plan = _gigabytes(vision, VISION_LAYOUT.max_shard_bytes)
    assert len(sizes) == VISION_LAYOUT.shards
    assert sizes == pytest.approx(QWEN_VL_7B_GB, abs=0.006)
    assert plan[-1] == ["lm_head.weight"]
    assert plan[0][0] == "visual.patch_embed.proj.weight"  # the tower first, as in the Hub files
    # Re-saved with transformers 4's default limit, the same tensors give the derivatives' files.
    sizes, _ = _gigabytes(vision, 5_000_000_000)
    assert sizes == pytest.approx(QWEN_2_5_VL_7B_RESAVED_GB, abs=0.006)


def test_shards_fill_in_order_and_an_oversized_tensor_stands_alone():
    plan = plan_shards([("a", 3), ("b", 3), ("c", 4), ("d", 1)], max_shard_bytes=6)
    assert plan == [["a", "b"], ["c", "d"]]
    # huggingface_hub closes an oversized tensor's shard at once, before the one being filled.
    plan = plan_shards([("a", 3), ("big", 10), ("b", 3), ("c", 4)], max_shard_bytes=6)
    assert plan == [["big"], ["a", "b"], ["c"]]


# --- loading as the engine does ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["vision", "writer"])
def test_the_engine_loads_the_hub_layout_with_every_tensor_in_place(written, role):
    item = written[role]
    source = ModelSource("test/model", str(item.path), None, local_files_only=True)
    plan = plan_for(source, device=torch.device("cpu"), quantize=True)
    assert (plan.dtype, plan.quantize) == (torch.float32, False)  # the engine's CPU plan
    model, info = _load(ENGINE_CLASSES[role], item.path, plan)
    _assert_every_key_loaded(info)

    original = copy.deepcopy(item.model).float()
    loaded = model.state_dict()
    assert loaded.keys() == original.state_dict().keys()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    torch.testing.assert_close(_logits(model, item), _logits(original, item))


# --- prepare_weights: load -> quantize -> save -> load --------------------------------------------


@pytest.fixture
def quantize_on_cpu(monkeypatch):
    """prepare_weights.quantize_nf4 as it is, with its GPU placement ({"": 0}) moved to the CPU:
    bitsandbytes' CPU backend quantizes NF4 to the same packed format."""
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("accelerate")  # transformers' bitsandbytes quantizer requires it
    for cls in set(ENGINE_CLASSES.values()):
        original = cls.from_pretrained

        def on_cpu(*args, _original=original, **kwargs):
            assert kwargs.get("device_map") == {"": 0}, kwargs.get("device_map")
            return _original(*args, **{**kwargs, "device_map": {"": "cpu"}})

        monkeypatch.setattr(cls, "from_pretrained", on_cpu)
    from pictale_server.engine.prepare_weights import quantize_nf4

    return quantize_nf4


@pytest.mark.parametrize("role", ["vision", "writer"])
def test_prepare_quantizes_the_hub_layout_and_the_engine_loads_the_result(
    written, role, tmp_path, quantize_on_cpu, monkeypatch
):
    from pictale_server.engine.prepare_weights import HubModel, prepare
    from pictale_server.engine.quantization import assert_quantization_layout, nf4_config

    item = written[role]
    hub = HubModel(role, f"acme/{role}", COMMIT)

    def download(source: HubModel, downloads: Path) -> Path:
        snapshot = downloads / "snapshots" / COMMIT
        shutil.copytree(item.path, snapshot)
        return snapshot

    [result] = prepare(tmp_path, [hub], download=download, quantize=quantize_on_cpu)
    checkpoint = result.path
    assert not result.skipped and (checkpoint / "pictale-weights.json").is_file()
    config = json.loads((checkpoint / "config.json").read_text())
    quantization = config["quantization_config"]
    assert quantization["quant_method"] == "bitsandbytes"
    assert quantization["load_in_4bit"] and quantization["bnb_4bit_quant_type"] == "nf4"
    assert not quantization["bnb_4bit_use_double_quant"]
    assert (checkpoint / "tokenizer.json").is_file()  # support files copied from the snapshot

    # The engine on a GPU: bf16, and no quantizing again (plan_for sees the NF4 config).
    source = ModelSource(hub.repo_id, str(checkpoint), None, local_files_only=True)
    assert is_prequantized(source)
    monkeypatch.undo()  # from_pretrained as it is
    model, info = _load(
        ENGINE_CLASSES[role], checkpoint, LoadPlan(torch.device("cpu"), torch.bfloat16, False)
    )
    _assert_every_key_loaded(info)
    assert_quantization_layout(model)

    # The same as quantizing the Hub files on load, and still the model that was written.
    on_load = (
        ENGINE_CLASSES[role]
        .from_pretrained(
            item.path,
            quantization_config=nf4_config(),
            dtype=torch.bfloat16,
            device_map={"": "cpu"},
        )
        .eval()
    )
    logits = _logits(model, item)
    assert torch.equal(logits, _logits(on_load, item))
    reference = _logits(item.model, item)
    similarity = torch.nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0)
    assert similarity > 0.9
