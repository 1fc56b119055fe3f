"""DRY, XTC, presence/frequency penalties and logit bias against plain reference versions.

The references are written out here from the samplers' published descriptions (DRY and XTC as
text-generation-webui publishes them), loop by loop on Python lists; the engine's versions are
tensor functions that run inside a captured CUDA graph. Same inputs, same outputs.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from pictale_server.engine.base import Sampling
from pictale_server.engine.creative_samplers import (
    DRY_MAX_MATCH,
    CreativeState,
    creative_sample_next_token,
    dry_penalties,
    presence_frequency,
    xtc,
)
from pictale_server.engine.sampling import SamplingTensors, filter_logits, sample_next_token

VOCAB = 24


def params_for(sampling: Sampling, seed: int = 0) -> SamplingTensors:
    params = SamplingTensors.allocate("cpu")
    params.assign(sampling, seed)
    return params


def state_with(history: list[int], breakers: set[int] = frozenset(), capacity: int = 96) -> CreativeState:
    state = CreativeState.allocate(VOCAB, capacity, "cpu")
    state.history[: len(history)] = torch.tensor(history)
    state.length.fill_(len(history))
    state.breakers[list(breakers)] = True
    return state


# --- DRY -----------------------------------------------------------------------------------------


def reference_dry(ids, multiplier, base, allowed_length, breakers, last_n):
    """text-generation-webui's DRYLogitsProcessor, on a list."""
    if last_n > 0:
        ids = ids[-last_n:]
    penalties = [0.0] * VOCAB
    last = ids[-1]
    if last in breakers:
        return penalties
    lengths: dict[int, int] = {}
    for i in [i for i, value in enumerate(ids[:-1]) if value == last]:
        following = ids[i + 1]
        if following in breakers:
            continue
        length = 1
        while length < DRY_MAX_MATCH:
            j = i - length
            if j < 0:
                break
            previous = ids[-(length + 1)]
            if ids[j] != previous or previous in breakers:
                break
            length += 1
        lengths[following] = max(length, lengths.get(following, 0))
    for token, length in lengths.items():
        if length >= allowed_length:
            penalties[token] = multiplier * base ** (length - allowed_length)
    return penalties


def repetitive_history(rng: random.Random, size: int) -> list[int]:
    """Text that repeats itself: phrases drawn from a few, with noise between them."""
    phrases = [[rng.randrange(VOCAB) for _ in range(rng.randint(2, 7))] for _ in range(4)]
    ids: list[int] = []
    while len(ids) < size:
        ids += rng.choice(phrases) if rng.random() < 0.7 else [rng.randrange(VOCAB)]
    return ids[:size]


@pytest.mark.parametrize("case", range(60))
def test_dry_matches_the_published_algorithm(case: int) -> None:
    rng = random.Random(case)
    ids = repetitive_history(rng, rng.randint(2, 90))
    breakers = {rng.randrange(VOCAB) for _ in range(rng.randint(0, 3))}
    multiplier, base = rng.choice([0.8, 1.5]), rng.choice([1.75, 2.0])
    allowed, last_n = rng.randint(1, 4), rng.choice([0, 0, 8, 30])
    sampling = Sampling(
        max_tokens=1, dry_multiplier=multiplier, dry_base=base, dry_allowed_length=allowed,
        dry_penalty_last_n=last_n,
    )
    ours = dry_penalties(state_with(ids, breakers), params_for(sampling), VOCAB)[0].tolist()
    theirs = reference_dry(ids, multiplier, base, allowed, breakers, last_n)
    assert ours == pytest.approx(theirs, rel=1e-5), (ids, breakers)


def test_dry_extends_matches_at_most_fifty_tokens_back() -> None:
    ids = [1, 2] * 80 + [1]
    sampling = Sampling(max_tokens=1, dry_multiplier=1.0, dry_base=1.0, dry_allowed_length=1)
    ours = dry_penalties(state_with(ids, capacity=200), params_for(sampling), VOCAB)[0]
    assert ours[2] == pytest.approx(reference_dry(ids, 1.0, 1.0, 1, set(), 0)[2])
    ours_steep = dry_penalties(
        state_with(ids, capacity=200), params_for(Sampling(max_tokens=1, dry_multiplier=1.0, dry_base=2.0, dry_allowed_length=1)), VOCAB
    )[0]
    assert ours_steep[2] == pytest.approx(2.0 ** (DRY_MAX_MATCH - 1))


# --- XTC -----------------------------------------------------------------------------------------


