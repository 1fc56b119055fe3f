"""The KoboldCpp-compatible routes over the scripted engine: shapes, abort, tokens, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import IMAGE
from fakes import FakeEngine, Script

from pictale_server.runtime.prompts import SCENE_CONTEXT_BRIDGE

BASE64_IMAGE = IMAGE.split(",", 1)[1]


def generate(served, path: str = "/api/v1/generate", **body: Any):
    body.setdefault("prompt", "[INST]A story.[/INST]")
    return served.client.post(path, json=body)


def stream_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_generate_answers_in_koboldcpps_shape(serve) -> None:
    served = serve()
    body = generate(served, max_length=20).json()
    assert body == {
        "results": [
            {"text": "Once upon a time.", "finish_reason": "stop", "logprobs": None,
             "prompt_tokens": 12, "completion_tokens": 3}
        ]
    }
    call = served.engine.calls[0]
    assert call.prompt == "[INST]A story.[/INST]" and call.sampling.max_tokens == 20


def test_memory_goes_in_front_of_the_prompt_and_singleline_stops_at_a_line_break(serve) -> None:
    served = serve()
    generate(served, memory="Facts. ", prompt="Go:", singleline=True, stop_sequence=["###"])
    call = served.engine.calls[0]
    assert call.prompt == "Facts. Go:" and call.sampling.stop == ("###", "\n")


def test_koboldcpp_sampler_names_are_applied(serve) -> None:
    served = serve()
    generate(served, temperature=0.6, top_k=30, rep_pen=1.15, sampler_seed=9, max_length=64)
    sampling = served.engine.calls[0].sampling
    assert (sampling.temperature, sampling.top_k, sampling.repetition_penalty) == (0.6, 30, 1.15)
    assert (sampling.seed, sampling.max_tokens) == (9, 64)


def test_deterministic_reaches_the_engine_and_is_off_unless_asked(serve) -> None:
    served = serve()
    generate(served, sampler_seed=9, deterministic=True)
    generate(served, "/api/extra/generate/stream", deterministic=True)
    generate(served)
    assert [call.sampling.deterministic for call in served.engine.calls] == [True, True, False]
    assert served.engine.calls[0].sampling.seed == 9


def test_a_deterministic_that_is_not_a_boolean_is_refused_in_koboldcpps_shape(serve) -> None:
    served = serve()
    response = generate(served, deterministic="true")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert (detail["type"], detail["param"]) == ("invalid_request", "deterministic")
    assert served.engine.calls == []


def test_samplers_pictale_does_not_run_are_named(serve) -> None:
    response = generate(serve(), top_a=0.2, typical=1, tfs=0.9, dry_multiplier=0.8, rep_pen_range=320)
    assert response.headers["x-pictale-unapplied"] == "top_a, tfs, rep_pen_range"


def test_koboldcpps_bans_reach_the_engine(serve) -> None:
    served = serve()
    generate(served, banned_tokens=["ministrations"], custom_token_bans="5, 9", dry_multiplier=0.8)
    sampling = served.engine.calls[0].sampling
    assert sampling.banned_phrases == ("ministrations",)
    assert sampling.logit_bias == ((5, -100.0), (9, -100.0))
    assert sampling.dry_multiplier == 0.8


def test_the_stream_is_koboldcpps_message_events_without_done(serve) -> None:
    response = generate(serve(), "/api/extra/generate/stream")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = stream_events(response.text)
    assert all(name == "message" for name, _ in events)
    assert "".join(data["token"] for _, data in events) == "Once upon a time."
    assert events[-1][1] == {"token": "", "finish_reason": "stop"}
    assert "[DONE]" not in response.text


def test_images_are_described_first_and_put_in_front_of_the_prompt(serve) -> None:
    served = serve()
    response = generate(served, prompt="<s>[INST]Tell it.[/INST]", images=[BASE64_IMAGE])
    assert response.status_code == 200, response.text
    vision, writer = served.engine.calls
    assert vision.model == "vision" and vision.image.size == (8, 6)
    scene = SCENE_CONTEXT_BRIDGE.format(context="A red circle.")
    assert writer.prompt == f"<s>{scene}\n\n[INST]Tell it.[/INST]"


def test_abort_by_genkey_stops_that_generation(serve) -> None:
    served = serve(FakeEngine(writer=Script(["a ", "b ", "c"], hold_after=1)))
    with served.client.stream("POST", "/api/extra/generate/stream", json={"prompt": "x", "genkey": "KCPP1"}):
        served.engine.wait_for_calls(1)
        assert served.client.post("/api/extra/abort", json={"genkey": "other"}).json() == {"success": "false", "done": "false"}
        assert served.client.post("/api/extra/abort", json={"genkey": "KCPP1"}).json() == {"success": "true", "done": "true"}
        assert served.engine.wait_for_finish(0) == "cancelled"


def test_abort_without_a_body_stops_the_callers_compatibility_generations(serve) -> None:
    """SillyTavern's KoboldCpp text completion runs on /v1/completions and aborts with no body."""
    served = serve(FakeEngine(writer=Script(["a ", "b ", "c"], hold_after=1)))
    with served.client.stream("POST", "/v1/completions", json={"prompt": "x", "stream": True}):
        served.engine.wait_for_calls(1)
        response = served.client.post("/api/extra/abort", headers={"content-type": "application/json"})
        assert response.json() == {"success": "true", "done": "true"}
        assert served.engine.wait_for_finish(0) == "cancelled"


