"""fp8 (e4m3) KV cache against bf16 KV: the writer's logit drift, on CPU, random weights.

    server/.venv/bin/python bench/cpu/fp8_kv_drift.py   # writes bench/results/fp8-kv-drift.json

The dev profile's writer (MistralForCausalLM, engine/dev/models.py: the magnum/Nemo config
scaled down, seeded random weights) runs in bf16, attention through transformers' SDPA. Each
of N seeded prompts of uniformly random token ids is prefilled in one forward; its
continuation is sampled (temperature 1) by a token-by-token bf16 run, then teacher-forced in
one forward by every variant, so all variants score the same tokens:

- bf16: the KV cache as the model computes it (the reference);
- bf16, token by token: the sampling run itself; the same tokens and the same bf16 cache, only
  the continuation's shapes differ (one row per forward instead of all of them), so the
  arithmetic's reduction order differs: the drift no KV format can be judged below;
- fp8, scale 1.0: every K and V written to the cache divided by its scale, clamped to +-448,
  rounded to float8_e4m3fn, read back times the scale in bf16. Scale 1.0 is vLLM's default
  (`kv_cache_dtype="fp8"` without calibrated scales); the clamp is its saturating conversion;
- fp8, per-head amax: one static scale per layer, KV head and K/V, = amax / 448 over a
  separate set of calibration prompts run in bf16 (what a calibrated per-head scale is;
  larger values met later saturate);
- fp8, per-head amax of the sequence itself (oracle): the same with each sequence's own amax
  from its bf16 run, so nothing clips but what the layers before round upward: the format's
  rounding alone.

The rounding wraps `DynamicCache.update` (K after RoPE, as it is stored), so every position
of prompt and continuation reads its keys and values as the cache holds them: the decode
path, where the current token's K/V is written first and read back. Rounding on write and
storing the result in bf16 is the same as storing fp8 and dequantizing on every read.

Two random-weight models: the dev writer as built, whose attention is uniform (entropy =
ln(context)) and whose attention output is a fraction of the residual stream, so it barely
reads the cache; and the same weights with q_proj x128 and o_proj x4 (powers of two: exact in
bf16), whose attention is peaked and whose attention output is as large as the residual or
larger. Neither has a trained model's activation outliers: the figures bound the format's
rounding, not a trained model's quality.

One CPU thread (torch.set_num_threads(1)); a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "server")]
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import DynamicCache, MistralConfig  # noqa: E402

from pictale_server.engine.dev.models import REFERENCE_CONFIGS, dev_writer_model  # noqa: E402
from pictale_server.engine.kv_pool import PAGE_TOKENS, bytes_per_token, pool_tokens  # noqa: E402

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448
E4M3_MIN_NORMAL = torch.finfo(E4M3).tiny  # 2**-6
FIRST_TEXT_ID = 11  # the dev tokenizer's ids 0-10 are its special tokens
STRESS_GAINS = {"q_proj": 128.0, "o_proj": 4.0}
GIB = 2**30

# The A10G measurement (docs/benchmarks.md, "Continuous batching"; concurrency-bench.json).
A10G_POOL_SLOTS = 30_208
A10G_LANES = 16
MAX_CONTEXT = 16_384  # settings.max_context_tokens


class RoundingCache(DynamicCache):
    """A DynamicCache whose every K and V goes through `round_kv(tensor, layer, "k"|"v")` before
    it is stored (and so before attention reads it back)."""

    def __init__(self, config, round_kv) -> None:
        super().__init__(config=config)
        self.round_kv = round_kv

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        key_states = self.round_kv(key_states, layer_idx, "k")
        value_states = self.round_kv(value_states, layer_idx, "v")
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)


class Fp8Rounding:
    """Quantize to e4m3 with a scale per (layer, K/V, KV head), dequantize to the input dtype;
    counts what the rounding did."""

    def __init__(self, scales: dict[tuple[int, str], torch.Tensor]) -> None:
        self.scales = scales  # [kv heads] float32 each
        self.reset()

    def reset(self) -> None:
        self.stats = {k: {"sq_err": 0.0, "sq": 0.0, "n": 0, "subnormal": 0, "zeroed": 0,
                          "saturated": 0} for k in ("k", "v")}

    def __call__(self, x: torch.Tensor, layer: int, kind: str) -> torch.Tensor:
        scale = self.scales[(layer, kind)].view(1, -1, 1, 1)
        scaled = x.float() / scale
        q = scaled.clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
        out = (q.float() * scale).to(x.dtype)
        s = self.stats[kind]
        s["sq_err"] += (out.float() - x.float()).pow(2).sum().item()
        s["sq"] += x.float().pow(2).sum().item()
        s["n"] += x.numel()
        s["subnormal"] += ((scaled.abs() < E4M3_MIN_NORMAL) & (scaled != 0)).sum().item()
        s["zeroed"] += ((q.float() == 0) & (x != 0)).sum().item()
        # above 448 by more than the float32 rounding of amax / (amax / 448)
        s["saturated"] += (scaled.abs() > E4M3_MAX * (1 + 1e-6)).sum().item()
        return out

    def summary(self) -> dict:
        return {
            kind: {
                "relative_rms_error": math.sqrt(s["sq_err"] / s["sq"]),
                "share_subnormal": s["subnormal"] / s["n"],
                "share_rounded_to_zero": s["zeroed"] / s["n"],
                "saturated": s["saturated"],
            }
            for kind, s in self.stats.items()
        }


class AmaxRecorder:
    """Identity rounding that records each (layer, K/V) head's absolute maximum."""

    def __init__(self) -> None:
        self.amax: dict[tuple[int, str], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, layer: int, kind: str) -> torch.Tensor:
        head_amax = x.float().abs().amax(dim=(0, 2, 3))
        key = (layer, kind)
        self.amax[key] = torch.maximum(self.amax[key], head_amax) if key in self.amax else head_amax
        return x


