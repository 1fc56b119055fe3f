"""The OpenAI-compatible routes over the scripted engine: shapes, routing, limits, errors."""

from __future__ import annotations

import http.client
import json
from typing import Any

import httpx
import pytest
from conftest import IMAGE, png_data_url
from fakes import FakeEngine, FakeGate, Script

from pictale_server.runtime.prompts import SCENE_CONTEXT_BRIDGE

SCENE_OPENING = SCENE_CONTEXT_BRIDGE.split("{context}")[0].strip()


def chat(served, **body: Any) -> httpx.Response:
    body.setdefault("messages", [{"role": "user", "content": "Tell me a story."}])
    return served.client.post("/v1/chat/completions", json=body)


def image_turn(text: str, *urls: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url, "detail": "high"}} for url in urls]
    return {"role": "user", "content": parts}


def data_lines(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]


def chunks(response: httpx.Response) -> list[dict[str, Any]]:
    lines = data_lines(response)
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


# --- models -------------------------------------------------------------------------------------


def test_models_lists_the_pipeline_the_writer_and_the_vision_model(serve) -> None:
    body = serve().client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["pictale", "fake/writer", "fake/vision"]
    for model in body["data"]:
        assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]


@pytest.mark.parametrize(
    ("name", "answered_by", "echoed"),
    [
        ("koboldcpp_current", "writer", "pictale"),
        (None, "writer", "pictale"),
        ("fake/writer", "writer", "fake/writer"),
        ("WRITER", "writer", "fake/writer"),
        ("gpt-4o", "writer", "pictale"),
    ],
)
def test_any_model_name_maps_to_a_model(serve, name, answered_by, echoed) -> None:
    served = serve()
    response = chat(served, model=name)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == echoed
    assert [call.model for call in served.engine.calls] == [answered_by]


# --- chat: plain ----------------------------------------------------------------------------------


def test_a_chat_completion_has_openais_shape(serve) -> None:
    served = serve()
    response = chat(served, max_tokens=50)
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Once upon a time."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    run_id = response.headers["x-pictale-run-id"]
    assert run_id.startswith("run_") and body["id"] == "chatcmpl-" + run_id.removeprefix("run_")


def test_the_conversation_reaches_the_writer_as_sent(serve) -> None:
    served = serve()
    messages = [
        {"role": "system", "content": "You narrate."},
        {"role": "user", "content": "Begin."},
        {"role": "assistant", "content": "The tide was out."},
        {"role": "developer", "content": "Keep it short."},
        {"role": "user", "content": [{"type": "text", "text": "Go on."}]},
        {"role": "assistant", "content": "Then"},
    ]
    assert chat(served, messages=messages).status_code == 200
    sent = served.engine.calls[0].messages
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "You narrate."),
        ("user", "Begin."),
        ("assistant", "The tide was out."),
        ("system", "Keep it short."),
        ("user", "Go on."),
        ("assistant", "Then"),  # a prefill the writer continues
    ]


def test_sampling_fields_reach_the_engine_under_pictales_names(serve) -> None:
    served = serve()
    response = chat(
        served, temperature=0.5, top_p=0.9, top_k=-1, min_p=0.1, repetition_penalty=1.1,
        stop="\nUser:", seed=7, max_completion_tokens=33,
    )
    assert response.status_code == 200
    sampling = served.engine.calls[0].sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.min_p) == (0.5, 0.9, 0, 0.1)
    assert sampling.repetition_penalty == 1.1
    assert sampling.stop == ("\nUser:",)
    assert (sampling.seed, sampling.max_tokens, sampling.fit_context) == (7, 33, True)


def test_an_answer_without_max_tokens_may_run_to_the_end_of_the_context(serve) -> None:
    served = serve()
    chat(served)
    sampling = served.engine.calls[0].sampling
    assert sampling.max_tokens == 4096 and sampling.fit_context  # cut to what the context leaves


