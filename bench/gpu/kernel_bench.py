"""Kernel-level timing of the CUDA NF4 GEMV and the tensor-core one against bitsandbytes and a
bf16 GEMV.

For every decode-time linear shape of both models: time per call (median over CUDA-graph
replays, each replay running the op over several weight copies so the L2 cache cannot hold
them), effective bandwidth (packed codes + absmax bytes / time) and its share of the measured
device-to-device copy bandwidth. Correctness lives in the GPU test suite (server/tests/gpu/).

    python3 bench/gpu/kernel_bench.py [--rows 1 2] [--shapes 0,6] [--out results.json]
    python3 bench/gpu/kernel_bench.py --sweep 6,12 [--wide]   # every launch candidate
    python3 bench/gpu/kernel_bench.py --norm   # norm_gemv against the two launches it replaces

Needs bitsandbytes (it quantizes the weights and is the baseline).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server"))

import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as bnbf  # noqa: E402

from pictale_server.kernels.decode_ops import add_rms_norm_  # noqa: E402
from pictale_server.kernels.nf4_cuda import (  # noqa: E402
    CudaNF4Weight,
    Launch,
    cuda_gemv,
    default_launch,
    launch_gemv,
    norm_gemv,
)
from pictale_server.kernels.nf4_format import packed_from_quant_state  # noqa: E402
from pictale_server.kernels.nf4_mma import launch_unsupported, mma_gemv  # noqa: E402

SHAPES = [  # (model, name, N, K)
    ("writer", "q", 4096, 5120),
    ("writer", "k/v", 1024, 5120),
    ("writer", "o", 5120, 4096),
    ("writer", "gate/up", 14336, 5120),
    ("writer", "down", 5120, 14336),
    ("writer", "qkv fused", 6144, 5120),
    ("writer", "gate_up fused", 28672, 5120),
    ("vision", "q/o", 3584, 3584),
    ("vision", "k/v", 512, 3584),
    ("vision", "gate/up", 18944, 3584),
    ("vision", "down", 3584, 18944),
    ("vision", "qkv fused", 4608, 3584),
    ("vision", "gate_up fused", 37888, 3584),
]
NORM_LAUNCHES = [  # (model, launch, rows of each part, K, bias): the launches that make their own x
    ("writer", "q/k/v", (4096, 1024, 1024), 5120, False),
    ("writer", "gate/up", (14336, 14336), 5120, False),
    ("vision", "q/k/v", (3584, 512, 512), 3584, True),
    ("vision", "gate/up", (18944, 18944), 3584, False),
]
ROTATION_BYTES = 512 * 2**20  # weight copies per timing: ~10x the L2 cache


def candidates(k: int, wide: bool = False) -> list[Launch]:
    """Every launch of the CUDA kernel worth timing for this K: 2-, 4- and 8-row tiles, 1, 2
    or 4 chunks per thread where every thread gets at least one chunk, one or two row groups
    (two where one set of threads would leave half a warp idle), 1-8 blocks per SM (1-3 with
    the 64 KB table)."""
    found = []
    for tile_rows in (2, 4, 8):
        for chunks_per_thread in (1, 2, 4):
            threads = Launch(tile_rows, chunks_per_thread, 1).threads(k)
            if threads * chunks_per_thread < k // 32 or threads * (chunks_per_thread - 1) >= k // 32:
                continue  # does not cover K, or some thread would have no chunk at all
            per_thread = -(-(k // 32) // chunks_per_thread)
            groups = (1, 2) if per_thread % 32 == 16 and 2 * per_thread <= 1024 else (1,)
            for row_groups in groups:
                for blocks_per_sm in (1, 2, 3) if wide else (1, 2, 3, 4, 5, 6, 8):
                    found.append(Launch(tile_rows, chunks_per_thread, blocks_per_sm, wide, row_groups))
    return found


def copy_bandwidth() -> float:
    src = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        dst.copy_(src)
    torch.cuda.synchronize()
    return 2 * src.numel() * 20 / (time.perf_counter() - start)


def graph_time(calls: list, replays: int = 30) -> float:
    """Median seconds per call: one CUDA graph runs every call once (each on its own weights)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls[:2]:
            call()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) / 1e3 / len(calls))
    return statistics.median(times)


