"""The fused NF4 kernel run by Triton's interpreter on CPU, against bitsandbytes.

Run by test_nf4_kernel_interpret.py in a process of its own with TRITON_INTERPRET=1
(Triton reads it when first imported, and bitsandbytes imports Triton).

The interpreter cannot run inline PTX, so these runs use the kernel's plain table lookup;
everything else (tiling, ragged edges, block scales, double quantization, rows, bias, fused
weights) is the code the GPU runs. The PTX lookup's arithmetic is checked instruction by
instruction in test_nf4_kernel_format.py and on the GPU by bench/gpu/kernel_bench.py.
"""

from __future__ import annotations

import sys

import pytest
import torch
import triton.language as tl
from nf4_fixtures import bnb_reference, quantize, relative_error

from pictale_server.kernels.fuse import can_fuse, fuse_rows
from pictale_server.kernels.nf4_format import packed_from_quant_state, reference_linear
from pictale_server.kernels.nf4_gemv import NF4KernelWeight, nf4_gemv

if type(tl.zeros).__name__ == "JITFunction":
    raise RuntimeError("run with TRITON_INTERPRET=1 set before anything imports triton")

BF16_TOLERANCE = 1e-2


def run_kernel(x, packed, state, bias=None, config=None):
    weight = NF4KernelWeight(packed_from_quant_state(packed, state), lookup="plain")
    return nf4_gemv(x, weight, bias, config=config)


@pytest.mark.parametrize("rows", [1, 2, 5, 8])
def test_matches_bitsandbytes_for_each_row_count(rows: int) -> None:
    torch.manual_seed(rows)
    # 37 rows and 3 blocks of 64 are ragged against the 4-row, 8-block test tile.
    weight = torch.randn(37, 192, dtype=torch.bfloat16)
    packed, state = quantize(weight)
    x = torch.randn(rows, 192, dtype=torch.bfloat16)
    bias = torch.randn(37, dtype=torch.bfloat16)
    out = run_kernel(x, packed, state, bias)
    assert out.shape == (rows, 37) and out.dtype == torch.bfloat16
    assert relative_error(out, bnb_reference(x, packed, state, bias)) < BF16_TOLERANCE


def test_adversarial_inputs() -> None:
    torch.manual_seed(1)
    weight = torch.randn(40, 256, dtype=torch.bfloat16)
    weight.view(-1, 64)[::3] = 0  # all-zero blocks (absmax 0)
    weight[3, 64:128] *= 1e4  # one block of outliers
    packed, state = quantize(weight)
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    x[:, [5, 77, 200]] *= 300  # activation outliers
    out = run_kernel(x, packed, state)
    assert relative_error(out, bnb_reference(x, packed, state)) < BF16_TOLERANCE


def test_zero_weight_gives_zero_output_and_bias_alone() -> None:
    packed, state = quantize(torch.zeros(9, 128, dtype=torch.bfloat16))
    bias = torch.arange(9, dtype=torch.bfloat16)
    out = run_kernel(torch.randn(2, 128, dtype=torch.bfloat16), packed, state, bias)
    assert torch.equal(out, bias.expand(2, 9))


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize(
    "config",
    [
        {"BLOCK_N": 2, "GROUPS": 16, "num_warps": 2, "num_stages": 1},
        {"BLOCK_N": 8, "GROUPS": 2, "num_warps": 1, "num_stages": 1},
    ],
)
def test_other_tiles_and_double_quantization(nested: bool, config: dict) -> None:
    torch.manual_seed(2)
    weight = torch.randn(64, 512, dtype=torch.bfloat16)  # 512 blocks: two second-level blocks
    packed, state = quantize(weight, nested=nested)
    x = torch.randn(4, 512, dtype=torch.bfloat16)
    out = run_kernel(x, packed, state, config=config)
    assert relative_error(out, bnb_reference(x, packed, state)) < BF16_TOLERANCE


def test_strided_rows_of_x() -> None:
    torch.manual_seed(3)
    packed, state = quantize(torch.randn(16, 128, dtype=torch.bfloat16))
    wide = torch.randn(3, 200, dtype=torch.bfloat16)
    x = wide[:, 8:136]  # rows 200 elements apart
    out = run_kernel(x, packed, state)
    assert relative_error(out, bnb_reference(x, packed, state)) < BF16_TOLERANCE