def test_n_choices_are_separate_answers_with_consecutive_seeds(serve) -> None:
    served = serve()
    body = chat(served, n=3, seed=10).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert [call.sampling.seed for call in served.engine.calls] == [10, 11, 12]
    assert body["usage"]["completion_tokens"] == 9


def test_a_negative_seed_means_a_random_one(serve) -> None:
    served = serve()
    chat(served, seed=-1)
    assert served.engine.calls[0].sampling.seed is None


def test_deterministic_is_pictales_own_field_on_both_routes(serve) -> None:
    served = serve()
    response = chat(served, n=2, seed=4, deterministic=True)
    assert response.status_code == 200, response.text
    assert "x-pictale-unapplied" not in response.headers
    body = {"prompt": "[INST]Go.[/INST]", "deterministic": True}
    assert served.client.post("/v1/completions", json=body).status_code == 200
    chat(served)
    chat(served, deterministic=False)
    chat(served, deterministic=None)  # null is unset, as for every sampler
    calls = served.engine.calls
    assert [c.sampling.seed for c in calls[:2]] == [4, 5]  # the n choices
    assert [c.sampling.deterministic for c in calls] == [True, True, True, False, False, False]


@pytest.mark.parametrize("value", ["yes", 1])
def test_a_deterministic_that_is_not_a_boolean_is_refused_in_openais_shape(serve, value) -> None:
    served = serve()
    response = chat(served, deterministic=value)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
    assert error["param"] == "deterministic"
    assert served.engine.calls == []


def test_samplers_pictale_does_not_run_are_named_in_a_header(serve) -> None:
    served = serve()
    response = chat(served, top_a=0.2, typical_p=1, tfs=0.95, mirostat_mode=2, presence_penalty=0.4)
    assert response.status_code == 200
    assert response.headers["x-pictale-unapplied"] == "top_a, tfs, mirostat_mode"
    assert "x-pictale-unapplied" not in chat(served, top_a=0).headers


