"""The CUDA NF4 kernel's launcher and arithmetic, checked without a GPU.

The kernel itself runs in the GPU suite (tests/gpu/). Here: the limits the launcher reads from
nf4_gemv.cu, the compile-time switches it passes, the pair table, the byte offsets of both
table layouts emulated against bitsandbytes' dequantization, the launch rule's coverage of K
and its shared memory, which weights may be read as parts, the inputs the launchers refuse,
and when the kernel reports itself unavailable.
"""

from __future__ import annotations

import ast
import contextlib
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from nf4_fixtures import NF4_CODE, quantize

from pictale_server.kernels import nf4_cuda
from pictale_server.kernels.nf4_cuda import (
    MAX_ROWS,
    Launch,
    Variant,
    accepts,
    default_launch,
    grid_size,
    kernel_source,
    pair_table,
    shared_bytes,
)
from pictale_server.kernels.nf4_format import PackedNF4, packed_from_quant_state, unpack_codes

KERNELS = Path(nf4_cuda.__file__).parent
# (N, K) of every NF4 decode launch of both models: writer q, k/v, o, gate/up, down, fused
# q+k+v and gate+up; vision the same.
SHAPES = [(4096, 5120), (1024, 5120), (5120, 4096), (14336, 5120), (5120, 14336), (6144, 5120), (28672, 5120),
          (3584, 3584), (512, 3584), (18944, 3584), (3584, 18944), (4608, 3584), (37888, 3584)]
HOPPER_SHARED_PER_BLOCK = 227 * 1024


def test_the_kernel_limits_are_read_from_the_cuda_source() -> None:
    source = nf4_cuda.SOURCE
    assert (MAX_ROWS, nf4_cuda.MAX_PARTS, nf4_cuda.PART_ROWS_MULTIPLE) == (8, 3, 8)
    assert f"#define NF4_MAX_ROWS {MAX_ROWS}" in source
    assert all(8 % tile == 0 for tile in (2, 4, 8))  # every tile height divides PART_ROWS_MULTIPLE


def test_the_launcher_passes_every_switch_the_source_has_and_no_other() -> None:
    """Each compile-time switch of nf4_gemv.cu has a default (so nvcc builds it as it is), and
    the launcher sets exactly those."""
    switches = set(re.findall(r"^#ifndef (\w+)", nf4_cuda.SOURCE, re.MULTILINE))
    variant = Variant(5120, Launch(4, 1, 3), 2, has_bias=True, parts=True, norm=False, rows_exact=False)
    assert set(variant.defines()) == switches
    header = kernel_source(variant).split(nf4_cuda.SOURCE)[0]
    assert "#define MX 2\n" in header and "#define PARTS 3\n" in header and "#define ROWS_EXACT 0\n" in header
    assert not re.search(r"\b(PDL|PAIRS|CHAIN)\b", nf4_cuda.SOURCE)  # switches no launch ever set


def test_the_source_defaults_are_a_launch_the_rule_makes() -> None:
    """The defaults nvcc builds with: the writer's K = 5120, one row, one weight, on an A10G."""
    defaults = dict(re.findall(r"^#ifndef (\w+)\n#define \1 (\d+)", nf4_cuda.SOURCE, re.MULTILINE))
    launch = default_launch(4096, 5120, 1, (8, 6))
    expected = Variant(5120, launch, 1).defines()
    del expected["THREADS"]  # computed from CHUNKS and CPT in the source
    assert {name: int(value) for name, value in defaults.items()} == expected


def test_pair_table_holds_both_codes_of_a_byte_high_nibble_first() -> None:
    table = pair_table(NF4_CODE).to(torch.int64) & 0xFFFFFFFF
    codes = NF4_CODE.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
    for byte in range(256):
        assert table[byte] & 0xFFFF == codes[byte >> 4]  # even element: low half, as x pairs
        assert table[byte] >> 16 == codes[byte & 15]


def prmt(a: int, b: int, selector: int) -> int:
    """PTX prmt.b32 (default mode): result byte i = byte (selector nibble i) of {b, a}."""
    pool = [(a >> (8 * i)) & 0xFF for i in range(4)] + [(b >> (8 * i)) & 0xFF for i in range(4)]
    return sum(pool[(selector >> (4 * i)) & 7] << (8 * i) for i in range(4))


