"""The fast path's written-out decode step (engine/fast_path/written_step.py) under Triton's
interpreter, against transformers' own forward through the runners, on tiny Mistral and
Qwen2.5-VL models.

The CUDA NF4 kernel does not run on a CPU, so the step's projections here are the models' own
bf16 linears behind the same `Projection` interface (residual add and RMSNorm by the Triton
op, then the matmul); the kernel itself is checked against a reference in the GPU suite.
Run by test_written_step_interpret.py in a process of its own with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import torch
import triton.language as tl
from transformers import MistralConfig, MistralForCausalLM, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, StaticCache

from pictale_server.engine.fast_path.projections import LayerProjections
from pictale_server.engine.fast_path.written_step import WrittenStep, structure_unsupported
from pictale_server.engine.runners import CausalLMRunner, QwenVLRunner
from pictale_server.kernels.decode_ops import add_rms_norm_

if type(tl.zeros).__name__ == "JITFunction":
    raise RuntimeError("run with TRITON_INTERPRET=1 set before anything imports triton")

CACHE = 48
STEPS = 10


class LinearProjection:
    """bf16 linears behind the fast step's Projection interface (what the NF4 kernel computes)."""

    def __init__(self, *modules: torch.nn.Linear) -> None:
        self.modules = modules
        self.out_features = sum(m.out_features for m in modules)

    def __call__(self, x: torch.Tensor, tensor_cores: bool = False) -> torch.Tensor:
        return torch.cat([m(x) for m in self.modules], dim=-1)

    def normed(self, residual, delta, norm, residual_out, tensor_cores: bool = False) -> torch.Tensor:
        residual_out.copy_(residual)
        return self(add_rms_norm_(residual_out, delta, norm.weight, norm.variance_epsilon))


def linear_projections(text_model) -> list[LayerProjections]:
    layers = []
    for layer in text_model.layers:
        a, mlp = layer.self_attn, layer.mlp
        layers.append(LayerProjections(
            qkv=LinearProjection(a.q_proj, a.k_proj, a.v_proj),
            qkv_split=(a.q_proj.out_features, a.k_proj.out_features, a.v_proj.out_features),
            o=LinearProjection(a.o_proj),
            gate_up=LinearProjection(mlp.gate_proj, mlp.up_proj),
            gate_rows=mlp.gate_proj.out_features,
            down=LinearProjection(mlp.down_proj),
        ))
    return layers


def written_step(runner, caches, table):
    text_model, lm_head, rope_positions = runner.step_parts()
    assert structure_unsupported(text_model, caches) == ""
    return WrittenStep(text_model, lm_head, rope_positions, linear_projections(text_model), rope_table_tokens=table)


def tiny_mistral(**overrides) -> MistralForCausalLM:
    values = dict(
        sliding_window=None, vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=256,
    )
    torch.manual_seed(0)
    return MistralForCausalLM(MistralConfig(**{**values, **overrides})).to(torch.bfloat16).eval()


def tiny_qwen() -> Qwen2_5_VLForConditionalGeneration:
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 256, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},
        },
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": 128, "fullatt_block_indexes": [0]},
    )
    torch.manual_seed(1)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    with torch.no_grad():  # sharp attention: at random init it is nearly uniform, and a wrong
        for layer in model.model.language_model.layers:  # rotary position would not show
            layer.self_attn.q_proj.weight.mul_(4)
            layer.self_attn.k_proj.weight.mul_(4)
    return model


def static_cache(config) -> StaticCache:
    text = config.get_text_config()
    cache = StaticCache(config=config, max_cache_len=CACHE)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    cache.early_initialization(
        batch_size=1, num_heads=text.num_key_value_heads, head_dim=head_dim,
        dtype=torch.bfloat16, device=torch.device("cpu"),
    )
    return cache


def decode_both_ways(runner, prefill, prompt_length: int):
    """Prefill two caches the same way, then decode greedily with transformers' forward on one
    and the written-out step on the other, feeding both the forward's tokens."""
    ours, theirs = static_cache(runner.model.config), static_cache(runner.model.config)
    table = CACHE if runner.rope_positions_are_slots else None
    step = written_step(runner, [ours, theirs], table)
    assert (step.rope_table is not None) == (table is not None)
    with torch.inference_mode():
        logits_theirs, logits_ours = prefill(theirs), prefill(ours)
        position = torch.tensor([prompt_length])
        pairs = []
        for _ in range(STEPS):
            token = logits_theirs.argmax(-1).view(1, 1)
            logits_theirs = runner.decode(token, position, theirs)
            logits_ours = step(token, position, ours)
            pairs.append((logits_ours.float(), logits_theirs.float()))
            position += 1
    return pairs, ours, theirs


def assert_same_decode(pairs, ours, theirs, written: int):
    for logits_ours, logits_theirs in pairs:
        assert torch.equal(logits_ours.argmax(-1), logits_theirs.argmax(-1))
        torch.testing.assert_close(logits_ours, logits_theirs, rtol=2e-2, atol=2e-2)
    for layer_ours, layer_theirs in zip(ours.layers, theirs.layers, strict=True):
        assert int(layer_ours.cumulative_length) == int(layer_theirs.cumulative_length) == written
        torch.testing.assert_close(layer_ours.keys.float(), layer_theirs.keys.float(), rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(layer_ours.values.float(), layer_theirs.values.float(), rtol=2e-2, atol=2e-2)
    # The first layer's input is the embedding either way, so its cache entries match bit for bit
    # (later layers see attention outputs that differ in the last bits).
    assert torch.equal(ours.layers[0].keys, theirs.layers[0].keys)
    assert torch.equal(ours.layers[0].values, theirs.layers[0].values)


def test_the_written_step_decodes_a_mistral_like_transformers():
    model = tiny_mistral()
    runner = CausalLMRunner(model)
    prompt = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(3))

    def prefill(cache):
        return runner.prefill(type("Prompt", (), {"input_ids": prompt})(), cache)

    pairs, ours, theirs = decode_both_ways(runner, prefill, prompt.shape[1])
    assert_same_decode(pairs, ours, theirs, written=9 + STEPS)