def test_the_creative_samplers_reach_the_engine(serve) -> None:
    served = serve()
    response = chat(
        served, presence_penalty=0.4, frequency_penalty=-0.5, logit_bias={"42": -100, "7": 3.5},
        dry_multiplier=0.8, dry_base=1.5, dry_allowed_length=3, dry_penalty_last_n=256,
        dry_sequence_breakers='["\\n", ":"]', xtc_threshold=0.15, xtc_probability=0.5,
        banned_strings=["shivers down", "barely above a whisper"],
    )
    assert response.status_code == 200, response.text
    assert "x-pictale-unapplied" not in response.headers
    sampling = served.engine.calls[0].sampling
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.4, -0.5)
    assert sampling.logit_bias == ((42, -100.0), (7, 3.5))
    assert (sampling.dry_multiplier, sampling.dry_base, sampling.dry_allowed_length) == (0.8, 1.5, 3)
    assert sampling.dry_penalty_last_n == 256 and sampling.dry_sequence_breakers == ("\n", ":")
    assert (sampling.xtc_threshold, sampling.xtc_probability) == (0.15, 0.5)
    assert sampling.banned_phrases == ("shivers down", "barely above a whisper")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("banned_strings", ["x"] * 257),
        ("banned_strings", [""]),
        ("banned_strings", ["   "]),
        ("banned_strings", ["x" * 201]),
        ("dry_sequence_breakers", [1, 2]),
        ("dry_sequence_breakers", "not json ["),
        ("logit_bias", {"abc": 1}),
        ("logit_bias", {"5": 101}),
        ("dry_multiplier", -1),
        ("xtc_probability", 1.5),
        ("custom_token_bans", "9" * 5000),
        ("custom_token_bans", "12,abc"),
    ],
)
def test_bad_sampler_values_are_refused_naming_the_field(serve, field, value) -> None:
    response = chat(serve(), **{field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(field)


def test_unknown_fields_are_ignored(serve) -> None:
    response = chat(serve(), tool_choice="none", user_name="Ann", frobnicate={"x": 1})
    assert response.status_code == 200


# --- chat: streamed -------------------------------------------------------------------------------


def test_a_stream_has_openais_chunks_usage_and_done(serve) -> None:
    served = serve()
    response = chat(served, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    parts = chunks(response)
    assert all(p["object"] == "chat.completion.chunk" and p["id"] == parts[0]["id"] for p in parts)
    assert all("usage" in p for p in parts)
    choices = [p["choices"][0] for p in parts[:-1]]
    assert choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["delta"].get("content", "") for c in choices) == "Once upon a time."
    assert [c["finish_reason"] for c in choices] == [None, None, None, None, "stop"]
    assert parts[-1]["choices"] == [] and parts[-1]["usage"]["total_tokens"] == 15


def test_a_stream_without_include_usage_has_no_usage_field(serve) -> None:
    parts = chunks(chat(serve(), stream=True))
    assert all("usage" not in p for p in parts)


def test_n_streams_each_choice_under_its_index(serve) -> None:
    parts = chunks(chat(serve(), stream=True, n=2))
    for index in (0, 1):
        mine = [p["choices"][0] for p in parts if p["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert "".join(c["delta"].get("content", "") for c in mine) == "Once upon a time."
        assert mine[-1]["finish_reason"] == "stop"


def test_a_stream_error_is_an_openai_error_chunk_then_done(serve) -> None:
    served = serve(FakeEngine(writer=Script(["Once ", "upon"], fail_after=1)))
    lines = data_lines(chat(served, stream=True))
    assert lines[-1] == "[DONE]"
    error = json.loads(lines[-2])["error"]
    assert error["code"] == "internal" and error["type"] == "server_error" and error["message"]


def test_closing_the_stream_cancels_the_generation(serve) -> None:
    served = serve(FakeEngine(writer=Script(["Once ", "upon ", "a time."], hold_after=1)))
    body = {"messages": [{"role": "user", "content": "Go."}], "stream": True}
    with served.client.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if '"content":"Once "' in line:
                break
    assert served.engine.wait_for_finish(0) == "cancelled"


# --- images ---------------------------------------------------------------------------------------


def test_pictures_for_the_writer_are_described_first_and_become_scene_context(serve) -> None:
    served = serve()
    second = png_data_url((10, 10), (20, 200, 20))
    response = chat(served, messages=[image_turn("Write about these.", IMAGE, second)])
    assert response.status_code == 200, response.text
    calls = served.engine.calls
    assert [c.model for c in calls] == ["vision", "vision", "writer"]
    assert calls[0].image.size == (8, 6) and calls[1].image.size == (10, 10)
    scene = calls[2].messages[-1]
    assert scene["role"] == "system" and scene["content"].startswith(SCENE_OPENING)
    assert "Picture 1:\nA red circle." in scene["content"] and "Picture 2:" in scene["content"]
    assert calls[2].messages[0] == {"role": "user", "content": "Write about these."}
    assert len(served.gate.image_threads) == 2  # each picture through the image gate
    assert response.json()["usage"]["completion_tokens"] == 2 + 2 + 3


def test_a_streamed_pipeline_reports_its_pictures_as_comments_and_streams_only_the_story(serve) -> None:
    served = serve()
    response = chat(served, model="pictale", stream=True, messages=[image_turn("A tale.", IMAGE)])
    assert ": describing picture 1" in response.text
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in chunks(response))
    assert text == "Once upon a time."


def test_the_vision_model_answers_about_its_one_image(serve) -> None:
    served = serve()
    response = chat(served, model="fake/vision", messages=[image_turn("What is here?", IMAGE)])
    assert response.json()["choices"][0]["message"]["content"] == "A red circle."
    (call,) = served.engine.calls
    assert call.model == "vision" and call.messages == [{"role": "user", "content": "What is here?"}]
    assert len(served.gate.image_threads) == 1  # a custom prompt: the image gate runs first


@pytest.mark.parametrize("name", ["koboldcpp_current", None, "gpt-4o"])
def test_a_question_about_one_picture_under_an_unknown_name_goes_to_the_vision_model(serve, name) -> None:
    """What captioning tools send: one user turn, one image, a model name pictale does not know."""
    served = serve()
    messages = [{"role": "system", "content": "Be brief."}, image_turn("What’s in this image?", IMAGE)]
    body = chat(served, model=name, messages=messages).json()
    assert body["model"] == "fake/vision" and [c.model for c in served.engine.calls] == ["vision"]


def test_pictale_by_name_describes_even_one_picture_for_the_writer(serve) -> None:
    served = serve()
    chat(served, model="pictale", messages=[image_turn("A tale.", IMAGE)])
    assert [c.model for c in served.engine.calls] == ["vision", "writer"]


@pytest.mark.parametrize("count", [0, 2])
def test_the_vision_model_refuses_other_than_one_image(serve, count) -> None:
    response = chat(serve(), model="fake/vision", messages=[image_turn("What?", *[IMAGE] * count)])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_more_than_four_pictures_are_refused_naming_the_fifth(serve) -> None:
    response = chat(serve(), messages=[image_turn("Too many.", *[IMAGE] * 5)])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.0.content.5.image_url"


def test_a_broken_image_names_its_part(serve) -> None:
    response = chat(serve(), messages=[image_turn("x", "data:image/png;base64,!!not-base64")])
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "invalid_image"
    assert error["param"] == "messages.0.content.1.image_url"


def test_only_the_last_user_turns_pictures_are_described(serve) -> None:
    served = serve()
    messages = [image_turn("Earlier.", IMAGE), {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "Now?"}]
    assert chat(served, messages=messages).status_code == 200
    assert [c.model for c in served.engine.calls] == ["writer"]
    assert served.engine.calls[0].messages[0] == {"role": "user", "content": "Earlier."}


# --- safety and errors ----------------------------------------------------------------------------


def test_refused_text_in_any_turn_is_refused_in_openais_shape(serve) -> None:
    served = serve()
    messages = [{"role": "system", "content": "REFUSE-ME"}, {"role": "user", "content": "Hi"}]
    response = chat(served, messages=messages)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "content_refused" and error["type"] == "permission_error"
    assert error["request_id"] == response.headers["x-request-id"]
    assert served.engine.calls == []


def test_a_refused_picture_stops_the_pipeline_before_the_writer(serve) -> None:
    served = serve(gate=FakeGate(refuse_images=True))
    response = chat(served, model="pictale", messages=[image_turn("A tale.", IMAGE)])
    assert response.status_code == 403 and response.json()["error"]["code"] == "content_refused"
    assert [c.model for c in served.engine.calls] == ["vision"]


def test_a_refused_picture_in_a_stream_is_an_error_chunk(serve) -> None:
    served = serve(gate=FakeGate(refuse_images=True))
    lines = data_lines(chat(served, model="pictale", stream=True, messages=[image_turn("A tale.", IMAGE)]))
    assert json.loads(lines[-2])["error"]["code"] == "content_refused" and lines[-1] == "[DONE]"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"n": 9}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages.0.content"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"stop": ["x"] * 33}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_fields_get_openais_error_body_naming_them(serve, body, param) -> None:
    response = chat(serve(), **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
    assert error["param"].startswith(param), error


def test_keys_are_required_and_an_empty_bearer_passes_when_none_are_set(serve) -> None:
    guarded = serve(api_keys=["k1"])
    response = guarded.client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
    assert guarded.client.get("/v1/models").status_code == 401
    # httpx refuses to send a header value ending in a space; http.client sends it as given.
    open_server = serve()
    host, port = open_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"messages": [{"role": "user", "content": "x"}]})
    connection.request(
        "POST", "/v1/chat/completions", body,
        headers={"Authorization": "Bearer ", "Content-Type": "application/json"},
    )
    assert connection.getresponse().status == 200
    connection.close()


def test_a_full_queue_is_a_429_in_openais_shape(serve) -> None:
    served = serve(FakeEngine(writer=Script(["a", "b"], hold_after=1)), queue_depth=1, writer_streams=1)
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    with served.client.stream("POST", "/v1/chat/completions", json=body):
        served.engine.wait_for_calls(1)
        with served.client.stream("POST", "/v1/chat/completions", json=body) as queued:
            third = chat(served)
            assert third.status_code == 429
            assert third.json()["error"]["type"] == "rate_limit_error"
            assert "retry-after" in third.headers
            queued.close()
        served.engine.release.set()


def test_a_body_over_the_limit_is_a_413_in_openais_shape(serve) -> None:
    served = serve(max_body_bytes=1000)
    response = chat(served, messages=[{"role": "user", "content": "x" * 2000}])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_while_loading_a_plain_request_is_a_503_and_a_stream_waits(serve) -> None:
    import threading

    gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=gate))
    response = chat(served)
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    with served.client.stream("POST", "/v1/chat/completions", json=body) as stream:
        gate.set()
        text = stream.read().decode()
    assert ": the models are loading" in text and "Once " in text and text.endswith("data: [DONE]\n\n")