def test_rejects_what_it_cannot_compute() -> None:
    packed, state = quantize(torch.randn(8, 128, dtype=torch.bfloat16))
    weight = NF4KernelWeight(packed_from_quant_state(packed, state), lookup="plain")
    with pytest.raises(ValueError, match="1..8 rows"):
        nf4_gemv(torch.randn(9, 128, dtype=torch.bfloat16), weight)
    with pytest.raises(ValueError, match="does not match K=128"):
        nf4_gemv(torch.randn(1, 64, dtype=torch.bfloat16), weight)
    with pytest.raises(ValueError, match="bf16"):
        nf4_gemv(torch.randn(1, 128, dtype=torch.float16), weight)


@pytest.mark.parametrize("nested", [False, True])
def test_fused_rows_compute_each_weight_and_views_keep_the_originals(nested: bool) -> None:
    torch.manual_seed(4)
    shapes = [(256, 256), (64, 256), (64, 256)]  # q, k, v: multiples of 256 blocks each
    quantized = [quantize(torch.randn(*s, dtype=torch.bfloat16), nested=nested) for s in shapes]
    weights = [packed_from_quant_state(p, s) for p, s in quantized]
    assert can_fuse(weights) is None
    fused, views = fuse_rows(weights)
    for original, view in zip(weights, views):
        assert torch.equal(view.packed, original.packed)
        assert torch.equal(view.absmax, original.absmax)
    x = torch.randn(2, 256, dtype=torch.bfloat16)
    out = nf4_gemv(x, NF4KernelWeight(fused, lookup="plain"))
    expected = torch.cat([reference_linear(x, w) for w in weights], dim=1)
    assert relative_error(out, expected) < BF16_TOLERANCE


def test_fusing_refuses_mismatched_weights() -> None:
    a = packed_from_quant_state(*quantize(torch.randn(8, 128, dtype=torch.bfloat16)))
    b = packed_from_quant_state(*quantize(torch.randn(8, 192, dtype=torch.bfloat16)))
    assert can_fuse([a, b]) == "different in_features"
    c = packed_from_quant_state(*quantize(torch.randn(8, 128, dtype=torch.bfloat16), nested=True))
    assert can_fuse([a, c]) == "mixed double quantization"
    # 8 x 128 / 64 = 16 blocks: not a whole second-level block of 256.
    assert "do not align" in can_fuse([c, c])


def tiny_nf4_mistral(nested: bool, seed: int = 0):
    """A 2-layer Mistral (the writer's architecture) with every decoder linear in NF4."""
    import bitsandbytes as bnb
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=128, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=64,
    )
    model = MistralForCausalLM(config).to(torch.bfloat16).eval()
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, linear in list(parent.named_children()):
                if not isinstance(linear, torch.nn.Linear):
                    continue
                quantized = bnb.nn.Linear4bit(
                    linear.in_features, linear.out_features, bias=linear.bias is not None,
                    compute_dtype=torch.bfloat16, quant_type="nf4",
                )
                quantized.weight = bnb.nn.Params4bit(
                    linear.weight.data.clone(), requires_grad=False, quant_type="nf4", blocksize=64,
                    compress_statistics=nested,
                )
                setattr(parent, name, quantized.to("cpu"))
    return model


def greedy(model, prompt: torch.Tensor, steps: int) -> tuple[list[int], list[torch.Tensor]]:
    tokens, logits_per_step = prompt.tolist()[0], []
    cache = None
    inputs = prompt
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=inputs, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[0, -1].float()
            logits_per_step.append(logits)
            token = int(logits.argmax())
            tokens.append(token)
            inputs = torch.tensor([[token]])
    return tokens, logits_per_step


def greedy_counting_kernel_calls(model, prompt: torch.Tensor, steps: int):
    """greedy(), plus the rows (out_features) of every Triton kernel launch it made."""
    calls = []
    kernel_module = sys.modules["pictale_server.kernels.nf4_gemv"]
    real = kernel_module.nf4_gemv

    def counting(*args, **kwargs):
        calls.append(args[1].out_features)
        return real(*args, **kwargs)

    kernel_module.nf4_gemv = counting
    try:
        tokens, logits = greedy(model, prompt, steps)
    finally:
        kernel_module.nf4_gemv = real
    return tokens, logits, calls


