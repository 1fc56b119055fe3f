"""The samplers creative writers ask for, as pure tensor functions over fixed buffers.

logit bias, presence and frequency penalties, DRY and XTC. Like sampling.py they read every
setting from tensors and never synchronise with the host, so a captured CUDA graph runs them
on the fast path as on the reference path. A request that asks for none of them never runs
them (`needs_creative`): plain decoding keeps its kernels.

- Presence and frequency penalties count the answer's tokens only (OpenAI's and vLLM's
  meaning); the repetition penalty (sampling.py) covers the prompt too.
- DRY ("Don't Repeat Yourself", p-e-w's algorithm as text-generation-webui publishes it):
  when the text's last tokens repeat a sequence seen before, the token that continued that
  sequence is penalised by `multiplier * base ** (length - allowed_length)` for a repeat of
  `length` >= `allowed_length` tokens, matches extended back at most 50 tokens and never across
  a sequence breaker; over the last `dry_penalty_last_n` tokens (0: all).
- XTC ("Exclude Top Choices"): with probability `xtc_probability` per token, every token whose
  probability is at least `xtc_threshold` is removed except the least likely of them, unless
  that would remove a line break or the end of the text.

Order, as the logits flow: bias and bans, repetition penalty, presence/frequency, DRY, greedy
pick; then temperature, top-k, top-p, min-p, XTC, and the seeded Gumbel draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pictale_server.engine.base import Sampling
from pictale_server.engine.sampling import (
    SamplingTensors,
    apply_repetition_penalty,
    filter_logits,
    needs_ranking,
    uniform_noise,
)

DRY_MAX_MATCH = 50  # as the published algorithm: bounds the exponent and the work
XTC_STREAM = 0x5851F42D4C957F2D  # mixed into the seed for XTC's own draws


def needs_creative(sampling: Sampling) -> bool:
    """Whether `sampling` asks for any sampler of this module (or banned phrases, whose bans
    and rewinds need its buffers)."""
    return bool(
        sampling.presence_penalty
        or sampling.frequency_penalty
        or sampling.logit_bias
        or sampling.dry_multiplier > 0
        or sampling.xtc_probability > 0
        or sampling.banned_phrases
    )


@dataclass
class CreativeState:
    """What these samplers read besides the logits: fixed device buffers, updated in place."""

    counts: torch.Tensor  # (1, vocab) float32: how often each token is in the answer
    history: torch.Tensor  # (capacity,) int64: prompt and answer, by cache slot
    length: torch.Tensor  # 0-d int64: tokens in `history`
    bias: torch.Tensor  # (1, vocab) float32: logit bias, and -inf for tokens banned here
    breakers: torch.Tensor  # (vocab,) bool: DRY's sequence breakers
    xtc_keep: torch.Tensor  # (vocab,) bool: tokens XTC never removes (line breaks, end)

    @classmethod
    def allocate(cls, vocab: int, capacity: int, device: torch.device | str) -> CreativeState:
        return cls(
            counts=torch.zeros((1, vocab), dtype=torch.float32, device=device),
            history=torch.zeros(capacity, dtype=torch.int64, device=device),
            length=torch.zeros((), dtype=torch.int64, device=device),
            bias=torch.zeros((1, vocab), dtype=torch.float32, device=device),
            breakers=torch.zeros(vocab, dtype=torch.bool, device=device),
            xtc_keep=torch.zeros(vocab, dtype=torch.bool, device=device),
        )


def presence_frequency(logits: torch.Tensor, counts: torch.Tensor, params: SamplingTensors) -> torch.Tensor:
    return logits - params.presence_penalty * (counts > 0) - params.frequency_penalty * counts


def dry_penalties(state: CreativeState, params: SamplingTensors, vocab: int) -> torch.Tensor:
    """(1, vocab) DRY penalties for the next token, from the history's last token backwards."""
    history, length = state.history, state.length
    capacity = history.shape[0]
    device = history.device
    window = torch.where(params.dry_last_n > 0, params.dry_last_n.clamp(max=length), length)
    start = length - window
    # 1-element index tensors throughout: indexing with a 0-d tensor reads it on the host,
    # which a captured graph cannot do.
    last = history.index_select(0, (length - 1).clamp(min=0).view(1))
    positions = torch.arange(capacity, device=device)
    # Candidates: earlier places where the last token occurred, followed by a non-breaker.
    following = history[(positions + 1).clamp(max=capacity - 1)]
    candidate = (
        (positions >= start) & (positions < length - 1) & (history == last) & ~state.breakers[following]
    )
    # Extend each match back: k tokens before it against k tokens before the end.
    k = torch.arange(1, DRY_MAX_MATCH, device=device)
    before = positions.view(-1, 1) - k.view(1, -1)  # (capacity, 49)
    suffix_at = (length - 1 - k).clamp(min=0)
    suffix = history[suffix_at]
    agrees = (
        (before >= start)
        & (history[before.clamp(min=0)] == suffix.view(1, -1))
        & ~state.breakers[suffix].view(1, -1)
    )
    match = 1 + torch.cumprod(agrees.to(torch.int32), dim=1).sum(dim=1)
    match = torch.where(candidate, match, 0)
    longest = torch.zeros(vocab, dtype=torch.int32, device=device)
    longest = longest.scatter_reduce(0, following, match.to(torch.int32), reduce="amax")
    exponent = (longest - params.dry_allowed_length).to(torch.float32)
    penalty = params.dry_multiplier * torch.pow(params.dry_base, exponent)
    penalize = (longest >= params.dry_allowed_length) & (longest > 0) & ~state.breakers[last]
    return torch.where(penalize, penalty, 0.0).view(1, -1)


