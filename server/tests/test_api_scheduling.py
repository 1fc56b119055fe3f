"""Queueing, cancellation and idempotency through HTTP.

Most tests run around the scripted FakeEngine; the last ones run the dev engine with a writer
whose KV pool holds two pages, to check that a request waiting for memory is queued.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest
from engine_fixtures import decoder_of, dev_cache_dir, dev_engine, dev_model_paths  # noqa: F401

from conftest import IMAGE, LiveStream, names
from fakes import FakeEngine, Script
from pictale_server.engine.kv_pool import PAGE_TOKENS
from pictale_server.runtime import prompts


# Queueing is the writer's once all its streams are busy: these tests give it one stream.


def held_engine() -> FakeEngine:
    """Each generation stops after its first token until the test sets `release`."""
    return FakeEngine(
        vision=Script(["Shapes", "."], hold_after=1),
        writer=Script(["Once", " more."], hold_after=1),
    )


def test_full_queue_answers_429_with_retry_after(serve):
    served = serve(held_engine(), writer_streams=1, queue_depth=1)
    running = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    running.until_name("delta")
    waiting = LiveStream(served.client, "/v1/narrate", {"instruction": "B"})
    assert waiting.until_name("status").data == {"state": "queued", "position": 1}

    refused = served.client.post("/v1/narrate", json={"instruction": "C"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["retry-after"]) >= 1
    refused_stream = served.client.post("/v1/narrate", json={"instruction": "C", "stream": True})
    assert refused_stream.status_code == 429
    assert served.client.get("/health").json()["queue"] == {"vision": 0, "writer": 1}

    # The other model has its own queue.
    describe = LiveStream(served.client, "/v1/describe", {"image": IMAGE})
    describe.until_name("delta")

    served.engine.release.set()
    for stream in (running, waiting, describe):
        assert stream.rest()[-1].name == "done"


def test_queue_positions_are_resent_as_they_change(serve):
    served = serve(held_engine(), writer_streams=1, queue_depth=4)
    first = LiveStream(served.client, "/v1/narrate", {"instruction": "first-job"})
    first.until_name("delta")
    second = LiveStream(served.client, "/v1/narrate", {"instruction": "second-job"})
    third = LiveStream(served.client, "/v1/narrate", {"instruction": "third-job"})
    assert second.until_name("status").data == {"state": "queued", "position": 1}
    assert third.until_name("status").data == {"state": "queued", "position": 2}

    served.engine.release.set()
    assert third.until_name("status").data == {"state": "queued", "position": 1}
    assert third.until_name("status").data == {"state": "running"}
    for stream in (first, second, third):
        assert stream.rest()[-1].name == "done"
    ran = [" ".join(m["content"] for m in call.messages) for call in served.engine.calls]
    assert ["first-job" in ran[0], "second-job" in ran[1], "third-job" in ran[2]] == [True] * 3


def test_cancel_route_stops_a_running_job_and_frees_the_model(serve):
    served = serve(held_engine(), writer_streams=1)
    running = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    running.until_name("delta")
    waiting = LiveStream(served.client, "/v1/narrate", {"instruction": "B", "max_tokens": 1})
    waiting.until_name("status")

    answer = served.client.post(f"/v1/runs/{running.run_id}/cancel")
    assert answer.status_code == 200
    assert answer.json() == {"id": running.run_id, "cancelled": True, "state": "cancelled"}

    events = running.rest()
    assert names(events)[-2:] == ["stage-end", "done"]
    assert events[-1].data["finish_reason"] == "cancelled"
    assert events[-1].data["text"] == "Once"
    # The next job runs although the held job was never released.
    assert waiting.rest()[-1].data["finish_reason"] == "length"
    assert served.engine.calls[0].finish_reason == "cancelled"

    again = served.client.post(f"/v1/runs/{running.run_id}/cancel").json()
    assert again == {"id": running.run_id, "cancelled": False, "state": "cancelled"}
    done = served.client.post(f"/v1/runs/{waiting.run_id}/cancel").json()
    assert done == {"id": waiting.run_id, "cancelled": False, "state": "done"}


def test_cancelled_queued_job_is_dropped_without_running(serve):
    served = serve(held_engine(), writer_streams=1, queue_depth=4)
    running = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    running.until_name("delta")
    dropped = LiveStream(served.client, "/v1/narrate", {"instruction": "B"})
    dropped.until_name("status")
    behind = LiveStream(served.client, "/v1/narrate", {"instruction": "C"})
    assert behind.until_name("status").data["position"] == 2

    served.client.post(f"/v1/runs/{dropped.run_id}/cancel")
    assert behind.until_name("status").data == {"state": "queued", "position": 1}
    events = dropped.rest()
    assert names(events)[-3:] == ["stage-start", "stage-end", "done"]
    assert events[-1].data["finish_reason"] == "cancelled"
    assert events[-1].data["usage"] == {"input_tokens": 0, "output_tokens": 0}

    served.engine.release.set()
    running.rest()
    behind.rest()
    assert len(served.engine.calls) == 2  # B never reached the engine


def test_unknown_run_is_404(serve):
    served = serve()
    response = served.client.post("/v1/runs/run_000000000000000000000000/cancel")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_closing_a_stream_cancels_its_job_once_no_client_resumed_it(serve):
    served = serve(held_engine(), resume_grace_s=0.2)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    stream.until_name("delta")
    run_id = stream.run_id
    stream.close()
    assert served.engine.wait_for_finish(0) == "cancelled"
    # The model is free then: the next request does not wait behind the dropped one.
    answer = served.client.post("/v1/narrate", json={"instruction": "B", "max_tokens": 1})
    assert answer.json()["finish_reason"] == "length"
    state = served.client.post(f"/v1/runs/{run_id}/cancel").json()
    assert state == {"id": run_id, "cancelled": False, "state": "cancelled"}


def test_a_plain_request_whose_client_leaves_is_cancelled(serve):
    served = serve(held_engine(), resume_grace_s=0.2)

    def impatient_client() -> None:
        with httpx.Client(base_url=served.url, timeout=httpx.Timeout(10, read=0.3)) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.post("/v1/narrate", json={"instruction": "A"})

    thread = threading.Thread(target=impatient_client)
    thread.start()
    served.engine.wait_for_calls(1)
    thread.join()
    assert served.engine.wait_for_finish(0) == "cancelled"
    answer = served.client.post("/v1/narrate", json={"instruction": "B", "max_tokens": 1})
    assert answer.json()["finish_reason"] == "length"


def test_plain_request_cancelled_by_route_returns_partial_text(serve):
    served = serve(held_engine(), writer_streams=1)
    result: dict = {}

    def waiter() -> None:
        result["body"] = served.client.post(
            "/v1/narrate", json={"instruction": "A"}, headers={"Idempotency-Key": "plain-1"}
        ).json()

    thread = threading.Thread(target=waiter)
    thread.start()
    served.engine.wait_for_calls(1)
    # The run id is not known to a plain caller; a retry with the same key cancels it.
    retry = served.client.post(
        "/v1/narrate",
        json={"instruction": "A", "max_tokens": 1},
        headers={"Idempotency-Key": "plain-1"},
    )
    thread.join()
    assert result["body"]["finish_reason"] == "cancelled"
    assert result["body"]["text"] == "Once"
    assert retry.json()["finish_reason"] == "length"
    for body, state in [(result["body"], "cancelled"), (retry.json(), "done")]:
        answer = served.client.post(f"/v1/runs/{body['id']}/cancel").json()
        assert answer == {"id": body["id"], "cancelled": False, "state": state}


def test_idempotent_retry_replaces_a_queued_job(serve):
    served = serve(held_engine(), writer_streams=1, queue_depth=1)
    running = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    running.until_name("delta")
    first_try = LiveStream(
        served.client, "/v1/narrate", {"instruction": "B"}, headers={"Idempotency-Key": "k-1"}
    )
    first_try.until_name("status")
    # The queue is full, but the retry takes its own earlier attempt's place.
    retry = LiveStream(
        served.client, "/v1/narrate", {"instruction": "B"}, headers={"Idempotency-Key": "k-1"}
    )
    assert retry.until_name("status").data == {"state": "queued", "position": 1}
    assert first_try.rest()[-1].data["finish_reason"] == "cancelled"
    served.engine.release.set()
    assert retry.rest()[-1].data["finish_reason"] == "stop"
    running.rest()


def test_idempotency_keys_are_validated(serve):
    served = serve()
    response = served.client.post(
        "/v1/narrate", json={"instruction": "A"}, headers={"Idempotency-Key": "a b"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"


def test_a_stream_whose_client_left_before_reading_is_cancelled():
    import asyncio
    import json

    from conftest import make_settings
    from fakes import FakeGate
    from pictale_server.app import create_app

    engine = held_engine()
    app = create_app(engine, make_settings(resume_grace_s=0), gate=FakeGate())
    services = app.state.services
    body = json.dumps({"instruction": "A", "stream": True}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/narrate",
        "raw_path": b"/v1/narrate",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def scenario() -> None:
        services.scheduler.start()
        services.lifecycle.start()
        inbox = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return inbox.pop(0) if inbox else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            return None

        await app(scope, receive, send)

    asyncio.run(scenario())
    services.scheduler.stop()  # returns once the worker is idle: a held job would block it
    assert services.runs.live() == []
    assert all(call.finish_reason == "cancelled" for call in engine.calls)


def test_one_key_cannot_take_every_place_in_a_queue(serve):
    served = serve(held_engine(), writer_streams=1, queue_depth=4, api_keys=["key-one", "key-two"])
    one = {"x-api-key": "key-one"}
    two = {"authorization": "Bearer key-two"}
    running = LiveStream(served.client, "/v1/narrate", {"instruction": "A"}, headers=one)
    running.until_name("delta")
    waiting = [LiveStream(served.client, "/v1/narrate", {"instruction": f"A{i}"}, headers=one) for i in range(2)]
    for stream in waiting:
        stream.until_name("status")

    refused = served.client.post("/v1/narrate", json={"instruction": "A3"}, headers=one)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "queue_full"
    assert "each caller's share" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1

    other = LiveStream(served.client, "/v1/narrate", {"instruction": "B"}, headers=two)
    assert other.until_name("status").data == {"state": "queued", "position": 3}
    served.engine.release.set()
    for stream in (running, *waiting, other):
        assert stream.rest()[-1].name == "done"


def test_the_writer_runs_as_many_narrates_at_once_as_it_has_streams(serve):
    served = serve(held_engine(), writer_streams=2, queue_depth=4)
    first = LiveStream(served.client, "/v1/narrate", {"instruction": "first-job"})
    second = LiveStream(served.client, "/v1/narrate", {"instruction": "second-job"})
    first.until_name("delta")
    assert second.until_name("status").data == {"state": "running"}  # never queued
    second.until_name("delta")
    third = LiveStream(served.client, "/v1/narrate", {"instruction": "third-job"})
    assert third.until_name("status").data == {"state": "queued", "position": 1}
    served.engine.release.set()
    for stream in (first, second, third):
        assert stream.rest()[-1].name == "done"


# --- the writer's KV memory: the dev engine, its batch over a pool of two pages ----------------

HOLD = "HOLD"  # a narrate whose instruction holds this stops after its first chunk until released
GREEDY = {"temperature": 0, "repetition_penalty": 0.5}  # loops without an end token
HOLD_S = 60.0  # bound on a hold the test forgets to release; never an assertion on speed


class HoldingEngine:
    """The dev engine, unchanged, but a stream whose instruction or prompt holds HOLD stops
    after its first chunk until `release` is set: it keeps its KV region meanwhile."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.release = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def stream_writer(self, messages, sampling, cancel, *, admission=None) -> Iterator:
        chunks = self._engine.stream_writer(messages, sampling, cancel, admission=admission)
        if not any(HOLD in message["content"] for message in messages):
            return chunks
        return self._held(chunks)

    def stream_vision(self, image, messages, sampling, cancel, *, admission=None) -> Iterator:
        chunks = self._engine.stream_vision(image, messages, sampling, cancel, admission=admission)
        if not any(HOLD in message["content"] for message in messages):
            return chunks
        return self._held(chunks)

    def _held(self, chunks: Iterator) -> Iterator:
        for index, chunk in enumerate(chunks):
            yield chunk
            if index == 0:
                self.release.wait(HOLD_S)