def quantize(n: int, k: int):
    weight = torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02
    return bnbf.quantize_4bit(weight, blocksize=64, quant_type="nf4")


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def copies_for(weight_bytes: int) -> int:
    return max(2, min(64, math.ceil(ROTATION_BYTES / weight_bytes)))


def sweep(n: int, k: int, rows: int, copy_bw: float, wide: bool = False) -> list[dict]:
    """Every launch candidate of the CUDA kernel on one shape (for the launch rule)."""
    packed, state = quantize(n, k)
    weight_bytes = packed.numel() + state.absmax.numel() * 4
    x = torch.randn(rows, k, dtype=torch.bfloat16, device="cuda")
    ref = x.float() @ bnbf.dequantize_4bit(packed, state).float().t()
    weights = [CudaNF4Weight(packed_from_quant_state(packed.clone(), state), None) for _ in range(copies_for(weight_bytes))]
    outs = [torch.empty(rows, n, dtype=torch.bfloat16, device="cuda") for _ in weights]
    found = []
    for launch in candidates(k, wide):
        row = {"N": n, "K": k, "rows": rows, "launch": list(vars(launch).values())}
        try:
            calls = [lambda w=w, o=o, launch=launch: launch_gemv(x, w, o, launch) for w, o in zip(weights, outs)]
            seconds = graph_time(calls, replays=10)
            row.update(us=seconds * 1e6, pct_copy=100 * weight_bytes / seconds / copy_bw,
                       rel_err=rel_error(launch_gemv(x, weights[0], outs[0], launch), ref))
        except Exception as exc:  # noqa: BLE001 - a launch that does not build or fit is recorded
            row["error"] = repr(exc)[:200]
        found.append(row)
    del weights, outs
    torch.cuda.empty_cache()
    return found


def bench_shape(model: str, name: str, n: int, k: int, rows: int, copy_bw: float) -> dict:
    packed, state = quantize(n, k)
    weight_bytes = packed.numel() + state.absmax.numel() * 4
    copies = copies_for(weight_bytes)
    packs = [packed.clone() for _ in range(copies)]
    states = [bnbf.QuantState(absmax=state.absmax.clone(), shape=state.shape, code=state.code, blocksize=64,
                              quant_type="nf4", dtype=state.dtype) for _ in packs]
    x = torch.randn(rows, k, dtype=torch.bfloat16, device="cuda")
    result = {"model": model, "shape": name, "N": n, "K": k, "rows": rows, "copies": copies, "bytes": weight_bytes}
    try:
        weights = [CudaNF4Weight(packed_from_quant_state(p, s), None) for p, s in zip(packs, states)]
        outs = [torch.empty(rows, n, dtype=torch.bfloat16, device="cuda") for _ in weights]
        seconds = graph_time([lambda w=w, o=o: cuda_gemv(x, w, o) for w, o in zip(weights, outs)])
        result.update(cuda_us=seconds * 1e6, cuda_gb_s=weight_bytes / seconds / 1e9,
                      cuda_pct_copy=100 * weight_bytes / seconds / copy_bw,
                      launch=str(default_launch(n, k, rows, torch.cuda.get_device_capability())))
    except Exception as exc:  # noqa: BLE001
        result["cuda_error"] = repr(exc)[:500]
        traceback.print_exc()
    try:
        if not launch_unsupported(weights[0]):
            seconds = graph_time([lambda w=w, o=o: mma_gemv(x, w, o) for w, o in zip(weights, outs)])
            result.update(tensor_core_us=seconds * 1e6, tensor_core_pct_copy=100 * weight_bytes / seconds / copy_bw)
    except Exception as exc:  # noqa: BLE001
        result["tensor_core_error"] = repr(exc)[:500]
        traceback.print_exc()
    try:
        seconds = graph_time([lambda p=p, s=s: bnb.matmul_4bit(x, p.t(), quant_state=s) for p, s in zip(packs, states)])
        result.update(bnb_us=seconds * 1e6, bnb_pct_copy=100 * weight_bytes / seconds / copy_bw)
    except Exception as exc:  # noqa: BLE001
        result["bnb_error"] = repr(exc)[:500]
    del packs, states
    dense = torch.randn(n, k, dtype=torch.bfloat16, device="cuda")
    denses = [dense.clone() for _ in range(max(2, min(32, math.ceil(ROTATION_BYTES / dense.numel() / 2))))]
    seconds = graph_time([lambda d=d: torch.mm(x, d.t()) for d in denses])
    result.update(bf16_us=seconds * 1e6, bf16_pct_copy=100 * dense.numel() * 2 / seconds / copy_bw)
    del denses, dense
    torch.cuda.empty_cache()
    return result


