"""Runs that survive the network: resuming a broken stream, runs by id, background runs."""

from __future__ import annotations

import time

import httpx
from conftest import IMAGE, LiveStream, iter_sse, names
from fakes import FakeEngine, Script

from pictale_server.runtime.runs import RunRegistry


def held_engine() -> FakeEngine:
    return FakeEngine(writer=Script(["Once ", "upon ", "a ", "time."], hold_after=2))


def events_of(client: httpx.Client, run_id: str, **kwargs) -> list:
    with client.stream("GET", f"/v1/runs/{run_id}/events", **kwargs) as response:
        assert response.status_code == 200, response.read()
        return [item for item in iter_sse(response) if not isinstance(item, str)]


def wait_for_state(client: httpx.Client, run_id: str, state: str) -> dict:
    deadline = time.monotonic() + 10
    while True:
        body = client.get(f"/v1/runs/{run_id}").json()
        if body["state"] == state or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_a_broken_stream_resumes_where_it_broke_with_no_gap_and_no_repeat(serve) -> None:
    served = serve(held_engine(), resume_grace_s=5)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    stream.until(lambda event: event.name == "delta" and event.data["text"] == "upon ")
    seen, run_id = stream.events, stream.run_id
    stream.close()  # the connection breaks
    served.engine.release.set()
    rest = events_of(served.client, run_id, headers={"Last-Event-ID": str(seen[-1].id)})
    assert [event.id for event in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    text = "".join(event.data["text"] for event in seen + rest if event.name == "delta")
    assert text == "Once upon a time."
    assert rest[-1].name == "done" and rest[-1].data["text"] == "Once upon a time."
    assert len(served.engine.calls) == 1  # one job, not two
    assert served.engine.wait_for_finish(0) == "stop"


def test_events_can_be_replayed_from_any_point(serve) -> None:
    served = serve()
    events = LiveStream(served.client, "/v1/narrate", {"instruction": "A"}).rest()
    run_id = events[0].data["id"]
    assert names(events_of(served.client, run_id)) == names(events)
    assert events_of(served.client, run_id, params={"after": 3}) == events[3:]
    assert events_of(served.client, run_id, params={"after": len(events)}) == []


def test_after_beyond_the_last_event_is_a_bad_request(serve) -> None:
    served = serve()
    events = LiveStream(served.client, "/v1/narrate", {"instruction": "A"}).rest()
    response = served.client.get(f"/v1/runs/{events[0].data['id']}/events", params={"after": len(events) + 1})
    assert response.status_code == 400 and response.json()["error"]["param"] == "after"
    response = served.client.get(f"/v1/runs/{events[0].data['id']}/events", headers={"Last-Event-ID": "x"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "Last-Event-ID"


def test_a_dropped_stream_nobody_resumes_is_cancelled_after_the_grace(serve) -> None:
    served = serve(held_engine(), resume_grace_s=0.3)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    stream.until_name("delta")
    run_id = stream.run_id
    stream.close()
    assert served.client.get(f"/v1/runs/{run_id}").json()["state"] == "running"  # within the grace
    assert served.engine.wait_for_finish(0) == "cancelled"
    assert wait_for_state(served.client, run_id, "cancelled")["state"] == "cancelled"


def test_the_run_reports_its_state_and_result_by_id(serve) -> None:
    served = serve()
    response = served.client.post("/v1/pipeline", json={"image": IMAGE, "instruction": "A tale."})
    run_id = response.json()["id"]
    body = served.client.get(f"/v1/runs/{run_id}").json()
    assert body["state"] == "done"
    assert body["result"] == response.json()
    assert body["events"] >= 8 and "error" not in body


def test_a_failed_run_reports_its_error(serve) -> None:
    served = serve(FakeEngine(writer=Script(["a"], fail_after=0)))
    events = LiveStream(served.client, "/v1/narrate", {"instruction": "A"}).rest()
    body = served.client.get(f"/v1/runs/{events[0].data['id']}").json()
    assert body["state"] == "error" and body["error"]["code"] == "internal"
    assert events[-1].name == "error"


def test_runs_are_visible_only_to_the_key_that_made_them(serve) -> None:
    served = serve(held_engine(), api_keys=["key-a", "key-b"])
    a = {"authorization": "Bearer key-a"}
    b = {"authorization": "Bearer key-b"}
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "A"}, headers=a)
    stream.until_name("delta")
    run_id = stream.run_id
    for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
        response = served.client.request(method, f"/v1/runs/{run_id}{path}", headers=b)
        assert response.status_code == 404, path
    assert served.client.get(f"/v1/runs/{run_id}", headers=a).json()["state"] == "running"
    assert served.client.get("/v1/runs/run_000000000000000000000000", headers=a).status_code == 404
    served.engine.release.set()
    stream.rest()


def test_a_background_run_answers_at_once_and_runs_to_its_end(serve) -> None:
    served = serve(held_engine(), resume_grace_s=0)
    response = served.client.post("/v1/narrate", json={"instruction": "A", "background": True})
    assert response.status_code == 202
    body = response.json()
    assert body["state"] in ("queued", "running") and body["id"].startswith("run_")
    served.engine.wait_for_calls(1)
    served.engine.release.set()
    done = wait_for_state(served.client, body["id"], "done")
    assert done["result"]["text"] == "Once upon a time."


def test_a_background_stream_is_not_cancelled_when_its_client_leaves(serve) -> None:
    served = serve(held_engine(), resume_grace_s=0)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "A", "background": True})
    assert stream.response.status_code == 202  # background answers at once, stream or not
    stream.close()
    served.engine.wait_for_calls(1)
    served.engine.release.set()
    assert served.engine.wait_for_finish(0) == "stop"


