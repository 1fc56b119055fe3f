"""Every generation route, plain and streamed, over the scripted engine."""

from __future__ import annotations

import pytest

from conftest import IMAGE, names, read_events
from fakes import FakeEngine, Script

STAGE_RESULT_KEYS = {"text", "finish_reason", "model", "usage", "timings"}
TIMING_KEYS = {"queued_ms", "first_token_ms", "total_ms", "tokens_per_second"}


def assert_stage_result(result: dict, text: str, model: str, output_tokens: int) -> None:
    assert STAGE_RESULT_KEYS <= result.keys()
    assert result["text"] == text
    assert result["finish_reason"] == "stop"
    assert result["model"] == model
    assert result["usage"] == {"input_tokens": 12, "output_tokens": output_tokens}
    assert set(result["timings"]) == TIMING_KEYS
    assert all(value >= 0 for value in result["timings"].values())


REFERENCE_DECODE = {"path": "reference", "reason": "no CUDA GPU"}


def test_health_reports_models_profile_and_queues(serve):
    served = serve()
    response = served.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "profile": "dev",
        "models": {
            "vision": {"id": "fake/vision", "loaded": True, "decode": REFERENCE_DECODE},
            "writer": {"id": "fake/writer", "loaded": True, "decode": REFERENCE_DECODE},
        },
        "version": "1",
        "queue": {"vision": 0, "writer": 0},
        "server_version": "0.1.0",
    }