def keep(x: torch.Tensor, layer: int, kind: str) -> torch.Tensor:
    return x


@torch.no_grad()
def teacher_forced(model, prompt: torch.Tensor, continuation: torch.Tensor, round_kv):
    """Logits after each continuation token: prompt in one forward, continuation in one."""
    cache = RoundingCache(model.config, round_kv)
    model(input_ids=prompt, cache=cache, use_cache=True)
    return model(input_ids=continuation, cache=cache, use_cache=True).logits[0].float()


@torch.no_grad()
def sampled_token_by_token(model, prompt: torch.Tensor, new_tokens: int, seed: int):
    """The continuation sampled at temperature 1, one forward per token, bf16 cache; returns
    the tokens and the logits after each of them (the control's rows)."""
    generator = torch.Generator().manual_seed(seed)
    cache = RoundingCache(model.config, keep)
    logits = model(input_ids=prompt, cache=cache, use_cache=True).logits[0, -1].float()
    tokens, rows = [], []
    for _ in range(new_tokens):
        token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        tokens.append(token)
        logits = model(input_ids=token.view(1, 1), cache=cache, use_cache=True).logits[0, -1]
        logits = logits.float()
        rows.append(logits)
    return torch.cat(tokens).view(1, -1), torch.stack(rows)


def drift(reference: torch.Tensor, other: torch.Tensor) -> dict:
    """Logit drift of `other` from `reference`, both [positions, vocab] float32."""
    diff = (other - reference).abs()
    log_p = reference.log_softmax(-1)
    log_q = other.log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    agree = reference.argmax(-1) == other.argmax(-1)
    return {
        "max_abs_logit_diff": diff.max().item(),
        "mean_abs_logit_diff": diff.mean().item(),
        "mean_abs_diff_over_logit_std": (diff.mean() / reference.std()).item(),
        "mean_kl_nats": kl.mean().item(),
        "max_kl_nats": kl.max().item(),
        "top1_agreement_pct": 100.0 * agree.double().mean().item(),
        "positions": reference.shape[0],
    }