def bench_norm(model: str, name: str, parts: tuple[int, ...], k: int, bias: bool, copy_bw: float) -> dict:
    """norm_gemv (residual add + RMSNorm + the projection, weights read as parts) against the two
    launches it replaces (add_rms_norm_, then cuda_gemv) and the projection alone."""
    eps = 1e-5
    weight_bytes = sum(parts) * k // 2 + sum(parts) * k // 64 * 4

    def weight() -> CudaNF4Weight:
        packed = [packed_from_quant_state(*quantize(n, k)) for n in parts]
        return CudaNF4Weight(packed, torch.randn(sum(parts), device="cuda") * 0.1 if bias else None)

    weights = [weight() for _ in range(copies_for(weight_bytes))]
    residuals = [torch.randn(1, k, dtype=torch.bfloat16, device="cuda") for _ in weights]
    outs = [torch.empty_like(r) for r in residuals]
    delta = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
    norm_weight = (torch.randn(k, device="cuda") * 0.3 + 1).to(torch.bfloat16)
    x = add_rms_norm_(residuals[0].clone(), delta, norm_weight, eps)
    result = {"model": model, "launch": name, "N": sum(parts), "K": k}
    result["two_launches_us"] = 1e6 * graph_time(
        [lambda w=w, r=r: cuda_gemv(add_rms_norm_(r, delta, norm_weight, eps), w) for w, r in zip(weights, residuals)])
    result["one_launch_us"] = 1e6 * graph_time(
        [lambda w=w, r=r, o=o: norm_gemv(r, delta, norm_weight, eps, o, w) for w, r, o in zip(weights, residuals, outs)])
    result["gemv_alone_us"] = 1e6 * graph_time([lambda w=w: cuda_gemv(x, w) for w in weights])
    result["one_launch_pct_copy"] = 100 * weight_bytes / (result["one_launch_us"] * 1e-6) / copy_bw
    del weights
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1])
    parser.add_argument("--shapes", default="", help="comma-separated shape indices (default all)")
    parser.add_argument("--sweep", default="", help="comma-separated shape indices: time every launch candidate")
    parser.add_argument("--wide", action="store_true", help="sweep the 64 KB-table launches instead")
    parser.add_argument("--norm", action="store_true", help="time the launches that make their own x instead")
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "kernel-bench.json"))
    args = parser.parse_args()
    report = {
        "device": torch.cuda.get_device_name(), "capability": torch.cuda.get_device_capability(),
        "torch": torch.__version__, "bitsandbytes": bnb.__version__, "python": platform.python_version(),
        "copy_tb_s": copy_bandwidth() / 1e12,
    }
    print(json.dumps(report), flush=True)
    copy_bw = report["copy_tb_s"] * 1e12
    if args.sweep:
        report["sweep"] = []
        for index in args.sweep.split(","):
            _, _, n, k = SHAPES[int(index)]
            for rows in args.rows:
                report["sweep"] += sweep(n, k, rows, copy_bw, wide=args.wide)
                Path(args.out).write_text(json.dumps(report, indent=1))
        return
    if args.norm:
        report["norm"] = []
        for launch in NORM_LAUNCHES:
            report["norm"].append(bench_norm(*launch, copy_bw))
            print(json.dumps(report["norm"][-1]), flush=True)
            Path(args.out).write_text(json.dumps(report, indent=1))
        return
    shapes = SHAPES if not args.shapes else [SHAPES[int(i)] for i in args.shapes.split(",")]
    report["timings"] = []
    for rows in args.rows:
        for model, name, n, k in shapes:
            started = time.perf_counter()
            row = bench_shape(model, name, n, k, rows, copy_bw)
            row["wall_s"] = time.perf_counter() - started
            report["timings"].append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
