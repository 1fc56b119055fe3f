"""Checks the one-kernel decode ops on the GPU against the code they replace.

- each op (RMSNorm, rotary, SiLU gate, cache write, split-K attention) on the writer's real
  shapes, including a 16k-slot cache view, against transformers' / PyTorch's own;
- a 4-layer Mistral at the writer's width (random bf16 weights) decoding greedily through a
  static cache and the "pictale_sdpa" attention, with and without the fused ops: tokens and
  per-step logits.

    python3 bench/gpu/fused_ops_check.py   # writes $OUT/fused_ops_check.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server"))

from transformers import MistralConfig, MistralForCausalLM, StaticCache
from transformers.models.mistral import modeling_mistral
from transformers.models.mistral.modeling_mistral import MistralRMSNorm

from pictale_server.engine.decode_attention import decode_attention, register
from pictale_server.kernels.decode_attention_kernel import split_decode_attention
from pictale_server.kernels.decode_ops import cache_write, rms_norm, rotary, silu_mul
from pictale_server.kernels.fused_layers import enable_fused_decode_ops, fuse_cache_writes

DEVICE = torch.device("cuda")


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(a, b))


def op_checks() -> dict:
    torch.manual_seed(0)
    out = {}
    norm = MistralRMSNorm(5120, eps=1e-5).to(DEVICE, torch.bfloat16)
    norm.weight.data.normal_()
    x = torch.randn(1, 1, 5120, device=DEVICE, dtype=torch.bfloat16) * 3
    out["rms_norm_max_rel"] = max_rel(rms_norm(x, norm.weight, 1e-5), norm(x))
    fused = torch.randn(1, 1, 6144, device=DEVICE, dtype=torch.bfloat16)
    q = fused[..., :4096].view(1, 1, 32, 128).transpose(1, 2)
    k = fused[..., 4096:5120].view(1, 1, 8, 128).transpose(1, 2)
    angles = torch.rand(1, 1, 64, device=DEVICE) * 1000
    emb = torch.cat((angles, angles), -1)
    cos, sin = emb.cos().to(torch.bfloat16), emb.sin().to(torch.bfloat16)
    q_ref, k_ref = modeling_mistral.apply_rotary_pos_emb(q, k, cos, sin)
    q_out, k_out = rotary(q, k, cos, sin)
    out["rotary_bit_exact"] = same_bits(q_out, q_ref.contiguous()) and same_bits(k_out, k_ref.contiguous())
    both = torch.randn(1, 28672, device=DEVICE, dtype=torch.bfloat16) * 4
    gate, up = both[:, :14336], both[:, 14336:]
    out["silu_mul_max_rel"] = max_rel(silu_mul(gate, up), torch.nn.functional.silu(gate) * up)
    keys = torch.zeros(1, 8, 16384, 128, device=DEVICE, dtype=torch.bfloat16)
    values = torch.zeros_like(keys)
    counter = torch.tensor(777, device=DEVICE)
    cache_write(k_ref, v := torch.randn_like(k_ref), keys, values, counter)
    out["cache_write_ok"] = same_bits(keys[:, :, 777:778], k_ref) and same_bits(values[:, :, 777:778], v) and int(counter) == 778
    for length in (1024, 16384):
        kc = torch.randn(1, 8, 16384, 128, device=DEVICE, dtype=torch.bfloat16)[:, :, :length]
        vc = torch.randn(1, 8, 16384, 128, device=DEVICE, dtype=torch.bfloat16)[:, :, :length]
        mask = (torch.arange(length, device=DEVICE) < length - 100).view(1, 1, 1, length)
        scale = 128 ** -0.5
        ours = split_decode_attention(q_ref.contiguous(), kc, vc, mask, scale)
        exact = decode_attention(q_ref.float(), kc.float(), vc.float(), mask, scale)
        pytorch = decode_attention(q_ref.contiguous(), kc, vc, mask, scale)
        out[f"attention_{length}_max_rel_vs_fp32"] = max_rel(ours, exact)
        out[f"pytorch_attention_{length}_max_rel_vs_fp32"] = max_rel(pytorch, exact)
    return out


def model_check() -> dict:
    torch.manual_seed(1)
    config = MistralConfig(
        vocab_size=4096, hidden_size=5120, intermediate_size=14336, num_hidden_layers=4,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
        sliding_window=None, rms_norm_eps=1e-5,
    )
    config._attn_implementation = register()
    with torch.device(DEVICE):
        model = MistralForCausalLM(config).to(torch.bfloat16).eval()
    prompt = torch.randint(0, 4096, (1, 64), device=DEVICE)

    def decode(fused: bool, attention: str, forced: list[int] | None = None):
        """Greedy decoding; with `forced`, those tokens are fed instead (teacher forcing), so
        the logits of two runs can be compared step by step even after their argmax differ."""
        model.config._attn_implementation = attention
        for layer in model.model.layers:
            layer.self_attn.config._attn_implementation = attention
        cache = StaticCache(config=config, max_cache_len=1024)
        cache.early_initialization(batch_size=1, num_heads=8, head_dim=128, dtype=torch.bfloat16, device=DEVICE)
        handle = enable_fused_decode_ops(model) if fused else None
        if fused:
            assert fuse_cache_writes(cache) == 4
        tokens, logits = [], []
        with torch.inference_mode():
            out = model(prompt, past_key_values=cache, use_cache=True)
            for step in range(48):
                step_logits = out.logits[:, -1].float()
                logits.append(step_logits)
                token = step_logits.argmax(-1, keepdim=True)
                tokens.append(int(token))
                if forced is not None:
                    token = torch.tensor([[forced[step]]], device=DEVICE)
                out = model(token, past_key_values=cache, use_cache=True)
        if handle:
            handle.disable()
        return tokens, logits

    def rel(a, b):
        return [float((x - y).norm() / y.norm()) for x, y in zip(a, b)]

    name = config._attn_implementation
    plain_tokens, plain_logits = decode(False, name)
    fused_tokens, fused_logits = decode(True, name, forced=plain_tokens)
    _, sdpa_logits = decode(False, "sdpa", forced=plain_tokens)
    fused_rel, sdpa_rel = rel(fused_logits, plain_logits), rel(sdpa_logits, plain_logits)
    agree = sum(a == b for a, b in zip(plain_tokens, fused_tokens))
    return {
        "steps": len(plain_tokens),
        "fused_vs_plain_argmax_agree_teacher_forced": agree,
        "fused_vs_plain_logits_rel_median_max": [sorted(fused_rel)[len(fused_rel) // 2], max(fused_rel)],
        # the same model with transformers' SDPA attention instead: the bf16 noise floor
        "sdpa_vs_plain_logits_rel_median_max": [sorted(sdpa_rel)[len(sdpa_rel) // 2], max(sdpa_rel)],
    }


def main() -> None:
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    report.update(op_checks())
    report.update(model_check())
    text = json.dumps(report, indent=1)
    print(text)
    Path(os.environ.get("OUT", "."), "fused_ops_check.json").write_text(text)


if __name__ == "__main__":
    main()
