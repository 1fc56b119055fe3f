"""Where the safety gate sits in each route (the gate's own rules are tested with safety/)."""

from __future__ import annotations

import logging

from conftest import IMAGE, read_events
from fakes import FakeGate

MARK = "REFUSE-ME"


def test_narrate_checks_every_text_field_before_queueing(serve):
    served = serve()
    body = {
        "instruction": "Go.",
        "context": "A harbour.",
        "system": "Be vivid.",
        "history": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
    }
    assert served.client.post("/v1/narrate", json=body).status_code == 200
    assert served.gate.texts[0] == {
        "instruction": "Go.",
        "context": "A harbour.",
        "system": "Be vivid.",
        "history.0.content": "Hi.",
        "history.1.content": "Hello.",
    }
    for field in ("instruction", "context", "system"):
        refused = served.client.post("/v1/narrate", json={**body, field: MARK, "stream": True})
        assert refused.status_code == 403, field
        assert refused.json()["error"]["code"] == "content_refused"
    history = [{"role": "assistant", "content": MARK}]
    assert served.client.post("/v1/narrate", json={**body, "history": history}).status_code == 403
    assert len(served.engine.calls) == 1


def test_pipeline_checks_its_text_fields_then_the_description(serve):
    served = serve()
    body = {
        "image": IMAGE,
        "instruction": "Go.",
        "describe": {"prompt": "Look.", "system": "Be exact."},
        "narrate": {"system": "Be vivid.", "history": [{"role": "user", "content": "Hi."}]},
    }
    assert served.client.post("/v1/pipeline", json=body).status_code == 200
    assert served.gate.texts[0] == {
        "instruction": "Go.",
        "describe.prompt": "Look.",
        "describe.system": "Be exact.",
        "narrate.system": "Be vivid.",
        "narrate.history.0.content": "Hi.",
    }
    assert served.gate.texts[1] == {"instruction": "Go.", "context": "A red circle."}
    refused = served.client.post("/v1/pipeline", json={**body, "describe": {"prompt": MARK}})
    assert refused.status_code == 403
    assert len(served.engine.calls) == 2  # only the first pipeline ran


def test_every_text_gate_call_runs_off_the_event_loop(serve):
    """The gate is blocking work (a few hundred ms for a maximal request): on the event loop it
    would stall every other stream. Routes and the pipeline's description check both thread it."""
    served = serve()
    body = {"image": IMAGE, "instruction": "Go."}
    assert served.client.post("/v1/pipeline", json=body).status_code == 200
    with served.client.stream("POST", "/v1/pipeline", json={**body, "stream": True}) as response:
        assert read_events(response)[-1].name == "done"
    assert served.client.post("/v1/narrate", json={"instruction": "Go."}).status_code == 200
    described = served.client.post("/v1/describe", json={"image": IMAGE, "prompt": "Look."})
    assert described.status_code == 200
    # route check + description check, twice; narrate; describe
    assert len(served.gate.texts) == 6
    assert served.gate.texts[1] == {"instruction": "Go.", "context": "A red circle."}
    assert served.gate.text_on_loop == [False] * 6


def test_the_gate_probe_tells_the_event_loop_apart():
    import asyncio

    gate = FakeGate()

    async def on_the_loop() -> None:
        gate.check_text({"instruction": "Go."})
        await asyncio.to_thread(gate.check_text, {"instruction": "Go."})

    asyncio.run(on_the_loop())
    assert gate.text_on_loop == [True, False]


def test_pipeline_refuses_when_the_description_trips_the_text_gate(serve):
    served = serve(gate=FakeGate(refuse_marker="red circle"))
    with served.client.stream(
        "POST", "/v1/pipeline", json={"image": IMAGE, "instruction": "Go.", "stream": True}
    ) as response:
        events = read_events(response)
    assert [e.name for e in events][-2:] == ["stage-end", "error"]
    assert events[-1].data["code"] == "content_refused"
    assert [call.model for call in served.engine.calls] == ["vision"]


def test_describe_checks_prompt_and_system_text(serve):
    served = serve()
    assert (
        served.client.post("/v1/describe", json={"image": IMAGE, "system": MARK}).status_code == 403
    )
    assert (
        served.client.post("/v1/describe", json={"image": IMAGE, "prompt": MARK}).status_code == 403
    )
    assert served.engine.calls == []


def test_describe_checks_the_image_only_for_a_custom_prompt(serve):
    served = serve(gate=FakeGate(refuse_images=True))
    plain = served.client.post("/v1/describe", json={"image": IMAGE, "style": "scene"})
    assert plain.status_code == 200
    assert served.gate.image_threads == []

    custom = served.client.post(
        "/v1/describe", json={"image": IMAGE, "prompt": "Tell a story about it."}
    )
    assert custom.status_code == 403
    assert [name.split("-")[1] for name in served.gate.image_threads] == ["vision"]  # a vision worker
    assert len(served.engine.calls) == 1  # the refused one never generated
    assert served.gate.request_ids[-1] == custom.headers["x-request-id"]  # for the refusal log


def test_pipeline_with_a_custom_describe_prompt_checks_the_image_first(serve):
    served = serve(gate=FakeGate(refuse_images=True))
    body = {
        "image": IMAGE,
        "instruction": "Go.",
        "describe": {"system": "Be exact."},
        "stream": True,
    }
    with served.client.stream("POST", "/v1/pipeline", json=body) as response:
        events = read_events(response)
    assert [e.name for e in events] == ["run", "status", "stage-start", "error"]
    assert served.engine.calls == []


def test_logs_carry_ids_and_codes_but_never_content(serve, caplog):
    caplog.set_level(logging.DEBUG)
    served = serve()
    secret = "the-lighthouse-keeper-secret"
    ok = served.client.post("/v1/narrate", json={"instruction": secret, "context": secret})
    refused = served.client.post("/v1/narrate", json={"instruction": MARK + secret})
    with served.client.stream(
        "POST", "/v1/pipeline", json={"image": IMAGE, "instruction": secret, "stream": True}
    ) as response:
        read_events(response)
    messages = [record.getMessage() for record in caplog.records]
    joined = "\n".join(messages)
    assert secret not in joined and "Once upon" not in joined and "iVBOR" not in joined
    access = [m for m in messages if m.startswith("request_id=")]
    assert any(
        ok.headers["x-request-id"] in m and "status=200" in m and "/v1/narrate" in m for m in access
    )
    assert any(refused.headers["x-request-id"] in m and "code=content_refused" in m for m in access)