def test_describe_plain(serve):
    served = serve()
    response = served.client.post("/v1/describe", json={"image": IMAGE, "style": "caption"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("run_") and len(body["id"]) == 28
    assert_stage_result(body, "A red circle.", "fake/vision", 2)
    call = served.engine.calls[0]
    assert call.model == "vision" and call.image is not None and call.image.mode == "RGB"


def test_narrate_plain_passes_fields_to_the_prompt_builder(serve):
    served = serve()
    response = served.client.post(
        "/v1/narrate",
        json={
            "instruction": "Write about the harbour.",
            "context": "A quiet harbour.",
            "system": "You write vivid prose.",
            "history": [
                {"role": "user", "content": "Begin."},
                {"role": "assistant", "content": "Waves."},
            ],
        },
    )
    assert response.status_code == 200
    assert_stage_result(response.json(), "Once upon a time.", "fake/writer", 3)
    text = " ".join(m["content"] for m in served.engine.calls[0].messages)
    for part in (
        "Write about the harbour.",
        "A quiet harbour.",
        "You write vivid prose.",
        "Begin.",
        "Waves.",
    ):
        assert part in text


def test_pipeline_plain_narrates_from_the_description(serve):
    served = serve()
    response = served.client.post("/v1/pipeline", json={"image": IMAGE, "instruction": "A fable."})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "description", "story"}
    assert_stage_result(body["description"], "A red circle.", "fake/vision", 2)
    assert_stage_result(body["story"], "Once upon a time.", "fake/writer", 3)
    vision, writer = served.engine.calls
    assert (vision.model, writer.model) == ("vision", "writer")
    assert any("A red circle." in m["content"] for m in writer.messages)


@pytest.mark.parametrize("how", ["field", "accept"])
def test_describe_streamed(serve, how):
    served = serve()
    body = {"image": IMAGE, **({"stream": True} if how == "field" else {})}
    headers = {"accept": "text/event-stream"} if how == "accept" else {}
    with served.client.stream("POST", "/v1/describe", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = read_events(response)
    assert names(events) == ["run", "status", "stage-start", "delta", "delta", "stage-end", "done"]
    assert [event.id for event in events] == list(range(1, 8))
    run_id = events[0].data["id"]
    assert events[1].data == {"state": "running"}
    assert events[2].data == {"stage": "describe"}
    assert "".join(e.data["text"] for e in events if e.name == "delta") == "A red circle."
    assert events[5].data["stage"] == "describe"
    assert events[6].data["id"] == run_id
    assert {k: v for k, v in events[5].data.items() if k != "stage"} == {
        k: v for k, v in events[6].data.items() if k != "id"
    }


def test_narrate_streamed(serve):
    served = serve()
    with served.client.stream(
        "POST", "/v1/narrate", json={"instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert names(events) == [
        "run",
        "status",
        "stage-start",
        "delta",
        "delta",
        "delta",
        "stage-end",
        "done",
    ]
    assert events[-1].data["text"] == "Once upon a time."
    assert all(
        e.data["stage"] == "narrate"
        for e in events
        if e.name in ("delta", "stage-start", "stage-end")
    )


def test_pipeline_streamed_runs_both_stages_in_order(serve):
    served = serve()
    with served.client.stream(
        "POST", "/v1/pipeline", json={"image": IMAGE, "instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert names(events) == [
        "run",
        "status",
        "stage-start",
        "delta",
        "delta",
        "stage-end",
        "status",
        "stage-start",
        "delta",
        "delta",
        "delta",
        "stage-end",
        "done",
    ]
    stages = [e.data["stage"] for e in events if e.name == "stage-start"]
    assert stages == ["describe", "narrate"]
    done = events[-1].data
    assert done["description"]["text"] == "A red circle."
    assert done["story"]["text"] == "Once upon a time."


def test_sampling_defaults_and_overrides_reach_the_engine(serve):
    served = serve()
    served.client.post(
        "/v1/pipeline",
        json={
            "image": IMAGE,
            "instruction": "Go.",
            "describe": {"style": "caption", "max_tokens": 7, "seed": 3},
            "narrate": {"max_tokens": 9, "temperature": 0.0, "stop": ["END"]},
        },
    )
    vision, writer = served.engine.calls
    assert (vision.sampling.max_tokens, vision.sampling.seed) == (7, 3)
    assert writer.sampling.max_tokens == 9
    assert writer.sampling.temperature == 0.0
    assert writer.sampling.stop == ("END",)


def test_deterministic_reaches_the_engine_for_every_stage_and_is_off_unless_asked(serve):
    served = serve()
    bodies = [
        ("/v1/narrate", {"instruction": "Go.", "seed": 5, "deterministic": True}),
        ("/v1/describe", {"image": IMAGE, "deterministic": True}),
        (
            "/v1/pipeline",
            {
                "image": IMAGE,
                "instruction": "Go.",
                "describe": {"deterministic": True},
                "narrate": {"deterministic": True},
            },
        ),
        ("/v1/narrate", {"instruction": "Go."}),
        ("/v1/narrate", {"instruction": "Go.", "deterministic": False}),
        ("/v1/narrate", {"instruction": "Go.", "deterministic": None}),
        ("/v1/pipeline", {"image": IMAGE, "instruction": "Go."}),
    ]
    for route, body in bodies:
        assert served.client.post(route, json=body).status_code == 200
    calls = served.engine.calls
    assert [(call.model, call.sampling.deterministic) for call in calls] == [
        ("writer", True),
        ("vision", True),
        ("vision", True),
        ("writer", True),
        ("writer", False),
        ("writer", False),
        ("writer", False),
        ("vision", False),
        ("writer", False),
    ]
    assert calls[0].sampling.seed == 5


def _with_deterministic(route: str, stage: str | None, value: object) -> dict:
    body: dict = {"instruction": "Go."} if route == "/v1/narrate" else {"image": IMAGE}
    if route == "/v1/pipeline":
        body["instruction"] = "Go."
    if stage is None:
        return {**body, "deterministic": value}
    return {**body, stage: {"deterministic": value}}


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, [True], {"on": True}])
@pytest.mark.parametrize(
    ("route", "stage"),
    [
        ("/v1/narrate", None),
        ("/v1/describe", None),
        ("/v1/pipeline", "narrate"),
        ("/v1/pipeline", "describe"),
    ],
)
def test_a_deterministic_that_is_not_a_boolean_is_an_invalid_request(serve, route, stage, value):
    served = serve()
    response = served.client.post(route, json=_with_deterministic(route, stage, value))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    param = "deterministic" if stage is None else f"{stage}.deterministic"
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert served.engine.calls == []


def test_max_tokens_cut_reports_length(serve):
    served = serve(FakeEngine(writer=Script(["a", "b", "c", "d"])))
    body = served.client.post("/v1/narrate", json={"instruction": "Go.", "max_tokens": 2}).json()
    assert body["finish_reason"] == "length"
    assert body["text"] == "ab"
    assert body["usage"]["output_tokens"] == 2


def test_multibyte_text_survives_streaming(serve):
    tokens = ["Snow fell — ", "雪 — softly.", " 🌙"]
    served = serve(FakeEngine(writer=Script(tokens)))
    with served.client.stream(
        "POST", "/v1/narrate", json={"instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert [e.data["text"] for e in events if e.name == "delta"] == tokens
    assert events[-1].data["text"] == "".join(tokens)


def test_the_app_serves_again_after_its_lifespan_restarts():
    from starlette.testclient import TestClient

    from conftest import make_settings
    from fakes import FakeGate
    from pictale_server.app import create_app

    app = create_app(FakeEngine(), make_settings(), gate=FakeGate())
    for _ in range(2):
        with TestClient(app) as client:
            response = client.post("/v1/narrate", json={"instruction": "Go."})
            assert response.json()["text"] == "Once upon a time."


def test_routes_reach_the_services_only_through_their_dependency():
    """Overriding `get_services` swaps what every route sees: health, generation and cancel."""
    import httpx

    from conftest import live_server, make_settings
    from fakes import FakeGate
    from pictale_server.api.dependencies import get_services
    from pictale_server.app import create_app

    settings = make_settings()
    app = create_app(FakeEngine(writer_id="app/writer"), settings, gate=FakeGate())
    other = create_app(FakeEngine(writer_id="other/writer"), settings, gate=FakeGate())
    services = other.state.services
    app.dependency_overrides[get_services] = lambda: services
    services.scheduler.start()
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            health = client.get("/health").json()
            assert health["models"]["writer"]["id"] == "other/writer"
            story = client.post("/v1/narrate", json={"instruction": "Go."}).json()
            assert story["model"] == "other/writer"
            assert services.runs.get(story["id"]) is not None
            cancel = client.post(f"/v1/runs/{story['id']}/cancel").json()
            assert cancel == {"id": story["id"], "cancelled": False, "state": "done"}
    finally:
        services.scheduler.stop()
