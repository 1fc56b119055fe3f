import torch

from pictale_server.engine.base import Sampling
from pictale_server.engine.sampling import (
    SamplingTensors,
    apply_repetition_penalty,
    filter_logits,
    needs_ranking,
    sample_next_token,
    uniform_noise,
)

LOGITS = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0, 0.0]])


def params(**values) -> SamplingTensors:
    tensors = SamplingTensors.allocate("cpu")
    tensors.assign(
        Sampling(max_tokens=1, **{k: v for k, v in values.items() if k != "seed"}),
        values.get("seed", 0),
    )
    return tensors


def no_seen(logits=LOGITS) -> torch.Tensor:
    return torch.zeros_like(logits, dtype=torch.bool)


def draw(p: SamplingTensors, steps: int, logits=LOGITS) -> list[int]:
    tokens = []
    for _ in range(steps):
        tokens.append(int(sample_next_token(logits, no_seen(logits), p)))
        p.step.add_(1)
    return tokens


def test_temperature_zero_is_greedy():
    assert draw(params(temperature=0.0, seed=5), 20) == [4] * 20


def test_top_k_one_is_greedy_at_any_temperature():
    assert set(draw(params(temperature=1.5, top_k=1, seed=9), 50)) == {4}


def test_top_k_keeps_exactly_the_k_best():
    kept = torch.isfinite(filter_logits(LOGITS, params(temperature=1.0, top_k=3)))
    assert kept.tolist() == [[True, True, False, False, True, False]]


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    probs = torch.softmax(LOGITS, dim=-1)[0]
    top_two = float(probs[4] + probs[0])
    kept = torch.isfinite(filter_logits(LOGITS, params(temperature=1.0, top_p=top_two - 1e-3)))
    assert kept.tolist() == [[True, False, False, False, True, False]]
    only_best = torch.isfinite(filter_logits(LOGITS, params(temperature=1.0, top_p=1e-6)))
    assert only_best.tolist() == [[False, False, False, False, True, False]]


def test_min_p_drops_tokens_below_the_fraction_of_the_best():
    probs = torch.softmax(LOGITS, dim=-1)[0]
    threshold = float(probs[1] / probs[4]) + 1e-4  # token 1 falls just below it
    kept = torch.isfinite(filter_logits(LOGITS, params(temperature=1.0, min_p=threshold)))
    assert kept.tolist() == [[True, False, False, False, True, False]]


def test_repetition_penalty_follows_hf_semantics():
    seen = torch.tensor([[True, False, False, True, False, False]])
    out = apply_repetition_penalty(LOGITS, seen, torch.tensor(2.0))
    assert out.tolist() == [[1.0, 1.0, 0.5, -2.0, 3.0, 0.0]]


def test_repetition_penalty_can_change_the_greedy_choice():
    seen = torch.tensor([[False, False, False, False, True, False]])
    token = sample_next_token(LOGITS, seen, params(temperature=0.0, repetition_penalty=2.0))
    assert int(token) == 0


def test_same_seed_same_tokens_and_different_seeds_differ():
    a = draw(params(temperature=1.0, seed=42), 40)
    b = draw(params(temperature=1.0, seed=42), 40)
    c = draw(params(temperature=1.0, seed=43), 40)
    assert a == b
    assert a != c


def test_sampled_frequencies_follow_the_distribution():
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    counts = torch.bincount(
        torch.tensor(draw(params(temperature=1.0, seed=1), 3000, logits)), minlength=3
    )
    expected = torch.softmax(logits, dim=-1)[0] * 3000
    assert torch.allclose(counts.float(), expected, rtol=0.1)


def test_uniform_noise_is_in_the_open_unit_interval_and_depends_on_seed_and_step():
    seed, step = torch.tensor(7), torch.tensor(0)
    noise = uniform_noise(seed, step, 10000)
    assert float(noise.min()) > 0.0 and float(noise.max()) < 1.0
    assert abs(float(noise.mean()) - 0.5) < 0.02
    assert not torch.equal(noise, uniform_noise(seed, torch.tensor(1), 10000))
    assert not torch.equal(noise, uniform_noise(torch.tensor(8), step, 10000))
    assert torch.equal(noise, uniform_noise(torch.tensor(7), torch.tensor(0), 10000))


def test_top_p_and_min_p_keep_the_tokens_their_probability_definitions_keep():
    """The filter works on logits without a softmax; on a large vocabulary it keeps exactly the
    tokens that the definitions on normalized probabilities keep."""
    torch.manual_seed(3)
    logits = torch.randn(1, 131072) * 4
    probs = torch.softmax(logits, dim=-1)[0]
    order = torch.argsort(probs, descending=True)
    mass_before = torch.cumsum(probs[order], dim=0) - probs[order]
    for top_p in (0.05, 0.5, 0.9):
        expected = torch.zeros(131072, dtype=torch.bool)
        expected[order[mass_before < top_p]] = True
        kept = torch.isfinite(filter_logits(logits, params(temperature=1.0, top_p=top_p)))[0]
        assert torch.equal(kept, expected)
    for min_p in (0.001, 0.05, 0.3):
        expected = probs >= min_p * probs.max()
        kept = torch.isfinite(filter_logits(logits, params(temperature=1.0, min_p=min_p)))[0]
        assert torch.equal(kept, expected)


def test_without_top_k_and_top_p_the_filter_skips_the_sort_and_keeps_the_same_tokens():
    torch.manual_seed(5)
    logits = torch.randn(1, 131072) * 4
    logits[0, :100] = float("-inf")
    for settings in ({"min_p": 0.0}, {"min_p": 0.05}, {"min_p": 0.3}, {"temperature": 0.7, "min_p": 0.1}):
        p = params(**{"temperature": 1.0, **settings})
        assert not needs_ranking(Sampling(max_tokens=1, **{"temperature": 1.0, **settings}))
        assert torch.equal(filter_logits(logits, p, by_rank=False), filter_logits(logits, p))
    assert needs_ranking(Sampling(max_tokens=1, temperature=1.0, top_p=0.9))
    assert needs_ranking(Sampling(max_tokens=1, temperature=1.0, top_k=40))
    assert not needs_ranking(Sampling(max_tokens=1, temperature=0.0, top_p=0.9))


def test_top_p_one_keeps_every_token_even_where_float32_sums_round():
    # The second token's weight (e^-20) is below half a float32 step of the total (~1), so
    # "mass before it" rounds to the whole mass; top_p 1 must still keep it.
    logits = torch.tensor([[0.0, -20.0]])
    kept = torch.isfinite(filter_logits(logits, params(temperature=1.0, top_p=1.0)))
    assert kept.tolist() == [[True, True]]
