"""The writer's continuous batching (engine/batch_decoder.py) on the dev models, on a CPU.

The reference step runs a batch's rows one forward each, so these tests check the batch's
bookkeeping — joining, leaving, admission by memory, rewinds, prefill slices between steps,
errors — that a request's tokens do not depend on what shares its batch, and which NF4 kernel
each step asks the fast path for. The fast path's batched step is checked against its one-row
results in the GPU suite.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch
from engine_fixtures import decoder_of, dev_cache_dir, dev_engine, dev_model_paths, guarded_tokens  # noqa: F401

from pictale_server.engine.banned_phrases import PhraseGuard
from pictale_server.engine.base import Cancel, ChatMessage, Sampling
from pictale_server.engine.batch_decoder import PREFILL_SLICE_TOKENS, RUN_AHEAD_TOKENS, BatchDecoder, lane_bucket
from pictale_server.engine.batch_sequence import Ended, Sequence
from pictale_server.engine.fast_path.fast_step import FastStep
from pictale_server.engine.request_sampler import Rewind
from pictale_server.engine.runners import WriterPrompt

PROMPT = [ChatMessage(role="user", content="The lighthouse keeper counted the ships at dusk.")]


def prompt_ids(engine, words: int = 0) -> torch.Tensor:
    text = "The lighthouse keeper counted the ships at dusk." + " and the gulls" * words
    return engine.writer_prompt_ids([ChatMessage(role="user", content=text)])


def run_all(decoder: BatchDecoder, requests: list[tuple[torch.Tensor, Sampling, int]]) -> list[list[int]]:
    """Every request on a thread of its own, all at once; their tokens in request order."""
    results: list[list[int]] = [[] for _ in requests]
    errors: list[BaseException] = []

    def consume(index: int) -> None:
        ids, sampling, seed = requests[index]
        try:
            results[index] = list(decoder.tokens(WriterPrompt(ids), ids, sampling, seed))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads), "a consumer hung"
    return results


def settled(decoder: BatchDecoder) -> bool:
    """Every lane and every slot of the pool free again (a stream that ended leaves at the
    decoder's next loop)."""
    decoder.wait_idle(5)
    return decoder.pool.free_tokens == decoder.pool.capacity


@pytest.fixture
def decoder(dev_engine):  # noqa: F811
    made = decoder_of(dev_engine)
    yield made
    made.stop()


class KernelRecordingStep:
    """A batched step that records which NF4 kernel each step asks for and gives zero logits:
    the batch's choice of kernel, without a GPU."""

    batched = True
    tensor_cores_for = FastStep.tensor_cores_for
    tensor_core_rows = 3  # the writer's (FastStep's default)

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.written = SimpleNamespace(has_tensor_cores=True)
        self.asked: list[tuple[int, bool]] = []
        self.sampled_together: list[list[int]] = []

    def rows(self, token, position, regions, pool, tensor_cores: bool = False) -> torch.Tensor:
        self.asked.append((token.shape[0], tensor_cores))
        return torch.zeros((token.shape[0], self.vocab_size))

    def sample_rows(self, logits, rows, active) -> None:
        self.sampled_together.append(active.tolist())


def hold_lane(
    decoder: BatchDecoder, lane: int, ids: torch.Tensor, sampling: Sampling, *, answer: int = 0, region: bool = False
) -> Sequence:
    """Put a request straight into `lane` (no admission, no prefill), `answer` tokens made,
    with a region of the pool where asked: a step's bookkeeping, without a model."""
    sequence = Sequence(WriterPrompt(ids), ids, sampling, 0)
    sequence.lane, sequence.answer = lane, answer
    if region:
        sequence.region = decoder.pool.reserve(sequence.worst_case_tokens)
    decoder._lanes[lane] = sequence
    decoder.samplers[lane].reset(sampling, 0, ids)
    return sequence


def test_a_seeded_request_gets_the_same_tokens_alone_and_in_a_batch(dev_engine, decoder) -> None:  # noqa: F811
    sampling = Sampling(max_tokens=40, temperature=0.9, min_p=0.02, seed=11)
    mine = (prompt_ids(dev_engine), sampling, 11)
    alone = run_all(decoder, [mine])[0]
    others = [
        (prompt_ids(dev_engine, words), Sampling(max_tokens=20 + 7 * words, temperature=1.0, seed=words), words)
        for words in range(1, 4)
    ]
    together = run_all(decoder, [others[0], mine, others[1], others[2]])
    assert together[1] == alone
    assert len(alone) == 40
    assert decoder.stats.rows > decoder.stats.steps  # steps did run several rows at once


def test_a_reader_that_falls_behind_holds_its_lane_where_it_is(dev_engine, decoder) -> None:  # noqa: F811
    """A lane whose reader is RUN_AHEAD_TOKENS behind sits steps out while others decode: its
    position stays, and its tokens are those of the request alone."""
    sampling = Sampling(max_tokens=40, temperature=0.0)
    ids = prompt_ids(dev_engine)
    alone = run_all(decoder, [(ids, sampling, 1)])[0]
    slow = decoder.tokens(WriterPrompt(ids), ids, sampling, 1)
    read = [next(slow) for _ in range(5)]
    other = threading.Thread(target=lambda: list(decoder.tokens(WriterPrompt(ids), ids, Sampling(max_tokens=150, temperature=1.0), 2)))
    other.start()
    other.join(60)  # 150 steps of the other lane while this reader waits
    lane = next(i for i, s in enumerate(decoder._lanes) if s is not None)
    assert int(decoder.position[lane]) <= ids.shape[1] + len(read) + RUN_AHEAD_TOKENS
    assert read + list(slow) == alone


def test_a_creative_request_with_rewinds_is_batch_invariant(dev_engine, decoder) -> None:  # noqa: F811
    """Banned phrases rewind one lane while others keep decoding."""
    tokenizer = dev_engine.loaded("writer").tokenizer
    sampling = Sampling(max_tokens=40, temperature=0.0, banned_phrases=("stalls star", "e"), dry_multiplier=0.5)

    def guarded() -> list[int]:
        guard = PhraseGuard(tokenizer, sampling.banned_phrases)
        assert guarded_tokens(decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), sampling, 0), guard)  # rewound
        return guard.ids

    alone = guarded()
    others = [(prompt_ids(dev_engine, w), Sampling(max_tokens=60, temperature=1.0, seed=w), w) for w in (2, 5)]
    box: list[list[int]] = []
    worker = threading.Thread(target=lambda: box.append(guarded()))
    worker.start()
    run_all(decoder, others)
    worker.join(120)
    assert box == [alone]


