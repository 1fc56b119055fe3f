"""Next-token sampling as one pure tensor function, with no host synchronisation.

Every setting lives in a tensor (`SamplingTensors`), so one captured CUDA graph serves every
request: temperature 0 selects greedy through `torch.where`, not a Python branch. Randomness is
a counter-based hash of (seed, step, token index) → Gumbel noise, which is deterministic for a
seed on any device and needs no generator state inside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pictale_server.engine.base import Sampling

_MASK32 = 0xFFFFFFFF


@dataclass
class SamplingTensors:
    """Per-request sampling settings as 0-d device tensors (updated in place between requests)."""

    temperature: torch.Tensor  # float32
    top_p: torch.Tensor  # float32
    top_k: torch.Tensor  # int64, 0 = off
    min_p: torch.Tensor  # float32
    repetition_penalty: torch.Tensor  # float32
    seed: torch.Tensor  # int64
    step: torch.Tensor  # int64, advanced by one per sampled token

    @classmethod
    def allocate(cls, device: torch.device | str) -> SamplingTensors:
        def f32() -> torch.Tensor:
            return torch.zeros((), dtype=torch.float32, device=device)

        def i64() -> torch.Tensor:
            return torch.zeros((), dtype=torch.int64, device=device)

        return cls(f32(), f32(), i64(), f32(), f32(), i64(), i64())

    def assign(self, sampling: Sampling, seed: int) -> None:
        self.temperature.fill_(sampling.temperature)
        self.top_p.fill_(sampling.top_p)
        self.top_k.fill_(sampling.top_k)
        self.min_p.fill_(sampling.min_p)
        self.repetition_penalty.fill_(sampling.repetition_penalty)
        self.seed.fill_(seed & 0x7FFF_FFFF_FFFF_FFFF)
        self.step.zero_()


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on int64 tensors holding 32-bit values."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniform_noise(seed: torch.Tensor, step: torch.Tensor, size: int) -> torch.Tensor:
    """Uniform floats in (0, 1), one per token index, a pure function of (seed, step)."""
    key = _hash32((seed & _MASK32) ^ _hash32(step ^ _hash32(seed >> 32)))
    index = torch.arange(size, device=seed.device, dtype=torch.int64)
    bits = _hash32(index * 0x9E3779B1 + key) >> 8  # 24 random bits
    return (bits.to(torch.float32) + 0.5) / float(1 << 24)


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """HF semantics: seen tokens' positive logits are divided by the penalty, negative multiplied."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def filter_logits(logits: torch.Tensor, params: SamplingTensors) -> torch.Tensor:
    """Temperature, then top-k, top-p and min-p as masks (-inf); always keeps the best token."""
    vocab = logits.shape[-1]
    scaled = logits / params.temperature.clamp_min(1e-5)
    sorted_logits, _ = torch.sort(scaled, dim=-1, descending=True)

    k = torch.where(params.top_k > 0, params.top_k.clamp(max=vocab), vocab)
    kth_logit = sorted_logits.gather(-1, (k - 1).view(1, 1).expand(scaled.shape[0], 1))
    keep = scaled >= kth_logit

    sorted_probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    # Smallest logit still inside the top-p nucleus (the first token always is).
    in_nucleus = mass_before < params.top_p
    nucleus_floor = torch.where(in_nucleus, sorted_logits, sorted_logits[..., :1]).amin(
        dim=-1, keepdim=True
    )
    keep &= scaled >= nucleus_floor

    probs = torch.softmax(scaled, dim=-1)
    keep &= probs >= params.min_p * probs.amax(dim=-1, keepdim=True)
    return scaled.masked_fill(~keep, float("-inf"))


def sample_next_token(
    logits: torch.Tensor, seen: torch.Tensor, params: SamplingTensors, noise=uniform_noise
) -> torch.Tensor:
    """(batch 1, vocab) float logits → (1,) int64 next token. Greedy when temperature is 0.
    `noise`: `uniform_noise` or a function that returns the same values (its GPU kernel)."""
    logits = apply_repetition_penalty(logits.float(), seen, params.repetition_penalty)
    greedy = logits.argmax(dim=-1)
    filtered = filter_logits(logits, params)
    gumbel = -torch.log(-torch.log(noise(params.seed, params.step, logits.shape[-1])))
    sampled = (filtered + gumbel).argmax(dim=-1)
    return torch.where(params.temperature > 0, sampled, greedy)
