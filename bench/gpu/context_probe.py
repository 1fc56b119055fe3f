"""What grows the GPU memory that the allocator does not hold (the "context") during a run.

    python3 bench/gpu/context_probe.py      # prints and writes $OUT/context-probe.json (bench/results/ keeps the committed copy)

The A10G cap counts the CUDA context, which on an H200 is 1.03 GiB at start and ~1.28 GiB once
the engine has loaded. Each step below is one kind of GPU work the engine does; the growth
after it is module code loaded on first use, library handles, or per-thread local memory
(stack) the driver reserves for every thread the GPU can hold.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "server")]
GIB = 2**30


def context_gib() -> float:
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return (total - free - torch.cuda.memory_reserved()) / GIB


def stack_bytes() -> int:
    value = ctypes.c_size_t()
    ctypes.CDLL("libcuda.so.1").cuCtxGetLimit(ctypes.byref(value), 0)  # CU_LIMIT_STACK_SIZE
    return value.value


def main() -> None:
    steps: list[dict] = []

    def record(name: str) -> None:
        steps.append({"step": name, "context_gib": context_gib(), "stack_bytes": stack_bytes()})
        print(json.dumps(steps[-1]), flush=True)

    torch.empty(1, device="cuda")
    record("context created")
    x = torch.randn(512, 5120, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(5120, 5120, dtype=torch.bfloat16, device="cuda")
    torch.nn.functional.linear(x, w)
    record("cuBLAS bf16 mm")
    torch.nn.functional.linear(x, w, w[0])
    record("bf16 addmm (cuBLASLt)")
    q = torch.randn(1, 32, 2048, 128, dtype=torch.bfloat16, device="cuda")
    k = torch.randn(1, 8, 2048, 128, dtype=torch.bfloat16, device="cuda")
    torch.nn.functional.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
    record("SDPA causal prefill")
    mask = torch.ones(2048, 2048, dtype=torch.bool, device="cuda").tril()
    torch.nn.functional.scaled_dot_product_attention(q, k, k, attn_mask=mask, enable_gqa=True)
    record("SDPA with a mask")
    v = torch.randn(80, 16, 64, 80, dtype=torch.bfloat16, device="cuda")
    torch.nn.functional.scaled_dot_product_attention(v, v, v)
    record("SDPA vision windows")
    torch.nn.functional.conv3d(torch.randn(64, 3, 2, 14, 14, device="cuda"), torch.randn(1280, 3, 2, 14, 14, device="cuda"))
    record("conv3d fp32 (patch embed)")
    from pictale_server.kernels.decode_ops import rms_norm

    rms_norm(x[:1], w[0], 1e-5)
    record("Triton kernel")
    from pictale_server.kernels.nf4_cuda import CudaNF4Weight, cuda_gemv
    from pictale_server.kernels.nf4_format import PackedNF4

    packed = torch.randint(0, 255, (5120 * 5120 // 2,), dtype=torch.uint8, device="cuda")
    absmax = torch.rand(5120 * 5120 // 64, device="cuda")
    code = torch.linspace(-1, 1, 16)
    cuda_gemv(x[:1], CudaNF4Weight(PackedNF4(packed, absmax, code, 5120, 5120), None))
    record("NVRTC NF4 kernel")
    graph = torch.cuda.CUDAGraph()
    y = x[:1].clone()
    with torch.cuda.graph(graph):
        for _ in range(500):
            y = y * 1.0001
    graph.replay()
    record("CUDA graph of 500 kernels")
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "steps": steps,
           "cudnn_sdp_enabled": torch.backends.cuda.cudnn_sdp_enabled()}
    Path(os.environ.get("OUT", "."), "context-probe.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
