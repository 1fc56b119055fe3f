"""The tensor-core NF4 GEMV (nf4_mma_source.py): compiling, choosing a launch, calling.

Same inputs as the pair-table kernel (nf4_cuda.py: bitsandbytes' codes and fp32 absmax, the
256-entry pair table) and the same NVRTC route, for 1..4 rows of x on sm_80 and newer. A
launch is (warps per block, ring depth, blocks per SM); blocks are persistent and each needs
64 KB of shared memory for the table, so an A10G (100 KB per SM) runs one per SM and an
H100/H200 (228 KB) up to three.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .nf4_cuda import CudaKernelUnavailable, CudaNF4Weight, _compile_lock, _nvrtc_cubin
from .nf4_mma_source import SOURCE

MAX_ROWS = 4  # B has 8 columns, but past 4 rows of x the fragments spill registers
TABLE_BYTES = 256 * 64 * 4
SHARED_RESERVED = 1024  # what the driver keeps per block


@dataclass(frozen=True)
class MmaLaunch:
    warps: int
    depth: int
    blocks_per_sm: int


def shared_bytes(launch: MmaLaunch, k: int, rows: int) -> int:
    """The table, x (bf16) and the double-buffered partial sums of a tile."""
    return TABLE_BYTES + rows * k * 2 + 2 * launch.warps * 16 * rows * 4


def grid_size(tiles: int, sms: int, launch: MmaLaunch, k: int, rows: int, shared_per_sm: int | None) -> int:
    """Persistent blocks, all resident at once: blocks per SM capped by shared memory."""
    blocks_per_sm = launch.blocks_per_sm
    if shared_per_sm:
        blocks_per_sm = max(1, min(blocks_per_sm, shared_per_sm // (shared_bytes(launch, k, rows) + SHARED_RESERVED)))
    return min(tiles, sms * blocks_per_sm)


@functools.cache
def _compiled(arch: str, kb: int, launch: MmaLaunch, rows: int, has_bias: bool, ragged: bool):
    from torch.cuda import _utils as cuda_utils

    defines = {
        "WARPS": launch.warps, "DEPTH": launch.depth, "MIN_BLOCKS": launch.blocks_per_sm, "MX": rows, "KB": kb,
        "HAS_BIAS": int(has_bias), "RAGGED": int(ragged),
    }
    header = "".join(f"#define {name} {value}\n" for name, value in defines.items())
    with _compile_lock:
        try:
            cubin = _nvrtc_cubin(header + SOURCE, arch)
            kernel = cuda_utils._cuda_load_module(cubin, ["nf4_gemv_mma"])["nf4_gemv_mma"]
            kernel.set_shared_memory_config(shared_bytes(launch, kb * 64, rows))
        except CudaKernelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - private torch API or driver refused the module
            raise CudaKernelUnavailable(f"loading the kernel failed: {exc!r}") from exc
    return kernel


def default_launch(n: int, k: int, rows: int, capability: tuple[int, int] | None = None) -> MmaLaunch:
    """8 warps split K; a ring of 8 items; two blocks per SM where shared memory allows."""
    return MmaLaunch(warps=8, depth=8, blocks_per_sm=2)


CANDIDATES = [
    MmaLaunch(4, 8, 3), MmaLaunch(8, 4, 3), MmaLaunch(8, 6, 2), MmaLaunch(8, 8, 1), MmaLaunch(8, 8, 2),
    MmaLaunch(8, 12, 1), MmaLaunch(16, 4, 1), MmaLaunch(16, 6, 1), MmaLaunch(16, 8, 1),
]


def candidates(k: int) -> list[MmaLaunch]:
    return list(CANDIDATES)


def accepts(x: torch.Tensor) -> bool:
    """x [M, K] in a layout the kernel reads: bf16, M <= 4, rows 16-byte aligned."""
    return (
        x.dtype == torch.bfloat16
        and 1 <= x.shape[0] <= MAX_ROWS
        and x.stride(1) == 1
        and x.data_ptr() % 16 == 0
        and (x.shape[0] == 1 or x.stride(0) % 8 == 0)
    )


def launch_mma(x: torch.Tensor, weight: CudaNF4Weight, out: torch.Tensor, launch: MmaLaunch) -> torch.Tensor:
    rows, k = x.shape
    n = weight.out_features
    kernel = _compiled(weight.arch, k // 64, launch, rows, weight.bias is not None, n % 16 != 0)
    grid = grid_size(-(-n // 16), weight.sms, launch, k, rows, weight.shared_per_sm)
    kernel(
        grid=(grid, 1, 1), block=(launch.warps * 32, 1, 1), shared_mem=shared_bytes(launch, k, rows),
        args=[weight.codes, weight.absmax, weight.table, x, x.stride(0) // 2, out, out.stride(0),
              weight.bias if weight.bias is not None else weight._dummy, n],
    )
    return out


def mma_gemv(
    x: torch.Tensor, weight: CudaNF4Weight, out: torch.Tensor | None = None, *, launch: MmaLaunch | None = None
) -> torch.Tensor:
    """out[M, N] = x[M, K] @ W^T (+ bias), M <= 4. The first call per shape compiles: warm up
    before capturing a CUDA graph."""
    if not accepts(x) or x.shape[1] != weight.in_features:
        raise ValueError(f"x of shape {tuple(x.shape)} / strides {x.stride()} does not fit the mma kernel")
    if out is None:
        out = torch.empty((x.shape[0], weight.out_features), dtype=x.dtype, device=x.device)
    if launch is None:
        launch = default_launch(weight.out_features, weight.in_features, x.shape[0], weight.capability)
    return launch_mma(x, weight, out, launch)