# --- completions ----------------------------------------------------------------------------------


def test_a_text_completion_continues_the_prompt_as_written(serve) -> None:
    served = serve()
    response = served.client.post("/v1/completions", json={"prompt": "[INST]Hi[/INST]", "max_tokens": 20})
    body = response.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"index": 0, "text": "Once upon a time.", "logprobs": None, "finish_reason": "stop"}]
    assert served.engine.calls[0].prompt == "[INST]Hi[/INST]"


def test_a_text_completion_defaults_to_openais_16_tokens(serve) -> None:
    served = serve()
    served.client.post("/v1/completions", json={"prompt": "Once"})
    assert served.engine.calls[0].sampling.max_tokens == 16


def test_a_streamed_text_completion_has_text_chunks(serve) -> None:
    served = serve()
    response = served.client.post("/v1/completions", json={"prompt": "Once", "stream": True})
    parts = chunks(response)
    assert all(p["object"] == "text_completion" for p in parts)
    assert "".join(p["choices"][0]["text"] for p in parts) == "Once upon a time."
    assert parts[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": "a", "echo": True}, "echo"),
        ({"prompt": "a", "logprobs": 3}, "logprobs"),
        ({"prompt": "a", "suffix": "z"}, "suffix"),
        ({"prompt": "a", "model": "fake/vision"}, "model"),
        ({}, "prompt"),
    ],
)
def test_text_completion_refuses_what_it_cannot_do(serve, body, param) -> None:
    response = serve().client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_refused_prompt_is_refused(serve) -> None:
    response = serve().client.post("/v1/completions", json={"prompt": "REFUSE-ME"})
    assert response.status_code == 403


