"""The Triton kernels of the fast decode step under Triton's interpreter, against the PyTorch
code they replace: the decode ops (kernels/decode_ops.py), the split-K decode attention, the
sampler's noise and the sampler.

Run by test_decode_ops_interpret.py in a process of its own with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import pytest
import torch
import triton.language as tl
from transformers.models.mistral import modeling_mistral
from transformers.models.mistral.modeling_mistral import MistralRMSNorm

from pictale_server.kernels.decode_ops import add_rms_norm_, add_rms_norm_into, rms_norm, rotary_cache_write, silu_mul

if type(tl.zeros).__name__ == "JITFunction":
    raise RuntimeError("run with TRITON_INTERPRET=1 set before anything imports triton")


def bf16_ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance in bf16 steps between two bf16 tensors of the same shape."""
    ia = a.contiguous().view(torch.int16).int()
    ib = b.contiguous().view(torch.int16).int()
    ia = torch.where(ia < 0, -32768 - ia, ia)
    ib = torch.where(ib < 0, -32768 - ib, ib)
    return int((ia - ib).abs().max())


@pytest.mark.parametrize("rows,hidden", [(1, 5120), (3, 96), (8, 3584), (1, 100)])
def test_rms_norm_matches_transformers(rows, hidden):
    torch.manual_seed(rows)
    norm = MistralRMSNorm(hidden, eps=1e-5).to(torch.bfloat16)
    norm.weight.data = torch.randn(hidden, dtype=torch.bfloat16)
    x = torch.randn(1, rows, hidden, dtype=torch.bfloat16) * 3
    assert bf16_ulps(rms_norm(x, norm.weight, norm.variance_epsilon), norm(x)) <= 1


