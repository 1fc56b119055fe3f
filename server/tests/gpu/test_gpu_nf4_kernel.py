"""The CUDA NF4 kernel on the GPU: against the fp32 reference (and bitsandbytes where it is
installed), weights read as parts against the same rows concatenated, the launch that makes its
own input against the two launches it replaces, and replays of a captured CUDA graph.

Every case runs at the launch the rule picks for this GPU and at the A10G's (sm_86) launch,
so the production card's narrow-table launches are checked on any GPU.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from .nf4_weights import concatenated, quantize_nf4, random_nf4, relative_error, within_bf16_bound

from pictale_server.kernels import nf4_cuda
from pictale_server.kernels.decode_ops import add_rms_norm_
from pictale_server.kernels.nf4_cuda import (
    MAX_ROWS,
    CudaNF4Weight,
    NormInput,
    cuda_gemv,
    default_launch,
    launch_gemv,
    norm_gemv,
)
from pictale_server.kernels.nf4_format import reference_linear

A10G = (8, 6)
HAS_BITSANDBYTES = importlib.util.find_spec("bitsandbytes") is not None
TOLERANCE = 1e-2  # relative (Frobenius) error against fp32; bitsandbytes' own matmul: 3-4e-3


def launches(n: int, k: int, rows: int) -> dict:
    """This GPU's launch and the A10G's, by name (one entry where they are the same)."""
    here = default_launch(n, k, rows, torch.cuda.get_device_capability())
    a10g = default_launch(n, k, rows, A10G)
    return {"rule": here} if here == a10g else {"rule": here, "a10g": a10g}


def x_rows(rows: int, k: int, *, outliers: bool = False, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(rows, k, device="cuda", generator=generator).to(torch.bfloat16)
    if outliers:
        x[:, torch.randperm(k, device="cuda", generator=generator)[: max(1, k // 100)]] *= 300
    return x


def test_the_kernel_is_available_here() -> None:
    assert nf4_cuda.kernel_unavailable(torch.device("cuda")) == ""


SHAPES = [  # (N, K) of every decode launch of both models
    (4096, 5120), (1024, 5120), (5120, 4096), (5120, 14336), (6144, 5120), (28672, 5120),
    (3584, 3584), (512, 3584), (3584, 18944), (4608, 3584), (37888, 3584),
]


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("rows", range(1, MAX_ROWS + 1))
def test_model_shapes_match_the_fp32_reference(n, k, rows) -> None:
    weight = random_nf4(n, k, seed=n + k)
    x = x_rows(rows, k, seed=rows)
    ref = reference_linear(x, weight)
    cuda_weight = CudaNF4Weight(weight, None)
    for name, launch in launches(n, k, rows).items():
        out = cuda_gemv(x, cuda_weight, launch=launch)
        assert out.shape == (rows, n) and out.dtype == torch.bfloat16
        assert relative_error(out, ref) < TOLERANCE, name
        assert within_bf16_bound(out, x, weight, ref), name


CASES = [  # (case, N, K, rows, weight and x options)
    ("ragged N, small K", 77, 192, 1, {}),
    ("ragged N, small K", 77, 192, 4, {}),
    ("one row, one block", 1, 64, 2, {}),
    ("ragged N", 1000, 3584, 3, {}),
    ("ragged N, two chunks a thread", 1003, 18944, 1, {}),
    ("activation outliers", 2048, 4096, 2, {"outliers": True}),
    ("a block of weight outliers", 2048, 4096, 1, {"outlier_block": True}),
    ("all-zero blocks", 2048, 4096, 1, {"zero_blocks": True}),
    ("all-zero blocks", 2048, 4096, 4, {"zero_blocks": True}),
]


@pytest.mark.parametrize("case,n,k,rows,options", CASES, ids=[f"{c[0]}-{c[1]}x{c[2]}-{c[3]}" for c in CASES])
@pytest.mark.parametrize("bias", [False, True])
def test_edge_cases_match_the_fp32_reference(case, n, k, rows, options, bias) -> None:
    weight = random_nf4(n, k, zero_blocks=options.get("zero_blocks", False),
                        outlier_block=options.get("outlier_block", False), seed=n)
    x = x_rows(rows, k, outliers=options.get("outliers", False), seed=k)
    b = torch.randn(n, device="cuda").to(torch.bfloat16) if bias else None
    ref = reference_linear(x, weight, b)
    cuda_weight = CudaNF4Weight(weight, b)
    for name, launch in launches(n, k, rows).items():
        out = cuda_gemv(x, cuda_weight, launch=launch)
        assert relative_error(out, ref) < TOLERANCE, name
        assert within_bf16_bound(out, x, weight, ref), name


def test_a_zero_weight_gives_the_bias_alone() -> None:
    weight = quantize_nf4(torch.zeros(40, 256, device="cuda"))
    bias = torch.arange(40, device="cuda").to(torch.bfloat16)
    out = cuda_gemv(x_rows(3, 256), CudaNF4Weight(weight, bias))
    assert torch.equal(out, bias.expand(3, 40))


def test_strided_rows_and_a_given_output_buffer() -> None:
    weight = random_nf4(640, 1024, seed=5)
    wide = x_rows(3, 1024 + 64, seed=5)
    x = wide[:, 64:]  # rows 1088 elements apart, 16-byte aligned
    out = torch.full((3, 700), 7.0, device="cuda", dtype=torch.bfloat16)[:, :640]
    returned = cuda_gemv(x, CudaNF4Weight(weight, None), out)
    assert returned.data_ptr() == out.data_ptr()
    assert relative_error(out, reference_linear(x, weight)) < TOLERANCE


@pytest.mark.skipif(not HAS_BITSANDBYTES, reason="bitsandbytes is not installed")
@pytest.mark.parametrize("n,k,rows", [(4096, 5120, 1), (1000, 3584, 3), (5120, 14336, 2), (77, 192, 4)])
def test_bitsandbytes_weights_match_bitsandbytes(n, k, rows) -> None:
    """Weights quantized by bitsandbytes on the GPU, read as they are stored: the kernel is as
    close to the fp32 product as bitsandbytes' own matmul is."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnbf

    from pictale_server.kernels.nf4_format import dequantize, packed_from_quant_state

    torch.manual_seed(n)
    dense = torch.randn(n, k, dtype=torch.bfloat16, device="cuda")
    packed, state = bnbf.quantize_4bit(dense, blocksize=64, quant_type="nf4")
    weight = packed_from_quant_state(packed, state)
    assert torch.equal(dequantize(weight).to(torch.bfloat16), bnbf.dequantize_4bit(packed, state))
    x = x_rows(rows, k, seed=n)
    bias = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    ref = reference_linear(x, weight, bias)
    theirs = relative_error(bnb.matmul_4bit(x, packed.t(), bias=bias, quant_state=state), ref)
    for name, launch in launches(n, k, rows).items():
        ours = relative_error(cuda_gemv(x, CudaNF4Weight(weight, bias), launch=launch), ref)
        assert ours < max(TOLERANCE, 2 * theirs), (name, ours, theirs)


