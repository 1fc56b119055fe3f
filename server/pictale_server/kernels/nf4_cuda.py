"""The NF4 GEMV in CUDA (nf4_gemv.cu): compiling it, choosing a launch, calling it.

Compiled at run time by NVRTC, which ships with PyTorch's CUDA wheels (no toolkit, no build
step), for the GPU at hand: sm_80 and newer (A10G is sm_86, H100/H200 sm_90). One binary per
(K, launch, x rows, bias, one weight or parts, input made by the launch or not, whole tiles or
not), ~0.2 s each; `kernel_source` gives the exact source NVRTC builds.

A launch is (tile rows, 16-byte chunks per thread, blocks per SM, table width, row groups),
picked by `default_launch`: the best launch measured per K on Hopper, else a rule. No timing
at load: a per-shape tuner timed on one weight measured the L2 cache rather than memory and
chose worse launches than the rule (docs/kernels.md).

Importing this module imports neither Triton nor anything that touches the GPU.
"""

from __future__ import annotations

import ctypes
import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from pictale_server.kernels.nf4_format import PackedNF4

SOURCE_PATH = Path(__file__).with_name("nf4_gemv.cu")
SOURCE = SOURCE_PATH.read_text()
KERNEL_NAME = "nf4_gemv_cuda"


def source_limit(source: str, name: str) -> int:
    """The number a kernel source `#define`s as `name` (its limits are defined there once)."""
    found = re.search(rf"^#define {name} (\d+)", source, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"the kernel source does not define {name}")
    return int(found.group(1))


def _limit(name: str) -> int:
    return source_limit(SOURCE, f"NF4_{name}")


# The kernel's limits, defined in nf4_gemv.cu and read from it.
MAX_ROWS = _limit("MAX_ROWS")  # rows of x one launch takes
MAX_PARTS = _limit("MAX_PARTS")  # separately allocated row blocks one launch reads (q/k/v)
PART_ROWS_MULTIPLE = _limit("PART_ROWS_MULTIPLE")  # every tile height divides it: no tile spans two parts

MIN_CAPABILITY = (8, 0)  # bf16x2 FMA (fma.rn.bf16x2) and cvt.rn.bf16x2
TABLE_BYTES = 256 * 32 * 4  # 256 pairs, one copy per lane
WIDE_TABLE_BYTES = 256 * 64 * 4  # rows of 256 bytes: a byte's offset is one prmt

# Shared memory per SM by compute capability, and what the driver keeps of it per block.
SHARED_PER_SM = {(8, 0): 164 * 1024, (8, 6): 100 * 1024, (8, 7): 164 * 1024, (8, 9): 100 * 1024, (9, 0): 228 * 1024}
RESERVED_SHARED_PER_BLOCK = 1024


class CudaKernelUnavailable(RuntimeError):
    """NVRTC or the driver could not build or load the kernel here."""