def test_a_closed_stream_frees_its_lane_and_region_while_others_go_on(dev_engine, decoder) -> None:  # noqa: F811
    long = decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), Sampling(max_tokens=200, temperature=1.0, seed=1), 1)
    short = decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), Sampling(max_tokens=200, temperature=1.0, seed=2), 2)
    next(long), next(short)
    for _ in range(3):
        next(short)
    short.close()
    assert len([next(long) for _ in range(60)]) == 60
    assert decoder.busy_lanes == 1
    long.close()
    assert settled(decoder)


def test_a_request_waits_for_kv_memory_and_starts_when_one_ends(dev_engine) -> None:  # noqa: F811
    """A pool of two pages holds one worst case of 400 tokens: the second request starts only
    when the first has ended, and both finish."""
    decoder = decoder_of(dev_engine, pages=2)
    try:
        ids = prompt_ids(dev_engine)
        requests = [(ids, Sampling(max_tokens=400 - ids.shape[1], temperature=1.0, seed=s), s) for s in (1, 2)]
        results = run_all(decoder, requests)
        assert [len(r) for r in results] == [400 - ids.shape[1]] * 2
        assert decoder.stats.rows == decoder.stats.steps  # never two rows at once
        assert settled(decoder)
    finally:
        decoder.stop()


