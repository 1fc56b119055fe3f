"""Kernel-level benchmark of the fused NF4 GEMV against bitsandbytes and a bf16 GEMV.

For every decode-time linear shape of both models: time per call (median over CUDA-graph
replays, each replay running the op over several weight copies so the L2 cache cannot hold
them), effective bandwidth (packed codes + absmax bytes / time) and its share of the measured
device-to-device copy bandwidth. Also checks correctness on the device against bitsandbytes'
dequantize_4bit + matmul (random, outlier and all-zero-block inputs, ragged N, double quant).

    python3 bench/gpu/kernel_bench.py [--rows 1 8] [--out results.json]
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

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import triton

from pictale_server.kernels.fuse import fuse_rows
from pictale_server.kernels.nf4_format import packed_from_quant_state
from pictale_server.kernels.nf4_cuda import CudaNF4Weight, candidates, cuda_gemv, default_launch, launch_gemv
from pictale_server.kernels.nf4_gemv import NF4KernelWeight, default_test_config, kernels, nf4_gemv

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
CHECK_CONFIG = default_test_config()
ROTATION_BYTES = 512 * 2**20  # weight copies per timing: ~10x the L2 cache


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


def quantize(n: int, k: int, nested: bool = False, weight: torch.Tensor | None = None):
    if weight is None:
        weight = torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02
    packed, state = bnbf.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=nested)
    return packed, state


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def kernel_weight_for(packed, state, variant: str, bias=None):
    """variant: "asm" (fp32 products), "asm-bf16x2" (bf16x2 products), "plain" (Triton), or
    "cuda-fp32" / "cuda-pairs" (the shared-memory-table CUDA kernel, launched by its rule)."""
    packed_nf4 = packed_from_quant_state(packed, state)
    if variant.startswith("cuda"):
        return CudaNF4Weight(packed_nf4, bias, pairs="pairs" in variant)
    lookup, _, products = variant.partition("-")
    return NF4KernelWeight(packed_nf4, lookup=lookup, products=products or "fp32")


def run_variant(variant: str, x, weight, bias=None, out=None, config=None):
    if variant.startswith("cuda"):
        return cuda_gemv(x, weight, out)
    return nf4_gemv(x, weight, bias, out, config=config)


def check_case(name, n, k, m, nested=False, x_kind="randn", zero_blocks=False, lookup="asm"):
    weight = torch.randn(n, k, dtype=torch.bfloat16, device="cuda")
    if zero_blocks:
        weight.view(-1, 64)[::3] = 0
    packed, state = quantize(n, k, nested, weight)
    x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
    if x_kind == "outliers":
        x[:, torch.randperm(k, device="cuda")[: max(1, k // 100)]] *= 300
    bias = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    out = run_variant(lookup, x, kernel_weight_for(packed, state, lookup, bias), bias, config=CHECK_CONFIG)
    ref = x.float() @ bnbf.dequantize_4bit(packed, state).float().t() + bias.float()
    bnb_out = bnb.matmul_4bit(x, packed.t(), bias=bias, quant_state=state)
    return {
        "case": name, "N": n, "K": k, "rows": m, "nested": nested, "x": x_kind,
        "zero_blocks": zero_blocks, "lookup": lookup,
        "rel_err_kernel": rel_error(out, ref), "rel_err_bnb": rel_error(bnb_out, ref),
    }


def correctness() -> list[dict]:
    cases = [
        ("random", 4096, 5120, 1), ("random", 4096, 5120, 8), ("random", 1000, 5120, 3),
        ("ragged N", 77, 192, 5), ("ragged N", 1, 64, 1),
    ]
    results = [check_case(*case) for case in cases]
    results.append(check_case("outliers", 2048, 4096, 2, x_kind="outliers"))
    results.append(check_case("zero blocks", 2048, 4096, 4, zero_blocks=True))
    results.append(check_case("double quant", 1024, 5120, 1, nested=True))
    results.append(check_case("double quant", 333, 3584, 8, nested=True))
    results.append(check_case("plain lookup", 1024, 5120, 2, lookup="plain"))
    for case in cases[:3]:
        results.append(check_case(*case, lookup="asm-bf16x2"))
    results.append(check_case("outliers", 2048, 4096, 2, x_kind="outliers", lookup="asm-bf16x2"))
    results.append(check_case("double quant", 333, 3584, 8, nested=True, lookup="asm-bf16x2"))
    for variant in ("cuda-fp32", "cuda-pairs"):
        for n, k, m in ((4096, 5120, 1), (6144, 5120, 2), (5120, 14336, 1), (1000, 3584, 3),
                        (4608, 3584, 4), (77, 192, 1), (1, 64, 2), (37888, 3584, 1)):
            results.append(check_case("cuda", n, k, m, lookup=variant))
        results.append(check_case("outliers", 2048, 4096, 2, x_kind="outliers", lookup=variant))
        results.append(check_case("zero blocks", 2048, 4096, 1, zero_blocks=True, lookup=variant))
    for splits, k, m in (((4096, 1024, 1024), 5120, 1), ((14336, 14336), 5120, 2), ((80, 16, 30), 192, 3)):
        results.append(check_parts(splits, k, m))
    return results


def check_parts(splits: tuple[int, ...], k: int, m: int) -> dict:
    """The CUDA kernel reading q/k/v-like siblings where they were allocated, against the same
    kernel on their concatenation (must be bit for bit equal) and dequantize + matmul."""
    weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") for n in splits]
    quantized = [quantize(n, k, weight=w) for n, w in zip(splits, weights)]
    parts = [packed_from_quant_state(p, s) for p, s in quantized]
    whole, _ = fuse_rows(parts)
    bias = torch.randn(sum(splits), dtype=torch.bfloat16, device="cuda")
    x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
    out = cuda_gemv(x, CudaNF4Weight(parts, bias, pairs=True))
    concatenated = cuda_gemv(x, CudaNF4Weight(whole, bias, pairs=True))
    ref = torch.cat([x.float() @ bnbf.dequantize_4bit(p, s).float().t() for p, s in quantized], dim=1) + bias.float()
    return {"case": "cuda parts", "splits": list(splits), "K": k, "rows": m,
            "equal_to_concatenated": bool(torch.equal(out, concatenated)), "rel_err_kernel": rel_error(out, ref)}


def sweep(n: int, k: int, rows: int, copy_bw: float, wide: bool = False) -> list[dict]:
    """Every launch candidate of the CUDA kernel on one shape (for the launch rule)."""
    packed, state = quantize(n, k)
    weight_bytes = packed.numel() + state.absmax.numel() * 4
    copies = max(2, min(64, math.ceil(ROTATION_BYTES / weight_bytes)))
    x = torch.randn(rows, k, dtype=torch.bfloat16, device="cuda")
    rows_out = []
    ref = x.float() @ bnbf.dequantize_4bit(packed, state).float().t()
    for pairs in (True,):
        weights = [CudaNF4Weight(packed_from_quant_state(packed.clone(), state), None, pairs=pairs) for _ in range(copies)]
        outs = [torch.empty(rows, n, dtype=torch.bfloat16, device="cuda") for _ in weights]
        for launch in candidates(k, wide):
            try:
                seconds = graph_time([lambda w=w, o=o, l=launch: launch_gemv(x, w, o, l) for w, o in zip(weights, outs)], replays=10)
                error = rel_error(launch_gemv(x, weights[0], outs[0], launch), ref)
            except Exception as exc:  # noqa: BLE001
                rows_out.append({"N": n, "K": k, "rows": rows, "pairs": pairs, "launch": list(vars(launch).values()), "error": repr(exc)[:200]})
                continue
            rows_out.append({"N": n, "K": k, "rows": rows, "pairs": pairs, "launch": list(vars(launch).values()),
                             "us": seconds * 1e6, "pct_copy": 100 * weight_bytes / seconds / copy_bw, "rel_err": error})
        del weights, outs
        torch.cuda.empty_cache()
    return rows_out


def bench_shape(model, name, n, k, rows, copy_bw, variants):
    packed, state = quantize(n, k)
    kernel_weight_bytes = packed.numel() + state.absmax.numel() * 4
    copies = max(2, min(64, math.ceil(ROTATION_BYTES / kernel_weight_bytes)))
    packs = [packed.clone() for _ in range(copies)]
    states = []
    for p in packs:
        s = bnbf.QuantState(absmax=state.absmax.clone(), shape=state.shape, code=state.code,
                            blocksize=64, quant_type="nf4", dtype=state.dtype)
        states.append(s)
    x = torch.randn(rows, k, dtype=torch.bfloat16, device="cuda")
    result = {"model": model, "shape": name, "N": n, "K": k, "rows": rows, "copies": copies,
              "bytes": kernel_weight_bytes}
    for lookup in variants:
        weights = [kernel_weight_for(p, s, lookup) for p, s in zip(packs, states)]
        outs = [torch.empty(rows, n, dtype=torch.bfloat16, device="cuda") for _ in weights]
        try:
            if lookup.startswith("cuda") and rows > 4:
                continue
            for w, o in zip(weights, outs):  # tunes + compiles outside the graph
                run_variant(lookup, x, w, out=o)
            seconds = graph_time([lambda w=w, o=o: run_variant(lookup, x, w, out=o) for w, o in zip(weights, outs)])
            result[f"kernel_{lookup}_us"] = seconds * 1e6
            result[f"kernel_{lookup}_gb_s"] = kernel_weight_bytes / seconds / 1e9
            result[f"kernel_{lookup}_pct_copy"] = 100 * kernel_weight_bytes / seconds / copy_bw
            if lookup.startswith("cuda"):
                best = default_launch(n, k, rows, torch.cuda.get_device_capability())
            else:
                best = getattr(kernels()[1], "best_config", None)
            result[f"kernel_{lookup}_config"] = str(best) if best is not None else None
        except Exception as exc:  # noqa: BLE001
            result[f"kernel_{lookup}_error"] = repr(exc)[:500]
            traceback.print_exc()
    try:
        seconds = graph_time([lambda p=p, s=s: bnb.matmul_4bit(x, p.t(), quant_state=s) for p, s in zip(packs, states)])
        result["bnb_us"] = seconds * 1e6
        result["bnb_pct_copy"] = 100 * kernel_weight_bytes / seconds / copy_bw
    except Exception as exc:  # noqa: BLE001
        result["bnb_error"] = repr(exc)[:500]
    del packs, states
    dense = torch.randn(n, k, dtype=torch.bfloat16, device="cuda")
    dense_copies = max(2, min(32, math.ceil(ROTATION_BYTES / dense.numel() / 2)))
    denses = [dense.clone() for _ in range(dense_copies)]
    seconds = graph_time([lambda d=d: torch.mm(x, d.t()) for d in denses])
    result["bf16_us"] = seconds * 1e6
    result["bf16_pct_copy"] = 100 * dense.numel() * 2 / seconds / copy_bw
    del denses, dense
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--variants", nargs="+", default=["asm", "asm-bf16x2"],
                        help="asm (fp32 products), asm-bf16x2, plain (table gather)")
    parser.add_argument("--shapes", default="", help="comma-separated shape indices (default all)")
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--sweep", default="", help="comma-separated shape indices to sweep every CUDA launch on")
    parser.add_argument("--sweep-wide", default="", help="comma-separated shape indices to sweep the CUDA kernel's wide-table launches on")
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "nf4_kernel_bench.json"))
    args = parser.parse_args()
    report = {
        "device": torch.cuda.get_device_name(), "capability": torch.cuda.get_device_capability(),
        "torch": torch.__version__, "triton": triton.__version__, "bitsandbytes": bnb.__version__,
        "python": platform.python_version(),
    }
    report["copy_tb_s"] = copy_bandwidth() / 1e12
    print(json.dumps(report), flush=True)
    if not args.skip_check:
        report["correctness"] = correctness()
        for row in report["correctness"]:
            print(json.dumps(row), flush=True)
    report["sweep"] = []
    for indices, wide in ((args.sweep, False), (args.sweep_wide, True)):
        for index in filter(None, indices.split(",")):
            _, _, n, k = SHAPES[int(index)]
            report["sweep"] += sweep(n, k, 1, report["copy_tb_s"] * 1e12, wide=wide)
            Path(args.out).write_text(json.dumps(report, indent=1))
    shapes = SHAPES if not args.shapes else [SHAPES[int(i)] for i in args.shapes.split(",")]
    report["timings"] = []
    for rows in args.rows:
        for model, name, n, k in shapes:
            started = time.perf_counter()
            row = bench_shape(model, name, n, k, rows, report["copy_tb_s"] * 1e12, args.variants)
            row["wall_s"] = time.perf_counter() - started
            report["timings"].append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).write_text(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
