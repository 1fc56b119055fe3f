"""The vision model's continuous batching on the dev models, on a CPU: describes of different
pictures decode together, each row with its own rotary offset (runners.QwenVLRunner), and a
describe waits for KV memory as a narrate does.

The reference step runs a batch's rows one forward each; the fast path's batched step gets each
row's offset checked under Triton's interpreter (written_step_interpreter_cases.py).
"""

from __future__ import annotations

import threading

import torch
from engine_fixtures import decoder_of, dev_cache_dir, dev_engine, dev_model_paths, scene_image  # noqa: F401

from pictale_server.engine.base import ChatMessage, Sampling
from pictale_server.engine.batch_decoder import BatchDecoder
from pictale_server.engine.runners import QwenVLRunner

ASK = [ChatMessage(role="user", content="Describe the picture.")]
GREEDY = Sampling(max_tokens=24, temperature=0.0)


def picture_inputs(engine, size: tuple[int, int]):
    vision = engine.loaded("vision")
    return engine._vision_inputs(scene_image(size), ASK).to(vision.model.device, vision.model.dtype)


def describe(decoder: BatchDecoder, inputs, sampling: Sampling = GREEDY, seed: int = 0) -> list[int]:
    return list(decoder.tokens(inputs, inputs.input_ids, sampling, seed))


def test_the_engine_decodes_describes_in_a_batch_with_an_offset_per_row(dev_engine) -> None:  # noqa: F811
    vision = dev_engine.loaded("vision")
    assert isinstance(vision.loop, BatchDecoder)
    assert vision.loop.lanes == dev_engine._settings.vision_streams
    runner = vision.loop.runner
    assert isinstance(runner, QwenVLRunner)
    assert runner.rope_deltas.numel() >= vision.loop.buckets[-1]  # a delta for every row a step runs


def test_describes_of_different_pictures_decode_together_as_each_does_alone(dev_engine) -> None:  # noqa: F811
    """Two pictures of different sizes take different rotary positions (their rows' deltas
    differ): decoded at once, each gets the tokens and last logits it gets alone, bit for bit
    (the dev model's attention is too flat for a wrong position to change a greedy token), and
    one after them still does (a lane's delta is set again by its next prefill)."""
    decoder = decoder_of(dev_engine, model="vision", lanes=2)
    try:
        pictures = [picture_inputs(dev_engine, size) for size in ((320, 240), (112, 448))]
        assert pictures[0].length != pictures[1].length
        alone, alone_logits = [], []
        for inputs in pictures:
            alone.append(describe(decoder, inputs))
            alone_logits.append(decoder.logits.clone())
        deltas = [int(decoder.runner.positions(inputs)[1]) for inputs in pictures]
        assert deltas[0] != deltas[1]

        together: list[list[int]] = [[], []]
        threads = [
            threading.Thread(target=lambda i=i: together.__setitem__(i, describe(decoder, pictures[i])))
            for i in range(2)
        ]
        steps_before, rows_before = decoder.stats.steps, decoder.stats.rows
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert together == alone
        assert decoder.stats.rows - rows_before > decoder.stats.steps - steps_before  # steps held both
        for inputs, logits in zip(pictures, alone_logits, strict=True):
            lane = next(s for s in decoder.samplers if s.prompt_tokens == inputs.length)
            assert torch.equal(lane.logits, logits)

        assert describe(decoder, pictures[1]) == alone[1]
        assert torch.equal(decoder.logits, alone_logits[1])
    finally:
        decoder.stop()


def test_a_describe_waits_for_kv_memory_and_is_told_its_place(dev_engine) -> None:  # noqa: F811
    """A vision pool of two pages: one describe's worst case takes both, so the next waits in
    line, told its place, and is admitted when the first ends."""
    decoder = decoder_of(dev_engine, model="vision", pages=2, lanes=2)
    try:
        inputs = picture_inputs(dev_engine, (320, 240))
        both_pages = 400 - inputs.length
        told: list[tuple] = []
        heard = threading.Condition()

        class Listener:
            def waiting(self, place: int) -> None:
                with heard:
                    told.append(("waiting", place))
                    heard.notify_all()

            def admitted(self) -> None:
                with heard:
                    told.append(("admitted",))
                    heard.notify_all()

        first = decoder.tokens(inputs, inputs.input_ids, Sampling(max_tokens=both_pages, temperature=1.0), 1)
        next(first)
        second_tokens: list[int] = []
        second = threading.Thread(
            target=lambda: second_tokens.extend(
                decoder.tokens(inputs, inputs.input_ids, Sampling(max_tokens=8, temperature=0.0), 0, admission=Listener())
            )
        )
        second.start()
        with heard:
            assert heard.wait_for(lambda: ("waiting", 1) in told, 30)
        assert second_tokens == []
        first.close()
        second.join(60)
        assert told == [("waiting", 1), ("admitted",)]
        assert len(second_tokens) == 8
        decoder.wait_idle(5)
        assert decoder.pool.free_tokens == decoder.pool.capacity
    finally:
        decoder.stop()


def test_scoring_options_leaves_the_rows_offsets_alone(dev_engine) -> None:  # noqa: F811
    """The safety gate's scoring runs the model over a whole prompt beside the batch: it must
    not touch the offsets the batch's rows decode with."""
    runner = dev_engine.loaded("vision").loop.runner
    before = runner.rope_deltas.clone()
    runner.rope_deltas.fill_(7)
    try:
        dev_engine.score_vision_options(scene_image(), ASK, ["yes", "no"])
        assert torch.equal(runner.rope_deltas, torch.full_like(before, 7))
    finally:
        runner.rope_deltas.copy_(before)


class RecordingLock:
    """A lock that records who took it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.takers: list[str] = []

    def __enter__(self):
        self._lock.acquire()
        self.takers.append(threading.current_thread().name)
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def test_a_describes_prefill_and_the_gates_scoring_take_turns(dev_engine, monkeypatch) -> None:  # noqa: F811
    """Both run a forward over a whole prompt (vision tower included), on different threads:
    they take one lock, so their temporaries never meet in memory."""
    runner = dev_engine.loaded("vision").loop.runner
    lock = RecordingLock()
    monkeypatch.setattr(runner, "whole_prompt", lock)
    dev_engine.score_vision_options(scene_image(), ASK, ["yes", "no"])
    decoder = decoder_of(dev_engine, model="vision", lanes=1)
    try:
        describe(decoder, picture_inputs(dev_engine, (320, 240)), Sampling(max_tokens=2, temperature=0.0))
    finally:
        decoder.stop()
    assert lock.takers == [threading.current_thread().name, decoder._thread.name]