class Told:
    """An Admission that records what the decoder tells it: ("waiting", place), ("admitted",)."""

    def __init__(self) -> None:
        self.said: list[tuple] = []
        self._cond = threading.Condition()

    def waiting(self, place: int) -> None:
        self._record(("waiting", place))

    def admitted(self) -> None:
        self._record(("admitted",))

    def _record(self, item: tuple) -> None:
        with self._cond:
            self.said.append(item)
            self._cond.notify_all()

    def until(self, *said: tuple) -> list[tuple]:
        """Wait (bounded) until the record is `said`; fail with what it holds otherwise."""
        with self._cond:
            self._cond.wait_for(lambda: self.said == list(said), 60)
            assert self.said == list(said)
            return self.said


class Reader:
    """A request read on a thread of its own: its first token, then it holds its region until
    `close()` (or, with `read_all`, reads to the end)."""

    def __init__(
        self, decoder: BatchDecoder, ids, max_tokens: int, seed: int, *, read_all: bool = False
    ) -> None:
        self.told, self.cancel = Told(), Cancel()
        self.tokens: list[int] = []
        self._steps = decoder.tokens(
            WriterPrompt(ids), ids, Sampling(max_tokens=max_tokens, temperature=1.0, seed=seed), seed,
            cancel=self.cancel, admission=self.told,
        )
        self._leave = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(read_all,))
        self._thread.start()

    def _read(self, read_all: bool) -> None:
        try:
            for token in self._steps:
                self.tokens.append(token)
                if not read_all:
                    self._leave.wait(60)
                    break
        finally:
            self._steps.close()

    def close(self) -> None:
        self._leave.set()
        self.join()

    def join(self) -> None:
        self._thread.join(60)
        assert not self._thread.is_alive(), "a reader hung"


def test_a_request_that_does_not_fit_the_pool_is_told_its_place_then_its_admission(dev_engine) -> None:  # noqa: F811
    """A pool of two pages: the first request's worst case takes both, so those after it wait
    in line, told their places (and again when they move up), then their admission."""
    decoder = decoder_of(dev_engine, pages=2)
    try:
        ids = prompt_ids(dev_engine)
        both_pages = 400 - ids.shape[1]
        first = Reader(decoder, ids, both_pages, 1)
        first.told.until(("admitted",))  # it fits at once: never told a place
        second = Reader(decoder, ids, both_pages, 2)
        second.told.until(("waiting", 1))
        third = Reader(decoder, ids, 8, 3, read_all=True)
        third.told.until(("waiting", 2))
        assert not second.tokens and not third.tokens

        first.close()
        second.told.until(("waiting", 1), ("admitted",))
        third.told.until(("waiting", 2), ("waiting", 1))
        second.close()
        third.told.until(("waiting", 2), ("waiting", 1), ("admitted",))
        third.join()
        assert len(third.tokens) == 8
        assert settled(decoder)
    finally:
        decoder.stop()


def test_a_request_cancelled_while_it_waits_leaves_the_line_at_once(dev_engine) -> None:  # noqa: F811
    """Its reader blocks on the queue, so the decoder takes it out when its flag is set: no
    token, never admitted, and the one behind it moves up, while the first still runs."""
    decoder = decoder_of(dev_engine, pages=2)
    try:
        ids = prompt_ids(dev_engine)
        first = Reader(decoder, ids, 400 - ids.shape[1], 1)
        first.told.until(("admitted",))
        leaving = Reader(decoder, ids, 8, 2, read_all=True)
        leaving.told.until(("waiting", 1))
        behind = Reader(decoder, ids, 8, 3, read_all=True)
        behind.told.until(("waiting", 2))

        leaving.cancel.set()
        leaving.join()  # its tokens ended while the first still holds the whole pool
        assert leaving.tokens == [] and leaving.told.said == [("waiting", 1)]
        behind.told.until(("waiting", 2), ("waiting", 1))
        assert decoder.busy_lanes == 1

        first.close()
        behind.join()
        assert behind.told.said[-1] == ("admitted",) and len(behind.tokens) == 8
        assert ("admitted",) not in leaving.told.said
        assert settled(decoder)
    finally:
        decoder.stop()