def xtc(filtered: torch.Tensor, state: CreativeState, params: SamplingTensors) -> torch.Tensor:
    """XTC over the filtered (temperature-scaled, truncated) logits; its draw is the seeded
    noise of a second stream (the seed mixed with a constant), so a seed gives the same choices
    every time and they are independent of the token draws."""
    probs = torch.softmax(filtered, dim=-1)
    above = probs >= params.xtc_threshold
    least = torch.where(above, probs, 2.0).amin(dim=-1, keepdim=True)
    remove = above & (probs > least)
    draw = uniform_noise(params.seed ^ XTC_STREAM, params.step, 1)[0]
    active = (draw < params.xtc_probability) & (above.sum() >= 2) & ~(remove & state.xtc_keep).any()
    return filtered.masked_fill(remove & active, float("-inf"))


def creative_sample_next_token(
    logits: torch.Tensor, seen: torch.Tensor, state: CreativeState, params: SamplingTensors, noise=uniform_noise
) -> torch.Tensor:
    """sampling.sample_next_token with this module's samplers in their places."""
    vocab = logits.shape[-1]
    logits = logits.float() + state.bias
    logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    logits = presence_frequency(logits, state.counts, params)
    logits = logits - torch.where(params.dry_multiplier > 0, dry_penalties(state, params, vocab), 0.0)
    greedy = logits.argmax(dim=-1)
    filtered = xtc(filter_logits(logits, params, by_rank=True), state, params)
    gumbel = -torch.log(-torch.log(noise(params.seed, params.step, vocab)))
    sampled = (filtered + gumbel).argmax(dim=-1)
    return torch.where(params.temperature > 0, sampled, greedy)


def creative_accept(
    next_token: torch.Tensor, seen: torch.Tensor, state: CreativeState, params: SamplingTensors, token: torch.Tensor
) -> None:
    """Feed the token back: seen, the answer's counts, the history; the sampler's step on."""
    one = next_token.view(1, 1)
    seen.scatter_(1, one, True)
    state.counts.scatter_add_(1, one, torch.ones((1, 1), dtype=torch.float32, device=one.device))
    state.history.index_copy_(0, state.length.view(1), next_token.view(1))
    state.length.add_(1)
    token.copy_(one)
    params.step.add_(1)


__all__ = [
    "CreativeState",
    "creative_accept",
    "creative_sample_next_token",
    "dry_penalties",
    "needs_creative",
    "needs_ranking",
    "presence_frequency",
    "xtc",
]