def test_abort_leaves_the_contracts_runs_alone(serve) -> None:
    served = serve(FakeEngine(writer=Script(["a ", "b ", "c"], hold_after=1)))
    with served.client.stream("POST", "/v1/narrate", json={"instruction": "x", "stream": True}) as response:
        served.engine.wait_for_calls(1)
        assert served.client.post("/api/extra/abort").json()["success"] == "false"
        served.engine.release.set()
        response.read()
    assert served.engine.wait_for_finish(0) == "stop"


def test_tokencount_uses_the_writers_tokenizer(serve) -> None:
    served = serve()
    assert served.client.post("/api/extra/tokencount", json={"prompt": "[INST]ab"}).json() == {
        "value": 3, "ids": [3, 1097, 1098]
    }
    plain = served.client.post("/api/extra/tokencount", json={"prompt": "[INST]", "special": False}).json()
    assert plain["value"] == 6


def test_the_info_routes_answer_as_koboldcpp_does(serve) -> None:
    served = serve(api_keys=["k"])
    served.client.headers["authorization"] = "Bearer k"
    get = lambda path: served.client.get(path).json()  # noqa: E731
    assert get("/api/v1/model") == {"result": "koboldcpp/writer"}
    assert get("/api/v1/info/version") == {"result": "1.2.5"}
    version = get("/api/extra/version")
    assert version["result"] == "KoboldCpp" and version["protected"] is True and version["vision"] is True
    assert get("/api/extra/true_max_context_length") == {"value": 2048}
    assert get("/api/v1/config/max_context_length") == {"value": 2048}
    assert get("/api/v1/config/max_length") == {"value": 512}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/model", "GET"), ("/api/extra/abort", "POST"), ("/api/v1/generate", "POST")],
)
def test_keys_are_required_with_koboldcpps_error_body(serve, path, method) -> None:
    served = serve(api_keys=["k"])
    response = served.client.request(method, path, json={"prompt": "x"})
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert detail["type"] == "unauthorized" and detail["msg"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": "REFUSE-ME"}, 403, "content_refused"),
        ({"prompt": "x", "memory": "REFUSE-ME"}, 403, "content_refused"),
        ({"prompt": "x", "temperature": -1}, 400, "invalid_request"),
        ({"prompt": "x", "images": ["!!"]}, 400, "invalid_image"),
        ({"prompt": "x", "images": [BASE64_IMAGE] * 5}, 400, "invalid_request"),
    ],
)
def test_bad_requests_get_koboldcpps_error_body(serve, body, status, code) -> None:
    response = serve().client.post("/api/v1/generate", json=body)
    assert response.status_code == status
    detail = response.json()["detail"]
    assert detail["type"] == code and detail["msg"] and detail["request_id"] == response.headers["x-request-id"]


def test_a_stream_error_is_an_error_event(serve) -> None:
    served = serve(FakeEngine(writer=Script(["a ", "b"], fail_after=1)))
    events = stream_events(generate(served, "/api/extra/generate/stream").text)
    assert events[-1][0] == "error" and events[-1][1]["detail"]["type"] == "internal"