@pytest.fixture
def two_page_writer(dev_engine):  # noqa: F811
    """The dev engine with its writer's batch swapped for one over two pages of KV memory, and
    the body of a narrate whose worst case (prompt + max_tokens) takes both."""
    instruction = f"{HOLD} the lighthouse."
    prompt = dev_engine.writer_prompt_ids(prompts.narrate_messages(instruction)).shape[1]
    both_pages = {"instruction": instruction, "max_tokens": 2 * PAGE_TOKENS - prompt, **GREEDY}
    assert both_pages["max_tokens"] > 0
    with holding_two_pages(dev_engine, "writer", lanes=4) as holding:
        yield holding, both_pages


@contextlib.contextmanager
def holding_two_pages(dev_engine, model: str, *, lanes: int) -> Iterator[HoldingEngine]:
    """The dev engine as a HoldingEngine, `model`'s batch swapped for one over two pages."""
    loaded = dev_engine.loaded(model)
    shared, small = loaded.loop, decoder_of(dev_engine, model=model, pages=2, lanes=lanes)
    loaded.loop = small
    holding = HoldingEngine(dev_engine)
    try:
        yield holding
    finally:
        holding.release.set()
        loaded.loop = shared
        small.stop()


def statuses(events) -> list[dict]:
    return [event.data for event in events if event.name == "status"]