def reference_xtc(logits: torch.Tensor, threshold: float, keep: set[int]) -> torch.Tensor:
    """text-generation-webui's XTCLogitsWarper once its coin says "apply"."""
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    remove_sorted = torch.zeros_like(probs, dtype=torch.bool)
    remove_sorted[..., :-1] = probs[..., 1:] >= threshold
    remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
    if remove[:, sorted(keep)].any():
        return logits
    return logits.masked_fill(remove, float("-inf"))


@pytest.mark.parametrize("case", range(40))
def test_xtc_matches_the_published_sampler_when_it_applies(case: int) -> None:
    torch.manual_seed(case)
    logits = torch.randn(1, VOCAB) * 3
    threshold = [0.05, 0.1, 0.2][case % 3]
    keep = {case % VOCAB} if case % 4 == 0 else set()
    state = state_with([1])
    state.xtc_keep[list(keep)] = True
    params = params_for(Sampling(max_tokens=1, xtc_threshold=threshold, xtc_probability=1.0))
    assert torch.equal(xtc(logits, state, params), reference_xtc(logits, threshold, keep))


def test_xtc_applies_with_its_probability_and_a_seed_repeats_its_coins() -> None:
    logits = torch.tensor([[4.0, 3.9, 3.8] + [0.0] * (VOCAB - 3)])
    state = state_with([1])

    def coins(seed: int) -> list[bool]:
        params = params_for(Sampling(max_tokens=1, xtc_threshold=0.1, xtc_probability=0.3), seed)
        flips = []
        for _ in range(400):
            flips.append(bool(torch.isinf(xtc(logits, state, params)).any()))
            params.step.add_(1)
        return flips

    first = coins(7)
    assert first == coins(7)
    assert first != coins(8)
    assert 0.2 < sum(first) / len(first) < 0.4


# --- penalties, bias, and the whole sampler ------------------------------------------------------


def test_presence_and_frequency_penalties_count_the_answers_tokens() -> None:
    logits = torch.zeros(1, VOCAB)
    state = state_with([1])
    state.counts[0, 3] = 2
    state.counts[0, 5] = 1
    out = presence_frequency(logits, state.counts, params_for(Sampling(max_tokens=1, presence_penalty=0.5, frequency_penalty=0.25)))
    assert out[0, 3] == pytest.approx(-1.0) and out[0, 5] == pytest.approx(-0.75) and out[0, 0] == 0


def test_a_bias_of_minus_infinity_bans_and_a_positive_bias_wins_greedy() -> None:
    logits = torch.arange(VOCAB, dtype=torch.float32).view(1, -1)
    state = state_with([1])
    seen = torch.zeros(1, VOCAB, dtype=torch.bool)
    greedy = params_for(Sampling(max_tokens=1, temperature=0.0))
    state.bias[0, VOCAB - 1] = float("-inf")
    assert int(creative_sample_next_token(logits, seen, state, greedy)) == VOCAB - 2
    state.bias[0, 4] = 100.0
    assert int(creative_sample_next_token(logits, seen, state, greedy)) == 4


@pytest.mark.parametrize("seed", range(25))
def test_with_every_creative_sampler_neutral_the_picks_are_the_plain_samplers(seed: int) -> None:
    torch.manual_seed(seed)
    logits = torch.randn(1, VOCAB) * 2
    seen = torch.rand(1, VOCAB) < 0.3
    sampling = Sampling(max_tokens=1, temperature=0.9, top_p=0.9, top_k=10, min_p=0.05, repetition_penalty=1.2)
    ours = creative_sample_next_token(logits, seen, state_with([1, 2, 3]), params_for(sampling, seed))
    theirs = sample_next_token(logits, seen, params_for(sampling, seed))
    assert int(ours) == int(theirs)


def test_dry_changes_the_greedy_pick_away_from_a_repeat() -> None:
    ids = [5, 6, 7, 8, 5, 6, 7]  # the text would go on with 8
    logits = torch.zeros(1, VOCAB)
    logits[0, 8] = 1.0
    seen = torch.zeros(1, VOCAB, dtype=torch.bool)
    plain = params_for(Sampling(max_tokens=1, temperature=0.0))
    dry = params_for(Sampling(max_tokens=1, temperature=0.0, dry_multiplier=0.8, dry_allowed_length=2))
    assert int(creative_sample_next_token(logits, seen, state_with(ids), plain)) == 8
    assert int(creative_sample_next_token(logits, seen, state_with(ids), dry)) != 8


def test_filtering_before_xtc_is_the_plain_filter() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, VOCAB)
    params = params_for(Sampling(max_tokens=1, temperature=0.7, top_k=5))
    filtered = filter_logits(logits, params, by_rank=True)
    assert torch.equal(xtc(filtered, state_with([1]), params), filtered)  # probability 0: untouched
    assert math.isinf(float(filtered.min()))