@torch.no_grad()
def attention_facts(model, prompt: torch.Tensor, continuation: torch.Tensor) -> dict:
    """How peaked the model's attention is over the continuation rows, and how large each
    layer's attention output is against the residual stream it is added to (eager attention)."""
    outputs: list[torch.Tensor] = []
    handles = [layer.self_attn.register_forward_hook(lambda m, a, out: outputs.append(out[0]))
               for layer in model.model.layers]
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        out = model(input_ids=torch.cat([prompt, continuation], 1), output_attentions=True,
                    output_hidden_states=True)
    finally:
        model.set_attn_implementation(before)
        for handle in handles:
            handle.remove()

    def rms(x: torch.Tensor) -> float:
        return x.float().pow(2).mean().sqrt().item()

    rows = prompt.shape[1]
    peaks, entropies = [], []
    for weights in out.attentions:
        w = weights[0, :, rows:].float()
        peaks.append(w.amax(-1).mean().item())
        entropies.append(-(w * w.clamp_min(1e-30).log()).sum(-1).mean().item())
    context = torch.arange(rows + 1, rows + continuation.shape[1] + 1).float()
    return {
        "mean_max_attention_weight": sum(peaks) / len(peaks),
        "mean_attention_entropy_nats": sum(entropies) / len(entropies),
        "uniform_attention_entropy_nats": context.log().mean().item(),
        "attention_output_rms_over_residual_rms": [
            rms(a) / rms(h) for a, h in zip(outputs, out.hidden_states, strict=False)],
    }


def random_prompts(count: int, tokens: int, vocab: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(FIRST_TEXT_ID, vocab, (1, tokens), generator=generator)
            for _ in range(count)]


def study(model, args) -> dict:
    vocab = model.config.vocab_size
    layers = model.config.num_hidden_layers
    heads = model.config.num_key_value_heads
    started = time.perf_counter()

    # Static per-head scales from calibration prompts (prompt + continuation length, bf16).
    recorder = AmaxRecorder()
    for prompt in random_prompts(args.calibration_prompts, args.prompt_tokens + args.new_tokens,
                                 vocab, args.seed + 1):
        teacher_forced(model, prompt[:, : args.prompt_tokens], prompt[:, args.prompt_tokens :],
                       recorder)
    per_head = Fp8Rounding({key: amax / E4M3_MAX for key, amax in recorder.amax.items()})
    unit = Fp8Rounding({(layer, kind): torch.ones(heads) for layer in range(layers)
                        for kind in ("k", "v")})

    own = Fp8Rounding({})
    reference, control, fp8_unit, fp8_head, fp8_own = [], [], [], [], []
    prompts = random_prompts(args.prompts, args.prompt_tokens, vocab, args.seed)
    for index, prompt in enumerate(prompts):
        continuation, rows = sampled_token_by_token(model, prompt, args.new_tokens,
                                                    args.seed + 100 + index)
        control.append(rows)
        recorder = AmaxRecorder()
        reference.append(teacher_forced(model, prompt, continuation, recorder))
        own.scales = {key: amax / E4M3_MAX for key, amax in recorder.amax.items()}
        fp8_unit.append(teacher_forced(model, prompt, continuation, unit))
        fp8_head.append(teacher_forced(model, prompt, continuation, per_head))
        fp8_own.append(teacher_forced(model, prompt, continuation, own))
        if index == 0:
            facts = attention_facts(model, prompt, continuation)
    reference = torch.cat(reference)
    return {
        "attention": facts,
        "per_head_scales": {f"layer {layer} {kind}": per_head.scales[(layer, kind)].tolist()
                            for layer, kind in sorted(per_head.scales)},
        "logit_std": reference.std().item(),
        "variants": {
            "bf16 token by token (reduction-order control)": {
                "drift": drift(reference, torch.cat(control))},
            "fp8 e4m3, per-tensor scale 1.0 (vLLM default)": {
                "drift": drift(reference, torch.cat(fp8_unit)), "rounding": unit.summary()},
            "fp8 e4m3, per-head amax scale (calibrated)": {
                "drift": drift(reference, torch.cat(fp8_head)), "rounding": per_head.summary()},
            "fp8 e4m3, per-head amax of the sequence itself (oracle scale)": {
                "drift": drift(reference, torch.cat(fp8_own)), "rounding": own.summary()},
        },
        "seconds": time.perf_counter() - started,
    }


