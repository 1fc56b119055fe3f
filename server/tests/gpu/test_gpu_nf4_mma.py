"""The tensor-core NF4 kernel on the GPU: against the fp32 reference on every decode shape at
1-16 rows, weights read as parts against the same rows concatenated, each row of a batch the
bits of that row alone, and replays of a captured CUDA graph."""

from __future__ import annotations

import pytest
import torch
from .nf4_weights import concatenated, random_nf4, relative_error

from pictale_server.kernels.nf4_cuda import CudaNF4Weight
from pictale_server.kernels.nf4_format import reference_linear
from pictale_server.kernels.nf4_mma import MAX_ROWS, launch_unsupported, mma_gemv

TOLERANCE = 1e-2  # relative (Frobenius) error against fp32; bitsandbytes' own matmul: 3-4e-3

SHAPES = [  # (N, K) of every decode launch of both models, as one weight or its parts
    ((4096, 1024, 1024), 5120), ((5120,), 4096), ((14336, 14336), 5120), ((5120,), 14336),
    ((3584, 512, 512), 3584), ((3584,), 3584), ((18944, 18944), 3584), ((3584,), 18944),
]


def x_rows(rows: int, k: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(rows, k, device="cuda", generator=generator).to(torch.bfloat16)


def weight_of(parts: tuple[int, ...], k: int, bias: bool = False) -> tuple[CudaNF4Weight, list]:
    packed = [random_nf4(n, k, seed=n + i) for i, n in enumerate(parts)]
    b = torch.randn(sum(parts), device="cuda") if bias else None
    return CudaNF4Weight(packed if len(packed) > 1 else packed[0], b), packed


@pytest.mark.parametrize("parts,k", SHAPES)
def test_every_decode_shape_is_supported(parts, k) -> None:
    weight, _ = weight_of(parts, k)
    assert launch_unsupported(weight) == ""


@pytest.mark.parametrize("parts,k", SHAPES)
@pytest.mark.parametrize("rows", [1, 2, 7, 8, 9, 16])
def test_model_shapes_match_the_fp32_reference(parts, k, rows) -> None:
    weight, packed = weight_of(parts, k, bias=len(parts) == 3 and k == 3584)
    x = x_rows(rows, k, seed=rows)
    ref = reference_linear(x, concatenated(packed), weight.bias)
    assert relative_error(mma_gemv(x, weight), ref) < TOLERANCE


@pytest.mark.parametrize("parts,k", [((4096, 1024, 1024), 5120), ((14336, 14336), 5120), ((5120,), 14336)])
def test_every_row_of_a_batch_is_the_bits_of_that_row_alone(parts, k) -> None:
    """Batch invariance: at 1 to 16 rows, each row is bit for bit the one-row launch's."""
    weight, _ = weight_of(parts, k)
    x = x_rows(MAX_ROWS, k, seed=3)
    alone = torch.cat([mma_gemv(x[i : i + 1], weight) for i in range(MAX_ROWS)])
    for rows in range(2, MAX_ROWS + 1):
        assert torch.equal(mma_gemv(x[:rows], weight), alone[:rows]), rows


def test_parts_equal_their_concatenation_bit_for_bit() -> None:
    parts = [random_nf4(n, 5120, seed=n) for n in (4096, 1024, 1024)]
    x = x_rows(5, 5120)
    assert torch.equal(mma_gemv(x, CudaNF4Weight(parts, None)), mma_gemv(x, CudaNF4Weight(concatenated(parts), None)))


def test_strided_rows_and_a_given_output_buffer() -> None:
    weight, packed = weight_of((5120,), 4096)
    wide = x_rows(4, 2 * 4096)
    x = wide[:, :4096]  # rows 16-byte aligned, stride twice K
    out = torch.full((4, 5120), float("nan"), dtype=torch.bfloat16, device="cuda")
    assert mma_gemv(x, weight, out) is out
    assert relative_error(out, reference_linear(x, packed[0])) < TOLERANCE


def test_unsupported_shapes_and_inputs_are_refused() -> None:
    odd_parts = CudaNF4Weight([random_nf4(24, 1024), random_nf4(8, 1024)], None)  # a part of 24 rows
    assert "multiple of 16" in launch_unsupported(odd_parts)
    short = CudaNF4Weight(random_nf4(16, 192), None)  # 3 blocks: not whole steps
    assert launch_unsupported(short)
    weight, _ = weight_of((5120,), 4096)
    with pytest.raises(ValueError):
        mma_gemv(x_rows(17, 4096), weight)
    with pytest.raises(ValueError):
        mma_gemv(x_rows(2, 4096).float(), weight)


def test_captured_launches_replay_on_new_inputs() -> None:
    weight, packed = weight_of((14336, 14336), 5120)
    x = x_rows(8, 5120)
    out = torch.empty(8, weight.out_features, dtype=torch.bfloat16, device="cuda")
    mma_gemv(x, weight, out)  # compiles before the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        mma_gemv(x, weight, out)
    x.copy_(x_rows(8, 5120, seed=9))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, mma_gemv(x, weight))
    assert relative_error(out, reference_linear(x, concatenated(packed))) < TOLERANCE