def test_rms_norm_with_fp32_weight_returns_fp32_like_transformers():
    norm = MistralRMSNorm(64)
    x = torch.randn(1, 1, 64, dtype=torch.bfloat16)
    out = rms_norm(x, norm.weight, norm.variance_epsilon)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, norm(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rows,hidden", [(1, 5120), (2, 3584), (1, 100)])
def test_add_rms_norm_adds_in_place_and_normalizes_like_transformers(rows, hidden):
    torch.manual_seed(hidden)
    norm = MistralRMSNorm(hidden, eps=1e-5).to(torch.bfloat16)
    norm.weight.data = torch.randn(hidden, dtype=torch.bfloat16)
    residual = torch.randn(1, rows, hidden, dtype=torch.bfloat16) * 3
    # x as a projection hands it over: a view into a wider output
    x = (torch.randn(1, rows, 2 * hidden, dtype=torch.bfloat16) * 2)[..., :hidden]
    expected_sum = residual + x
    expected = norm(expected_sum)
    out = add_rms_norm_(residual, x, norm.weight, norm.variance_epsilon)
    assert torch.equal(residual, expected_sum)
    assert bf16_ulps(out, expected) <= 1


@pytest.mark.parametrize("rows,hidden", [(1, 5120), (3, 3584)])
def test_add_rms_norm_into_stores_the_sum_elsewhere_and_leaves_the_residual(rows, hidden):
    torch.manual_seed(hidden)
    norm = MistralRMSNorm(hidden, eps=1e-5).to(torch.bfloat16)
    norm.weight.data = torch.randn(hidden, dtype=torch.bfloat16)
    residual = torch.randn(rows, 1, hidden, dtype=torch.bfloat16) * 3
    before = residual.clone()
    x = torch.randn(rows, 1, hidden, dtype=torch.bfloat16) * 2
    summed = torch.full_like(residual, float("nan"))
    out = add_rms_norm_into(residual, x, norm.weight, norm.variance_epsilon, summed)
    assert torch.equal(residual, before)
    assert torch.equal(summed, before + x)
    # the same bits as the in-place version
    assert torch.equal(out, add_rms_norm_(before.clone(), x, norm.weight, norm.variance_epsilon))


@pytest.mark.parametrize(
    "slot,length,q_heads,k_heads,dim",
    [(0, 32, 4, 2, 64), (17, 32, 4, 2, 64), (32, 32, 4, 2, 64), (5, 16, 32, 8, 128), (15, 16, 28, 4, 128)],
)
def test_rotary_cache_write_rotates_and_stores_like_transformers(slot, length, q_heads, k_heads, dim):
    """The writer's heads (32 q, 8 kv), the vision model's (28, 4) and a small model's; a slot
    past the cache writes nothing."""
    torch.manual_seed(slot)
    # q, k and v as the attention layer makes them: views into one projection output
    fused = torch.randn(1, 1, (q_heads + 2 * k_heads) * dim, dtype=torch.bfloat16)
    heads = (1, 1, -1, dim)
    q = fused[..., : q_heads * dim].view(heads).transpose(1, 2)
    k = fused[..., q_heads * dim : (q_heads + k_heads) * dim].view(heads).transpose(1, 2)
    v = fused[..., (q_heads + k_heads) * dim :].view(heads).transpose(1, 2)
    angles = torch.rand(1, 1, dim // 2) * 100
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)
    # the cache as the engine sees it: a view of the first `length` slots of a longer buffer
    keys = torch.randn(1, k_heads, length + 8, dim, dtype=torch.bfloat16)[:, :, :length]
    values = torch.randn(1, k_heads, length + 8, dim, dtype=torch.bfloat16)[:, :, :length]
    expected_keys, expected_values = keys.clone(), values.clone()
    q_ref, k_ref = modeling_mistral.apply_rotary_pos_emb(q, k, cos, sin)
    if slot < length:
        expected_keys[:, :, slot] = k_ref[:, :, 0]
        expected_values[:, :, slot] = v[:, :, 0]
    q_out = rotary_cache_write(q, k, v, cos, sin, keys, values, torch.tensor([slot]))
    assert bf16_ulps(q_out, q_ref) == 0
    assert torch.equal(keys, expected_keys) and torch.equal(values, expected_values)


@pytest.mark.parametrize("rows,width", [(1, 14336), (2, 3000), (1, 7)])
def test_silu_mul_matches_pytorch_on_strided_slices(rows, width):
    torch.manual_seed(width)
    both = torch.randn(rows, 2 * width, dtype=torch.bfloat16) * 4
    gate, up = both[:, :width], both[:, width:]
    expected = torch.nn.functional.silu(gate) * up
    assert bf16_ulps(silu_mul(gate, up), expected) <= 1


def reference_attention(query, key, value, mask, scale):
    """Attention of one query token in fp32, each query head reading its group's KV head."""
    groups = query.shape[1] // key.shape[1]
    keys = key.float().repeat_interleave(groups, dim=1)
    values = value.float().repeat_interleave(groups, dim=1)
    scores = query.float() @ keys.transpose(-1, -2) * scale  # [B, Hq, 1, L]
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask.float()
    return (torch.softmax(scores, dim=-1) @ values).transpose(1, 2)  # [B, 1, Hq, D]


@pytest.mark.parametrize(
    "batch,q_heads,kv_heads,length,mask_kind",
    [(1, 32, 8, 1024, "bool"), (1, 28, 4, 200, "bool"), (2, 8, 2, 130, "float"), (1, 4, 4, 64, None)],
)
def test_split_decode_attention_matches_fp32_attention(batch, q_heads, kv_heads, length, mask_kind):
    from pictale_server.kernels.decode_attention_kernel import accepts, split_decode_attention

    torch.manual_seed(length)
    dim = 128 if q_heads >= 28 else 64
    query = torch.randn(batch, q_heads, 1, dim, dtype=torch.bfloat16)
    # the cache as the engine sees it: a view of the first `length` slots of a longer buffer
    key = torch.randn(batch, kv_heads, length + 40, dim, dtype=torch.bfloat16)[:, :, :length]
    value = torch.randn(batch, kv_heads, length + 40, dim, dtype=torch.bfloat16)[:, :, :length]
    mask = None
    if mask_kind == "bool":
        mask = torch.arange(length).view(1, 1, 1, length).expand(batch, 1, 1, length) < length - 17
        mask = mask.contiguous()
    elif mask_kind == "float":
        mask = torch.zeros(batch, 1, 1, length)
        mask[..., length // 2 :] = float("-inf")
    assert accepts(query, key, value, mask)
    scale = dim ** -0.5
    got = split_decode_attention(query, key, value, mask, scale)
    expected = reference_attention(query, key, value, mask, scale)
    assert got.shape == expected.shape == (batch, 1, q_heads, dim)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=2e-2, atol=2e-2)


def test_split_decode_attention_with_a_last_slot_equals_its_causal_mask():
    from pictale_server.kernels.decode_attention_kernel import split_decode_attention

    torch.manual_seed(7)
    query = torch.randn(1, 32, 1, 128, dtype=torch.bfloat16)
    key = torch.randn(1, 8, 300, 128, dtype=torch.bfloat16)
    value = torch.randn(1, 8, 300, 128, dtype=torch.bfloat16)
    for last in (0, 130, 299):
        mask = (torch.arange(300) <= last).view(1, 1, 1, 300)
        with_mask = split_decode_attention(query, key, value, mask, 0.1)
        with_slot = split_decode_attention(query, key, value, None, 0.1, last_slot=torch.tensor([last]))
        assert torch.equal(with_mask, with_slot)


def test_region_attention_reads_each_rows_own_region_as_a_cache_of_its_own():
    """Rows of one launch over a shared pool (continuous batching): each row's output is the
    attention over its region alone, bit for bit whatever rows share the launch or the
    launch's largest chunk, and close to the split attention over a cache of that region."""
    from pictale_server.kernels.attention_chunks import chunk_for
    from pictale_server.kernels.decode_attention_kernel import region_decode_attention, split_decode_attention

    torch.manual_seed(8)
    pool_k = torch.randn(1, 2, 1100, 64, dtype=torch.bfloat16)
    pool_v = torch.randn(1, 2, 1100, 64, dtype=torch.bfloat16)
    rows = [(0, 37, 256), (256, 511, 768), (1024, 0, 64)]  # first slot, last offset, region length
    query = torch.randn(len(rows), 8, 1, 64, dtype=torch.bfloat16)
    first = torch.tensor([f for f, _, _ in rows])
    last = torch.tensor([f + o for f, o, _ in rows])
    chunk = torch.tensor([chunk_for(n) for _, _, n in rows])
    together = region_decode_attention(query, pool_k, pool_v, first, last, chunk, 0.125, 512)
    for i, (f, o, n) in enumerate(rows):
        one = slice(i, i + 1)
        alone = region_decode_attention(query[one], pool_k, pool_v, first[one], last[one], chunk[one], 0.125, int(chunk[i]))
        assert torch.equal(together[one], alone), i
        view = split_decode_attention(
            query[one], pool_k[:, :, f : f + n], pool_v[:, :, f : f + n], None, 0.125, last_slot=torch.tensor([o])
        )
        torch.testing.assert_close(alone.float(), view.float(), rtol=1e-2, atol=1e-2)


def test_rotary_cache_write_stores_each_row_at_its_own_slot_of_a_shared_pool():
    torch.manual_seed(9)
    q = torch.randn(3, 4, 1, 64, dtype=torch.bfloat16)
    k = torch.randn(3, 2, 1, 64, dtype=torch.bfloat16)
    v = torch.randn(3, 2, 1, 64, dtype=torch.bfloat16)
    cos, sin = torch.randn(3, 1, 64), torch.randn(3, 1, 64)
    keys, values = torch.zeros(1, 2, 40, 64, dtype=torch.bfloat16), torch.zeros(1, 2, 40, 64, dtype=torch.bfloat16)
    slots = torch.tensor([3, 17, 39])
    rotated = rotary_cache_write(q, k, v, cos, sin, keys, values, slots)
    for row, slot in enumerate(slots.tolist()):
        alone_keys = torch.zeros(1, 2, 40, 64, dtype=torch.bfloat16)
        alone_values = torch.zeros_like(alone_keys)
        one = slice(row, row + 1)
        alone_q = rotary_cache_write(q[one], k[one], v[one], cos[one], sin[one], alone_keys, alone_values, slots[one])
        assert torch.equal(rotated[one], alone_q)
        assert torch.equal(keys[0, :, slot], alone_keys[0, :, slot])
        assert torch.equal(values[0, :, slot], v[row, :, 0])
    written = torch.zeros(40, dtype=torch.bool)
    written[slots] = True
    assert keys[0, :, ~written].eq(0).all() and values[0, :, ~written].eq(0).all()


@pytest.mark.parametrize("seed,step,size", [(0, 0, 5), (123456789, 7, 4096), (2**62 + 99, 2**33 + 5, 9000)])
def test_sampler_noise_kernel_gives_the_same_bits(seed, step, size):
    from pictale_server.engine.sampling import uniform_noise
    from pictale_server.kernels.sampling_noise import uniform_noise as noise_kernel

    seed_t, step_t = torch.tensor(seed), torch.tensor(step)
    assert torch.equal(noise_kernel(seed_t, step_t, size), uniform_noise(seed_t, step_t, size))


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
def test_the_sampler_kernels_pick_the_tokens_the_pytorch_sampler_picks(settings):
    from pictale_server.engine.base import Sampling
    from pictale_server.engine.sampling import SamplingTensors, sample_next_token
    from pictale_server.kernels.sampler_kernel import sample_and_accept

    torch.manual_seed(11)
    vocab = 20000  # not a multiple of the kernel's block
    logits = (torch.randn(1, vocab) * 3).to(torch.bfloat16)
    seen = torch.rand(1, vocab) < 0.01
    seen[0, logits.float().argmax()] = True  # the penalty has the best token to act on
    params = SamplingTensors.allocate("cpu")
    picks = []
    for seed in range(12):
        params.assign(Sampling(max_tokens=1, **settings), seed)
        params.step.fill_(seed * 7)
        theirs = int(sample_next_token(logits, seen, params, by_rank=False))
        token, marked = torch.full((1, 1), -1), seen.clone()
        sample_and_accept(logits, marked, params, token)
        assert int(token) == theirs
        expected = seen.clone()
        expected[0, theirs] = True
        assert torch.equal(marked, expected)
        assert int(params.step) == seed * 7 + 1
        picks.append(theirs)
    if settings["temperature"] > 0:
        assert len(set(picks)) > 1  # the seeds do sample


def test_the_rows_sampler_gives_each_active_row_its_one_row_token():
    """Three rows with their own settings, the middle one inactive: the active rows pick what
    the one-row sampler picks for them; the inactive row's token, seen and step stay."""
    from pictale_server.engine.base import Sampling
    from pictale_server.engine.sampling import SamplingTensors, sample_next_token
    from pictale_server.kernels.sampler_kernel import sample_rows_and_accept

    torch.manual_seed(5)
    vocab = 20000
    logits = (torch.randn(3, vocab) * 3).to(torch.bfloat16)
    seen = torch.rand(3, vocab) < 0.01
    params = SamplingTensors.allocate("cpu", rows=3)
    settings = [
        Sampling(max_tokens=1, temperature=0.8, min_p=0.05, repetition_penalty=1.05),
        Sampling(max_tokens=1, temperature=1.0),
        Sampling(max_tokens=1, temperature=0.0, repetition_penalty=1.3),
    ]
    for row, sampling in enumerate(settings):
        params.row(row).assign(sampling, 40 + row)
        params.step[row] = 3 * row
    expected = [int(sample_next_token(logits[r : r + 1], seen[r : r + 1], params.row(r), by_rank=False)) for r in range(3)]
    token, marked, kept = torch.full((3, 1), -1), seen.clone(), torch.zeros(3, vocab)
    sample_rows_and_accept(logits, marked, params, token, active=torch.tensor([1, 0, 1]), kept=kept)
    assert torch.equal(kept[[0, 2]], logits[[0, 2]].float())
    assert not kept[1].any()  # an inactive row's last logits stay
    assert token.view(-1).tolist() == [expected[0], -1, expected[2]]
    assert params.step.tolist() == [1, 3, 7]
    changed = (marked != seen).nonzero().tolist()
    assert [r for r, _ in changed] == [r for r in (0, 2) if not seen[r, expected[r]]]
    assert all(marked[r, expected[r]] for r in (0, 2))


def test_a_batchs_plain_rows_sampled_together_match_each_row_sampled_alone():
    """FastStep.sample_rows over a batch's SamplerRows against each request's own RequestSampler
    (the one-row kernel): tokens, seen marks, steps and the kept logits."""
    from pictale_server.engine.base import Sampling
    from pictale_server.engine.fast_path.fast_step import FastStep
    from pictale_server.engine.request_sampler import RequestSampler, SamplerRows

    torch.manual_seed(8)
    vocab, device = 9000, torch.device("cpu")
    step = FastStep(written=None)
    logits = (torch.randn(4, vocab) * 3).to(torch.bfloat16)
    prompt = torch.randint(0, vocab, (1, 30))
    settings = [Sampling(max_tokens=4, temperature=t, min_p=0.05, repetition_penalty=1.1) for t in (0.0, 0.7, 1.2, 0.9)]
    rows = SamplerRows.allocate(4, vocab, device)
    batch = [RequestSampler(step, vocab_size=vocab, context_tokens=64, device=device, rows=rows, row=i) for i in range(4)]
    alone = [RequestSampler(step, vocab_size=vocab, context_tokens=64, device=device) for _ in range(4)]
    for i, sampling in enumerate(settings):
        batch[i].reset(sampling, 70 + i, prompt)
        alone[i].reset(sampling, 70 + i, prompt)
    for _ in range(3):
        step.sample_rows(logits, rows, torch.tensor([1, 1, 0, 1]))
        for i in (0, 1, 3):
            alone[i].accept(logits[i : i + 1])
    for i in (0, 1, 3):
        assert torch.equal(batch[i].token, alone[i].token)
        assert torch.equal(batch[i].seen, alone[i].seen)
        assert int(batch[i].params.step) == int(alone[i].params.step) == 3
        assert torch.equal(batch[i].logits, alone[i].logits)
    assert int(batch[2].params.step) == 0 and int(batch[2].token) == 0  # inactive: untouched
