"""Same-process A/B of the CUDA NF4 kernel against another version of its source.

    git show <commit>:server/pictale_server/kernels/nf4_gemv.cu > /tmp/baseline.cu
    python3 bench/gpu/nf4_ab.py /tmp/baseline.cu [LABEL:NAME=VALUE,...]   # $OUT/ab.json

With PICTALE_AB_BASELINE_LAUNCHES set (JSON: {"K": [tile rows, chunks per thread, blocks per
SM, wide, row groups]}, the last ones optional), the baseline runs at those launches, its own
best, instead of today's.

Each LABEL:NAME=VALUE,... argument adds the current source compiled with those extra defines
(an experiment's compile-time switch) to the comparison.

The baseline must take the current kernel's arguments (nf4_cuda._arguments). Both run on the
same weights, launches and CUDA graphs over rotating copies (to defeat the L2 cache), three
times each, alternating; outputs must be equal bit for bit (or, where the arithmetic's order
changed on purpose, within the relative error each has against dequantize + matmul in fp32,
which is reported). Needs bitsandbytes (kernel_bench.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "server"), str(Path(__file__).parent)]
import bitsandbytes.functional as bnbf  # noqa: E402
import torch  # noqa: E402
from kernel_bench import ROTATION_BYTES, copy_bandwidth, graph_time, quantize, rel_error  # noqa: E402
from torch.cuda import _utils as cuda_utils  # noqa: E402

from pictale_server.kernels import nf4_cuda  # noqa: E402
from pictale_server.kernels.nf4_cuda import CudaNF4Weight, Launch, default_launch, grid_size, launch_gemv  # noqa: E402
from pictale_server.kernels.nf4_format import packed_from_quant_state  # noqa: E402

BASELINE_LAUNCHES = json.loads(os.environ.get("PICTALE_AB_BASELINE_LAUNCHES", "{}"))
SHAPES = (("writer gate_up fused", 28672, 5120), ("writer qkv fused", 6144, 5120), ("writer down", 5120, 14336),
          ("writer o", 5120, 4096), ("vision gate_up fused", 37888, 3584), ("vision down", 3584, 18944))


class Other:
    """Another source of the kernel, compiled per variant like nf4_cuda compiles its own."""

    def __init__(self, source: str, extra: dict | None = None) -> None:
        self.source = source
        self.extra = extra or {}
        self.kernels: dict = {}

    def kernel(self, variant: nf4_cuda.Variant):
        if variant not in self.kernels:
            defines = {**variant.defines(), **self.extra}
            source = "".join(f"#define {name} {value}\n" for name, value in defines.items()) + self.source
            props = torch.cuda.get_device_properties(0)
            cubin, _ = nf4_cuda.compile_cubin(variant, f"{props.major}{props.minor}", text=source)
            kernel = cuda_utils._cuda_load_module(cubin, [nf4_cuda.KERNEL_NAME])[nf4_cuda.KERNEL_NAME]
            kernel.set_shared_memory_config(variant.shared_bytes())
            self.kernels[variant] = kernel
        return self.kernels[variant]

    def __call__(self, x, weight: CudaNF4Weight, out, launch: Launch) -> None:
        variant = nf4_cuda.variant_for(x.shape[0], weight, launch)
        shared = variant.shared_bytes()
        tiles = -(-weight.out_features // launch.tile_rows)
        grid = grid_size(tiles, weight.sms, launch.blocks_per_sm, shared, weight.shared_per_sm)
        self.kernel(variant)(grid=(grid, 1, 1), block=(launch.threads(x.shape[1]), 1, 1), shared_mem=shared,
                             args=nf4_cuda._arguments(x, weight, out, None))


def variants() -> dict:
    found = {"old": Other(Path(sys.argv[1]).read_text()), "new": launch_gemv}
    for argument in sys.argv[2:]:
        label, _, defines = argument.partition(":")
        found[label] = Other(nf4_cuda.SOURCE, dict(item.split("=") for item in defines.split(",") if item))
    return found


def main() -> None:
    runs = variants()
    bandwidth = copy_bandwidth()
    rows = []
    for name, n, k in SHAPES:
        packed, state = quantize(n, k)
        weight_bytes = packed.numel() + state.absmax.numel() * 4
        copies = max(2, min(64, math.ceil(ROTATION_BYTES / weight_bytes)))
        weights = [CudaNF4Weight(packed_from_quant_state(packed.clone(), state), None) for _ in range(copies)]
        x = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
        reference = x.float() @ bnbf.dequantize_4bit(packed, state).float().t()
        outs = [torch.empty(1, n, dtype=torch.bfloat16, device="cuda") for _ in weights]
        launch = default_launch(n, k, 1, weights[0].capability)
        launches = {label: launch for label in runs}
        if str(k) in BASELINE_LAUNCHES:
            launches["old"] = Launch(*BASELINE_LAUNCHES[str(k)])
        row = {"shape": name, "launches": {label: dataclasses.astuple(value) for label, value in launches.items()}}
        first = None
        for label, run in runs.items():
            run(x, weights[0], outs[0], launches[label])
            first = outs[0].clone() if first is None else first
            row[f"{label}_equal_to_old"] = bool(torch.equal(first, outs[0]))
            row[f"{label}_rel_err"] = rel_error(outs[0], reference)
        for _ in range(3):
            for label, run in runs.items():
                calls = [lambda w=w, o=o, run=run, launch=launches[label]: run(x, w, o, launch) for w, o in zip(weights, outs)]
                row.setdefault(f"{label}_us", []).append(round(graph_time(calls, replays=20) * 1e6, 2))
        for label in runs:
            row[f"{label}_pct"] = round(weight_bytes / (min(row[f"{label}_us"]) * 1e-6) / bandwidth * 100, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
        del weights, outs
        torch.cuda.empty_cache()
    report = {"device": torch.cuda.get_device_name(), "copy_tb_s": bandwidth / 1e12, "rows": rows}
    Path(os.environ.get("OUT", "."), "ab.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