def test_a_narrate_waiting_for_kv_memory_is_queued_then_runs(serve, two_page_writer):
    engine, both_pages = two_page_writer
    served = serve(engine)
    holding = LiveStream(served.client, "/v1/narrate", both_pages)
    holding.until_name("delta")
    waiting = LiveStream(served.client, "/v1/narrate", {"instruction": "Next.", "max_tokens": 8})
    assert waiting.until_name("status").data == {"state": "queued", "position": 1}
    assert served.client.get(f"/v1/runs/{waiting.run_id}").json()["state"] == "queued"
    assert served.client.get("/health").json()["queue"]["writer"] == 1

    engine.release.set()
    events = waiting.rest()
    assert statuses(events) == [{"state": "queued", "position": 1}, {"state": "running"}]
    after = names(events)[names(events).index("status", 2):]
    assert after[:2] == ["status", "stage-start"] and after[-2:] == ["stage-end", "done"]
    assert events[-1].data["usage"]["output_tokens"] > 0
    held = holding.rest()
    assert statuses(held) == [{"state": "running"}] and held[-1].name == "done"


@pytest.fixture
def two_page_vision(dev_engine):  # noqa: F811
    """The dev engine with its vision model's batch swapped for one over two pages of KV
    memory, and the body of a describe whose worst case takes both."""
    from PIL import Image

    prompt = f"{HOLD} the picture."
    picture = Image.new("RGB", (8, 6), (200, 30, 30))  # conftest.IMAGE
    length = dev_engine._vision_inputs(picture, prompts.describe_messages(None, prompt)).length
    both_pages = {"image": IMAGE, "prompt": prompt, "max_tokens": 2 * PAGE_TOKENS - length - 16, **GREEDY}
    assert both_pages["max_tokens"] + length > PAGE_TOKENS
    with holding_two_pages(dev_engine, "vision", lanes=2) as holding:
        yield holding, both_pages


