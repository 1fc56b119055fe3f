"""NF4 weights times 1-16 rows at once on tensor cores: each weight byte is read once per step
for the whole batch.

The batch-1 CUDA GEMV (nf4_gemv.cu) keeps every row's partial sums in registers and collapses
past two rows (docs/kernels.md). Here each program takes BLOCK_N output features and walks K in
64-element blocks, the span of one absmax: the block's 32 packed bytes per feature are looked up
in a 256-entry table of bf16 pairs (one load gives both nibbles' code values), the even and odd
columns of x (padded to 16 rows) meet them in one tensor-core dot each, and the fp32 result is
scaled by the block's absmax and added to the accumulator. The idea is Marlin's (dequantize into
tensor-core operands), with NF4's table in place of integer codes.

Batch invariance: an output row depends only on that row of x and the weight. The launch is
chosen from the weight's shape alone (`rows_launch`), the K loop runs in one order, there is no
split-K, and no reduction mixes rows, so a request's logits are the same bit for bit whether it
runs alone or beside 15 others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .nf4_format import NF4_BLOCKSIZE, PackedNF4

ROWS_PER_TILE = 16  # the smallest M a bf16 tensor-core dot takes
MAX_ROWS = 64


@dataclass(frozen=True)
class RowsLaunch:
    block_n: int
    num_warps: int
    num_stages: int


def rows_launch(n: int, k: int) -> RowsLaunch:
    """The launch for a weight of N x K, whatever the number of rows (batch invariance).
    Narrow outputs take narrow tiles so that every SM has work: the writer's k/v (1,024) would
    otherwise be 8 programs."""
    if n >= 16384:
        return RowsLaunch(block_n=64, num_warps=4, num_stages=4)
    return RowsLaunch(block_n=32, num_warps=4, num_stages=4)


def pair_table(code: torch.Tensor) -> torch.Tensor:
    """int32 [256]: for a packed byte, bf16(code[high nibble]) in the low half (the even
    element) and bf16(code[low nibble]) in the high half."""
    bits = code.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
    byte = torch.arange(256, device=code.device)
    return (bits[byte >> 4] | (bits[byte & 0xF] << 16)).to(torch.int32).contiguous()


@triton.jit(do_not_specialize=["M"])
def _nf4_rows_kernel(
    X, PACKED, ABSMAX, PAIRS, BIAS, Y, M, N, stride_xm, stride_ym,
    BLOCKS: tl.constexpr,
    OPERAND: tl.constexpr,  # Triton's interpreter multiplies bf16 as raw integers: fp32 there (same products)
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    features = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    halves = tl.arange(0, 32)
    row_ok = rows < M
    feature_ok = features < N
    x_row = X + rows[:, None] * stride_xm + 2 * halves[None, :]
    packed_row = PACKED + features[:, None].to(tl.int64) * (BLOCKS * 32) + halves[None, :]
    absmax_row = ABSMAX + features.to(tl.int64) * BLOCKS
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for block in range(0, BLOCKS):
        codes = tl.load(packed_row + block * 32, mask=feature_ok[:, None], other=0)
        scale = tl.load(absmax_row + block, mask=feature_ok, other=0.0)
        x_even = tl.load(x_row + block * 64, mask=row_ok[:, None], other=0.0)
        x_odd = tl.load(x_row + block * 64 + 1, mask=row_ok[:, None], other=0.0)
        pairs = tl.load(PAIRS + codes.to(tl.int32))
        # each half moved into the top of an fp32, whose conversion to bf16 is then exact
        w_even = (pairs << 16).to(tl.float32, bitcast=True).to(tl.bfloat16)
        w_odd = (pairs & -65536).to(tl.float32, bitcast=True).to(tl.bfloat16)
        part = tl.dot(x_even.to(OPERAND), tl.trans(w_even.to(OPERAND)))
        part = tl.dot(x_odd.to(OPERAND), tl.trans(w_odd.to(OPERAND)), part)
        acc += part * scale[None, :]
    if HAS_BIAS:
        acc += tl.load(BIAS + features, mask=feature_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(Y + rows[:, None] * stride_ym + features[None, :], acc.to(Y.dtype.element_ty),
             mask=row_ok[:, None] & feature_ok[None, :])


class RowsNF4Weight:
    """One NF4 weight (and optional bias) as the rows kernel reads it, in place."""

    def __init__(self, weight: PackedNF4, bias: torch.Tensor | None = None) -> None:
        if weight.nested is not None:
            raise ValueError("the rows kernel reads fp32 absmax only (no double quantization)")
        if weight.in_features % NF4_BLOCKSIZE:
            raise ValueError(f"in_features {weight.in_features} is not a multiple of {NF4_BLOCKSIZE}")
        self.weight = weight
        self.absmax = weight.absmax.float().contiguous()
        self.pairs = pair_table(weight.code)
        self.bias = bias
        self.launch = rows_launch(weight.out_features, weight.in_features)


def nf4_rows(x: torch.Tensor, weight: RowsNF4Weight, out: torch.Tensor | None = None,
             launch: RowsLaunch | None = None) -> torch.Tensor:
    """x [M, K] bf16 @ W^T (+ bias) -> [M, N] bf16, for any M (best at 1-16)."""
    packed = weight.weight
    m, k = x.shape
    n = packed.out_features
    if k != packed.in_features or x.dtype != torch.bfloat16 or x.stride(1) != 1:
        raise ValueError(f"x must be a bf16 [rows, {packed.in_features}] tensor with unit column stride")
    if m > MAX_ROWS:
        raise ValueError(f"{m} rows; the rows kernel is for decode batches of at most {MAX_ROWS}")
    if out is None:
        out = torch.empty(m, n, dtype=torch.bfloat16, device=x.device)
    launch = launch or weight.launch
    grid = (triton.cdiv(n, launch.block_n), triton.cdiv(m, ROWS_PER_TILE))
    bias = weight.bias if weight.bias is not None else weight.absmax
    _nf4_rows_kernel[grid](
        x, packed.packed, weight.absmax, weight.pairs, bias, out, m, n, x.stride(0), out.stride(0), BLOCKS=k // NF4_BLOCKSIZE, OPERAND=tl.float32 if x.device.type == "cpu" else tl.bfloat16,
        HAS_BIAS=weight.bias is not None, BLOCK_M=ROWS_PER_TILE, BLOCK_N=launch.block_n,
        num_warps=launch.num_warps, num_stages=launch.num_stages,
    )
    return out