def test_the_registry_forgets_a_callers_oldest_ended_runs_past_its_cap() -> None:
    registry = RunRegistry(3600, log_bytes_per_caller=1000)
    old, newer = registry.create(0, "me", None), registry.create(0, "me", None)
    for run in (old, newer):
        run.log.append("delta", {"text": "x" * 600})
        run.log.end()
        registry.finish(run, completed=True)
    someone_else = registry.create(0, "you", None)
    assert registry.get(old.id) is not None  # another caller's runs do not count
    registry.create(0, "me", None)
    assert registry.get(old.id) is None and registry.get(newer.id) is not None
    assert registry.get(someone_else.id) is not None


def test_a_new_event_during_a_busy_moment_is_not_missed() -> None:
    """A reader that was sending bytes when an event came in finds it without waiting."""
    import asyncio

    from pictale_server.runtime.run_log import RunLog

    async def scenario() -> bool:
        log = RunLog()
        log.append("run", {"id": "run_1"})
        seen = log.last_seq
        log.append("delta", {"text": "x"})  # while the reader was busy yielding
        return await log.changed(seen, 5.0)

    started = time.monotonic()
    assert asyncio.run(scenario()) is True
    assert time.monotonic() - started < 1.0


def test_each_drop_restarts_the_grace(serve) -> None:
    served = serve(held_engine(), resume_grace_s=1.0)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "A"})
    stream.until_name("delta")
    run_id = stream.run_id
    stream.close()  # drop: a grace timer for t = 1.0
    time.sleep(0.2)
    with served.client.stream("GET", f"/v1/runs/{run_id}/events") as resumed:
        lines = resumed.iter_lines()  # kept: a collected line iterator closes the response
        for line in lines:
            if line.startswith("event: delta"):
                break
        time.sleep(0.6)
    # dropped again at about t = 0.8: the first timer must not cancel it at t = 1.0
    time.sleep(0.5)
    assert served.client.get(f"/v1/runs/{run_id}").json()["state"] == "running"
    assert served.engine.wait_for_finish(0) == "cancelled"  # the second grace ran out


def test_a_plain_request_whose_client_left_is_cancelled_at_once(serve) -> None:
    import threading

    served = serve(held_engine(), resume_grace_s=60)

    def impatient() -> None:
        with httpx.Client(base_url=served.url, timeout=httpx.Timeout(10, read=0.3)) as client:
            try:
                client.post("/v1/narrate", json={"instruction": "A"})
            except httpx.ReadTimeout:
                pass

    thread = threading.Thread(target=impatient)
    thread.start()
    served.engine.wait_for_calls(1)
    thread.join()
    assert served.engine.wait_for_finish(0) == "cancelled"  # long before the 60 s grace


def test_a_run_cancelled_while_the_models_load_still_ends_its_stream(serve) -> None:
    import threading

    gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=gate))
    stream = LiveStream(served.client, "/v1/pipeline", {"image": IMAGE, "instruction": "A"})
    stream.until(lambda event: event.name == "status" and event.data["state"] == "loading")
    assert served.client.post(f"/v1/runs/{stream.run_id}/cancel").json()["cancelled"] is True
    events = stream.rest()
    gate.set()
    done = events[-1]
    assert done.name == "done"
    assert done.data["description"]["finish_reason"] == "cancelled"
    assert done.data["story"]["finish_reason"] == "cancelled"
    assert served.client.get(f"/v1/runs/{stream.run_id}").json()["state"] == "cancelled"