def test_a_describe_waiting_for_kv_memory_is_queued_then_runs(serve, two_page_vision):
    """Describes batch too: one that finds no room in the vision model's pool is queued with
    its position, then runs once the one holding the pool ends."""
    engine, both_pages = two_page_vision
    served = serve(engine)
    holding = LiveStream(served.client, "/v1/describe", both_pages)
    holding.until_name("delta")
    waiting = LiveStream(served.client, "/v1/describe", {"image": IMAGE, "max_tokens": 8})
    assert waiting.until_name("status").data == {"state": "queued", "position": 1}
    assert served.client.get("/health").json()["queue"]["vision"] == 1

    engine.release.set()
    events = waiting.rest()
    assert statuses(events) == [{"state": "queued", "position": 1}, {"state": "running"}]
    assert events[-1].name == "done" and events[-1].data["usage"]["output_tokens"] > 0
    held = holding.rest()
    assert statuses(held) == [{"state": "running"}] and held[-1].name == "done"


def test_positions_count_memory_waiters_first_and_a_cancelled_one_leaves_the_line(
    serve, two_page_writer
):
    """Two streams: the first holds the whole pool, the second request waits for memory (1),
    the third for a stream (2). Cancelling the second takes it out of the batch's line at
    once: the third moves up, and runs when the first ends."""
    engine, both_pages = two_page_writer
    served = serve(engine, writer_streams=2, queue_depth=4)
    holding = LiveStream(served.client, "/v1/narrate", both_pages)
    holding.until_name("delta")
    leaving = LiveStream(served.client, "/v1/narrate", {"instruction": "Second.", "max_tokens": 8})
    assert leaving.until_name("status").data == {"state": "queued", "position": 1}
    behind = LiveStream(served.client, "/v1/narrate", {"instruction": "Third.", "max_tokens": 8})
    assert behind.until_name("status").data == {"state": "queued", "position": 2}

    served.client.post(f"/v1/runs/{leaving.run_id}/cancel")
    events = leaving.rest()
    assert statuses(events) == [{"state": "queued", "position": 1}]  # never running
    assert names(events)[-3:] == ["stage-start", "stage-end", "done"]
    assert events[-1].data["finish_reason"] == "cancelled"
    assert events[-1].data["usage"]["output_tokens"] == 0
    assert behind.until_name("status").data == {"state": "queued", "position": 1}

    engine.release.set()
    events = behind.rest()
    assert statuses(events) == [
        {"state": "queued", "position": 2},
        {"state": "queued", "position": 1},
        {"state": "running"},
    ]
    assert events[-1].name == "done" and events[-1].data["usage"]["output_tokens"] > 0
    assert holding.rest()[-1].name == "done"
