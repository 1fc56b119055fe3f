"""Same-process A/B of programmatic dependent launch on the writer's decode-layer kernel chain.

40 layers, each with its own full-size NF4 weights (q/k/v and gate/up as parts, as loaded):
RMSNorm, fused q/k/v, rotary, KV-cache write, split-K attention (two launches), o projection,
residual add, RMSNorm, fused gate/up, SiLU gate, down projection, residual add -- the kernels the
engine's decode graph runs per layer, minus transformers' bookkeeping. Captured twice in CUDA
graphs, once with dependent launch on and once off (kernels/dependent_launch.py), replayed
alternately; the outputs must be bit for bit equal (the kernels compute the same thing either
way) and equal to the chain run eagerly without it.

    python3 bench/gpu/dependent_launch_ab.py      # writes $OUT/dependent_launch_ab.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server"))

import bitsandbytes.functional as bnbf

from pictale_server.kernels import dependent_launch
from pictale_server.kernels.decode_attention_kernel import split_decode_attention
from pictale_server.kernels.decode_ops import cache_write, rms_norm, rotary, silu_mul
from pictale_server.kernels.nf4_cuda import CudaNF4Weight, cuda_gemv
from pictale_server.kernels.nf4_format import packed_from_quant_state

LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 40, 5120, 32, 8, 128, 14336  # Mistral-Nemo
CACHE = 1024
FILLED = 600  # cache slots holding earlier tokens


def nf4(*rows: int, k: int) -> CudaNF4Weight:
    parts = []
    for n in rows:
        packed, state = bnbf.quantize_4bit(
            torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02, blocksize=64, quant_type="nf4"
        )
        parts.append(packed_from_quant_state(packed, state))
    return CudaNF4Weight(parts if len(parts) > 1 else parts[0], None, pairs=True)


class Layer:
    def __init__(self) -> None:
        q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
        self.qkv = nf4(q, kv, kv, k=HIDDEN)
        self.o = nf4(HIDDEN, k=q)
        self.gate_up = nf4(INTERMEDIATE, INTERMEDIATE, k=HIDDEN)
        self.down = nf4(HIDDEN, k=INTERMEDIATE)
        self.norm1 = 1 + 0.1 * torch.randn(HIDDEN, dtype=torch.bfloat16, device="cuda")
        self.norm2 = 1 + 0.1 * torch.randn(HIDDEN, dtype=torch.bfloat16, device="cuda")
        shape = (1, KV_HEADS, CACHE, HEAD_DIM)
        self.keys = torch.randn(shape, dtype=torch.bfloat16, device="cuda")
        self.values = torch.randn(shape, dtype=torch.bfloat16, device="cuda")
        self.counter = torch.tensor([FILLED], dtype=torch.int64, device="cuda")
        self.mask = torch.arange(CACHE, device="cuda").view(1, 1, 1, CACHE) <= FILLED

    def __call__(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        q_size, kv_size = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
        qkv = cuda_gemv(rms_norm(x, self.norm1, 1e-5), self.qkv)
        q = qkv[:, :q_size].view(1, 1, HEADS, HEAD_DIM).transpose(1, 2)
        k = qkv[:, q_size:q_size + kv_size].view(1, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = qkv[:, q_size + kv_size:].view(1, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q, k = rotary(q, k, cos, sin)
        cache_write(k, v, self.keys, self.values, self.counter)
        attention = split_decode_attention(q, self.keys, self.values, self.mask, HEAD_DIM**-0.5)
        x = x + cuda_gemv(attention.reshape(1, q_size), self.o)
        gate_up = cuda_gemv(rms_norm(x, self.norm2, 1e-5), self.gate_up)
        return x + cuda_gemv(silu_mul(gate_up[:, :INTERMEDIATE], gate_up[:, INTERMEDIATE:]), self.down)


def main() -> None:
    torch.manual_seed(0)
    layers = [Layer() for _ in range(LAYERS)]
    x0 = torch.randn(1, HIDDEN, dtype=torch.bfloat16, device="cuda")
    angle = torch.rand(1, 1, HEAD_DIM, device="cuda")
    cos, sin = angle.cos().to(torch.bfloat16), angle.sin().to(torch.bfloat16)

    def step() -> torch.Tensor:
        x = x0
        for layer in layers:
            x = layer(x, cos, sin)
        return x

    def reset() -> None:
        for layer in layers:
            layer.counter.fill_(FILLED)

    graphs, outputs = {}, {}
    for label, on in (("serial", False), ("dependent", True)):
        dependent_launch.configure(on)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile and warm up outside the capture
                reset()
                step()
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
        graphs[label], outputs[label] = graph, out
    dependent_launch.configure(False)
    reset()
    eager = step().clone()

    result: dict = {"device": torch.cuda.get_device_name(), "layers": LAYERS, "cache_filled": FILLED}
    for label, graph in graphs.items():
        reset()
        graph.replay()
        torch.cuda.synchronize()
        result[f"{label}_equals_eager"] = bool(torch.equal(outputs[label], eager))
    times: dict[str, list[float]] = {label: [] for label in graphs}
    for _ in range(30):
        for label, graph in graphs.items():
            reset()
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            graph.replay()
            end.record()
            end.synchronize()
            times[label].append(begin.elapsed_time(end) * 1e3)
    for label, values in times.items():
        result[f"{label}_us_per_step"] = statistics.median(values)
        result[f"{label}_us_per_layer"] = statistics.median(values) / LAYERS
    result["saved_us_per_step"] = result["serial_us_per_step"] - result["dependent_us_per_step"]
    result["dependent_vs_serial"] = result["serial_us_per_step"] / result["dependent_us_per_step"]
    out = Path(os.environ.get("OUT", ".")) / "dependent_launch_ab.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