PARTS = [  # rows of each part, K, x rows, bias
    ((4096, 1024, 1024), 5120, 1, False),  # writer q/k/v
    ((14336, 14336), 5120, 2, False),  # writer gate/up
    ((3584, 512, 512), 3584, 1, True),  # vision q/k/v
    ((18944, 18944), 3584, 1, False),  # vision gate/up
    ((80, 16, 30), 192, 3, True),  # the last part ragged
]


@pytest.mark.parametrize("splits,k,rows,bias", PARTS)
def test_parts_equal_their_concatenation_bit_for_bit(splits, k, rows, bias) -> None:
    parts = [random_nf4(n, k, seed=i) for i, n in enumerate(splits)]
    b = torch.randn(sum(splits), device="cuda").to(torch.bfloat16) if bias else None
    x = x_rows(rows, k, seed=len(splits))
    by_parts, whole = CudaNF4Weight(parts, b), CudaNF4Weight(concatenated(parts), b)
    for name, launch in launches(sum(splits), k, rows).items():
        out = cuda_gemv(x, by_parts, launch=launch)
        assert torch.equal(out, cuda_gemv(x, whole, launch=launch)), name
        assert relative_error(out, reference_linear(x, concatenated(parts), b)) < TOLERANCE, name


NORMED = [  # the launches that make their own x: rows of each part, K, bias
    ((4096, 1024, 1024), 5120, False),  # writer q/k/v
    ((14336, 14336), 5120, False),  # writer gate/up
    ((3584, 512, 512), 3584, True),  # vision q/k/v
    ((18944, 18944), 3584, False),  # vision gate/up
    ((5120,), 14336, False),  # one weight, two chunks a thread
]
EPS = 1e-5