def narrow_offsets(words: torch.Tensor, lane: int) -> list[torch.Tensor]:
    """The kernel's BYTE0..BYTE3 for the 32 KB table: byte k of the word in bits 7..14."""
    lane4 = 4 * lane
    return [(words << 7) & 0x7F80 | lane4, (words >> 1) & 0x7F80 | lane4,
            (words >> 9) & 0x7F80 | lane4, (words >> 17) & 0x7F80 | lane4]


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


@pytest.mark.parametrize("lane", [0, 7, 31])
def test_narrow_table_offsets_decode_bitsandbytes_words(lane) -> None:
    """Every packed word of a bitsandbytes weight, looked up through the narrow table's offsets
    in the lane's own copy, gives the bitsandbytes codes of its 8 weights in order."""
    torch.manual_seed(lane)
    packed, state = quantize(torch.randn(8, 64))
    nf4 = packed_from_quant_state(packed, state)
    codes = nf4.code[unpack_codes(nf4.packed)].view(8, 64)  # each weight's code value, in order
    words = packed.view(-1).view(torch.int32).to(torch.int64) & 0xFFFFFFFF  # 8 weights a word
    table = pair_table(nf4.code).to(torch.int64) & 0xFFFFFFFF
    values = []
    for offsets in narrow_offsets(words, lane):
        assert bool(((offsets & 127) == 4 * lane).all()) and int(offsets.max()) < 256 * 128
        pairs = table[offsets >> 7]
        values += [((pairs & 0xFFFF) << 16), pairs & 0xFFFF0000]
    # element order of a word: byte 0 (low, high half), byte 1, ...
    decoded = torch.stack(values, dim=1).to(torch.int32).view(torch.float32)
    assert torch.equal(decoded.view(8, 64), codes.to(torch.bfloat16).float())


@pytest.mark.parametrize("n,k", SHAPES + [(77, 192), (1, 64)])
def test_the_launch_rule_covers_k_and_fits_shared_memory(n, k) -> None:
    for rows in range(1, MAX_ROWS + 1):
        for capability in (None, (8, 0), (8, 6), (8, 9), (9, 0)):
            launch = default_launch(n, k, rows, capability)
            threads = launch.threads(k)
            per_set = threads // launch.row_groups  # each set of threads walks all of K
            assert threads % 32 == 0 and threads <= 1024 and per_set % 16 == 0
            assert per_set * launch.chunks_per_thread >= k // 32  # every chunk has a thread
            assert per_set * (launch.chunks_per_thread - 1) < k // 32  # every thread has a chunk
            assert 1 <= launch.blocks_per_sm <= 4
            if launch.wide:  # Hopper only: the 64 KB table, within a block's 227 KB
                assert capability == (9, 0) and shared_bytes(k, launch, rows) <= HOPPER_SHARED_PER_BLOCK
            else:  # no opt-in needed on sm_80..sm_90; an A10G's 100 KB SM holds two blocks or more
                assert shared_bytes(k, launch, rows) < 48 * 1024
                assert 2 * (shared_bytes(k, launch, rows) + 1024) <= 100 * 1024


@pytest.mark.parametrize("capability", sorted(nf4_cuda.SHARED_PER_SM))
def test_a_launch_never_asks_registers_for_blocks_its_sm_cannot_hold(capability) -> None:
    """MIN_BLOCKS (the launch bounds) is at most the blocks the SM's shared memory holds at
    once: an A10G holds three narrow blocks at 1-2 rows, two at 3-4, one past that."""
    for n, k in SHAPES:
        for rows in range(1, MAX_ROWS + 1):
            launch = default_launch(n, k, rows, capability)
            per_block = shared_bytes(k, launch, rows) + nf4_cuda.RESERVED_SHARED_PER_BLOCK
            assert launch.blocks_per_sm * per_block <= nf4_cuda.SHARED_PER_SM[capability]
    assert default_launch(4096, 5120, 1, (8, 6)).blocks_per_sm == 3
    assert default_launch(4096, 5120, 4, (8, 6)).blocks_per_sm == 2
    assert default_launch(4096, 5120, 8, (8, 6)) == Launch(4, 1, 1)
    assert default_launch(5120, 14336, 4, (8, 6)) == Launch(2, 1, 1)  # 448 threads: one block