def test_running_streams_decode_between_the_slices_of_a_long_prompt(dev_engine, decoder) -> None:  # noqa: F811
    """A prompt of several slices is prefilled one slice per loop: a running stream gets steps
    in between, so it never waits for a whole prompt."""
    slices_seen: list[int] = []
    runner = decoder.runner
    original = runner.prefill_slices

    def spying(inputs, cache, tokens, *, row):
        for result in original(inputs, cache, tokens, row=row):
            slices_seen.append(decoder.stats.steps)
            yield result

    runner.prefill_slices = spying
    try:
        running = decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), Sampling(max_tokens=300, temperature=1.0, seed=3), 3)
        next(running)
        slices_seen.clear()
        long_ids = prompt_ids(dev_engine, words=150)
        assert PREFILL_SLICE_TOKENS < long_ids.shape[1] < decoder.context_tokens - 4
        first = next(decoder.tokens(WriterPrompt(long_ids), long_ids, Sampling(max_tokens=4, temperature=0.0), 0))
        assert isinstance(first, int)
        running.close()
    finally:
        del runner.prefill_slices
    assert len(slices_seen) >= 2
    steps_between = [b - a for a, b in zip(slices_seen, slices_seen[1:])]
    assert all(step >= 1 for step in steps_between), slices_seen


def test_a_failing_prefill_fails_only_its_own_request(dev_engine, decoder) -> None:  # noqa: F811
    runner = decoder.runner
    original = runner.prefill_slices
    bad = prompt_ids(dev_engine, words=1)

    def failing(inputs, cache, tokens, *, row):
        if inputs.input_ids.shape == bad.shape:
            raise RuntimeError("CUDA out of memory (simulated)")
        yield from original(inputs, cache, tokens, row=row)

    runner.prefill_slices = failing
    try:
        good = decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), Sampling(max_tokens=30, temperature=1.0, seed=4), 4)
        next(good)
        with pytest.raises(RuntimeError, match="simulated"):
            list(decoder.tokens(WriterPrompt(bad), bad, Sampling(max_tokens=8), 0))
        assert len(list(good)) == 29
    finally:
        del runner.prefill_slices


def test_the_next_step_is_queued_before_the_last_ones_tokens_are_read(dev_engine, decoder) -> None:  # noqa: F811
    """The GPU never waits for the host to hand out tokens: step k+1 is launched before step
    k's tokens are delivered, and every token still arrives, in order."""
    order: list[tuple[str, int]] = []
    launch, deliver = decoder._launch_step, decoder._deliver_step

    def launching(stepping):
        step = launch(stepping)
        order.append(("launch", step.slot))
        return step

    def delivering(step):
        order.append(("deliver", step.slot))
        deliver(step)

    sampling = Sampling(max_tokens=12, temperature=0.0)
    alone = run_all(decoder, [(prompt_ids(dev_engine), sampling, 0)])[0]
    decoder._launch_step, decoder._deliver_step = launching, delivering
    assert run_all(decoder, [(prompt_ids(dev_engine), sampling, 0)])[0] == alone
    launches = [i for i, (what, _) in enumerate(order) if what == "launch"]
    deliveries = [i for i, (what, _) in enumerate(order) if what == "deliver"]
    assert len(launches) == len(deliveries) == 11  # the first token comes from the prefill
    assert all(launched < delivered for launched, delivered in zip(launches[1:], deliveries))


def test_a_step_whose_tokens_cannot_be_read_fails_its_streams_and_the_batch_goes_on(dev_engine, decoder) -> None:  # noqa: F811
    """A failure surfacing when a step's tokens are read (a CUDA error shows there) ends the
    streams of that step and of the step queued behind it, frees their lanes, and later
    requests decode as before."""
    deliver, calls = decoder._deliver_step, []

    def failing(step):
        calls.append(step)
        if len(calls) == 3:
            raise RuntimeError("an illegal memory access (simulated)")
        deliver(step)

    sampling = Sampling(max_tokens=30, temperature=1.0)
    streams = [decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), sampling, seed) for seed in (1, 2)]
    for stream in streams:
        next(stream)  # both decoding
    decoder._deliver_step = failing
    for stream in streams:
        with pytest.raises(RuntimeError, match="simulated"):
            list(stream)
    assert settled(decoder)
    del decoder._deliver_step
    assert len(run_all(decoder, [(prompt_ids(dev_engine), sampling, 3)])[0]) == 30


