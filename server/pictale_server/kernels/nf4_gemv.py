"""Fused NF4 dequantize-and-multiply for a few rows of activations: out = x @ W^T (+ bias).

One program owns BLOCK_N output features and walks K in steps of GROUPS blocks of 64 elements.
Each step loads the packed codes as 32-bit words ([BLOCK_N, GROUPS, 8] words, 8 codes each),
turns each word into 8 values (in registers with `prmt`, see nf4_prmt.py, or with a plain
table gather where inline PTX cannot run), sums their products with the matching x values
and scales that sum by the block's absmax (once per 8 weights, not per weight). One pass over
the weight bytes, no host synchronization, no allocation beyond the output. docs/kernels.md
explains the layout choices.

Rows of x (M, 1..8) are a compile-time constant: each row has its own accumulator, and every
dequantized weight is used M times.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from pictale_server.kernels.nf4_format import PackedNF4
from pictale_server.kernels.nf4_prmt import (
    LOOKUP_CONSTRAINTS,
    PAIR_DOT_ASM,
    PAIR_DOT_CONSTRAINTS,
    PAIR_LOOKUP_CONSTRAINTS,
    lookup_asm,
    pair_lookup_asm,
    table_words,
)

MAX_ROWS = 8

# Element j of a 32-bit word sits at this bit offset (high nibble of each byte first).
_SHIFTS = (4, 0, 12, 8, 20, 16, 28, 24)


@triton.jit
def _plain_lookup(words, CODE, SHIFT: tl.constexpr):
    return tl.load(CODE + ((words >> SHIFT) & 0xF))


@triton.jit
def _load_b32(pointers, VIA_ASM: tl.constexpr):
    """A 32-bit load. Through PTX it is invisible to Triton's load coalescing, so the loaded
    tensor keeps the layout of the arithmetic around it (see the kernel's docstring)."""
    if VIA_ASM:
        return tl.inline_asm_elementwise(
            "ld.global.nc.b32 $0, [$1];", "=r,l", [pointers], dtype=tl.int32, is_pure=True, pack=1
        )
    else:
        return tl.load(pointers)


@triton.jit
def _in_registers(shape_of, TABLE_WORD):
    """Word `TABLE_WORD` of the lookup table as a tensor shaped like `shape_of`, kept in
    ordinary registers.

    A value ptxas knows to be warp-uniform lives in a uniform register, which `prmt` cannot
    read: ptxas then copies it into a register before every use (8 extra instructions per
    lookup). So each lane loads its own copy of the table (the table is stored once per lane,
    32 times), which ptxas cannot prove uniform. `shape_of` only gives the result its shape.
    """
    return tl.inline_asm_elementwise(
        "{ .reg .b32 lane; .reg .b64 address; mov.u32 lane, %laneid; "
        "mad.wide.u32 address, lane, 32, $2; ld.global.nc.b32 $0, [address]; }",
        "=r,r,l", [shape_of, TABLE_WORD], dtype=tl.int32, is_pure=True, pack=1,
    )


@triton.jit
def _bf16_pair(X_WORDS, index, VIA_ASM: tl.constexpr):
    """Two consecutive bf16 values of x, loaded as one 32-bit word, widened to fp32."""
    pair = _load_b32(X_WORDS + index, VIA_ASM)
    return (pair << 16).to(tl.float32, bitcast=True), (pair & -65536).to(tl.float32, bitcast=True)


@triton.jit
def _row_partial(acc, X_WORDS, x_index, scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM: tl.constexpr,
                 PAIRS: tl.constexpr = False):
    """acc[n, g, w] += absmax[n, g] * sum_j w[n, k] * x[k] over the 8 elements k of word w.

    With PAIRS, e0..e3 are the word's 4 bf16 weight pairs and the 8 products are summed with
    bf16x2 FMAs (PAIR_DOT_ASM) against x's bf16 pairs as loaded; otherwise e0..e7 are fp32.
    """
    if PAIRS:
        dot = tl.inline_asm_elementwise(
            PAIR_DOT_ASM, PAIR_DOT_CONSTRAINTS,
            [e0, e1, e2, e3,
             _load_b32(X_WORDS + x_index + 0, VIA_ASM), _load_b32(X_WORDS + x_index + 1, VIA_ASM),
             _load_b32(X_WORDS + x_index + 2, VIA_ASM), _load_b32(X_WORDS + x_index + 3, VIA_ASM)],
            dtype=tl.float32, is_pure=True, pack=1,
        )
        return acc + dot * scale
    x0, x1 = _bf16_pair(X_WORDS, x_index + 0, VIA_ASM)
    x2, x3 = _bf16_pair(X_WORDS, x_index + 1, VIA_ASM)
    x4, x5 = _bf16_pair(X_WORDS, x_index + 2, VIA_ASM)
    x6, x7 = _bf16_pair(X_WORDS, x_index + 3, VIA_ASM)
    dot = e0 * x0
    dot = dot + e1 * x1
    dot = dot + e2 * x2
    dot = dot + e3 * x3
    dot = dot + e4 * x4
    dot = dot + e5 * x5
    dot = dot + e6 * x6
    dot = dot + e7 * x7
    return acc + dot * scale


@triton.jit
def _load_step(WORDS, ABSMAX, CODE2, ABSMAX2, OFFSETS, block, word_in_group,
               NESTED: tl.constexpr, BLOCKSIZE2: tl.constexpr, VIA_ASM: tl.constexpr):
    """The packed words [rows, groups, 8] and fp32 scales [rows, groups, 1] of blocks `block`.

    The scales are loaded straight into the words' layout (each of the 8 threads sharing a
    block loads its scale; one transaction), which avoids a shared-memory layout exchange and
    its barriers in every step.
    """
    block = block[:, :, None]
    words = _load_b32(WORDS + block * 8 + word_in_group[None, None, :], VIA_ASM)
    if NESTED:
        code = tl.load(ABSMAX + block).to(tl.int32)
        block2 = block // BLOCKSIZE2
        scale = tl.load(CODE2 + code) * tl.load(ABSMAX2 + block2) + tl.load(OFFSETS + block2)
    else:
        scale = _load_b32(ABSMAX.to(tl.pointer_type(tl.int32)) + block, VIA_ASM).to(tl.float32, bitcast=True)
    return words, scale


@triton.jit
def _store_row(acc, OUT_ROW, BIAS, rows, row_ok, HAS_BIAS: tl.constexpr):
    out = tl.sum(tl.sum(acc, axis=2), axis=1)
    if HAS_BIAS:
        out += tl.load(BIAS + rows, mask=row_ok, other=0.0).to(tl.float32)
    tl.store(OUT_ROW + rows, out.to(OUT_ROW.dtype.element_ty), mask=row_ok)


@triton.jit
def _nf4_gemv_kernel(
    X_WORDS, WORDS, ABSMAX, CODE, TABLE, CODE2, ABSMAX2, OFFSETS, BIAS, OUT,
    N, stride_xm, stride_om,
    K: tl.constexpr,
    M: tl.constexpr,
    NESTED: tl.constexpr,
    BLOCKSIZE2: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    LOOKUP_ASM: tl.constexpr,
    PAIRS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    GROUPS: tl.constexpr,
):
    """Tiles are [BLOCK_N rows, GROUPS blocks of 64, 8 words]; x tiles are [1, GROUPS, 8].

    The words of a block are visited in a scrambled order ((3 w) mod 8). That hides their
    contiguity from Triton, so the weight tile and the x tile get the same layout (one word
    per thread per row and block): x then needs no exchange between threads, and each x value
    a thread loads serves all BLOCK_N rows it holds. Loads stay fully coalesced (a warp reads
    whole 32-byte blocks). x is read as 32-bit words (two bf16 each); its row stride is in
    32-bit words.
    """
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    # Loads read a valid row or block everywhere (clamped indices) so that they need no masks;
    # the extra rows are never stored and the extra blocks get a zero scale.
    rows_in = tl.minimum(rows, N - 1)
    n_groups: tl.constexpr = K // 64
    group_in_step = tl.arange(0, GROUPS)
    word_in_group = tl.arange(0, 8)
    VIA_ASM: tl.constexpr = LOOKUP_ASM != ""

    if LOOKUP_ASM != "":
        shape_of_words = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.int32)
        low0 = _in_registers(shape_of_words, TABLE + 0)
        low1 = _in_registers(shape_of_words, TABLE + 1)
        low2 = _in_registers(shape_of_words, TABLE + 2)
        low3 = _in_registers(shape_of_words, TABLE + 3)
        high0 = _in_registers(shape_of_words, TABLE + 4)
        high1 = _in_registers(shape_of_words, TABLE + 5)
        high2 = _in_registers(shape_of_words, TABLE + 6)
        high3 = _in_registers(shape_of_words, TABLE + 7)

    acc0 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc3 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc4 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc5 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc6 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)
    acc7 = tl.zeros([BLOCK_N, GROUPS, 8], dtype=tl.float32)

    # Software prefetch: the words and scales of step i + 1 are requested before step i is
    # computed, which doubles the bytes in flight per thread. Block indices are computed once
    # and moved by a scalar per step; the prefetch after the last step re-reads that step.
    n_steps: tl.constexpr = (n_groups + GROUPS - 1) // GROUPS
    EVEN_K: tl.constexpr = n_groups % GROUPS == 0
    first_block = rows_in[:, None] * n_groups + tl.minimum(group_in_step, n_groups - 1)[None, :]
    words, scale = _load_step(WORDS, ABSMAX, CODE2, ABSMAX2, OFFSETS, first_block, word_in_group,
                              NESTED, BLOCKSIZE2, VIA_ASM)
    for step in range(n_steps):
        groups = step * GROUPS + group_in_step
        if EVEN_K:
            next_block = first_block + tl.minimum(step + 1, n_steps - 1) * GROUPS
        else:
            next_groups = tl.minimum(groups + GROUPS, n_groups - 1)
            next_block = rows_in[:, None] * n_groups + next_groups[None, :]
        next_words, next_scale = _load_step(WORDS, ABSMAX, CODE2, ABSMAX2, OFFSETS, next_block,
                                            word_in_group, NESTED, BLOCKSIZE2, VIA_ASM)
        step_scale = scale
        if not EVEN_K:
            group_ok = groups < n_groups
            groups = tl.minimum(groups, n_groups - 1)
            step_scale = tl.where(group_ok[None, :, None], step_scale, 0.0)

        if PAIRS:
            e0, e1, e2, e3 = tl.inline_asm_elementwise(
                LOOKUP_ASM,
                PAIR_LOOKUP_CONSTRAINTS,
                [words, low0, low1, low2, low3, high0, high1, high2, high3],
                dtype=(tl.int32, tl.int32, tl.int32, tl.int32),
                is_pure=True,
                pack=1,
            )
            e4 = e0
            e5 = e0
            e6 = e0
            e7 = e0
        elif LOOKUP_ASM != "":
            e0, e1, e2, e3, e4, e5, e6, e7 = tl.inline_asm_elementwise(
                LOOKUP_ASM,
                LOOKUP_CONSTRAINTS,
                [words, low0, low1, low2, low3, high0, high1, high2, high3],
                dtype=(tl.float32, tl.float32, tl.float32, tl.float32,
                       tl.float32, tl.float32, tl.float32, tl.float32),
                is_pure=True,
                pack=1,
            )
        else:
            e0 = _plain_lookup(words, CODE, 4)
            e1 = _plain_lookup(words, CODE, 0)
            e2 = _plain_lookup(words, CODE, 12)
            e3 = _plain_lookup(words, CODE, 8)
            e4 = _plain_lookup(words, CODE, 20)
            e5 = _plain_lookup(words, CODE, 16)
            e6 = _plain_lookup(words, CODE, 28)
            e7 = _plain_lookup(words, CODE, 24)

        # x as 32-bit words: word w of block g starts at x word g * 32 + w * 4.
        x_index = groups[None, :, None] * 32 + word_in_group[None, None, :] * 4
        acc0 = _row_partial(acc0, X_WORDS, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 1:
            acc1 = _row_partial(acc1, X_WORDS + stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 2:
            acc2 = _row_partial(acc2, X_WORDS + 2 * stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 3:
            acc3 = _row_partial(acc3, X_WORDS + 3 * stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 4:
            acc4 = _row_partial(acc4, X_WORDS + 4 * stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 5:
            acc5 = _row_partial(acc5, X_WORDS + 5 * stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 6:
            acc6 = _row_partial(acc6, X_WORDS + 6 * stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        if M > 7:
            acc7 = _row_partial(acc7, X_WORDS + 7 * stride_xm, x_index, step_scale, e0, e1, e2, e3, e4, e5, e6, e7, VIA_ASM, PAIRS)
        words = next_words
        scale = next_scale

    _store_row(acc0, OUT, BIAS, rows, row_ok, HAS_BIAS)
    if M > 1:
        _store_row(acc1, OUT + stride_om, BIAS, rows, row_ok, HAS_BIAS)
    if M > 2:
        _store_row(acc2, OUT + 2 * stride_om, BIAS, rows, row_ok, HAS_BIAS)
    if M > 3:
        _store_row(acc3, OUT + 3 * stride_om, BIAS, rows, row_ok, HAS_BIAS)
    if M > 4:
        _store_row(acc4, OUT + 4 * stride_om, BIAS, rows, row_ok, HAS_BIAS)
    if M > 5:
        _store_row(acc5, OUT + 5 * stride_om, BIAS, rows, row_ok, HAS_BIAS)
    if M > 6:
        _store_row(acc6, OUT + 6 * stride_om, BIAS, rows, row_ok, HAS_BIAS)
    if M > 7:
        _store_row(acc7, OUT + 7 * stride_om, BIAS, rows, row_ok, HAS_BIAS)


def _configs() -> list[triton.Config]:
    # Threads sit 8 along the words of a block and 4 along blocks; warps go along blocks.
    # Each thread holds BLOCK_N rows x GROUPS / (4 num_warps) words per step.
    choices = [  # (BLOCK_N, GROUPS, num_warps)
        (2, 8, 1), (4, 8, 1), (8, 8, 1), (2, 16, 1), (4, 16, 1), (4, 16, 2), (8, 16, 2),
        (2, 32, 2), (4, 32, 2), (2, 64, 4), (4, 64, 4), (8, 32, 4), (1, 16, 2), (2, 32, 4),
        (4, 16, 4), (8, 16, 4), (8, 8, 2),
    ]
    return [
        triton.Config({"BLOCK_N": block_n, "GROUPS": groups}, num_warps=warps, num_stages=1)
        for block_n, groups, warps in choices
    ]


def words_per_thread(config: triton.Config) -> int:
    return config.kwargs["BLOCK_N"] * max(1, config.kwargs["GROUPS"] // (4 * config.num_warps))


def _prune(configs, named_args, **kwargs):
    """Drop tiles that leave SMs idle, waste steps on a ragged K, or need too many registers."""
    n, k, m = named_args["N"], kwargs["K"], kwargs["M"]
    n_groups = k // 64
    kept = [c for c in configs if n // c.kwargs["BLOCK_N"] >= 128] or configs
    kept = [c for c in kept if n_groups % c.kwargs["GROUPS"] == 0] or kept
    kept = [c for c in kept if words_per_thread(c) * m <= 64] or kept
    return kept


@functools.cache
def kernels():
    """(kernel, autotuned kernel). Autotuning runs once per (N, K, rows, format) and GPU;
    Triton caches the choice on disk."""
    kernel = _nf4_gemv_kernel
    tuned = triton.autotune(
        configs=_configs(),
        key=["N", "K", "M", "NESTED", "PAIRS"],
        prune_configs_by={"early_config_prune": _prune},
        cache_results=True,
    )(kernel)
    return kernel, tuned


class NF4KernelWeight:
    """A PackedNF4 made ready for the kernel once, at load time (this may synchronize)."""

    def __init__(self, weight: PackedNF4, *, lookup: str = "asm", products: str = "fp32") -> None:
        """`lookup`: "asm" (codes decoded in registers by PTX; CUDA) or "plain" (a table
        gather; any backend, Triton's interpreter included). `products`: "fp32" (every
        product and sum in fp32) or "bf16x2" (with "asm" only: the 8 products of each word
        summed by packed bf16 FMAs, then fp32; fewer instructions, ~2x the rounding error)."""
        if lookup not in ("asm", "plain"):
            raise ValueError(f"lookup must be 'asm' or 'plain', got {lookup!r}")
        if products not in ("fp32", "bf16x2") or (products == "bf16x2" and lookup != "asm"):
            raise ValueError(f"products must be 'fp32', or 'bf16x2' with the asm lookup; got {products!r}")
        self.pairs = products == "bf16x2"
        self.weight = weight
        self.out_features = weight.out_features
        self.in_features = weight.in_features
        self.words = weight.packed.view(torch.int32)
        self.code = weight.code.to(weight.packed.device, torch.float32).contiguous()
        # One copy of the 8 table words per lane of a warp (see _in_registers).
        self.table = table_words(self.code).repeat(32).to(weight.packed.device)
        self.lookup_asm = (pair_lookup_asm() if self.pairs else lookup_asm()) if lookup == "asm" else ""
        nested = weight.nested
        self.nested = nested is not None
        self.code2 = nested.code2 if nested else self.code
        self.absmax2 = nested.absmax2 if nested else self.code
        self.offsets = nested.offsets if nested else self.code
        self.blocksize2 = nested.blocksize2 if nested else 1


def nf4_gemv(
    x: torch.Tensor,
    weight: NF4KernelWeight,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    *,
    config: dict | None = None,
) -> torch.Tensor:
    """out[M, N] = x[M, K] @ W^T (+ bias) for M <= 8; autotuned unless `config` is given.

    `config` (BLOCK_N, GROUPS, num_warps, num_stages) skips tuning: tests and the interpreter
    use it. The first call per shape compiles and tunes (and synchronizes): warm up before
    capturing a CUDA graph.
    """
    m, k = x.shape
    n = weight.out_features
    if not 1 <= m <= MAX_ROWS:
        raise ValueError(f"the NF4 GEMV takes 1..{MAX_ROWS} rows, got {m}")
    if k != weight.in_features or x.stride(1) != 1:
        raise ValueError(f"x of shape {tuple(x.shape)} does not match K={weight.in_features}")
    if x.dtype not in (torch.bfloat16,):
        raise ValueError(f"the NF4 GEMV takes bf16 activations, got {x.dtype}")
    if x.stride(0) % 2 or x.data_ptr() % 4:
        raise ValueError("x rows must start on 4-byte boundaries")
    if out is None:
        out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    args = (
        x.view(torch.int32), weight.words, weight.weight.absmax, weight.code, weight.table, weight.code2, weight.absmax2,
        weight.offsets, bias if bias is not None else weight.code, out,
        n, x.stride(0) // 2, out.stride(0),
    )
    flags = {
        "K": k, "M": m, "NESTED": weight.nested, "BLOCKSIZE2": weight.blocksize2,
        "HAS_BIAS": bias is not None, "LOOKUP_ASM": weight.lookup_asm, "PAIRS": weight.pairs,
    }
    kernel, tuned = kernels()
    if config is None and x.device.type == "cpu":  # Triton's interpreter: nothing to tune
        config = default_test_config()
    if config is None:
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)
        tuned[grid](*args, **flags)
    else:
        launch = dict(config)
        grid = (triton.cdiv(n, launch["BLOCK_N"]),)
        kernel[grid](*args, **flags, **launch)
    return out


@functools.cache
def default_test_config() -> dict:
    """A fixed configuration (no tuning) for tests and the interpreter (few, large programs)."""
    return {"BLOCK_N": 16, "GROUPS": 8, "num_warps": 1, "num_stages": 1}


__all__ = ["MAX_ROWS", "NF4KernelWeight", "default_test_config", "kernels", "nf4_gemv"]