def test_the_written_step_decodes_qwen2_5_vl_text_with_its_rope_delta_like_transformers():
    model = tiny_qwen()
    runner = QwenVLRunner(model)
    runner.rope_deltas[0] = -5  # as if an image had taken rotary positions
    prompt = torch.randint(0, 200, (1, 11), generator=torch.Generator().manual_seed(4))
    slots = torch.arange(11).view(1, 1, -1)
    positions = torch.cat([slots, (slots - 5).expand(3, 1, -1)], dim=0)

    def prefill(cache):
        out = model(input_ids=prompt, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :]

    pairs, ours, theirs = decode_both_ways(runner, prefill, prompt.shape[1])
    assert_same_decode(pairs, ours, theirs, written=11 + STEPS)


def test_models_the_step_cannot_run_are_named_with_the_reason():
    sliding = tiny_mistral(sliding_window=8)
    assert "sliding" in structure_unsupported(sliding.model, [static_cache(sliding.config)])
    narrow = tiny_mistral(head_dim=16, hidden_size=64)
    assert "head dim 16" in structure_unsupported(narrow.model, [static_cache(narrow.config)])


def test_the_batched_step_decodes_two_sequences_in_one_pool_like_transformers():
    """`rows`: two prompts of different lengths, each in its own region of one pool, decoded
    together; each row's logits follow transformers' forward on a cache of its own."""
    from pictale_server.engine.kv_pool import KVPool

    model = tiny_mistral()
    runner = CausalLMRunner(model)
    pool = KVPool(model.config, 4 * 256, dtype=torch.bfloat16, device=torch.device("cpu"))
    step = written_step(runner, [pool.cache], 256)
    generator = torch.Generator().manual_seed(5)
    prompts = [torch.randint(0, 256, (1, n), generator=generator) for n in (9, 17)]
    regions = [pool.reserve(n.shape[1] + STEPS) for n in prompts]
    own = [static_cache(model.config) for _ in prompts]
    with torch.inference_mode():
        logits = []
        for prompt, region, cache in zip(prompts, regions, own, strict=True):
            wrap = type("Prompt", (), {"input_ids": prompt})()
            runner.prefill(wrap, pool.region_cache(region))
            logits.append(runner.prefill(wrap, cache))
        tokens = torch.cat([l.argmax(-1).view(1, 1) for l in logits])
        decode_rows_like_transformers(step, runner, pool, prompts, regions, own, tokens)


def decode_rows_like_transformers(step, runner, pool, prompts, regions, own, tokens) -> None:
    """Three batched steps of `step.rows` over every prompt's region of `pool`, each row's
    logits against the runner's own decode of that row on its own cache `own[i]`. (Three: the
    interpreter runs every attention program in Python.)"""
    from pictale_server.engine.fast_path.written_step import RowRegions

    position = torch.tensor([p.shape[1] for p in prompts])
    rows = RowRegions(torch.tensor([r.start for r in regions]), torch.tensor([r.chunk for r in regions]),
                      max(r.chunk for r in regions))
    for _ in range(3):
        ours = step.rows(tokens, position, rows, pool.cache).float()
        for i, cache in enumerate(own):
            theirs = runner.decode(tokens[i : i + 1], position[i : i + 1], cache, row=i).float()
            assert torch.equal(ours[i].argmax(-1), theirs[0].argmax(-1)), i
            torch.testing.assert_close(ours[i : i + 1], theirs, rtol=2e-2, atol=2e-2)
        tokens = ours.argmax(-1).view(-1, 1)
        position += 1


def test_the_batched_step_gives_each_qwen2_5_vl_row_its_own_rope_delta_like_transformers():
    """Two describes in one pool, their images having taken different rotary positions: each
    row's logits follow transformers' forward with that row's delta (the batch's step reads
    the runner's per-row deltas)."""
    from pictale_server.engine.kv_pool import KVPool

    model = tiny_qwen()
    runner = QwenVLRunner(model)
    pool = KVPool(model.config, 3 * 256, dtype=torch.bfloat16, device=torch.device("cpu"))
    step = written_step(runner, [pool.cache], None)
    generator = torch.Generator().manual_seed(6)
    prompts = [torch.randint(0, 200, (1, n), generator=generator) for n in (11, 15)]
    deltas = (-5, 150)  # far apart: rotary is relative, so only a wrong delta at decode shows
    regions = [pool.reserve(p.shape[1] + STEPS) for p in prompts]
    own = [static_cache(model.config) for _ in prompts]
    with torch.inference_mode():
        tokens = []
        for row, (prompt, delta, region, cache) in enumerate(zip(prompts, deltas, regions, own, strict=True)):
            slots = torch.arange(prompt.shape[1]).view(1, 1, -1)
            positions = torch.cat([slots, (slots + delta).expand(3, 1, -1)], dim=0)
            for target in (pool.region_cache(region), cache):
                out = model(input_ids=prompt, position_ids=positions, cache=target, use_cache=True, logits_to_keep=1)
            runner.rope_deltas[row] = delta
            tokens.append(out.logits[:, -1, :].argmax(-1).view(1, 1))
        decode_rows_like_transformers(step, runner, pool, prompts, regions, own, torch.cat(tokens))
