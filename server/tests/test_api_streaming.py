"""Stream behaviour: pings, loading, errors after the stream opened."""

from __future__ import annotations

import threading

from conftest import IMAGE, LiveStream, names, read_events
from fakes import FakeEngine, FakeGate, Script
from pictale_server.errors import ApiError


def test_pings_go_out_while_a_job_waits(serve):
    served = serve(FakeEngine(writer=Script(["a", "b"], hold_after=1)), ping_interval_s=0.02)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "Go."})
    stream.until_name("delta")
    stream.until_pings(3)
    served.engine.release.set()
    events = stream.rest()
    assert names(events)[-2:] == ["stage-end", "done"]
    assert [e.id for e in events] == list(range(1, len(events) + 1))


def test_loading_server_streams_status_then_runs(serve):
    load_gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=load_gate))
    health = served.client.get("/health").json()
    assert health["status"] == "loading"
    assert health["models"]["writer"]["loaded"] is False

    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "Go."})
    assert stream.until_name("status").data == {"state": "loading"}
    load_gate.set()
    events = stream.rest()
    assert names(events) == [
        "run",
        "status",
        "status",
        "stage-start",
        "delta",
        "delta",
        "delta",
        "stage-end",
        "done",
    ]
    assert events[2].data == {"state": "running"}
    assert served.client.get("/health").json()["status"] == "ok"


def test_loading_server_answers_plain_requests_503(serve):
    load_gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=load_gate))
    try:
        for path, body in [
            ("/v1/narrate", {"instruction": "Go."}),
            ("/v1/describe", {"image": IMAGE}),
        ]:
            response = served.client.post(path, json=body)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "not_ready"
            assert int(response.headers["retry-after"]) >= 1
    finally:
        load_gate.set()


def test_engine_failure_mid_stream_is_an_error_event(serve):
    served = serve(FakeEngine(writer=Script(["Hel", "lo"], fail_after=1)))
    with served.client.stream(
        "POST", "/v1/narrate", json={"instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert names(events) == ["run", "status", "stage-start", "delta", "error"]
    error = events[-1].data
    assert error["code"] == "internal"
    assert error["retryable"] is True
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in error["message"] and "scripted" not in error["message"]


def test_engine_failure_plain_is_a_500_in_contract_shape(serve):
    served = serve(FakeEngine(writer=Script(["Hel", "lo"], fail_after=1)))
    response = served.client.post("/v1/narrate", json={"instruction": "Go."})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal"
    assert error["request_id"] == response.headers["x-request-id"]
    assert served.client.post("/v1/describe", json={"image": IMAGE}).status_code == 200


def test_engine_refusing_the_prompt_keeps_its_code(serve):
    too_long = ApiError("invalid_request", "The prompt does not fit the model's context.")
    served = serve(FakeEngine(writer=Script(["x"], error_first=too_long)))
    plain = served.client.post("/v1/narrate", json={"instruction": "Go."})
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "invalid_request"
    with served.client.stream(
        "POST", "/v1/narrate", json={"instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert events[-1].name == "error"
    assert events[-1].data["code"] == "invalid_request"
    assert events[-1].data["retryable"] is False


def test_pipeline_image_refusal_comes_after_the_description_and_before_narration(serve):
    served = serve(gate=FakeGate(refuse_images=True))
    with served.client.stream(
        "POST", "/v1/pipeline", json={"image": IMAGE, "instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert names(events) == ["run", "status", "stage-start", "delta", "delta", "stage-end", "error"]
    assert events[-1].data["code"] == "content_refused"
    assert all(e.data.get("stage") != "narrate" for e in events)
    assert [call.model for call in served.engine.calls] == ["vision"]
    assert [name.split("-")[1] for name in served.gate.image_threads] == ["vision"]  # a vision worker


def test_pipeline_image_refusal_plain_is_403(serve):
    served = serve(gate=FakeGate(refuse_images=True))
    response = served.client.post("/v1/pipeline", json={"image": IMAGE, "instruction": "Go."})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "content_refused"
    assert [call.model for call in served.engine.calls] == ["vision"]


def test_stream_errors_before_opening_are_plain_http_errors(serve):
    served = serve(gate=FakeGate())
    response = served.client.post(
        "/v1/narrate",
        json={"instruction": "REFUSE-ME", "stream": True},
        headers={"accept": "text/event-stream"},
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/json")
    bad_image = served.client.post(
        "/v1/describe", json={"image": "data:image/png;base64,@@@", "stream": True}
    )
    assert bad_image.status_code == 400
    assert bad_image.json()["error"]["code"] == "invalid_image"
