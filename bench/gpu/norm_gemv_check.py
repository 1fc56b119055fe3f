"""The CUDA NF4 kernel making its own input (nf4_cuda.norm_gemv) against the two launches it
replaces (decode_ops.add_rms_norm_, then nf4_cuda.cuda_gemv), on the q/k/v and gate/up launches
of both models: same residual, same outputs, and the time per call of each way.

    python3 bench/gpu/norm_gemv_check.py [--sweep] [--out results.json]

Weights are random NF4 (bitsandbytes), read by parts as the engine reads them; every timing is
a CUDA graph over enough weight copies that the L2 cache cannot hold them (kernel_bench.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "server"), str(Path(__file__).resolve().parent)]

from kernel_bench import ROTATION_BYTES, copy_bandwidth, graph_time, quantize, rel_error  # noqa: E402

from pictale_server.kernels.decode_ops import add_rms_norm_  # noqa: E402
from pictale_server.kernels.nf4_cuda import CudaNF4Weight, NormInput, candidates, cuda_gemv, launch_gemv, norm_gemv  # noqa: E402
from pictale_server.kernels.nf4_format import packed_from_quant_state  # noqa: E402

LAUNCHES = [  # (model, launch, rows of each part, K, bias)
    ("writer", "q/k/v", (4096, 1024, 1024), 5120, False),
    ("writer", "gate/up", (14336, 14336), 5120, False),
    ("vision", "q/k/v", (3584, 512, 512), 3584, True),
    ("vision", "gate/up", (18944, 18944), 3584, False),
]
EPS = 1e-5


def weight(parts: tuple[int, ...], k: int, bias: bool) -> CudaNF4Weight:
    packed = [packed_from_quant_state(*quantize(n, k)) for n in parts]
    b = torch.randn(sum(parts), device="cuda") * 0.1 if bias else None
    return CudaNF4Weight(packed, b, pairs=True)


def check(model: str, name: str, parts: tuple[int, ...], k: int, bias: bool, copy_bw: float) -> dict:
    torch.manual_seed(k + len(parts))
    first = weight(parts, k, bias)
    residual = torch.randn(1, k, dtype=torch.bfloat16, device="cuda") * 3
    delta = torch.randn(1, k, dtype=torch.bfloat16, device="cuda") * 2
    norm_weight = (torch.randn(k, device="cuda") * 0.3 + 1).to(torch.bfloat16)

    summed = residual.clone()
    x = add_rms_norm_(summed, delta, norm_weight, EPS)
    expected = cuda_gemv(x, first)
    residual_out = torch.empty_like(residual)
    got = norm_gemv(residual, delta, norm_weight, EPS, residual_out, first)
    # The whole chain in PyTorch, as transformers writes it
    h = residual + delta
    hf = h.float()
    x_torch = norm_weight * (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + EPS)).to(torch.bfloat16)
    result = {
        "model": model, "launch": name, "N": sum(parts), "K": k,
        "residual_equal": bool(torch.equal(residual_out, h)),
        "outputs_equal_to_two_launches": float((got == expected).float().mean()),
        "rel_err_vs_two_launches": rel_error(got, expected),
        "rel_err_vs_pytorch_chain": rel_error(got, cuda_gemv(x_torch, first)),
    }

    copies = max(2, min(64, math.ceil(ROTATION_BYTES / (sum(parts) * k * 9 // 16))))
    weights = [first] + [weight(parts, k, bias) for _ in range(copies - 1)]
    residuals = [residual.clone() for _ in weights]
    outs = [torch.empty_like(residual) for _ in weights]

    def separate(w, r):
        return lambda: cuda_gemv(add_rms_norm_(r, delta, norm_weight, EPS), w)

    def together(w, r, o):
        return lambda: norm_gemv(r, delta, norm_weight, EPS, o, w)

    result["two_launches_us"] = graph_time([separate(w, r) for w, r in zip(weights, residuals)]) * 1e6
    result["one_launch_us"] = graph_time([together(w, r, o) for w, r, o in zip(weights, residuals, outs)]) * 1e6
    result["gemv_alone_us"] = graph_time([lambda w=w: cuda_gemv(x, w) for w in weights]) * 1e6
    weight_bytes = sum(parts) * k // 2 + sum(parts) * k // 64 * 4
    result["one_launch_pct_copy"] = 100 * weight_bytes / (result["one_launch_us"] * 1e-6) / copy_bw
    del weights
    torch.cuda.empty_cache()
    return result


def sweep(model: str, name: str, parts: tuple[int, ...], k: int, bias: bool, copy_bw: float) -> list[dict]:
    """Every wide-table launch candidate of the norm-making launch on this layer's weights (read
    as parts, as the engine reads them)."""
    copies = max(2, min(64, math.ceil(ROTATION_BYTES / (sum(parts) * k * 9 // 16))))
    weights = [weight(parts, k, bias) for _ in range(copies)]
    residual = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
    delta = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
    norm = NormInput(delta, torch.ones(k, dtype=torch.bfloat16, device="cuda"), EPS, torch.empty_like(residual))
    outs = [torch.empty(1, sum(parts), dtype=torch.bfloat16, device="cuda") for _ in weights]
    weight_bytes = sum(parts) * k // 2 + sum(parts) * k // 64 * 4
    rows = []
    for launch in candidates(k, wide=True):
        calls = [lambda w=w, o=o, launch=launch: launch_gemv(residual, w, o, launch, norm) for w, o in zip(weights, outs)]
        seconds = graph_time(calls, replays=10)
        rows.append({"model": model, "launch": name, "candidate": list(vars(launch).values()), "us": seconds * 1e6,
                     "pct_copy": 100 * weight_bytes / seconds / copy_bw})
    del weights
    torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "norm_gemv_check.json"))
    parser.add_argument("--sweep", action="store_true", help="also time every launch candidate of each norm launch")
    args = parser.parse_args()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    report["copy_tb_s"] = copy_bandwidth() / 1e12
    report["launches"] = []
    for launch in LAUNCHES:
        row = check(*launch, report["copy_tb_s"] * 1e12)
        report["launches"].append(row)
        print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    if args.sweep:
        report["sweep"] = []
        for launch in LAUNCHES:
            report["sweep"] += sweep(*launch, report["copy_tb_s"] * 1e12)
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
