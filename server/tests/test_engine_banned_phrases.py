"""Banned phrases: rewinds on the real decode loop (dev writer), and what text is released.

The dev writer decodes greedily into a loop ("... stalls star..a PauloU* lik stalls star...");
banning a phrase from that loop makes it walk into the phrase for real.
"""

from __future__ import annotations

import pytest
import torch
from engine_fixtures import dev_engine, dev_model_paths, dev_cache_dir, guarded_tokens  # noqa: F401 - fixtures

from pictale_server.engine.banned_phrases import PhraseGuard, RewindTo
from pictale_server.engine.base import Cancel, ChatMessage, Delta, Finished, Sampling
from pictale_server.engine.batch_decoder import RUN_AHEAD_TOKENS
from pictale_server.engine.request_sampler import Rewind
from pictale_server.engine.runners import WriterPrompt

PROMPT = [ChatMessage(role="user", content="Tell a story about the sea.")]
GREEDY = Sampling(max_tokens=48, temperature=0.0)


class CharTokenizer:
    """Token i is the text TOKENS[i]; decoding joins them."""

    TOKENS = ["", "Her ", "spine ", "shi", "ver", "ed", " softly", ".", "SHIVER", "x"]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.TOKENS[i] for i in ids)


def push_all(guard: PhraseGuard, ids: list[int]) -> tuple[list[RewindTo | None], str]:
    rewinds, released = [], ""
    for token in ids:
        rewinds.append(guard.push(token))
        released += guard.release()
    return rewinds, released


def test_a_completed_phrase_rewinds_to_the_token_where_it_began() -> None:
    guard = PhraseGuard(CharTokenizer(), ["shivered"])
    rewinds, released = push_all(guard, [1, 2, 3, 4, 5])
    assert rewinds[:4] == [None] * 4
    assert rewinds[4] == RewindTo(index=2, banned=3)
    assert released == "Her spine "  # "shi" and "ver" were held: they could begin the phrase
    assert guard.ids == [1, 2]


def test_matching_ignores_case_and_text_that_cannot_begin_a_phrase_is_released() -> None:
    guard = PhraseGuard(CharTokenizer(), ["Shivered"])
    rewinds, released = push_all(guard, [8, 5])
    assert rewinds == [None, RewindTo(index=0, banned=8)]
    guard = PhraseGuard(CharTokenizer(), ["shivered"])
    _, released = push_all(guard, [1, 6, 7])
    assert released == "Her  softly."


def test_released_text_is_never_taken_back() -> None:
    tokenizer = CharTokenizer()
    guard = PhraseGuard(tokenizer, ["spine shi", "ed softly"])
    shown, rewinds = "", 0
    for token in [1, 2, 9, 2, 3, 4, 5, 6, 7]:
        rewinds += guard.push(token) is not None
        shown += guard.release()
        assert tokenizer.decode(guard.ids).startswith(shown)  # what is kept begins with all shown
    assert rewinds == 2
    assert "spine shi" not in shown and "ed softly" not in shown


def test_the_loop_rewinds_and_the_phrase_never_appears(dev_engine) -> None:  # noqa: F811
    plain = "".join(c.text for c in dev_engine.stream_writer(PROMPT, GREEDY, Cancel()) if isinstance(c, Delta))
    phrase = "stalls star"
    assert phrase in plain  # the greedy path walks into it
    banned = Sampling(max_tokens=48, temperature=0.0, banned_phrases=(phrase.upper(),))
    chunks = list(dev_engine.stream_writer(PROMPT, banned, Cancel()))
    text = "".join(c.text for c in chunks if isinstance(c, Delta))
    assert phrase not in text.lower()
    finished = chunks[-1]
    assert isinstance(finished, Finished) and finished.output_tokens == 48
    assert text[:5] == plain[:5]  # the same story up to where the phrase would begin


