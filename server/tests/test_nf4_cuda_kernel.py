"""The CUDA NF4 kernel's host side and arithmetic, checked without a GPU.

The kernel itself only runs on a GPU (bench/gpu/kernel_bench.py checks it there against
bitsandbytes on every decode shape). Here: the pair table, the byte-offset arithmetic of the
kernel emulated word by word against bitsandbytes' dequantization, the launch rule's coverage
of K, and the fallback to the Triton kernel when NVRTC cannot build it.
"""

from __future__ import annotations

import logging

import pytest
import torch
from nf4_fixtures import NF4_CODE, quantize

from pictale_server.kernels import fast_decode, nf4_cuda
from pictale_server.kernels.nf4_cuda import (
    Launch,
    accepts,
    candidates,
    default_launch,
    grid_size,
    pair_table,
    shared_bytes,
)
from pictale_server.kernels.nf4_format import dequantize, packed_from_quant_state

SHAPES = [(6144, 5120), (5120, 4096), (28672, 5120), (5120, 14336), (4608, 3584), (37888, 3584), (3584, 18944)]


def bf16_bits(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF


def test_pair_table_holds_both_codes_of_a_byte_high_nibble_first() -> None:
    table = pair_table(NF4_CODE).to(torch.int64) & 0xFFFFFFFF
    codes = bf16_bits(NF4_CODE)
    for byte in range(256):
        assert table[byte] & 0xFFFF == codes[byte >> 4]  # even element: low half, as x pairs
        assert table[byte] >> 16 == codes[byte & 15]


def emulated_word_dots(words: torch.Tensor, x_pairs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The kernel's BYTE0..BYTE3 offsets (byte * 128 + lane * 4) turned back into table rows,
    each pair widened and multiplied in fp32 (the `PAIRS=0` arithmetic)."""
    table = table.to(torch.int64) & 0xFFFFFFFF
    total = torch.zeros(words.shape[0], dtype=torch.float64)
    lane4 = 4 * 7
    for index, shift in enumerate((-7, 1, 9, 17)):
        offsets = ((words << -shift) if shift < 0 else (words >> shift)) & 0x7F80 | lane4
        pairs = table[offsets >> 7]
        low = ((pairs & 0xFFFF) << 16).to(torch.int32).view(torch.float32).double()
        high = (pairs & 0xFFFF0000).to(torch.int32).view(torch.float32).double()
        total += low * x_pairs[:, 2 * index] + high * x_pairs[:, 2 * index + 1]
    return total


def prmt(a: int, b: int, selector: int) -> int:
    """PTX prmt.b32 (default mode): result byte i = byte (selector nibble i) of {b, a}."""
    pool = [(a >> (8 * i)) & 0xFF for i in range(4)] + [(b >> (8 * i)) & 0xFF for i in range(4)]
    return sum(pool[(selector >> (4 * i)) & 7] << (8 * i) for i in range(4))


@pytest.mark.parametrize("lane", [0, 7, 31])
def test_wide_table_offsets_pick_the_byte_and_the_lanes_own_copy(lane) -> None:
    """The WIDE kernel's prmt selectors 0x55k4: byte k of the word in bits 8..15, lane * 4 in
    bits 0..7 -- table entry `offset >> 8`, copy `(offset & 255) / 4` = the lane's bank."""
    torch.manual_seed(lane)
    for word in torch.randint(0, 2**32, (64,), dtype=torch.int64).tolist() + [0, 0xFFFFFFFF]:
        for k, selector in enumerate((0x5504, 0x5514, 0x5524, 0x5534)):
            offset = prmt(word, lane * 4, selector)
            assert offset >> 8 == (word >> (8 * k)) & 0xFF
            assert offset & 0xFF == lane * 4
            assert offset < 256 * 256  # inside the 64 KB table


def test_kernel_byte_offsets_decode_bitsandbytes_words() -> None:
    torch.manual_seed(0)
    weight = torch.randn(8, 64)
    packed, state = quantize(weight)
    nf4 = packed_from_quant_state(packed, state)
    codes_only = dequantize(nf4).double() / nf4.absmax.double().repeat_interleave(64).view(8, 64)
    words = packed.view(-1).view(torch.int32).to(torch.int64) & 0xFFFFFFFF  # 8 weights a word
    x = torch.randn(words.shape[0], 8, dtype=torch.float64)
    expected = (codes_only.view(-1, 8).to(torch.bfloat16).double() * x).sum(-1)
    got = emulated_word_dots(words, x, pair_table(nf4.code))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("n,k", SHAPES + [(77, 192), (1, 64)])
def test_the_launch_rule_covers_k_and_fits_shared_memory(n, k) -> None:
    for rows, capability in ((1, None), (2, (9, 0)), (1, (9, 0)), (4, (8, 6))):
        launch = default_launch(n, k, rows, capability)
        threads = launch.threads(k)
        assert threads % 32 == 0 and threads <= 1024
        assert threads * launch.chunks_per_thread >= k // 32  # every chunk has a thread
        if launch.wide:  # Hopper only: 64 KB table, within an H100/H200 block's 227 KB
            assert capability == (9, 0) and shared_bytes(k, launch, rows) <= 227 * 1024
        else:  # no opt-in needed on sm_80..sm_90
            assert shared_bytes(k, launch, rows) < 48 * 1024
        assert 1 <= launch.blocks_per_sm <= 4
        assert launch in candidates(k, launch.wide)


@pytest.mark.parametrize("k", [5120, 4096, 14336, 3584, 18944, 192])
def test_candidates_give_every_thread_a_chunk(k) -> None:
    found = candidates(k)
    assert found
    for launch in found:
        per_set = launch.threads(k) // launch.row_groups  # each set of threads walks all of K
        assert per_set * launch.chunks_per_thread >= k // 32
        assert per_set * (launch.chunks_per_thread - 1) < k // 32
        assert launch.threads(k) % 32 == 0 and per_set % 16 == 0


def test_two_row_groups_fill_the_warps_one_set_would_leave_half_idle() -> None:
    # K = 3584: 112 chunks. One set rounds up to 128 threads; two sets are 7 whole warps.
    assert Launch(8, 1, 3).threads(3584) == 128
    assert Launch(8, 1, 3, wide=True, row_groups=2).threads(3584) == 224
    assert any(launch.row_groups == 2 for launch in candidates(3584, wide=True))
    assert not any(launch.row_groups == 2 for launch in candidates(4096, wide=True))  # 128 chunks: whole warps


def test_inputs_the_kernel_cannot_read_are_refused() -> None:
    x = torch.zeros(1, 5120, dtype=torch.bfloat16)
    assert accepts(x)
    assert not accepts(x.float())
    assert not accepts(torch.zeros(5, 5120, dtype=torch.bfloat16))  # more rows than it takes
    assert not accepts(torch.zeros(1, 5124, dtype=torch.bfloat16)[:, 4:])  # off 16-byte alignment
    assert not accepts(torch.zeros(2, 5124, dtype=torch.bfloat16)[:, :5120])  # row stride unaligned


def test_a_kernel_nvrtc_cannot_build_leaves_the_triton_kernel_in_charge(monkeypatch, caplog) -> None:
    class Weight:
        out_features, in_features = 64, 64
        device = torch.device("cpu")

    group = fast_decode._Group(kernel_weights=[], biases=[], splits=[64], cuda_weight=Weight())

    def unavailable(x, weight):
        raise nf4_cuda.CudaKernelUnavailable("NVRTC compilation failed")

    monkeypatch.setattr(nf4_cuda, "cuda_gemv", unavailable)
    handle = fast_decode.FastNF4Handle(enabled=True, cuda=True)
    with caplog.at_level(logging.WARNING):
        handle._warm_cuda([group], rows=(1,))
    assert group.cuda_weight is None and handle.cuda is False
    assert "using the Triton kernel" in caplog.text


def test_launch_threads_round_up_to_whole_warps() -> None:
    assert Launch(4, 1, 4).threads(5120) == 160
    assert Launch(4, 2, 2).threads(14336) == 224
    assert Launch(4, 1, 4).threads(3584) == 128  # 112 chunks: the last warp half idle


def test_persistent_blocks_are_capped_by_the_shared_memory_an_sm_has() -> None:
    wide = shared_bytes(5120, Launch(8, 1, 3, wide=True), 1)
    assert grid_size(tiles=3584, sms=132, blocks_per_sm=3, shared_per_block=wide, shared_per_sm=228 * 1024) == 396
    assert grid_size(tiles=3584, sms=80, blocks_per_sm=3, shared_per_block=wide, shared_per_sm=100 * 1024) == 80
    shared = shared_bytes(5120, Launch(4, 1, 4), 1)
    assert grid_size(tiles=7168, sms=80, blocks_per_sm=4, shared_per_block=shared, shared_per_sm=100 * 1024) == 240
    assert grid_size(tiles=7168, sms=132, blocks_per_sm=4, shared_per_block=shared, shared_per_sm=228 * 1024) == 528
    assert grid_size(tiles=100, sms=132, blocks_per_sm=4, shared_per_block=shared, shared_per_sm=None) == 100
    assert grid_size(tiles=7168, sms=80, blocks_per_sm=4, shared_per_block=shared, shared_per_sm=None) == 320


def test_weights_read_as_parts_must_keep_tiles_inside_one_part() -> None:
    from pictale_server.kernels.nf4_format import PackedNF4

    def weight(rows: int, k: int = 128, nested=None) -> PackedNF4:
        return PackedNF4(torch.zeros(rows * k // 2, dtype=torch.uint8), torch.ones(rows * k // 64),
                         torch.linspace(-1, 1, 16), rows, k, nested)

    assert nf4_cuda.parts_unsupported([weight(4096), weight(1024), weight(1024)]) == ""
    assert nf4_cuda.parts_unsupported([weight(64), weight(30)]) == ""  # only the last may be ragged
    assert "multiple of 8" in nf4_cuda.parts_unsupported([weight(77), weight(16)])
    assert "1..3 parts" in nf4_cuda.parts_unsupported([weight(8)] * 4)
    assert "same for every part" in nf4_cuda.parts_unsupported([weight(8), weight(8, k=192)])


def test_a_launch_that_makes_its_own_input_refuses_rows_it_cannot_read() -> None:
    """norm_gemv checks its rows before anything reaches the GPU (the kernel reads one
    contiguous, 16-byte aligned bf16 row each and must not write the residual it reads)."""
    from types import SimpleNamespace

    weight = SimpleNamespace(in_features=64, device=torch.device("cpu"))
    row = torch.zeros(1, 64, dtype=torch.bfloat16)
    norm = torch.ones(64, dtype=torch.bfloat16)
    assert nf4_cuda.norm_unsupported(weight, norm) == ""
    assert "bf16 row" in nf4_cuda.norm_unsupported(weight, norm.float())
    assert "bf16 row" in nf4_cuda.norm_unsupported(weight, torch.ones(68, dtype=torch.bfloat16)[4:])  # 8 bytes off
    with pytest.raises(ValueError, match="residual_out must not be the residual"):
        nf4_cuda.norm_gemv(row, row.clone(), norm, 1e-5, row, weight)
    with pytest.raises(ValueError, match="delta"):
        nf4_cuda.norm_gemv(row, row.float(), norm, 1e-5, row.clone(), weight)
    with pytest.raises(ValueError, match="residual "):
        nf4_cuda.norm_gemv(torch.zeros(2, 64, dtype=torch.bfloat16), row, norm, 1e-5, row.clone(), weight)
