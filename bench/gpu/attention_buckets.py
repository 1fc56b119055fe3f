"""Decode step time against KV-cache length, for the engine's cache views and for plain caches.

A reduced-depth Nemo-architecture writer (8 of 40 layers, full width, bf16, random weights)
isolates what the cache length costs a decode step: the engine's DecodeLoop, graph path, with
every bucket, against contiguous caches of the same lengths.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "bench" / "gpu")]

import torch  # noqa: E402
from transformers import MistralConfig, MistralForCausalLM, StaticCache  # noqa: E402

from pictale_server.engine import kv_buckets  # noqa: E402
from pictale_server.engine.base import Sampling  # noqa: E402
from pictale_server.engine.decode_loop import DecodeLoop  # noqa: E402
from pictale_server.engine.dev.models import _reference_config  # noqa: E402
from pictale_server.engine.runners import CausalLMRunner, WriterPrompt  # noqa: E402

LAYERS = 8
STEPS = 128


def model() -> MistralForCausalLM:
    values = _reference_config("mistral_nemo_12b.config.json")
    for key in ("architectures", "model_type", "torch_dtype"):
        values.pop(key, None)
    values["num_hidden_layers"] = LAYERS
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = MistralForCausalLM(MistralConfig(**values, attn_implementation="sdpa"))
    torch.set_default_dtype(torch.float32)
    return m.eval()


def decode_rate(loop: DecodeLoop, prompt: int, total: int) -> float:
    ids = torch.randint(0, 1000, (1, prompt), device="cuda")
    sampling = Sampling(max_tokens=total - prompt, temperature=0.8, min_p=0.05)
    steps = loop.tokens(WriterPrompt(ids), ids, sampling, seed=1)
    for _ in zip(range(8), steps):
        pass
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in zip(range(STEPS), steps):
        pass
    torch.cuda.synchronize()
    steps.close()
    return STEPS / (time.perf_counter() - start)


class ContiguousBuckets(kv_buckets.KVBuckets):
    """Same lengths, separate (contiguous) buffers: the memory-hungry alternative."""

    def __init__(self, config, max_tokens, *, dtype, device):
        self.max_tokens = max_tokens
        heads, head_dim = kv_buckets._kv_shape(config)
        self.caches = {}
        for length in kv_buckets.bucket_lengths(max_tokens):
            cache = StaticCache(config=config, max_cache_len=length)
            cache.early_initialization(batch_size=1, num_heads=heads, head_dim=head_dim, dtype=dtype, device=device)
            self.caches[length] = cache


def profile_step(loop: DecodeLoop) -> list[str]:
    """The top CUDA kernels of eager decode steps on the longest view."""
    from torch.profiler import ProfilerActivity, profile

    ids = torch.randint(0, 1000, (1, 512), device="cuda")
    loop.path = "eager"
    steps = loop.tokens(WriterPrompt(ids), ids, Sampling(max_tokens=16000, temperature=0.8), seed=1)
    for _ in zip(range(4), steps):
        pass
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in zip(range(4), steps):
            pass
        torch.cuda.synchronize()
    steps.close()
    loop.path = "graph"
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=10)
    print(table, flush=True)
    return table.splitlines()


def main() -> None:
    from pictale_server.engine.decode_attention import register

    register()
    m = model()
    result = {"device": torch.cuda.get_device_name(), "layers": LAYERS, "steps": STEPS, "rows": []}
    import pictale_server.engine.decode_loop as dl

    layouts = (("views", kv_buckets.KVBuckets), ("contiguous", ContiguousBuckets))
    for attention in ("sdpa", "pictale_sdpa"):
        m.set_attn_implementation(attention)
        for name, cls in layouts[:1]:
            dl.KVBuckets = cls
            loop = DecodeLoop(CausalLMRunner(m), config=m.config, cache_tokens=16384,
                              vocab_size=m.config.vocab_size, device=torch.device("cuda"), path="graph")
            for length in loop.buckets.lengths:
                rate = decode_rate(loop, prompt=min(512, length // 2), total=length)
                result["rows"].append({"attention": attention, "layout": name, "bucket": length, "step_ms": 1000 / rate})
                print(attention, name, length, f"{1000 / rate:.3f} ms/step", flush=True)
            del loop
            torch.cuda.empty_cache()
    # Same logits from both attention paths on a long cache.
    ids = torch.randint(0, 1000, (1, 3000), device="cuda")
    logits = {}
    for attention in ("sdpa", "pictale_sdpa"):
        m.set_attn_implementation(attention)
        cache = StaticCache(config=m.config, max_cache_len=4096)
        with torch.no_grad():
            m(input_ids=ids[:, :-1], cache=cache, use_cache=True, logits_to_keep=1)
            out = m(input_ids=ids[:, -1:], position_ids=torch.tensor([[ids.shape[1] - 1]], device="cuda"),
                    cache=cache, use_cache=True, logits_to_keep=1)
        logits[attention] = out.logits.float()
    # The noise floor: the same SDPA call on its math backend instead of its fused kernels.
    m.set_attn_implementation("sdpa")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cache = StaticCache(config=m.config, max_cache_len=4096)
    with torch.no_grad():
        m(input_ids=ids[:, :-1], cache=cache, use_cache=True, logits_to_keep=1)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        out = m(input_ids=ids[:, -1:], position_ids=torch.tensor([[ids.shape[1] - 1]], device="cuda"),
                cache=cache, use_cache=True, logits_to_keep=1)
    math = out.logits.float()
    result["sdpa_math_vs_fused_rel_diff"] = float((logits["sdpa"] - math).norm() / logits["sdpa"].norm())
    print("sdpa math vs fused rel diff", result["sdpa_math_vs_fused_rel_diff"])
    diff = (logits["sdpa"] - logits["pictale_sdpa"]).norm() / logits["sdpa"].norm()
    result["decode_logits_rel_diff"] = float(diff)
    print("decode logits rel diff", float(diff))
    out = Path(os.environ.get("OUT", "/tmp")) / "attention_buckets.json"
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