def test_a_token_in_flight_counts_against_max_tokens_and_the_readers_backlog() -> None:
    ids = torch.zeros((1, 5), dtype=torch.int64)
    sequence = Sequence(WriterPrompt(ids), ids, Sampling(max_tokens=3), 0)
    sequence.region = object()
    sequence.answer, sequence.pending = 2, 0
    assert BatchDecoder._stepping(sequence)
    sequence.pending = 1  # its third token is in flight: no fourth
    assert not BatchDecoder._stepping(sequence)
    sequence.sampling = Sampling(max_tokens=50)
    for _ in range(RUN_AHEAD_TOKENS - 2):
        sequence.out.put((0, 1))
    assert BatchDecoder._stepping(sequence)
    sequence.out.put((0, 1))  # unread and in flight together make the reader's backlog
    assert not BatchDecoder._stepping(sequence)
    assert sequence.waits_for_reader


def test_a_token_in_flight_when_its_request_rewinds_is_dropped(dev_engine) -> None:  # noqa: F811
    decoder = decoder_of(dev_engine, lanes=1)
    decoder.step = KernelRecordingStep(decoder.vocab_size)
    ids = prompt_ids(dev_engine).view(1, -1)
    sequence = hold_lane(decoder, 0, ids, Sampling(max_tokens=8, temperature=0.0, banned_phrases=("gulls",)), answer=3)
    try:
        in_flight = decoder._launch_step([0])
        assert sequence.pending == 1
        decoder._rewind(0, sequence, 1, Rewind(index=2, banned=7))
        decoder._deliver_step(in_flight)
        assert sequence.out.empty()  # made for the text the rewind took back
        assert (sequence.answer, sequence.pending, sequence.epoch) == (2, 0, 1)
        assert sequence.rewinding  # the next step samples index 2 again
    finally:
        decoder.stop()


def test_a_rewind_without_creative_sampling_is_refused(dev_engine, decoder) -> None:  # noqa: F811
    steps = decoder.tokens(WriterPrompt(prompt_ids(dev_engine)), prompt_ids(dev_engine), Sampling(max_tokens=8, temperature=0.0), 0)
    next(steps)
    with pytest.raises(ValueError, match="rewinds need"):
        steps.send(Rewind(0, 1))
    steps.close()


def test_a_refused_rewind_leaves_the_lane_and_its_token_in_flight_as_they_were(dev_engine) -> None:  # noqa: F811
    decoder = decoder_of(dev_engine, lanes=1)
    decoder.step = KernelRecordingStep(decoder.vocab_size)
    ids = prompt_ids(dev_engine).view(1, -1)
    sequence = hold_lane(decoder, 0, ids, Sampling(max_tokens=8, temperature=0.0), answer=3)
    try:
        in_flight = decoder._launch_step([0])
        with pytest.raises(ValueError, match="rewinds need"):
            decoder._rewind(0, sequence, 1, Rewind(index=1, banned=7))
        assert (sequence.epoch, sequence.pending) == (0, 1)
        decoder._deliver_step(in_flight)
        assert sequence.out.get_nowait()[0] == 0 and sequence.answer == 4  # delivered, counted
    finally:
        decoder.stop()


def test_steps_run_the_smallest_bucket_that_holds_every_busy_lane() -> None:
    assert [lane_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 16)] == [1, 2, 4, 4, 8, 8, 16, 16]
    with pytest.raises(ValueError):
        lane_bucket(17)


