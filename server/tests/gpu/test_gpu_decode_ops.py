"""The Triton kernels of the fast decode step on the GPU, each against the PyTorch composition it
replaces, on the writer's and the vision model's shapes: RMSNorm, residual add + RMSNorm,
rotary embedding + KV-cache write, the SiLU gate, split-K decode attention (up to a 16k-slot
cache view), the sampler's noise and the sampler."""

from __future__ import annotations

import pytest
import torch
from transformers.models.mistral import modeling_mistral
from transformers.models.mistral.modeling_mistral import MistralRMSNorm

from pictale_server.kernels.decode_attention_kernel import split_decode_attention
from pictale_server.kernels.decode_ops import add_rms_norm_, rms_norm, rotary_cache_write, silu_mul

DEVICE = torch.device("cuda")
MODELS = {  # hidden, intermediate, query heads, KV heads, head size
    "writer": (5120, 14336, 32, 8, 128),
    "vision": (3584, 18944, 28, 4, 128),
}


def bf16_ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance in bf16 steps between two bf16 tensors of the same shape."""
    ia = a.contiguous().view(torch.int16).int()
    ib = b.contiguous().view(torch.int16).int()
    ia = torch.where(ia < 0, -32768 - ia, ia)
    ib = torch.where(ib < 0, -32768 - ib, ib)
    return int((ia - ib).abs().max())


@pytest.mark.parametrize("model", MODELS)
def test_rms_norm_matches_transformers(model) -> None:
    hidden = MODELS[model][0]
    torch.manual_seed(hidden)
    norm = MistralRMSNorm(hidden, eps=1e-5).to(DEVICE, torch.bfloat16)
    norm.weight.data.normal_()
    x = torch.randn(1, 1, hidden, device=DEVICE, dtype=torch.bfloat16) * 3
    assert bf16_ulps(rms_norm(x, norm.weight, 1e-5), norm(x)) <= 1


@pytest.mark.parametrize("model", MODELS)
def test_add_rms_norm_adds_in_place_and_normalizes_like_transformers(model) -> None:
    hidden = MODELS[model][0]
    torch.manual_seed(hidden + 1)
    norm = MistralRMSNorm(hidden, eps=1e-6).to(DEVICE, torch.bfloat16)
    norm.weight.data.normal_()
    residual = torch.randn(1, 1, hidden, device=DEVICE, dtype=torch.bfloat16) * 3
    x = (torch.randn(1, 1, 2 * hidden, device=DEVICE, dtype=torch.bfloat16) * 2)[..., :hidden]  # a view
    expected_sum = residual + x
    out = add_rms_norm_(residual, x, norm.weight, 1e-6)
    assert torch.equal(residual, expected_sum)
    assert bf16_ulps(out, norm(expected_sum)) <= 1


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("slot", [0, 777, 16383, 16384])
def test_rotary_cache_write_matches_transformers_bit_for_bit(model, slot) -> None:
    _, _, q_heads, k_heads, dim = MODELS[model]
    torch.manual_seed(slot)
    fused = torch.randn(1, 1, (q_heads + 2 * k_heads) * dim, device=DEVICE, dtype=torch.bfloat16)
    heads = (1, 1, -1, dim)
    q = fused[..., : q_heads * dim].view(heads).transpose(1, 2)
    k = fused[..., q_heads * dim : (q_heads + k_heads) * dim].view(heads).transpose(1, 2)
    v = fused[..., (q_heads + k_heads) * dim :].view(heads).transpose(1, 2)
    angles = torch.rand(1, 1, dim // 2, device=DEVICE) * 1000
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)
    keys = torch.zeros(1, k_heads, 16384 + 64, dim, device=DEVICE, dtype=torch.bfloat16)[:, :, :16384]
    values = torch.zeros_like(keys)
    q_ref, k_ref = modeling_mistral.apply_rotary_pos_emb(q, k, cos, sin)
    expected_keys, expected_values = keys.clone(), values.clone()
    if slot < 16384:  # a slot past the cache writes nothing
        expected_keys[:, :, slot] = k_ref[:, :, 0]
        expected_values[:, :, slot] = v[:, :, 0]
    q_out = rotary_cache_write(q, k, v, cos, sin, keys, values, torch.tensor([slot], device=DEVICE))
    assert torch.equal(q_out, q_ref.contiguous())
    assert torch.equal(keys, expected_keys) and torch.equal(values, expected_values)


@pytest.mark.parametrize("model", MODELS)
def test_silu_mul_matches_pytorch(model) -> None:
    width = MODELS[model][1]
    torch.manual_seed(width)
    both = torch.randn(1, 2 * width, device=DEVICE, dtype=torch.bfloat16) * 4
    gate, up = both[:, :width], both[:, width:]  # halves of the gate/up launch's output
    assert bf16_ulps(silu_mul(gate, up), torch.nn.functional.silu(gate) * up) <= 1


def fp32_attention(query, key, value, mask, scale):
    groups = query.shape[1] // key.shape[1]
    keys = key.float().repeat_interleave(groups, dim=1)
    values = value.float().repeat_interleave(groups, dim=1)
    scores = (query.float() @ keys.transpose(-1, -2) * scale).masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ values).transpose(1, 2)


def bf16_attention(query, key, value, mask, scale):
    """The PyTorch path's precision: bf16 products, the softmax cast to V's dtype."""
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)
    values = value.repeat_interleave(groups, dim=1)
    scores = (query @ keys.transpose(-1, -2)).float() * scale
    probabilities = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).to(value.dtype)
    return (probabilities @ values).transpose(1, 2)


def max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("length", [1024, 16384])
def test_split_decode_attention_is_as_close_to_fp32_as_the_pytorch_path(model, length) -> None:
    _, _, q_heads, kv_heads, dim = MODELS[model]
    torch.manual_seed(length)
    query = torch.randn(1, q_heads, 1, dim, device=DEVICE, dtype=torch.bfloat16)
    # the cache as the engine sees it: a view of the first `length` slots of a 16k buffer
    key = torch.randn(1, kv_heads, 16384 + 64, dim, device=DEVICE, dtype=torch.bfloat16)[:, :, :length]
    value = torch.randn(1, kv_heads, 16384 + 64, dim, device=DEVICE, dtype=torch.bfloat16)[:, :, :length]
    last = length - 100
    mask = (torch.arange(length, device=DEVICE) <= last).view(1, 1, 1, length)
    scale = dim**-0.5
    ours = split_decode_attention(query, key, value, mask, scale)
    exact = fp32_attention(query, key, value, mask, scale)
    pytorch = bf16_attention(query, key, value, mask, scale)
    assert ours.shape == exact.shape == (1, 1, q_heads, dim)
    assert max_relative(ours, exact) <= max(2 * max_relative(pytorch, exact), 5e-3)
    by_slot = split_decode_attention(query, key, value, None, scale, last_slot=torch.tensor([last], device=DEVICE))
    assert torch.equal(by_slot, ours)


@pytest.mark.parametrize("seed,step", [(0, 0), (123456789, 7), (2**62 + 99, 2**33 + 5)])
def test_the_noise_kernel_gives_the_engines_bits(seed, step) -> None:
    from pictale_server.engine.sampling import uniform_noise
    from pictale_server.kernels.sampling_noise import uniform_noise as noise_kernel

    seed_t, step_t = torch.tensor(seed, device=DEVICE), torch.tensor(step, device=DEVICE)
    assert torch.equal(noise_kernel(seed_t, step_t, 131072), uniform_noise(seed_t, step_t, 131072))


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.0},
        {"temperature": 0.0, "repetition_penalty": 1.3},
        {"temperature": 0.8, "min_p": 0.05, "repetition_penalty": 1.05},
        {"temperature": 1.0},
        {"temperature": 1.5, "min_p": 0.2},
    ],
)
def test_the_sampler_kernels_pick_the_engines_tokens(settings) -> None:
    from pictale_server.engine.base import Sampling
    from pictale_server.engine.sampling import SamplingTensors, sample_next_token
    from pictale_server.kernels.sampler_kernel import sample_and_accept

    torch.manual_seed(11)
    vocab = 131072
    logits = (torch.randn(1, vocab, device=DEVICE) * 3).to(torch.bfloat16)
    seen = torch.rand(1, vocab, device=DEVICE) < 0.01
    seen[0, logits.float().argmax()] = True  # the penalty has the best token to act on
    params = SamplingTensors.allocate(DEVICE)
    picks = []
    for seed in range(12):
        params.assign(Sampling(max_tokens=1, **settings), seed)
        params.step.fill_(seed * 7)
        theirs = int(sample_next_token(logits, seen, params, by_rank=False))
        token, marked = torch.full((1, 1), -1, device=DEVICE), seen.clone()
        sample_and_accept(logits, marked, params, token)
        assert int(token) == theirs
        expected = seen.clone()
        expected[0, theirs] = True
        assert torch.equal(marked, expected)
        assert int(params.step) == seed * 7 + 1
        picks.append(theirs)
    if settings["temperature"] > 0:
        assert len(set(picks)) > 1  # the seeds do sample


def test_one_compiled_sampler_serves_every_lane_and_row_count() -> None:
    """A request in a new lane (its settings a row of the batch's, at any offset) or a step of
    a new row count must not compile the sampler again: that compile runs inside the request,
    and every stream of the batch waits it out."""
    from pictale_server.engine.base import Sampling
    from pictale_server.engine.request_sampler import SamplerRows
    from pictale_server.kernels import sampler_kernel
    from pictale_server.kernels.sampler_kernel import sample_and_accept, sample_rows_and_accept

    kernels = (sampler_kernel._scale_kernel, sampler_kernel._pick_kernel, sampler_kernel._choose_kernel)
    for kernel in kernels:
        kernel.device_caches.clear()  # what this test compiles is all that is compiled

    def compiled() -> list[int]:
        return [len(kernel.device_caches[torch.cuda.current_device()][0]) for kernel in kernels]

    vocab, lanes = 131072, 16
    rows = SamplerRows.allocate(lanes, vocab, DEVICE)
    for lane in range(lanes):
        rows.params.row(lane).assign(Sampling(max_tokens=4, temperature=0.8, min_p=0.05), seed=lane)
    logits = torch.randn(lanes, vocab, device=DEVICE).to(torch.bfloat16)
    active = torch.ones(lanes, dtype=torch.int64, device=DEVICE)

    def one_lane(lane: int) -> None:  # a lane sampling alone: its prefill's first token
        sample_and_accept(logits[lane : lane + 1], rows.seen[lane : lane + 1], rows.params.row(lane), rows.token[lane])

    def together(count: int) -> None:  # a batched step's plain lanes
        sample_rows_and_accept(logits[:count], rows.seen[:count], rows.params, rows.token[:count], active[:count], rows.logits[:count])

    one_lane(0)
    together(1)
    first = compiled()
    for lane in range(1, lanes):
        one_lane(lane)
    for count in (2, 3, 4, 8, 16):
        together(count)
    torch.cuda.synchronize()
    assert compiled() == first