def test_after_a_rewind_the_cache_continues_as_a_fresh_run_from_the_kept_text(dev_engine) -> None:  # noqa: F811
    """The KV cache after a rewind holds exactly the kept text: what follows the resampled
    token is what a fresh run with that text as its prompt writes."""
    loop = dev_engine.loaded("writer").loop
    tokenizer = dev_engine.loaded("writer").tokenizer
    ids = dev_engine.writer_prompt_ids(PROMPT)
    sampling = Sampling(max_tokens=40, temperature=0.0, banned_phrases=("stalls star",))
    guard = PhraseGuard(tokenizer, sampling.banned_phrases)
    rewound = guarded_tokens(loop.tokens(WriterPrompt(ids), ids, sampling, seed=0), guard)
    last_rewind = rewound[-1] if rewound else None
    assert last_rewind is not None
    answer = guard.ids
    kept = answer[: last_rewind + 1]

    fresh_prompt = torch.cat([ids, torch.tensor([kept])], dim=1)
    fresh = list(loop.tokens(WriterPrompt(fresh_prompt), fresh_prompt, Sampling(max_tokens=len(answer) - len(kept), temperature=0.0), seed=0))
    assert fresh == answer[len(kept):]


def test_banned_phrases_need_creative_mode_to_rewind(dev_engine) -> None:  # noqa: F811
    loop = dev_engine.loaded("writer").loop
    ids = dev_engine.writer_prompt_ids(PROMPT)
    steps = loop.tokens(WriterPrompt(ids), ids, GREEDY, seed=0)
    next(steps)
    with pytest.raises(ValueError, match="rewinds need"):
        steps.send(Rewind(0, 1))
    steps.close()


def test_streamed_text_adds_up_to_the_answer_and_holds_no_phrase_part(dev_engine) -> None:  # noqa: F811
    sampling = Sampling(max_tokens=48, temperature=0.0, banned_phrases=("stalls star", "PauloU"))
    deltas = [c.text for c in dev_engine.stream_writer(PROMPT, sampling, Cancel()) if isinstance(c, Delta)]
    text = "".join(deltas)
    for phrase in ("stalls star", "paulou"):
        assert phrase not in text.lower()


def naive_held_from(text: str, phrases: list[str]) -> int:
    folded = text.lower()
    held = len(text)
    for phrase in phrases:
        for size in range(min(len(phrase) - 1, len(folded)), 0, -1):
            if folded.endswith(phrase[:size]):
                held = min(held, len(folded) - size)
                break
    return held


@pytest.mark.parametrize("case", range(200))
def test_what_is_held_back_is_the_longest_end_that_begins_a_phrase(case: int) -> None:
    import random

    rng = random.Random(case)
    alphabet = "abAB "
    phrases = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 4))]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
    guard = PhraseGuard(CharTokenizer(), phrases)
    guard._text, guard._folded = text, text.lower()  # as if pushed, without completed phrases
    assert guard._held_from() == naive_held_from(text, [p.lower() for p in phrases])


def test_rewinds_to_the_first_token_keep_the_cache_where_a_fresh_run_has_it(dev_engine) -> None:  # noqa: F811
    """Rewinding to the answer's first token, again and again, brings the position back to the
    prompt's end: the continuation equals a fresh run's, and no write ever leaves the cache."""
    loop = dev_engine.loaded("writer").loop
    ids = dev_engine.writer_prompt_ids(PROMPT)
    sampling = Sampling(max_tokens=24, temperature=0.0, banned_phrases=("x",))  # creative mode
    steps = loop.tokens(WriterPrompt(ids), ids, sampling, seed=0)
    first = next(steps)
    for _ in range(3):
        next(steps)
    banned = {first}
    token = steps.send(Rewind(0, first))
    for _ in range(300):  # more rewinds than the cache has slots past the prompt
        for _ in range(3):
            next(steps)
        banned.add(token)
        token = steps.send(Rewind(0, token))
    # Its lane runs at most RUN_AHEAD_TOKENS past what was read since the last rewind.
    assert ids.shape[1] <= int(loop.position[0]) <= ids.shape[1] + RUN_AHEAD_TOKENS + 1
    answer = [token] + [next(steps) for _ in range(8)]
    steps.close()
    fresh_prompt = torch.cat([ids, torch.tensor([[token]])], dim=1)
    fresh = list(loop.tokens(WriterPrompt(fresh_prompt), fresh_prompt, Sampling(max_tokens=8, temperature=0.0), seed=0))
    assert fresh == answer[1:]