@dataclass(frozen=True)
class Launch:
    tile_rows: int  # NT
    chunks_per_thread: int  # CPT
    blocks_per_sm: int  # MIN_BLOCKS, and the grid's blocks per SM where shared memory allows
    # The 64 KB table whose offsets take one prmt per byte instead of a shift and a mask
    # (fewer instructions; fewer blocks fit an SM).
    wide: bool = False
    # Sets of threads in a block, each walking all of K for tile_rows / row_groups of the rows:
    # 2 where one set would leave half a warp idle (K = 3584: 112 chunks).
    row_groups: int = 1

    def threads(self, k: int) -> int:
        chunks = k // 32
        per_thread = -(-chunks // self.chunks_per_thread)
        if self.row_groups == 1:
            return min(1024, -(-per_thread // 32) * 32)
        return self.row_groups * -(-per_thread // 16) * 16


def pair_table(code: torch.Tensor) -> torch.Tensor:
    """256 int32 words: word b holds bf16(code[b >> 4]) in its low half and bf16(code[b & 15])
    in its high half -- the two weights of a packed byte (high nibble = even element), in the
    order x's bf16 pairs are stored."""
    bits = code.detach().float().cpu().to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xFFFF
    byte = torch.arange(256)
    words = bits[byte >> 4] | (bits[byte & 15] << 16)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def shared_bytes(k: int, launch: Launch, rows: int) -> int:
    """Dynamic shared memory of a block: the table, then two buffers of per-warp partial sums."""
    table = WIDE_TABLE_BYTES if launch.wide else TABLE_BYTES
    return table + 2 * (launch.threads(k) // 32) * launch.tile_rows * rows * 4


def grid_size(tiles: int, sms: int, blocks_per_sm: int, shared_per_block: int, shared_per_sm: int | None) -> int:
    """Blocks to launch: persistent blocks should all be resident at once (a block that waits
    for a second wave builds its table again for fewer tiles), so blocks per SM are capped by
    the shared memory an SM has (an A10G fits three 33 KB tables, an H100/H200 six)."""
    if shared_per_sm:
        blocks_per_sm = max(1, min(blocks_per_sm, shared_per_sm // (shared_per_block + RESERVED_SHARED_PER_BLOCK)))
    return min(tiles, sms * blocks_per_sm)


# Best launch per K on an H200 (sm_90) at batch 1, from a sweep of every candidate
# (bench/gpu/kernel_bench.py --sweep; docs/kernels.md).
MEASURED_SM90 = {
    3584: Launch(8, 1, 2, wide=True, row_groups=2),
    4096: Launch(4, 1, 3, wide=True),
    5120: Launch(4, 1, 3, wide=True),
    14336: Launch(4, 1, 2, wide=True),
    18944: Launch(2, 2, 2, wide=True),
}


def default_launch(n: int, k: int, rows: int, capability: tuple[int, int] | None = None) -> Launch:
    """The launch for `rows` rows of x. Its K partition (chunks per thread, row groups, hence
    threads) is always the one-row launch's, so a row's sum is the same bits at any batch size
    (nf4_gemv.cu); only tile height, blocks per SM and table width follow the rows."""
    one_row = _one_row_launch(n, k, min(rows, 2), capability)
    small = one_row.threads(k) <= SMALL_BLOCK_THREADS
    if rows == 1 or (rows == 2 and small):
        return one_row
    # x takes 16 registers per row and chunk. From a sweep of the writer's gate+up on an H100
    # (docs/kernels.md): 3-4 rows, 2-row tiles at 2 blocks per SM; 5-8 rows, 4-row tiles with
    # the SM's registers to one block. Blocks of more threads take 2-row tiles, one per SM.
    # None of these spill registers on sm_86 or sm_90 (ptxas' count).
    if not small:
        tile_rows, blocks_per_sm = 2, 1
    elif rows <= 4:
        tile_rows, blocks_per_sm = 2, 2
    else:
        tile_rows, blocks_per_sm = 4, 1
    tile_rows = max(tile_rows, one_row.row_groups)
    launch = Launch(tile_rows, one_row.chunks_per_thread, blocks_per_sm, one_row.wide, one_row.row_groups)
    if capability in SHARED_PER_SM:
        fits = SHARED_PER_SM[capability] // (shared_bytes(k, launch, rows) + RESERVED_SHARED_PER_BLOCK)
        launch = Launch(tile_rows, launch.chunks_per_thread, max(1, min(blocks_per_sm, fits)), launch.wide, launch.row_groups)
    return launch


# Blocks of at most this many threads hold MAX_ROWS rows of x in registers (K <= 5120).
SMALL_BLOCK_THREADS = 160


def rows_per_launch(k: int, capability: tuple[int, int] | None = None) -> int:
    """Rows of x one launch takes for this K: MAX_ROWS while a block is at most
    SMALL_BLOCK_THREADS threads, else 4 (K = 14336's 448 threads and K = 3584's 224 spill
    registers at 8 rows)."""
    launch = _one_row_launch(k, k, 1, capability)
    return MAX_ROWS if launch.threads(k) <= SMALL_BLOCK_THREADS else min(4, MAX_ROWS)


def _one_row_launch(n: int, k: int, rows: int, capability: tuple[int, int] | None) -> Launch:
    """The measured launch for this K on Hopper (1-2 rows), else a rule: the narrow (32 KB)
    table; up to 512 chunks (K <= 16384) 4-row tiles of one chunk per thread and as many blocks
    per SM as fit about 1024 threads, at most 4; past that 2-row tiles of two chunks per thread,
    2 blocks per SM (a thread holds twice the codes: with 4-row tiles or 3 blocks per SM they
    spill registers on sm_86). Never more blocks per SM than its shared memory holds at once:
    the launch bounds would only take registers from the blocks that run."""
    if capability == (9, 0) and k in MEASURED_SM90:
        return MEASURED_SM90[k]
    if k // 32 <= 512:
        tile_rows, chunks_per_thread = 4, 1
        blocks_per_sm = max(1, min(4, 1024 // Launch(tile_rows, chunks_per_thread, 1).threads(k)))
    else:
        tile_rows, chunks_per_thread, blocks_per_sm = 2, 2, 2
    launch = Launch(tile_rows, chunks_per_thread, blocks_per_sm)
    if capability in SHARED_PER_SM:
        fits = SHARED_PER_SM[capability] // (shared_bytes(k, launch, rows) + RESERVED_SHARED_PER_BLOCK)
        launch = Launch(tile_rows, chunks_per_thread, max(1, min(blocks_per_sm, fits)))
    return launch


@dataclass(frozen=True)
class Variant:
    """Everything one binary is compiled for (the #defines of nf4_gemv.cu)."""

    k: int
    launch: Launch
    rows: int  # MX
    has_bias: bool = False
    parts: bool = False  # up to MAX_PARTS weights (PARTS), else one
    norm: bool = False  # x made from residual + delta (NORM)
    rows_exact: bool = True  # the tile height divides N (ROWS_EXACT)

    def defines(self) -> dict[str, int]:
        launch = self.launch
        return {
            "NT": launch.tile_rows, "CPT": launch.chunks_per_thread, "THREADS": launch.threads(self.k),
            "MIN_BLOCKS": launch.blocks_per_sm, "MX": self.rows, "CHUNKS": self.k // 32,
            "HAS_BIAS": int(self.has_bias), "WIDE": int(launch.wide), "PARTS": MAX_PARTS if self.parts else 1,
            "NORM": int(self.norm), "ROWS_EXACT": int(self.rows_exact), "GROUPS": launch.row_groups,
        }

    def shared_bytes(self) -> int:
        return shared_bytes(self.k, self.launch, self.rows)


def kernel_source(variant: Variant) -> str:
    """nf4_gemv.cu with the variant's #defines in front: what NVRTC compiles."""
    return "".join(f"#define {name} {value}\n" for name, value in variant.defines().items()) + SOURCE


def _nvrtc_library() -> ctypes.CDLL:
    from torch.cuda import _utils as cuda_utils

    return cuda_utils._get_gpu_rtc_library()


def compile_cubin(variant: Variant | None, arch: str, *, verbose: bool = False, text: str | None = None) -> tuple[bytes, str]:
    """(cubin, NVRTC's log) for `variant` on sm_`arch` (e.g. "86"); no GPU is needed.
    `verbose` asks ptxas for its register and spill counts in the log; `text` replaces
    `kernel_source(variant)` (another version of the kernel, for A/B runs)."""
    nvrtc = _nvrtc_library()
    program = ctypes.c_void_p()

    def check(result: int, what: str) -> None:
        if result != 0:
            raise CudaKernelUnavailable(f"NVRTC {what} failed with code {result}")

    def log() -> str:
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        text = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, text)
        return text.value.decode(errors="replace")

    source = (kernel_source(variant) if text is None else text).encode()
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, SOURCE_PATH.name.encode(), 0, None, None), "create")
    try:
        options = [f"--gpu-architecture=sm_{arch}".encode(), b"--std=c++17"]
        if verbose:
            options.append(b"--ptxas-options=-v")
        array = (ctypes.c_char_p * len(options))(*options)
        if nvrtc.nvrtcCompileProgram(program, len(options), array) != 0:
            raise CudaKernelUnavailable(f"NVRTC compilation failed:\n{log()}")
        size = ctypes.c_size_t()
        check(nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size)), "cubin size")
        cubin = ctypes.create_string_buffer(size.value)
        check(nvrtc.nvrtcGetCUBIN(program, cubin), "cubin")
        return cubin.raw, log()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


_compile_lock = threading.Lock()


def load_kernel(arch: str, text: str, name: str, shared_bytes: int):
    """Kernel `name` of source `text`, built by NVRTC for sm_`arch` and loaded by the driver,
    opted in to `shared_bytes` of dynamic shared memory."""
    from torch.cuda import _utils as cuda_utils

    with _compile_lock:
        try:
            cubin, _ = compile_cubin(None, arch, text=text)
            kernel = cuda_utils._cuda_load_module(cubin, [name])[name]
            if shared_bytes >= 48 * 1024:  # past the default dynamic shared memory: opt in
                kernel.set_shared_memory_config(shared_bytes)
        except CudaKernelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - private torch API or driver refused the module
            raise CudaKernelUnavailable(f"loading {name} failed: {exc!r}") from exc
    return kernel


@functools.cache
def _compiled(arch: str, variant: Variant):
    return load_kernel(arch, kernel_source(variant), KERNEL_NAME, variant.shared_bytes())


def kernel_unavailable(device: torch.device) -> str:
    """'' when the CUDA kernel can run on `device` (a CUDA GPU of compute capability 8.0 or
    newer where NVRTC builds and the driver loads it), else why not. Checked once per device."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"not a CUDA device ({device})"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _unavailable(index)


@functools.cache
def _unavailable(index: int) -> str:
    major, minor = torch.cuda.get_device_capability(index)
    if (major, minor) < MIN_CAPABILITY:
        return f"the CUDA NF4 kernel needs compute capability {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}, not {major}.{minor}"
    try:
        _nvrtc_library()
    except Exception as exc:  # noqa: BLE001 - a missing or unloadable library
        return f"NVRTC cannot be loaded: {exc}"
    try:
        with torch.cuda.device(index):  # the smallest variant: NVRTC builds it, the driver loads it
            _compiled(f"{major}{minor}", Variant(64, Launch(4, 1, 1), 1))
    except CudaKernelUnavailable as exc:
        return str(exc)
    return ""


def parts_unsupported(parts: list[PackedNF4]) -> str:
    """'' when one launch can read these weights as parts of one, else why not."""
    if not 1 <= len(parts) <= MAX_PARTS:
        return f"the CUDA kernel reads 1..{MAX_PARTS} parts, not {len(parts)}"
    if any(part.out_features % PART_ROWS_MULTIPLE for part in parts[:-1]):
        return f"a part's rows are not a multiple of {PART_ROWS_MULTIPLE}"
    first = parts[0]
    for part in parts:
        if part.nested is not None:
            return "the CUDA kernel reads fp32 absmax only (no double quantization)"
        if part.in_features % 64 or part.in_features != first.in_features:
            return "K must be a multiple of 64 and the same for every part"
        if part.packed.device != first.packed.device or not torch.equal(part.code, first.code):
            return "parts must share a device and a code table"
    return ""


class CudaNF4Weight:
    """PackedNF4 weights (fp32 absmax, K a multiple of 64) ready for the CUDA kernel: one
    weight, or up to MAX_PARTS with the same K whose rows one launch computes in order, each
    read where it was loaded (nothing is copied)."""

    def __init__(self, weight: PackedNF4 | list[PackedNF4], bias: torch.Tensor | None) -> None:
        parts = list(weight) if isinstance(weight, (list, tuple)) else [weight]
        why_not = parts_unsupported(parts)
        if why_not:
            raise ValueError(why_not)
        first = parts[0]
        device = first.packed.device
        self.parts = parts
        self.out_features = sum(part.out_features for part in parts)
        self.in_features = first.in_features
        self.table = pair_table(first.code).to(device)
        self.bias = bias.detach().float().contiguous() if bias is not None else None
        if self.bias is not None and self.bias.numel() != self.out_features:
            raise ValueError(f"bias has {self.bias.numel()} values for {self.out_features} rows")
        self._dummy = self.table
        ends = [sum(part.out_features for part in parts[: i + 1]) for i in range(len(parts))]
        padded = parts + [parts[-1]] * (MAX_PARTS - len(parts))
        ends += [ends[-1]] * (MAX_PARTS - len(ends))
        # weight0, absmax0, end0, weight1, absmax1, end1, weight2, absmax2 (kernel order)
        self._part_arguments = [
            padded[0].packed, padded[0].absmax, ends[0],
            padded[1].packed, padded[1].absmax, ends[1],
            padded[2].packed, padded[2].absmax,
        ]
        props = torch.cuda.get_device_properties(device)
        self.arch = f"{props.major}{props.minor}"
        self.capability = (props.major, props.minor)
        self.shared_per_sm = getattr(props, "shared_memory_per_multiprocessor", None)
        self.sms = props.multi_processor_count

    @property
    def device(self) -> torch.device:
        return self.table.device


@dataclass(frozen=True)
class NormInput:
    """x made in the kernel (NORM): x = rms_norm(residual + delta) * weight, and residual + delta
    stored to residual_out. The residual is the launch's x argument."""

    delta: torch.Tensor  # [M, K] bf16, rows as the residual's
    weight: torch.Tensor  # [K] bf16, the RMSNorm's
    eps: float
    residual_out: torch.Tensor  # [M, K] bf16, not the residual itself


def _arguments(x: torch.Tensor, weight: CudaNF4Weight, out: torch.Tensor, norm: NormInput | None) -> list:
    tail = [norm.delta, norm.weight, norm.residual_out, norm.eps] if norm is not None else [x, x, out, 0.0]
    return [
        *weight._part_arguments, weight.table, x, x.stride(0) // 2, out, out.stride(0),
        weight.bias if weight.bias is not None else weight._dummy, weight.out_features, *tail,
    ]


def variant_for(x_rows: int, weight: CudaNF4Weight, launch: Launch, norm: bool = False) -> Variant:
    return Variant(
        k=weight.in_features, launch=launch, rows=x_rows, has_bias=weight.bias is not None,
        parts=len(weight.parts) > 1, norm=norm, rows_exact=weight.out_features % launch.tile_rows == 0,
    )


def launch_gemv(
    x: torch.Tensor, weight: CudaNF4Weight, out: torch.Tensor, launch: Launch, norm: NormInput | None = None
) -> torch.Tensor:
    """out = x @ W^T (+ bias); with `norm`, x is made from a residual first (NormInput)."""
    rows, k = x.shape
    variant = variant_for(rows, weight, launch, norm is not None)
    kernel = _compiled(weight.arch, variant)
    tiles = -(-weight.out_features // launch.tile_rows)
    shared = variant.shared_bytes()
    grid = grid_size(tiles, weight.sms, launch.blocks_per_sm, shared, weight.shared_per_sm)
    kernel(grid=(grid, 1, 1), block=(launch.threads(k), 1, 1), args=_arguments(x, weight, out, norm), shared_mem=shared)
    return out


def _aligned_rows(t: torch.Tensor, k: int) -> bool:
    """Whole bf16 rows of k, contiguous and 16-byte aligned."""
    return t.dtype == torch.bfloat16 and t.numel() % k == 0 and t.is_contiguous() and t.data_ptr() % 16 == 0


def norm_unsupported(weight: CudaNF4Weight, norm_weight: torch.Tensor) -> str:
    """'' when `norm_gemv` can make x for `weight` with this RMSNorm weight, else why not."""
    k = weight.in_features
    if not (_aligned_rows(norm_weight, k) and norm_weight.numel() == k) or norm_weight.device != weight.device:
        return "the RMSNorm weight is not one contiguous, 16-byte aligned bf16 row on the kernel's device"
    return ""


def norm_gemv(
    residual: torch.Tensor, delta: torch.Tensor, norm_weight: torch.Tensor, eps: float,
    residual_out: torch.Tensor, weight: CudaNF4Weight,
) -> torch.Tensor:
    """rms_norm(residual + delta) * norm_weight @ W^T (+ bias) row by row, with residual + delta
    stored to residual_out: a decoder layer's residual add, RMSNorm and projection in one launch
    (one per `rows_per_launch` rows). Each is [M, K] (or [M, 1, K]) bf16, contiguous and 16-byte
    aligned; returns [M, N]."""
    k = weight.in_features
    for name, t in (("residual", residual), ("delta", delta), ("residual_out", residual_out)):
        if not _aligned_rows(t, k) or t.numel() != residual.numel():
            raise ValueError(f"{name} must be contiguous, 16-byte aligned bf16 rows of {k}, as many as the residual's")
    if residual_out.data_ptr() == residual.data_ptr():
        raise ValueError("residual_out must not be the residual: other blocks still read it")
    rows = residual.numel() // k
    residual, delta, residual_out = residual.view(rows, k), delta.view(rows, k), residual_out.view(rows, k)
    out = torch.empty((rows, weight.out_features), dtype=torch.bfloat16, device=residual.device)
    step = rows_per_launch(k, weight.capability)
    for first in range(0, rows, step):
        part = slice(first, first + step)
        launch = default_launch(weight.out_features, k, len(range(rows)[part]), weight.capability)
        norm = NormInput(delta[part], norm_weight, float(eps), residual_out[part])
        launch_gemv(residual[part], weight, out[part], launch, norm)
    return out


def accepts(x: torch.Tensor) -> bool:
    """x [M, K] in a layout the kernel reads: bf16, 1 <= M <= MAX_ROWS, rows 16-byte aligned."""
    return (
        x.dtype == torch.bfloat16
        and 1 <= x.shape[0] <= MAX_ROWS
        and x.stride(1) == 1
        and x.data_ptr() % 16 == 0
        and (x.shape[0] == 1 or x.stride(0) % 8 == 0)
    )


def cuda_gemv(
    x: torch.Tensor, weight: CudaNF4Weight, out: torch.Tensor | None = None, *, launch: Launch | None = None
) -> torch.Tensor:
    """out[M, N] = x[M, K] @ W^T (+ bias), launched by `default_launch` unless given (then M <=
    MAX_ROWS); more rows than one launch takes are split into launches. The first call per
    variant compiles: warm up before capturing a CUDA graph."""
    rows = x.shape[0]
    step = MAX_ROWS if launch is not None else rows_per_launch(weight.in_features, weight.capability)
    if x.dim() != 2 or x.shape[1] != weight.in_features or not accepts(x[: min(rows, step)]) or (launch and rows > step):
        raise ValueError(f"x of shape {tuple(x.shape)} / strides {x.stride()} does not fit the CUDA kernel")
    if out is None:
        out = torch.empty((rows, weight.out_features), dtype=x.dtype, device=x.device)
    for first in range(0, rows, step):
        part = slice(first, first + step)
        count = len(range(rows)[part])
        chosen = launch or default_launch(weight.out_features, weight.in_features, count, weight.capability)
        launch_gemv(x[part], weight, out[part], chosen)
    return out


__all__ = [
    "MAX_PARTS", "MAX_ROWS", "PART_ROWS_MULTIPLE", "CudaKernelUnavailable", "CudaNF4Weight", "Launch", "NormInput",
    "Variant", "accepts", "compile_cubin", "cuda_gemv", "default_launch", "kernel_source", "kernel_unavailable",
    "launch_gemv", "norm_gemv", "norm_unsupported", "pair_table", "parts_unsupported", "rows_per_launch",
]