def test_steps_run_tensor_cores_from_three_rows_and_whenever_a_deterministic_request_steps(dev_engine) -> None:  # noqa: F811
    decoder = decoder_of(dev_engine, lanes=4)
    step = decoder.step = KernelRecordingStep(decoder.vocab_size)
    ids = prompt_ids(dev_engine).view(1, -1)

    def hold(lane: int, deterministic: bool) -> None:
        hold_lane(decoder, lane, ids, Sampling(max_tokens=8, temperature=0.0, deterministic=deterministic))

    try:
        hold(0, False)
        decoder._launch_step([0])
        hold(1, False)
        decoder._launch_step([0, 1])
        hold(2, False)
        decoder._launch_step([0, 1, 2])
        decoder._lanes[1] = decoder._lanes[2] = None
        hold(1, True)
        decoder._launch_step([0, 1])  # two rows, one of them deterministic
        decoder._lanes[1] = None
        decoder._launch_step([0])
        assert step.asked == [(1, False), (2, False), (4, True), (2, True), (1, False)]
    finally:
        decoder.stop()


def test_plain_lanes_sample_in_one_launch_and_the_others_each_on_their_own(dev_engine) -> None:  # noqa: F811
    decoder = decoder_of(dev_engine, lanes=4)
    step = decoder.step = KernelRecordingStep(decoder.vocab_size)
    ids = prompt_ids(dev_engine).view(1, -1)
    settings = [
        Sampling(max_tokens=8, temperature=0.8, min_p=0.05),  # plain
        Sampling(max_tokens=8, temperature=0.8, top_p=0.9),  # ranked: a sort of its own
        Sampling(max_tokens=8, temperature=0.0),  # plain
    ]
    for lane, sampling in enumerate(settings):
        hold_lane(decoder, lane, ids, sampling)
    try:
        before = int(decoder.samplers[1].params.step)
        decoder._launch_step([0, 1, 2])
        decoder._launch_step([0, 2])
        assert step.sampled_together == [[1, 0, 1, 0], [1, 0, 1, 0]]
        assert int(decoder.samplers[1].params.step) == before + 1  # sampled by itself, once
        assert decoder.moving.tolist() == [1, 0, 1, 0]
    finally:
        decoder.stop()


def test_a_failed_read_ends_the_streams_of_both_steps_and_no_other(dev_engine) -> None:  # noqa: F811
    """Lane 0's stream closed after the step that fails to read, and its lane went to a request
    still prefilling; lane 1's stream joined in the step queued behind, lost with it. Lane 1's
    stream ends with the error (rather than miss a token); the newcomer on lane 0 keeps its
    lane."""
    decoder = decoder_of(dev_engine, lanes=2)
    decoder.step = KernelRecordingStep(decoder.vocab_size)
    ids = prompt_ids(dev_engine).view(1, -1)

    def hold(lane: int, answer: int) -> Sequence:
        return hold_lane(decoder, lane, ids, Sampling(max_tokens=8, temperature=0.0), answer=answer, region=True)

    def unreadable(step) -> None:
        raise RuntimeError("an illegal memory access (simulated)")

    try:
        closed = hold(0, answer=1)
        decoder._in_flight = decoder._launch_step([0])
        closed.closed.set()
        decoder._release(0)
        newcomer = hold(0, answer=0)  # admitted, its prompt not yet prefilled: no step
        joined = hold(1, answer=1)
        decoder._deliver_step = unreadable
        decoder._tick()
        ended = joined.out.get_nowait()
        assert isinstance(ended, Ended) and "simulated" in str(ended.error)
        assert decoder._lanes == [newcomer, None] and newcomer.out.empty()
        assert decoder._in_flight is None
    finally:
        decoder.stop()


def test_the_exit_hook_stops_a_running_batch(dev_engine, monkeypatch) -> None:  # noqa: F811
    """At interpreter exit every started batch's thread is stopped, a stream in the middle of
    decoding included, so none is launching GPU work while CUDA is torn down."""
    import weakref

    from pictale_server.engine import batch_decoder

    decoder = decoder_of(dev_engine)
    started = weakref.WeakSet()
    monkeypatch.setattr(batch_decoder, "_started", started)
    ids = prompt_ids(dev_engine)
    running = decoder.tokens(WriterPrompt(ids), ids, Sampling(max_tokens=300, temperature=1.0), 1)
    next(running)
    assert decoder in started and decoder._thread.is_alive()
    batch_decoder._stop_started_batches()
    assert not decoder._thread.is_alive()
    with pytest.raises(RuntimeError, match="stopped"):
        list(running)