@pytest.mark.parametrize("nested", [False, True])
def test_patched_model_decodes_the_same_tokens_and_keeps_prefill_on_bitsandbytes(nested: bool) -> None:
    from pictale_server.kernels import enable_fast_nf4

    model = tiny_nf4_mistral(nested)
    prompt = torch.randint(0, 128, (1, 12))  # more rows than the kernel takes: bitsandbytes
    expected_tokens, expected_logits = greedy(model, prompt, steps=3)

    handle = enable_fast_nf4(model)
    assert handle.enabled and handle.lookup == "plain", handle.reason
    assert handle.fused_groups == 4  # q/k/v and gate/up in each of 2 layers
    assert len(handle.patched) == 14  # every 4-bit linear of both layers

    tokens, logits, calls = greedy_counting_kernel_calls(model, prompt, steps=3)
    assert tokens == expected_tokens
    for ours, theirs in zip(logits, expected_logits):
        assert relative_error(ours, theirs) < 2e-2
    # The prefill (12 rows) stayed on bitsandbytes; each of the 2 decode steps ran one launch
    # per layer for each of qkv (256 + 128 + 128 rows), o, gate_up (512 + 512) and down.
    assert len(calls) == 2 * 2 * 4
    assert sorted(set(calls)) == [256, 512, 1024]

    handle.disable()
    assert greedy(model, prompt, steps=3)[0] == expected_tokens
    assert not any("forward" in vars(m) for m in model.modules())


def test_after_warm_up_only_the_warmed_row_counts_take_the_kernel() -> None:
    from pictale_server.kernels import enable_fast_nf4

    model = tiny_nf4_mistral(nested=False)
    prompt = torch.randint(0, 128, (1, 3))  # a few-row prefill the kernel would take
    expected_tokens, _ = greedy(model, prompt, steps=3)
    handle = enable_fast_nf4(model)
    _, _, before = greedy_counting_kernel_calls(model, prompt, steps=3)
    assert len(before) == 3 * 2 * 4  # the 3-row prefill and 2 decode steps: kernel launches

    handle.warmup(rows=(1,))
    tokens, _, after = greedy_counting_kernel_calls(model, prompt, steps=3)
    assert tokens == expected_tokens
    assert len(after) == 2 * 2 * 4  # the prefill went to bitsandbytes, no compile for 3 rows
    handle.disable()


@pytest.mark.parametrize("nested", [False, True])
def test_fusing_by_parts_decodes_the_same_tokens_and_moves_no_weight(nested: bool) -> None:
    from pictale_server.kernels import enable_fast_nf4

    model = tiny_nf4_mistral(nested, seed=1)
    prompt = torch.randint(0, 128, (1, 12))
    expected_tokens, _ = greedy(model, prompt, steps=3)

    def storage() -> dict[str, tuple[int, int]]:
        return {
            name: (p.data_ptr(), p.quant_state.absmax.data_ptr())
            for name, p in model.named_parameters() if getattr(p, "quant_state", None) is not None
        }

    loaded = storage()
    handle = enable_fast_nf4(model, fuse="parts")
    assert handle.enabled and handle.fused_groups == 4, handle.reason
    assert storage() == loaded  # nothing copied, nothing freed

    tokens, _, calls = greedy_counting_kernel_calls(model, prompt, steps=3)
    assert tokens == expected_tokens
    # Without the CUDA kernel a group fused by parts runs the Triton kernel once per sibling
    # (q 256, k 128, v 128, o, gate 512, up 512, down) into one output: 2 steps x 2 layers x 7.
    assert len(calls) == 2 * 2 * 7
    assert sorted(set(calls)) == [128, 256, 512]


def test_fuse_must_be_a_known_way() -> None:
    from pictale_server.kernels import enable_fast_nf4

    with pytest.raises(ValueError, match="fuse must be"):
        enable_fast_nf4(tiny_nf4_mistral(False), fuse="rows")


def test_enable_changes_nothing_without_4bit_layers() -> None:
    from pictale_server.kernels import enable_fast_nf4

    handle = enable_fast_nf4(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    assert not handle.enabled and "no bitsandbytes 4-bit layers" in handle.reason
