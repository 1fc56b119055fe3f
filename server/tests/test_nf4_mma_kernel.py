"""The tensor-core NF4 kernel's data layout and host side, checked without a GPU.

The kernel only runs on a GPU (bench/gpu/kernel_bench.py checks it there against bitsandbytes
on every decode shape). Here the part that is easy to get wrong and hard to see on a GPU --
which code byte and which x pair each lane puts in which mma fragment register -- is emulated
lane by lane from PTX's fragment layouts for m16n8k16, multiplied as the tensor core would,
and compared with bitsandbytes' dequantization; plus the launch's shared-memory budget.
"""

from __future__ import annotations

import pytest
import torch
from nf4_fixtures import quantize

from pictale_server.kernels.nf4_cuda import pair_table
from pictale_server.kernels.nf4_format import dequantize, packed_from_quant_state
from pictale_server.kernels.nf4_mma import (
    MAX_ROWS,
    MmaLaunch,
    accepts,
    candidates,
    default_launch,
    grid_size,
    shared_bytes,
)


def bf16_pair(word: int) -> tuple[float, float]:
    """A 32-bit register of two bf16 values: (low half, high half)."""
    low = torch.tensor([(word & 0xFFFF) << 16], dtype=torch.int64).to(torch.int32).view(torch.float32)
    high = torch.tensor([word & 0xFFFF0000], dtype=torch.int64).to(torch.int32).view(torch.float32)
    return low.item(), high.item()


def lookup(table: list[int], word: int, k: int, lane: int) -> int:
    """The kernel's prmt offset (byte k of the word in bits 8..15, lane * 4 in bits 0..7),
    resolved against the table's layout (entry = offset >> 8, lane copy = (offset & 255) / 4)."""
    offset = (((word >> (8 * k)) & 0xFF) << 8) | (lane * 4)
    assert (offset & 0xFF) // 4 == lane  # each lane reads its own copy: no bank conflicts
    return table[offset >> 8]


def emulate(codes: torch.Tensor, absmax: torch.Tensor, table: list[int], x: torch.Tensor) -> torch.Tensor:
    """out[M, N] computed the way the kernel does, one 16-row tile and absmax block at a time."""
    n, half_k = codes.shape
    rows = x.shape[0]
    x_words = x.to(torch.bfloat16).contiguous().view(torch.int16).to(torch.int64) & 0xFFFF
    x_words = x_words[:, 0::2] | (x_words[:, 1::2] << 16)  # [M, K/2] bf16 pairs, as loaded
    code_words = codes.to(torch.int64)
    out = torch.zeros(rows, n, dtype=torch.float64)
    for tile in range(-(-n // 16)):
        for block in range(half_k // 32):
            t = torch.zeros(16, 8, dtype=torch.float64)  # C fragment of the four k-steps
            for s in range(4):
                a = torch.zeros(16, 16, dtype=torch.float64)
                b = torch.zeros(16, 8, dtype=torch.float64)
                for lane in range(32):
                    g, c = lane // 4, lane % 4
                    row_g, row_h = min(tile * 16 + g, n - 1), min(tile * 16 + g + 8, n - 1)

                    def words(row: int) -> tuple[int, int]:
                        chunk = code_words[row, block * 32 + c * 8 : block * 32 + c * 8 + 8].tolist()
                        return (sum(v << (8 * i) for i, v in enumerate(chunk[:4])),
                                sum(v << (8 * i) for i, v in enumerate(chunk[4:])))

                    g_words, h_words = words(row_g), words(row_h)
                    word_g, word_h = g_words[s // 2], h_words[s // 2]
                    k0 = 2 * (s % 2)  # byte 2s of the 8 is byte 2(s%2) of word s//2
                    regs_a = [lookup(table, word_g, k0, lane), lookup(table, word_h, k0, lane),
                              lookup(table, word_g, k0 + 1, lane), lookup(table, word_h, k0 + 1, lane)]
                    # PTX m16n8k16 A (row-major): reg0 (g, 2c..), reg1 (g+8, 2c..),
                    # reg2 (g, 2c+8..), reg3 (g+8, 2c+8..)
                    for reg, (row, col) in zip(regs_a, [(g, 2 * c), (g + 8, 2 * c), (g, 2 * c + 8), (g + 8, 2 * c + 8)]):
                        a[row, col], a[row, col + 1] = bf16_pair(reg)
                    if g < rows:  # lanes past the last row of x keep zeros
                        base = block * 32 + c * 8  # x words of elements 16c .. 16c+15
                        regs_b = [x_words[g, base + 2 * s].item(), x_words[g, base + 2 * s + 1].item()]
                        # B (col-major): reg0 (k 2c.., n g), reg1 (k 2c+8.., n g)
                        for reg, krow in zip(regs_b, [2 * c, 2 * c + 8]):
                            b[krow, g], b[krow + 1, g] = bf16_pair(reg)
                t += a @ b
            for r in range(16):
                row = tile * 16 + r
                if row < n:
                    out[:, row] += t[r, :rows] * absmax[row, block].item()
    return out


@pytest.mark.parametrize("n,k,rows", [(16, 64, 1), (32, 128, 3), (21, 128, 4)])
def test_fragments_multiply_the_codes_bitsandbytes_packed(n, k, rows) -> None:
    torch.manual_seed(n + k + rows)
    weight = torch.randn(n, k)
    packed, state = quantize(weight)
    nf4 = packed_from_quant_state(packed, state)
    x = torch.randn(rows, k).to(torch.bfloat16)
    table = [v & 0xFFFFFFFF for v in pair_table(nf4.code).tolist()]
    got = emulate(nf4.packed.view(n, k // 2), nf4.absmax.view(n, k // 64), table, x)
    # Expected: bf16 codes times x, summed exactly, scaled per block (what the kernel computes
    # before its one rounding to bf16).
    absmax = nf4.absmax.double().repeat_interleave(64).view(n, k)
    codes = (dequantize(nf4).double() / absmax).to(torch.bfloat16).double()
    expected = x.double() @ (codes * absmax).t()
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_shared_memory_holds_the_table_x_and_the_partial_sums() -> None:
    launch = MmaLaunch(warps=8, depth=8, blocks_per_sm=2)
    assert shared_bytes(launch, 5120, 1) == 65536 + 5120 * 2 + 2 * 8 * 16 * 4
    assert shared_bytes(launch, 18944, 4) == 65536 + 4 * 18944 * 2 + 2 * 8 * 16 * 4 * 4


def test_persistent_blocks_are_capped_by_shared_memory_per_sm() -> None:
    launch = MmaLaunch(warps=8, depth=8, blocks_per_sm=3)
    assert grid_size(1792, 132, launch, 5120, 1, 228 * 1024) == 396  # H100/H200: three 76 KB blocks
    assert grid_size(1792, 132, launch, 14336, 1, 228 * 1024) == 264  # two 94 KB blocks
    assert grid_size(1792, 80, launch, 5120, 1, 100 * 1024) == 80  # A10G: one
    assert grid_size(64, 132, launch, 5120, 1, 228 * 1024) == 64  # never more blocks than tiles


def test_inputs_the_kernel_cannot_read_are_refused() -> None:
    assert accepts(torch.zeros(4, 5120, dtype=torch.bfloat16))
    assert not accepts(torch.zeros(5, 5120, dtype=torch.bfloat16))
    assert not accepts(torch.zeros(1, 5120))
    assert not accepts(torch.zeros(1, 5124, dtype=torch.bfloat16)[:, 4:])