def test_kobold_spellings_on_the_completions_route_are_applied(serve) -> None:
    """SillyTavern's KoboldCpp text completion posts KoboldCpp's field names to /v1/completions."""
    served = serve()
    served.client.post(
        "/v1/completions",
        json={"prompt": "x", "max_new_tokens": 40, "rep_pen": 1.2, "repetition_penalty": 1.1,
              "stopping_strings": ["\nUser:"], "stop": ["\nUser:", "###"], "sampler_seed": 3},
    )
    sampling = served.engine.calls[0].sampling
    assert sampling.max_tokens == 40 and sampling.repetition_penalty == 1.2
    assert sampling.stop == ("\nUser:", "###") and sampling.seed == 3


def test_a_description_that_trips_the_text_gate_never_reaches_the_writer(serve) -> None:
    served = serve(FakeEngine(vision=Script(["REFUSE-ME"])))
    response = chat(served, model="pictale", messages=[image_turn("A tale.", IMAGE)])
    assert response.status_code == 403 and response.json()["error"]["code"] == "content_refused"
    assert [c.model for c in served.engine.calls] == ["vision"]
    assert served.gate.texts[-1] == {"image.0.description": "REFUSE-ME"}
    assert not any(served.gate.text_on_loop)  # every text check ran off the event loop
