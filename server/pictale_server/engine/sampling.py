"""Next-token sampling as one pure tensor function, with no host synchronisation.

Every setting lives in a tensor (`SamplingTensors`), so one captured CUDA graph serves every
request: temperature 0 selects greedy through `torch.where`, not a Python branch. Randomness is
a counter-based hash of (seed, step, token index) → Gumbel noise, which is deterministic for a
seed on any device and needs no generator state inside the graph.
"""

from __future__ import annotations

import dataclasses
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
    # creative_samplers.py's settings
    presence_penalty: torch.Tensor  # float32
    frequency_penalty: torch.Tensor  # float32
    dry_multiplier: torch.Tensor  # float32, 0 = off
    dry_base: torch.Tensor  # float32
    dry_allowed_length: torch.Tensor  # int64
    dry_last_n: torch.Tensor  # int64, <= 0 = the whole text
    xtc_threshold: torch.Tensor  # float32
    xtc_probability: torch.Tensor  # float32, 0 = off

    @classmethod
    def allocate(cls, device: torch.device | str, rows: int | None = None) -> SamplingTensors:
        """0-d tensors; with `rows`, tensors of `rows` values (one request's settings each,
        `row(i)` its view), which a kernel sampling many rows at once reads."""
        shape = () if rows is None else (rows,)

        def f32() -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float32, device=device)

        def i64() -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.int64, device=device)

        return cls(
            f32(), f32(), i64(), f32(), f32(), i64(), i64(), f32(), f32(), f32(), f32(), i64(), i64(), f32(), f32()
        )

    def row(self, index: int) -> SamplingTensors:
        """Row `index` of tensors allocated with `rows`, as 0-d views."""
        return SamplingTensors(*(getattr(self, field.name)[index] for field in dataclasses.fields(self)))

    def assign(self, sampling: Sampling, seed: int) -> None:
        self.temperature.fill_(sampling.temperature)
        self.top_p.fill_(sampling.top_p)
        self.top_k.fill_(sampling.top_k)
        self.min_p.fill_(sampling.min_p)
        self.repetition_penalty.fill_(sampling.repetition_penalty)
        self.seed.fill_(seed & 0x7FFF_FFFF_FFFF_FFFF)
        self.step.zero_()
        self.presence_penalty.fill_(sampling.presence_penalty)
        self.frequency_penalty.fill_(sampling.frequency_penalty)
        self.dry_multiplier.fill_(sampling.dry_multiplier)
        self.dry_base.fill_(sampling.dry_base)
        self.dry_allowed_length.fill_(sampling.dry_allowed_length)
        self.dry_last_n.fill_(sampling.dry_penalty_last_n)
        self.xtc_threshold.fill_(sampling.xtc_threshold)
        self.xtc_probability.fill_(sampling.xtc_probability)


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


def needs_ranking(sampling: Sampling) -> bool:
    """Whether `sampling` filters by rank (top-k, top-p), which takes a sort of the vocabulary;
    greedy decoding and temperature with min-p alone do not."""
    return sampling.temperature > 0 and (sampling.top_k > 0 or sampling.top_p < 1)


def filter_logits(logits: torch.Tensor, params: SamplingTensors, by_rank: bool = True) -> torch.Tensor:
    """Temperature, then top-k, top-p and min-p as masks (-inf); always keeps the best token.

    `by_rank=False` leaves out top-k and top-p, and with them the sort (~70 us per token on an
    H200 in a decode step of ~3.8 ms): for settings where `needs_ranking` is False they keep
    every token, so the result is the same."""
    scaled = logits / params.temperature.clamp_min(1e-5)
    if not by_rank:
        best = scaled.amax(dim=-1, keepdim=True)
        return scaled.masked_fill(scaled < best + torch.log(params.min_p), float("-inf"))
    vocab = logits.shape[-1]
    sorted_logits, _ = torch.sort(scaled, dim=-1, descending=True)

    k = torch.where(params.top_k > 0, params.top_k.clamp(max=vocab), vocab)
    kth_logit = sorted_logits.gather(-1, (k - 1).view(1, 1).expand(scaled.shape[0], 1))
    keep = scaled >= kth_logit

    # Probabilities up to their common factor 1/sum: no softmax. On a GPU a softmax over one
    # row of a 131k vocabulary runs in a single thread block (~33 us on an H200, where these
    # element-wise ops and the scan take a few us each).
    best = sorted_logits[..., :1]
    weights = torch.exp(sorted_logits - best)
    mass = torch.cumsum(weights, dim=-1)
    # Smallest logit still inside the top-p nucleus (the first token always is). top_p 1 keeps
    # every token, also those whose share of the sum rounds away in float32.
    in_nucleus = (mass - weights < params.top_p * mass[..., -1:]) | (params.top_p >= 1)
    nucleus_floor = torch.where(in_nucleus, sorted_logits, best).amin(dim=-1, keepdim=True)
    keep &= scaled >= nucleus_floor

    # p >= min_p * p_max  <=>  logit >= best logit + log(min_p); min_p 0 keeps every token.
    keep &= scaled >= best + torch.log(params.min_p)
    return scaled.masked_fill(~keep, float("-inf"))


def sample_next_token(
    logits: torch.Tensor, seen: torch.Tensor, params: SamplingTensors, noise=uniform_noise, by_rank: bool = True
) -> torch.Tensor:
    """(batch 1, vocab) float logits → (1,) int64 next token. Greedy when temperature is 0.
    `noise`: `uniform_noise` or a function that returns the same values (its GPU kernel).
    `by_rank`: see `filter_logits` (False only where `needs_ranking` is False)."""
    logits = apply_repetition_penalty(logits.float(), seen, params.repetition_penalty)
    greedy = logits.argmax(dim=-1)
    filtered = filter_logits(logits, params, by_rank)
    gumbel = -torch.log(-torch.log(noise(params.seed, params.step, logits.shape[-1])))
    sampled = (filtered + gumbel).argmax(dim=-1)
    return torch.where(params.temperature > 0, sampled, greedy)
