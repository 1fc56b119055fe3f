"""The dev-profile engine end to end: streaming, stop strings, cancel, limits, scoring."""

import math
import time

import pytest
import torch
from engine_fixtures import dev_settings, scene_image

from pictale_server.runtime import prompts
from pictale_server.engine.batch_decoder import RUN_AHEAD_TOKENS
from pictale_server.engine.base import Cancel, Delta, Finished, Sampling
from pictale_server.engine.loader import load_engine
from pictale_server.engine.errors import ImageUnprocessable, NotLoaded, PromptTooLong
from pictale_server.runtime.engine_errors import contract_error

pytest_plugins = ["engine_fixtures"]

NARRATE = prompts.narrate_messages("Tell a short story.", "A red circle beside the calm water.")
DESCRIBE = prompts.describe_messages("caption")


def collect(chunks):
    chunks = list(chunks)
    assert isinstance(chunks[-1], Finished)
    assert all(isinstance(c, Delta) and c.text for c in chunks[:-1])
    return "".join(c.text for c in chunks[:-1]), chunks[-1]


def writer(engine, **sampling):
    return collect(
        engine.stream_writer(
            NARRATE, Sampling(**{"max_tokens": 40, "seed": 5, **sampling}), Cancel()
        )
    )


def test_the_dev_engine_reports_its_profile_and_models(dev_engine):
    assert dev_engine.profile == "dev"
    assert dev_engine.vision_loaded and dev_engine.writer_loaded
    assert "qwen2.5-vl" in dev_engine.vision_id and "mistral" in dev_engine.writer_id


def test_load_engine_returns_before_loading(dev_cache_dir):
    engine = load_engine(dev_settings(dev_cache_dir))
    assert not engine.vision_loaded and not engine.writer_loaded
    with pytest.raises(NotLoaded) as error:
        engine.stream_writer(NARRATE, Sampling(max_tokens=4), Cancel())
    assert contract_error(error.value).code == "not_ready"


def test_writer_streams_deltas_that_make_up_the_whole_text(dev_engine):
    text, finished = writer(dev_engine, max_tokens=32)
    ids = dev_engine.writer_prompt_ids(NARRATE)
    assert finished.input_tokens == ids.shape[1]
    assert 0 < finished.output_tokens <= 32
    assert finished.finish_reason in ("length", "stop")
    assert text.strip()


def test_max_tokens_ends_with_length(dev_engine):
    _, finished = writer(dev_engine, max_tokens=7, temperature=0.0)
    assert (finished.finish_reason, finished.output_tokens) == ("length", 7)


def test_the_same_seed_gives_the_same_text_and_another_seed_differs(dev_engine):
    assert writer(dev_engine, seed=21) == writer(dev_engine, seed=21)
    assert writer(dev_engine, seed=21)[0] != writer(dev_engine, seed=22)[0]


def test_a_stop_string_ends_generation_before_it(dev_engine):
    full, _ = writer(dev_engine, max_tokens=60, seed=8)
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert len(stop) == 3 and stop.strip()
    text, finished = writer(dev_engine, max_tokens=60, seed=8, stop=(stop,))
    assert finished.finish_reason == "stop"
    assert text == full[: full.index(stop)]


def test_cancel_mid_generation_stops_within_the_tokens_the_batch_runs_ahead(dev_engine, monkeypatch):
    """The writer's batch decodes at most RUN_AHEAD_TOKENS past what a stream has read, and
    a cancelled stream leaves the batch at its next step."""
    runner = dev_engine._writer.loop.runner
    steps = []
    original = runner.decode
    monkeypatch.setattr(runner, "decode", lambda *args, **kwargs: steps.append(1) or original(*args, **kwargs))
    cancel = Cancel()
    chunks = []
    for chunk in dev_engine.stream_writer(
        NARRATE, Sampling(max_tokens=200, temperature=0.0), cancel
    ):
        chunks.append(chunk)
        if len(chunks) == 3:
            cancel.set()
            steps_at_cancel = len(steps)
    assert chunks[-1].finish_reason == "cancelled"
    batch = dev_engine._writer.loop
    deadline = time.monotonic() + 10
    while batch.busy_lanes:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(steps) <= steps_at_cancel + RUN_AHEAD_TOKENS + 1
    assert len(steps) < 100


def test_a_prompt_over_the_context_limit_is_refused_before_generating(dev_cache_dir):
    engine = load_engine(dev_settings(dev_cache_dir, max_context_tokens=64))
    engine.load()
    with pytest.raises(PromptTooLong) as error:
        engine.stream_writer(NARRATE, Sampling(max_tokens=16), Cancel())
    assert (error.value.model, error.value.limit, error.value.has_history) == ("writer", 64, False)
    answer = contract_error(error.value)
    assert (answer.code, answer.param) == ("invalid_request", "context")
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello " * 40}]
    with pytest.raises(PromptTooLong) as error:
        engine.stream_writer(
            prompts.narrate_messages("Go on.", None, None, history),
            Sampling(max_tokens=16),
            Cancel(),
        )
    assert contract_error(error.value).param == "history"


def test_vision_streams_a_description(dev_engine):
    _, finished = collect(
        dev_engine.stream_vision(scene_image(), DESCRIBE, Sampling(max_tokens=16, seed=1), Cancel())
    )
    assert finished.input_tokens > 100  # the image tokens count as input
    assert 0 < finished.output_tokens <= 16


def test_vision_refuses_an_image_the_processor_cannot_take(dev_engine):
    from PIL import Image

    with pytest.raises(ImageUnprocessable) as error:
        dev_engine.stream_vision(
            Image.new("RGB", (6000, 20)), DESCRIBE, Sampling(max_tokens=4), Cancel()
        )
    assert (contract_error(error.value).code, contract_error(error.value).param) == ("invalid_image", "image")


def test_score_vision_options_gives_teacher_forced_log_probs(dev_engine):
    from pictale_server.engine.chat_format import CHATML_ANSWER_END

    options = ["Yes", "No", "Unsure"]
    scores = dev_engine.score_vision_options(scene_image(), DESCRIBE, options)
    assert len(scores) == 3 and all(math.isfinite(s) and s < 0 for s in scores)
    assert math.isclose(float(torch.softmax(torch.tensor(scores), dim=0).sum()), 1.0, rel_tol=1e-6)

    # Same number from a plain forward with the pixels (the engine reuses the image features).
    vision = dev_engine._vision
    prompt = dev_engine._vision_inputs(scene_image(), DESCRIBE)
    answer = vision.tokenizer(
        "No" + CHATML_ANSWER_END, add_special_tokens=False, return_tensors="pt"
    )["input_ids"]
    full = dev_engine._vision_inputs(scene_image(), DESCRIBE, answer="No" + CHATML_ANSWER_END)
    assert full.input_ids[0, prompt.length :].tolist() == answer[0].tolist()
    with torch.no_grad():
        logits = vision.model(
            input_ids=full.input_ids,
            pixel_values=full.pixel_values,
            image_grid_thw=full.image_grid_thw,
            mm_token_type_ids=full.mm_token_type_ids,
        ).logits[0, prompt.length - 1 : full.length - 1]
    expected = torch.log_softmax(logits.float(), -1).gather(-1, answer[0].unsqueeze(-1)).sum()
    assert math.isclose(scores[1], float(expected), rel_tol=1e-4)
