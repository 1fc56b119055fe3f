"""Same-process A/B of the CUDA NF4 kernel against an earlier version of its source.

    git show <commit>:server/pictale_server/kernels/nf4_cuda_source.py > /tmp/baseline.py
    python3 bench/gpu/nf4_parts_ab.py /tmp/baseline.py [LABEL:NAME=VALUE,...]   # $OUT/ab.json

With PICTALE_AB_BASELINE_LAUNCHES set (JSON: {"K": [tile rows, chunks per thread, blocks per
SM, wide, row groups]}, the last ones optional), the baseline runs at those launches, its own
best, instead of today's.

Each LABEL:NAME=VALUE,... argument adds the current source compiled with those extra defines
(an experiment's compile-time switch) to the comparison.

The baseline may be the one-weight kernel (arguments: weight, absmax, table, x, x stride, out,
out stride, bias, n), as before weights could be read as parts, or a later one that reads parts
(compiled with PARTS=1 and launched the usual way). Both run on the same weights, launches and
CUDA graphs over rotating copies (to defeat the L2 cache), three times each, alternating, with
dependent launch off so each kernel's start-up counts in full; outputs must be equal bit for
bit (or, where the arithmetic's order changed on purpose, within the relative error each
has against dequantize + matmul in fp32, which is reported). Results:
bench/results/nf4_parts_ab_h200.json, nf4_table_build_ab_h200.json, nf4_load_order_ab_h200.json.
"""
import json
import math
import os
import runpy
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "server"), str(Path(__file__).parent)]
import torch
from torch.cuda import _utils as cu

import bitsandbytes.functional as bnbf
from kernel_bench import ROTATION_BYTES, copy_bandwidth, graph_time, quantize, rel_error
from pictale_server.kernels import dependent_launch, nf4_cuda
from pictale_server.kernels.nf4_cuda import CudaNF4Weight, Launch, default_launch, grid_size, launch_gemv, shared_bytes
from pictale_server.kernels.nf4_format import packed_from_quant_state

BASELINE_LAUNCHES = json.loads(os.environ.get("PICTALE_AB_BASELINE_LAUNCHES", "{}"))
SHAPES = (("writer gate_up fused", 28672, 5120), ("writer qkv fused", 6144, 5120), ("writer down", 5120, 14336),
          ("writer o", 5120, 4096), ("vision gate_up fused", 37888, 3584), ("vision down", 3584, 18944))


class Baseline:
    """The earlier kernel source, compiled per (K, launch, rows) like nf4_cuda does."""

    def __init__(self, source: str, extra: dict | None = None) -> None:
        self.source = source
        self.parts = "weight0" in source
        self.extra = extra or {}
        self.kernels: dict = {}

    def kernel(self, k: int, launch, rows: int, rows_exact: bool):
        key = (k, launch, rows, rows_exact)
        if key not in self.kernels:
            defines = {"NT": launch.tile_rows, "CPT": launch.chunks_per_thread, "THREADS": launch.threads(k),
                       "MX": rows, "CHUNKS": k // 32, "PAIRS": 1, "HAS_BIAS": 0, "WIDE": int(launch.wide),
                       "MIN_BLOCKS": launch.blocks_per_sm, "ROWS_EXACT": int(rows_exact),
                       "GROUPS": launch.row_groups,
                       **({"PARTS": 1, "PDL": 0} if self.parts else {}), **self.extra}
            source = "".join(f"#define {name} {value}\n" for name, value in defines.items()) + self.source
            props = torch.cuda.get_device_properties(0)
            cubin = nf4_cuda._nvrtc_cubin(source, f"{props.major}{props.minor}")
            kernel = cu._cuda_load_module(cubin, ["nf4_gemv_cuda"])["nf4_gemv_cuda"]
            kernel.set_shared_memory_config(shared_bytes(k, launch, rows))
            self.kernels[key] = kernel
        return self.kernels[key]

    def __call__(self, x, weight: CudaNF4Weight, out, launch) -> None:
        k, rows = x.shape[1], x.shape[0]
        shared = shared_bytes(k, launch, rows)
        tiles = -(-weight.out_features // launch.tile_rows)
        grid = grid_size(tiles, weight.sms, launch.blocks_per_sm, shared, weight.shared_per_sm)
        part = weight.parts[0]
        args = nf4_cuda._arguments(x, weight, out, None) if self.parts else [
            part.packed, part.absmax, weight.table, x, x.stride(0) // 2, out, out.stride(0),
            weight._dummy, weight.out_features,
        ]
        self.kernel(k, launch, rows, weight.out_features % launch.tile_rows == 0)(
            grid=(grid, 1, 1), block=(launch.threads(k), 1, 1), shared_mem=shared, args=args
        )


def variants() -> dict:
    found = {"old": Baseline(runpy.run_path(sys.argv[1])["SOURCE"]), "new": launch_gemv}
    for argument in sys.argv[2:]:
        label, _, defines = argument.partition(":")
        extra = dict(item.split("=") for item in defines.split(",") if item)
        found[label] = Baseline(nf4_cuda.SOURCE, extra)
    return found


def main() -> None:
    dependent_launch.configure(False)
    runs = variants()
    bandwidth = copy_bandwidth()
    rows = []
    for name, n, k in SHAPES:
        packed, state = quantize(n, k)
        weight_bytes = packed.numel() + state.absmax.numel() * 4
        copies = max(2, min(64, math.ceil(ROTATION_BYTES / weight_bytes)))
        weights = [CudaNF4Weight(packed_from_quant_state(packed.clone(), state), None, pairs=True) for _ in range(copies)]
        x = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
        reference = x.float() @ bnbf.dequantize_4bit(packed, state).float().t()
        outs = [torch.empty(1, n, dtype=torch.bfloat16, device="cuda") for _ in weights]
        launch = default_launch(n, k, 1, weights[0].capability)
        launches = {label: launch for label in runs}
        if str(k) in BASELINE_LAUNCHES:
            launches["old"] = Launch(*BASELINE_LAUNCHES[str(k)])
        row = {"shape": name, "launches": {label: str(value) for label, value in launches.items()}}
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
