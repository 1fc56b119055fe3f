"""The tensor-core NF4 launcher (kernels/nf4_mma.py) without a GPU: the limits and switches it
reads from nf4_mma.cu, the shared memory it asks for, the weights it takes and refuses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from pictale_server.kernels import nf4_mma
from pictale_server.kernels.nf4_mma import DEFAULT_LAUNCH, MAX_ROWS, TILE_ROWS, MmaLaunch, MmaVariant, launch_unsupported

KERNELS = Path(nf4_mma.__file__).parent
SHAPES = [  # (rows of each part, K) of both models' decode launches
    ((4096, 1024, 1024), 5120), ((5120,), 4096), ((14336, 14336), 5120), ((5120,), 14336),
    ((3584, 512, 512), 3584), ((3584,), 3584), ((18944, 18944), 3584), ((3584,), 18944),
]


def weight(parts: tuple[int, ...], k: int, capability=(8, 6)) -> SimpleNamespace:
    return SimpleNamespace(
        parts=[SimpleNamespace(out_features=n) for n in parts], in_features=k, capability=capability,
        out_features=sum(parts),
    )


def test_the_limits_are_read_from_the_cuda_source() -> None:
    assert (MAX_ROWS, TILE_ROWS) == (16, 16)
    assert f"#define NF4_MMA_MAX_ROWS {MAX_ROWS}" in nf4_mma.SOURCE


def test_the_launcher_passes_every_switch_the_source_has_and_no_other() -> None:
    switches = set(re.findall(r"^#ifndef (\w+)", nf4_mma.SOURCE, re.MULTILINE))
    variant = MmaVariant(5120, DEFAULT_LAUNCH, 9, has_bias=True, parts=True)
    assert set(variant.defines()) == switches
    header = nf4_mma.kernel_source(variant).split(nf4_mma.SOURCE)[0]
    assert "#define MX 9\n" in header and "#define PARTS 3\n" in header and "#define BLOCKS 80\n" in header


def test_the_source_defaults_are_the_default_launch_for_the_writers_k() -> None:
    defaults = dict(re.findall(r"^#ifndef (\w+)\n#define \1 (\d+)", nf4_mma.SOURCE, re.MULTILINE))
    assert {name: int(value) for name, value in defaults.items()} == MmaVariant(5120, DEFAULT_LAUNCH, 1).defines()


def test_shared_memory_is_the_table_two_sum_buffers_and_every_warps_ring() -> None:
    one = MmaVariant(5120, DEFAULT_LAUNCH, 1)
    stage = 16 * (4 * 32 + 32) + 16 * 4 * 4  # padded code rows, then the scales
    assert one.shared_bytes() == 256 * 32 * 4 + 2 * 4 * 16 * 8 * 4 + 4 * 3 * stage
    # rows 9-16 take a second set of sums; nothing else grows with the rows
    assert MmaVariant(5120, DEFAULT_LAUNCH, 16).shared_bytes() - one.shared_bytes() == 2 * 4 * 16 * 8 * 4
    assert MmaVariant(5120, DEFAULT_LAUNCH, 8).shared_bytes() == one.shared_bytes()


def test_every_decode_shape_of_both_models_fits_the_a10g_and_hopper() -> None:
    for parts, k in SHAPES:
        for capability in ((8, 6), (9, 0), (8, 0)):
            assert launch_unsupported(weight(parts, k, capability)) == "", (parts, k, capability)


def test_weights_the_kernel_does_not_tile_are_refused_with_the_reason() -> None:
    assert "multiple of 16" in launch_unsupported(weight((24, 8), 1024))
    assert "do not divide K" in launch_unsupported(weight((16,), 192))  # 3 blocks of 64
    assert "fewer steps" in launch_unsupported(weight((16,), 512))  # 2 steps for 4 warps
    assert "fewer steps" not in launch_unsupported(weight((16,), 512), MmaLaunch(warps=2))
    assert "compute capability" in launch_unsupported(weight((16,), 1024, (7, 5)))
    too_deep = MmaLaunch(stages=8)  # 8 stages a warp do not fit an A10G's 100 KB
    assert "shared memory" in launch_unsupported(weight((5120,), 4096), too_deep)


def test_importing_the_launcher_imports_no_triton() -> None:
    code = "import sys, pictale_server.kernels.nf4_mma; sys.exit('triton' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=KERNELS.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
