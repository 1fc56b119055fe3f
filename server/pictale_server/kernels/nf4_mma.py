"""The NF4 matrix-vector product on tensor cores (nf4_mma.cu): 1-16 rows of x in one launch at
nearly the cost of one row.

It reads the same weights as the CUDA-core kernel (a `CudaNF4Weight`: bitsandbytes' layout, one
to three parts, fp32 absmax) and is compiled by NVRTC at load like it. Past two rows it is the
faster kernel by far; at one row the CUDA-core kernel is (docs/kernels.md, "Tensor cores for
many rows"). Its launch depends on the weight's shape and the GPU alone, never on the rows, so
a row's result is the same bits at any batch size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from pictale_server.kernels.nf4_cuda import SHARED_PER_SM, CudaNF4Weight, load_kernel, source_limit

SOURCE_PATH = Path(__file__).with_name("nf4_mma.cu")
SOURCE = SOURCE_PATH.read_text()
KERNEL_NAME = "nf4_mma"

MAX_ROWS = source_limit(SOURCE, "NF4_MMA_MAX_ROWS")  # rows of x one launch takes
TILE_ROWS = source_limit(SOURCE, "NF4_MMA_TILE_ROWS")  # output rows of a tile: every part's rows a multiple
TABLE_BYTES = 256 * 32 * 4  # 256 pairs, one copy per lane
RESERVED_SHARED_PER_BLOCK = 1024


@dataclass(frozen=True)
class MmaLaunch:
    warps: int = 4  # W: warps per block, each a contiguous range of K
    step_blocks: int = 4  # UB: 64-weight blocks per step (a multiple of 4)
    stages: int = 3  # STAGES: steps in each warp's shared-memory ring
    blocks_per_sm: int = 4  # MIN_BLOCKS, and the grid's blocks per SM where shared memory allows


# The launch for every shape: best of a sweep on an H200 of 2-8 warps, 4- or 8-block steps,
# 3-6 stages and 1-4 blocks per SM on both models' decode shapes (docs/kernels.md). Shared
# memory caps the blocks per SM: 3 on an H100/H200, 1 on an A10G.
DEFAULT_LAUNCH = MmaLaunch()


@dataclass(frozen=True)
class MmaVariant:
    """Everything one binary is compiled for (the #defines of nf4_mma.cu)."""

    k: int
    launch: MmaLaunch
    rows: int  # MX
    has_bias: bool = False
    parts: bool = False

    def defines(self) -> dict[str, int]:
        launch = self.launch
        return {
            "BLOCKS": self.k // 64, "W": launch.warps, "UB": launch.step_blocks, "STAGES": launch.stages,
            "MIN_BLOCKS": launch.blocks_per_sm, "MX": self.rows, "HAS_BIAS": int(self.has_bias),
            "PARTS": 3 if self.parts else 1,
        }

    def shared_bytes(self) -> int:
        """The table, two buffers of the warps' sums, each warp's ring of steps."""
        launch = self.launch
        sums = 2 * launch.warps * TILE_ROWS * 8 * -(-self.rows // 8) * 4
        stage = TILE_ROWS * (launch.step_blocks * 32 + 32) + TILE_ROWS * launch.step_blocks * 4
        return TABLE_BYTES + sums + launch.warps * launch.stages * stage


def kernel_source(variant: MmaVariant) -> str:
    """nf4_mma.cu with the variant's #defines in front: what NVRTC compiles."""
    return "".join(f"#define {name} {value}\n" for name, value in variant.defines().items()) + SOURCE


@functools.cache
def _compiled(arch: str, variant: MmaVariant):
    return load_kernel(arch, kernel_source(variant), KERNEL_NAME, variant.shared_bytes())


def launch_unsupported(weight: CudaNF4Weight, launch: MmaLaunch = DEFAULT_LAUNCH) -> str:
    """'' when the tensor-core kernel covers `weight` exactly with `launch`, else why not."""
    blocks = weight.in_features // 64
    if blocks % launch.step_blocks:
        return f"{launch.step_blocks}-block steps do not divide K = {weight.in_features}"
    if blocks // launch.step_blocks < launch.warps:
        return f"K = {weight.in_features} has fewer steps than the launch's {launch.warps} warps"
    if any(part.out_features % TILE_ROWS for part in weight.parts):
        return f"a part's rows are not a multiple of {TILE_ROWS}"
    if weight.capability not in SHARED_PER_SM:
        return f"no shared memory figure for compute capability {weight.capability}"
    shared = MmaVariant(weight.in_features, launch, MAX_ROWS).shared_bytes()
    if shared + RESERVED_SHARED_PER_BLOCK > SHARED_PER_SM[weight.capability]:
        return f"a block's {shared} bytes of shared memory do not fit an SM"
    return ""


def accepts(x: torch.Tensor) -> bool:
    """x [M, K] in a layout the kernel reads: bf16, 1 <= M <= MAX_ROWS, rows 16-byte aligned."""
    return (
        x.dim() == 2 and x.dtype == torch.bfloat16 and 1 <= x.shape[0] <= MAX_ROWS and x.stride(1) == 1
        and x.data_ptr() % 16 == 0 and (x.shape[0] == 1 or x.stride(0) % 8 == 0)
    )


def mma_gemv(
    x: torch.Tensor, weight: CudaNF4Weight, out: torch.Tensor | None = None, launch: MmaLaunch = DEFAULT_LAUNCH
) -> torch.Tensor:
    """out[M, N] = x[M, K] @ W^T (+ bias) for M <= 16. The first call per variant compiles:
    warm up before capturing a CUDA graph."""
    if not accepts(x) or x.shape[1] != weight.in_features:
        raise ValueError(f"x of shape {tuple(x.shape)} / strides {x.stride()} does not fit the tensor-core kernel")
    why_not = launch_unsupported(weight, launch)
    if why_not:
        raise ValueError(why_not)
    rows, k = x.shape
    if out is None:
        out = torch.empty((rows, weight.out_features), dtype=x.dtype, device=x.device)
    variant = MmaVariant(k, launch, rows, weight.bias is not None, len(weight.parts) > 1)
    kernel = _compiled(weight.arch, variant)
    shared = variant.shared_bytes()
    per_sm = max(1, min(launch.blocks_per_sm, SHARED_PER_SM[weight.capability] // (shared + RESERVED_SHARED_PER_BLOCK)))
    grid = min(weight.out_features // TILE_ROWS, weight.sms * per_sm)
    args = [
        *weight._part_arguments, weight.table, x, x.stride(0), out, out.stride(0),
        weight.bias if weight.bias is not None else weight._dummy, weight.out_features,
    ]
    kernel(grid=(grid, 1, 1), block=(32 * launch.warps, 1, 1), args=args, shared_mem=shared)
    return out


__all__ = ["DEFAULT_LAUNCH", "MAX_ROWS", "MmaLaunch", "MmaVariant", "accepts", "kernel_source", "launch_unsupported", "mma_gemv"]