@pytest.mark.parametrize("splits,k,bias", NORMED)
def test_norm_gemv_equals_the_two_launches_it_replaces(splits, k, bias) -> None:
    """rms_norm(residual + delta) @ W^T in one launch, bit for bit the add-and-norm kernel
    followed by the GEMV; the new residual stored as PyTorch's bf16 add makes it."""
    torch.manual_seed(k + len(splits))
    parts = [random_nf4(n, k, seed=i) for i, n in enumerate(splits)]
    weight = CudaNF4Weight(parts if len(parts) > 1 else parts[0], torch.randn(sum(splits), device="cuda") if bias else None)
    residual = torch.randn(1, k, device="cuda").to(torch.bfloat16) * 3
    delta = torch.randn(1, k, device="cuda").to(torch.bfloat16) * 2
    norm_weight = (torch.randn(k, device="cuda") * 0.3 + 1).to(torch.bfloat16)
    summed = residual.clone()
    x = add_rms_norm_(summed, delta, norm_weight, EPS)
    assert torch.equal(summed, residual + delta)

    residual_out = torch.empty_like(residual)
    out = norm_gemv(residual, delta, norm_weight, EPS, residual_out, weight)
    assert torch.equal(residual_out, residual + delta)
    assert torch.equal(out, cuda_gemv(x, weight))

    a10g = default_launch(sum(splits), k, 1, A10G)
    given = torch.empty_like(out)
    norm = NormInput(delta, norm_weight, EPS, torch.empty_like(residual))
    launch_gemv(residual, weight, given, a10g, norm)
    assert torch.equal(given, cuda_gemv(x, weight, launch=a10g))
    assert torch.equal(norm.residual_out, residual + delta)


def test_captured_launches_replay_on_new_inputs() -> None:
    """No host synchronization or allocation besides the output: both launchers can be captured
    in a CUDA graph (after a first call compiled them) and replayed on new inputs."""
    k = 5120
    weight = CudaNF4Weight([random_nf4(4096, k, seed=1), random_nf4(1024, k, seed=2)], None)
    x, residual, delta = (torch.zeros(1, k, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    norm_weight = torch.ones(k, device="cuda", dtype=torch.bfloat16)
    residual_out = torch.empty_like(residual)
    cuda_gemv(x, weight)
    norm_gemv(residual, delta, norm_weight, EPS, residual_out, weight)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        plain = cuda_gemv(x, weight)
        normed = norm_gemv(residual, delta, norm_weight, EPS, residual_out, weight)
    for seed in range(3):
        torch.manual_seed(seed)
        for t in (x, residual, delta):
            t.copy_(torch.randn_like(t, dtype=torch.float32))
        graph.replay()
        assert torch.equal(plain, cuda_gemv(x, weight))
        assert torch.equal(normed, norm_gemv(residual, delta, norm_weight, EPS, torch.empty_like(residual), weight))
        assert torch.equal(residual_out, residual + delta)


WRITER_SHAPES = [(6144, 5120), (5120, 4096), (28672, 5120), (5120, 14336), (131, 320)]


@pytest.mark.parametrize("n,k", WRITER_SHAPES)
@pytest.mark.parametrize("capability", ["here", A10G])
def test_every_row_of_a_batch_is_the_bits_of_that_row_alone(n, k, capability, monkeypatch) -> None:
    """Batch invariance: at 1 to 16 rows (split into launches past what one takes), each row
    of the product is bit for bit the one-row launch's, on this GPU's launches and the A10G's."""
    weight = CudaNF4Weight(random_nf4(n, k, seed=n), None)
    if capability != "here":
        monkeypatch.setattr(weight, "capability", capability)
    x = x_rows(16, k, seed=3)
    alone = torch.cat([cuda_gemv(x[i : i + 1], weight) for i in range(16)])
    for rows in (2, 3, 4, 5, 8, 11, 16):
        assert torch.equal(cuda_gemv(x[:rows], weight), alone[:rows]), rows


@pytest.mark.parametrize("rows", [2, 4, 8, 13])
def test_norm_gemv_of_many_rows_is_each_rows_own(rows) -> None:
    """The launch that makes its own input, row by row: each row's output and new residual are
    those of the row alone."""
    k = 5120
    weight = CudaNF4Weight([random_nf4(4096, k, seed=1), random_nf4(1024, k, seed=2), random_nf4(1024, k, seed=3)], None)
    torch.manual_seed(rows)
    residual = (torch.randn(rows, k, device="cuda") * 3).to(torch.bfloat16)
    delta = (torch.randn(rows, k, device="cuda") * 2).to(torch.bfloat16)
    norm_weight = (torch.randn(k, device="cuda") * 0.3 + 1).to(torch.bfloat16)
    residual_out = torch.empty_like(residual)
    out = norm_gemv(residual, delta, norm_weight, EPS, residual_out, weight)
    assert torch.equal(residual_out, residual + delta)
    for i in range(rows):
        one_out = torch.empty_like(residual[i : i + 1])
        one = norm_gemv(residual[i : i + 1], delta[i : i + 1], norm_weight, EPS, one_out, weight)
        assert torch.equal(out[i : i + 1], one), i