def capacity() -> dict:
    """The writer's pool on the A10G (kv_pool.py's arithmetic) with bf16 and fp8 slots."""
    raw = json.loads((REFERENCE_CONFIGS / "mistral_nemo_12b.config.json").read_text())
    config = MistralConfig(**{k: v for k, v in raw.items() if not k.startswith("_")})
    bf16, fp8 = bytes_per_token(config, torch.bfloat16), bytes_per_token(config, E4M3)
    # The measured pool: pool_tokens gave 30,208 slots (scratch page included), so
    # free - headroom lay in [first, last] bytes. The same bytes hold fp8 slots:
    capacity_bf16 = A10G_POOL_SLOTS - PAGE_TOKENS
    first = (capacity_bf16 - PAGE_TOKENS + 1) * bf16
    last = (capacity_bf16 + 1) * bf16 - 1
    headroom = 2 << 30  # kv_pool.GPU_HEADROOM_BYTES
    most = A10G_LANES * MAX_CONTEXT
    fp8_pools = sorted({pool_tokens(free + headroom, fp8, MAX_CONTEXT, most)
                        for free in (first, last)})
    assert pool_tokens(first + headroom, bf16, MAX_CONTEXT, most) == A10G_POOL_SLOTS
    assert pool_tokens(last + headroom, bf16, MAX_CONTEXT, most) == A10G_POOL_SLOTS

    def streams(slots: int, prompt: int, new: int) -> int:
        reservation = -(-(prompt + new) // PAGE_TOKENS) * PAGE_TOKENS
        return (slots - PAGE_TOKENS) // reservation

    cases = {"512 + 256": (512, 256), "4k history + 256": (4096, 256),
             "16k context (full) + 256": (MAX_CONTEXT, 256)}
    return {
        "kv_bytes_per_token": {"bf16": bf16, "fp8": fp8},
        "pool_slots": {"bf16": A10G_POOL_SLOTS, "fp8": fp8_pools},
        "pool_gib": {"bf16": A10G_POOL_SLOTS * bf16 / GIB,
                     "fp8": [p * fp8 / GIB for p in fp8_pools]},
        "streams_that_fit": {
            name: {"bf16": streams(A10G_POOL_SLOTS, *case),
                   "fp8": sorted({streams(p, *case) for p in fp8_pools})}
            for name, case in cases.items()
        },
        "lanes": {"default": 8, "most": A10G_LANES},
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--calibration-prompts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "fp8-kv-drift.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    model, _ = dev_writer_model()
    model = model.to(torch.bfloat16).eval()
    config = model.config
    report = {
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": {
            "source": "dev profile writer (engine/dev/models.py), seeded random weights",
            "class": type(model).__name__,
            "dtype": "bfloat16 (weights, activations, KV)",
            "attention": config._attn_implementation,
            "hidden_size": config.hidden_size,
            "layers": config.num_hidden_layers,
            "attention_heads": config.num_attention_heads,
            "kv_heads": config.num_key_value_heads,
            "head_dim": config.head_dim,
            "vocab_size": config.vocab_size,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "method": {
            "prompts": args.prompts, "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens, "calibration_prompts": args.calibration_prompts,
            "seed": args.seed, "compared": "logits after each teacher-forced continuation token",
            "stress_gains": STRESS_GAINS,
        },
        "models": {},
    }
    stressed = "dev writer, q_proj x128 and o_proj x4 (peaked attention)"
    for name in ("dev writer", stressed):
        if name == stressed:
            with torch.no_grad():
                for module_name, module in model.named_modules():
                    gain = STRESS_GAINS.get(module_name.rsplit(".", 1)[-1])
                    if gain is not None:
                        module.weight.mul_(gain)
        report["models"][name] = study(model, args)
        print(name, json.dumps(report["models"][name]["variants"], indent=1), flush=True)
    report["a10g_capacity"] = capacity()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["a10g_capacity"], indent=1))


if __name__ == "__main__":
    main()