@pytest.mark.parametrize("capability", [(8, 6), (9, 0), None])
def test_every_batch_size_sums_a_row_over_k_as_one_row_does(capability) -> None:
    """Batch invariance: the K partition (chunks per thread, row groups, threads) of every
    launch is the one-row launch's, so a row's sum is the same bits at any batch size."""
    for n, k in SHAPES:
        one = default_launch(n, k, 1, capability)
        for rows in range(2, MAX_ROWS + 1):
            launch = default_launch(n, k, rows, capability)
            assert (launch.chunks_per_thread, launch.row_groups, launch.threads(k)) == (
                one.chunks_per_thread, one.row_groups, one.threads(k)
            ), (n, k, rows)
            assert launch.tile_rows % launch.row_groups == 0


def test_a_launch_takes_eight_rows_while_a_block_is_small_and_four_past_that() -> None:
    """x takes 16 registers per row: 448 threads (K = 14336) hold four rows without spilling."""
    assert nf4_cuda.rows_per_launch(5120, (8, 6)) == 8
    assert nf4_cuda.rows_per_launch(4096, (9, 0)) == 8
    assert nf4_cuda.rows_per_launch(14336, (8, 6)) == 4


def test_past_512_chunks_a_thread_takes_two_chunks_of_two_rows() -> None:
    """K = 18944 (the vision model's down projection) off Hopper: 2-row tiles, two chunks per
    thread, 2 blocks per SM -- with 4-row tiles or 3 blocks per SM it spills on sm_86."""
    assert default_launch(3584, 18944, 1, (8, 6)) == Launch(2, 2, 2)
    assert default_launch(3584, 18944, 1, (9, 0)) == nf4_cuda.MEASURED_SM90[18944]
    assert default_launch(5120, 14336, 1, (8, 6)) == Launch(4, 1, 2)


def test_shared_memory_is_the_table_and_two_buffers_of_partial_sums() -> None:
    # 160 threads = 5 warps, 4 rows x 1 x-row: 2 * 5 * 4 floats after the 32 KB table
    assert shared_bytes(5120, Launch(4, 1, 3), 1) == 32768 + 2 * 5 * 4 * 4
    assert shared_bytes(5120, Launch(4, 1, 3, wide=True), 4) == 65536 + 2 * 5 * 16 * 4
    assert Variant(5120, Launch(4, 1, 3), 4).shared_bytes() == shared_bytes(5120, Launch(4, 1, 3), 4)


def test_two_row_groups_fill_the_warps_one_set_would_leave_half_idle() -> None:
    # K = 3584: 112 chunks. One set rounds up to 128 threads; two sets are 7 whole warps.
    assert Launch(8, 1, 3).threads(3584) == 128
    assert Launch(8, 1, 3, wide=True, row_groups=2).threads(3584) == 224
    assert default_launch(37888, 3584, 1, (9, 0)).row_groups == 2


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


def test_inputs_the_kernel_cannot_read_are_refused() -> None:
    x = torch.zeros(1, 5120, dtype=torch.bfloat16)
    assert accepts(x)
    assert accepts(torch.zeros(MAX_ROWS, 5120, dtype=torch.bfloat16))
    assert not accepts(x.float())
    assert not accepts(torch.zeros(MAX_ROWS + 1, 5120, dtype=torch.bfloat16))  # more rows than it takes
    assert not accepts(torch.zeros(1, 5124, dtype=torch.bfloat16)[:, 4:])  # off 16-byte alignment
    assert not accepts(torch.zeros(2, 5124, dtype=torch.bfloat16)[:, :5120])  # row stride unaligned
    weight = SimpleNamespace(in_features=5120, capability=(8, 6))
    with pytest.raises(ValueError, match="does not fit the CUDA kernel"):  # one launch, too many rows
        nf4_cuda.cuda_gemv(torch.zeros(MAX_ROWS + 1, 5120, dtype=torch.bfloat16), weight, launch=Launch(2, 1, 1))
    with pytest.raises(ValueError, match="does not fit the CUDA kernel"):
        nf4_cuda.cuda_gemv(torch.zeros(1, 4096, dtype=torch.bfloat16), weight)  # another K


