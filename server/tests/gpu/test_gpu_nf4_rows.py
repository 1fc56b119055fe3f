"""The rows NF4 kernel (kernels/nf4_rows.py) on the GPU, on the writer's and the vision model's
decode shapes: against the fp32 reference, and batch invariance — a row's output is the same bit
for bit alone, in a batch of 8 and in a batch of 16, and across CUDA-graph replays."""

from __future__ import annotations

import pytest
import torch
from .nf4_weights import random_nf4

from pictale_server.kernels.nf4_format import reference_linear
from pictale_server.kernels.nf4_rows import RowsNF4Weight, nf4_rows

SHAPES = [(6144, 5120), (5120, 4096), (28672, 5120), (5120, 14336), (4608, 3584), (3584, 18944)]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref).norm() / ref.norm()).item()


def x_rows(rows: int, k: int, seed: int) -> torch.Tensor:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(rows, k, device="cuda", generator=generator).to(torch.bfloat16)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("rows", [1, 5, 16])
def test_matches_the_fp32_reference(n, k, rows):
    weight = random_nf4(n, k, seed=n)
    x = x_rows(rows, k, seed=rows)
    assert relative_error(nf4_rows(x, RowsNF4Weight(weight)), reference_linear(x, weight)) < 1e-2


def test_adds_the_bias():
    weight = random_nf4(4608, 3584)
    bias = torch.randn(4608, device="cuda").to(torch.bfloat16)
    x = x_rows(3, 3584, seed=3)
    assert relative_error(nf4_rows(x, RowsNF4Weight(weight, bias)), reference_linear(x, weight, bias)) < 1e-2


@pytest.mark.parametrize("n,k", SHAPES)
def test_a_row_is_the_same_alone_and_in_any_batch(n, k):
    weight = RowsNF4Weight(random_nf4(n, k, seed=k))
    batch = x_rows(16, k, seed=11)
    in_16 = nf4_rows(batch, weight)
    in_8 = nf4_rows(batch[:8], weight)
    for i in range(8):
        alone = nf4_rows(batch[i : i + 1], weight)
        assert torch.equal(alone, in_8[i : i + 1]) and torch.equal(alone, in_16[i : i + 1]), i
    assert torch.equal(nf4_rows(batch[5:13], weight), in_16[5:13])


def test_graph_replays_repeat_the_eager_result():
    weight = RowsNF4Weight(random_nf4(6144, 5120))
    x = x_rows(8, 5120, seed=2)
    out = torch.empty(8, 6144, dtype=torch.bfloat16, device="cuda")
    eager = nf4_rows(x, weight).clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        nf4_rows(x, weight, out)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        nf4_rows(x, weight, out)
    for _ in range(3):
        out.zero_()
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, eager)
