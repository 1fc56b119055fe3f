"""Checks enable_fast_nf4 on the GPU: same greedy tokens, graph capture, no syncs or allocations.

A small random Mistral (the writer's architecture, 2 layers) with bitsandbytes NF4 linears:
greedy decoding with and without the kernel; one fused q/k/v group captured in a CUDA graph and
replayed on new inputs against bitsandbytes; the patched forward under CUDA sync-debug mode.

    python3 bench/gpu/nf4_patch_check.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server"))

import bitsandbytes as bnb
from transformers import MistralConfig, MistralForCausalLM

from pictale_server.kernels import enable_fast_nf4


def nf4_mistral(nested: bool) -> MistralForCausalLM:
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=1000, hidden_size=1024, intermediate_size=3584, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=128, max_position_embeddings=512,
    )
    model = MistralForCausalLM(config).to(torch.bfloat16).eval()
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, linear in list(parent.named_children()):
                if isinstance(linear, torch.nn.Linear):
                    quantized = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=False,
                                                  compute_dtype=torch.bfloat16, quant_type="nf4")
                    quantized.weight = bnb.nn.Params4bit(linear.weight.data.clone(), requires_grad=False,
                                                         quant_type="nf4", compress_statistics=nested)
                    setattr(parent, name, quantized)
    return model.cuda()


@torch.no_grad()
def greedy(model, prompt, steps):
    tokens, logits, cache, inputs = [], [], None, prompt
    for _ in range(steps):
        out = model(input_ids=inputs, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits.append(out.logits[0, -1].float())
        tokens.append(int(logits[-1].argmax()))
        inputs = torch.tensor([[tokens[-1]]], device="cuda")
    return tokens, logits


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@torch.no_grad()
def check(nested: bool, products: str) -> dict:
    model = nf4_mistral(nested)
    prompt = torch.randint(0, 1000, (1, 32), device="cuda")
    base_tokens, base_logits = greedy(model, prompt, 24)
    attn = model.model.layers[0].self_attn
    x = torch.randn(1, 1, 1024, dtype=torch.bfloat16, device="cuda")
    bnb_qkv = [attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)]

    handle = enable_fast_nf4(model, products=products)
    handle.warmup(rows=(1,))
    tokens, logits = greedy(model, prompt, 24)
    agree = next((i for i, (a, b) in enumerate(zip(tokens, base_tokens)) if a != b), len(tokens))
    result = {
        "nested": nested, "products": products, "enabled": handle.enabled, "reason": handle.reason,
        "fused_groups": handle.fused_groups, "patched": len(handle.patched),
        "same_tokens": tokens == base_tokens, "tokens_equal_prefix": agree,
        # Over the steps whose inputs were identical (up to and including the first difference).
        "max_logit_rel_err": max(rel(a, b) for a, b in list(zip(logits, base_logits))[: agree + 1]),
    }
    # The patched forward neither synchronizes nor (beyond its output) allocates.
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fast_qkv = [attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)]
        result["no_sync"] = True
    except RuntimeError as exc:
        result["no_sync"] = f"failed: {exc}"[:300]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    result["qkv_rel_err_vs_bnb"] = [rel(a, b) for a, b in zip(fast_qkv, bnb_qkv)]

    static_x = torch.zeros_like(x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            attn.q_proj(static_x), attn.k_proj(static_x), attn.v_proj(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = [attn.q_proj(static_x), attn.k_proj(static_x), attn.v_proj(static_x)]
    errors, allocated = [], []
    handle.disable()  # from here on q/k/v_proj are bitsandbytes' again (on the fused storage)
    for seed in range(3):
        torch.manual_seed(seed)
        static_x.copy_(torch.randn_like(static_x))
        before = torch.cuda.memory_allocated()
        graph.replay()
        allocated.append(torch.cuda.memory_allocated() - before)
        expected = [attn.q_proj(static_x), attn.k_proj(static_x), attn.v_proj(static_x)]
        errors.append(max(rel(a, b) for a, b in zip(outs, expected)))
    result["graph_replay_rel_err_vs_bnb"] = errors
    result["graph_replay_bytes_allocated"] = allocated
    return result


def main() -> None:
    results = {"device": torch.cuda.get_device_name(), "checks": []}
    for nested, products in ((False, "fp32"), (True, "fp32"), (False, "bf16x2")):
        result = check(nested, products)
        print(json.dumps(result), flush=True)
        results["checks"].append(result)
    out = Path(os.environ.get("OUT", ".")) / "nf4_patch_check.json"
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