def packed(rows: int, k: int = 128, nested=None) -> PackedNF4:
    return PackedNF4(torch.zeros(rows * k // 2, dtype=torch.uint8), torch.ones(rows * k // 64),
                     torch.linspace(-1, 1, 16), rows, k, nested)


def test_weights_read_as_parts_must_keep_tiles_inside_one_part() -> None:
    assert nf4_cuda.parts_unsupported([packed(4096), packed(1024), packed(1024)]) == ""
    assert nf4_cuda.parts_unsupported([packed(64), packed(30)]) == ""  # only the last may be ragged
    assert "multiple of 8" in nf4_cuda.parts_unsupported([packed(77), packed(16)])
    assert "1..3 parts" in nf4_cuda.parts_unsupported([packed(8)] * 4)
    assert "1..3 parts" in nf4_cuda.parts_unsupported([])
    assert "same for every part" in nf4_cuda.parts_unsupported([packed(8), packed(8, k=192)])
    assert "multiple of 64" in nf4_cuda.parts_unsupported([packed(8, k=96)])
    assert "double quantization" in nf4_cuda.parts_unsupported([packed(8, nested=object())])
    other_code = PackedNF4(torch.zeros(512, dtype=torch.uint8), torch.ones(16), torch.linspace(-2, 2, 16), 8, 128)
    assert "code table" in nf4_cuda.parts_unsupported([packed(8), other_code])


def test_a_weight_the_kernel_cannot_read_is_refused_before_it_reaches_the_gpu() -> None:
    with pytest.raises(ValueError, match="double quantization"):
        nf4_cuda.CudaNF4Weight(packed(8, nested=object()), None)
    with pytest.raises(ValueError, match="1..3 parts"):
        nf4_cuda.CudaNF4Weight([packed(8)] * 4, None)


def test_a_launch_that_makes_its_own_input_refuses_rows_it_cannot_read() -> None:
    """norm_gemv checks its rows before anything reaches the GPU (the kernel reads contiguous,
    16-byte aligned bf16 rows, as many of each, and must not write the residual it reads)."""
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
    with pytest.raises(ValueError, match="delta must be .* as many as the residual's"):
        nf4_cuda.norm_gemv(torch.zeros(2, 64, dtype=torch.bfloat16), row, norm, 1e-5, row.clone(), weight)
    with pytest.raises(ValueError, match="residual must be"):
        nf4_cuda.norm_gemv(torch.zeros(2, 64, dtype=torch.bfloat16)[:, :32], row, norm, 1e-5, row.clone(), weight)


@pytest.fixture
def fresh_availability():
    nf4_cuda._unavailable.cache_clear()
    yield
    nf4_cuda._unavailable.cache_clear()


def test_the_kernel_is_unavailable_off_a_cuda_gpu(fresh_availability, monkeypatch) -> None:
    assert "not a CUDA device" in nf4_cuda.kernel_unavailable(torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert nf4_cuda.kernel_unavailable(torch.device("cuda")) == "no CUDA GPU"


def test_the_kernel_is_unavailable_below_compute_capability_8(fresh_availability, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (7, 5))
    assert "compute capability 8.0, not 7.5" in nf4_cuda.kernel_unavailable(torch.device("cuda", 0))


def test_the_kernel_is_unavailable_where_nvrtc_is_missing_and_asks_once(fresh_availability, monkeypatch) -> None:
    calls = []

    def missing():
        calls.append(1)
        raise OSError("Could not find any NVRTC library")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 6))
    monkeypatch.setattr(nf4_cuda, "_nvrtc_library", missing)
    for _ in range(3):
        assert "NVRTC cannot be loaded" in nf4_cuda.kernel_unavailable(torch.device("cuda", 0))
    assert len(calls) == 1


def test_the_kernel_is_unavailable_where_nvrtc_cannot_build_it(fresh_availability, monkeypatch) -> None:
    def fails(arch, variant):
        raise nf4_cuda.CudaKernelUnavailable("NVRTC compilation failed: unsupported arch")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    monkeypatch.setattr(nf4_cuda, "_nvrtc_library", lambda: object())
    monkeypatch.setattr(nf4_cuda, "_compiled", fails)
    assert "unsupported arch" in nf4_cuda.kernel_unavailable(torch.device("cuda", 0))


def test_importing_the_launcher_imports_no_triton() -> None:
    code = "import sys, pictale_server.kernels.nf4_cuda, pictale_server.kernels.nf4_format; " \
           "sys.exit('triton' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=KERNELS.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_kernel_module_imports_the_engine() -> None:
    for path in KERNELS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.startswith("pictale_server.engine") for name in names), path.name
