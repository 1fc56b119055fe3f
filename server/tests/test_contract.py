"""The shared contract fixtures (tests/contract/) against the server's models, app and encoder.

The vitest suite loads the same files, so the two halves of pictale cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import fields as dataclass_fields
from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import live_server, make_settings, wait_for_status
from fakes import FakeEngine
from pictale_server.app import create_app
from pictale_server.errors import ERROR_CODES, ApiError
from pictale_server.api.schemas import ErrorBody, Health, PipelineResult, StageRunResult
from pictale_server.engine.base import Sampling
from pictale_server.engine.errors import ModelLoadFailed
from pictale_server.api.delivery import ContractRenderer
from pictale_server.api.sse import PING

CONTRACT = Path(__file__).resolve().parents[2] / "tests" / "contract"


def load(name: str) -> dict:
    return json.loads((CONTRACT / name).read_text(encoding="utf-8"))


REQUESTS = load("requests.json")
ERRORS = load("errors.json")["errors"]
STREAMS = load("streams.json")["streams"]


class TextGateOnly:
    """The real text gate; the image assessment is the safety module's own tests' business."""

    def __init__(self) -> None:
        from pictale_server.safety.gate import SafetyGate

        self._gate = SafetyGate.from_settings(make_settings())

    def check_text(self, fields: dict[str, str], *, request_id: str | None = None) -> None:
        self._gate.check_text(fields, request_id=request_id)

    def check_image(self, image: object, engine: object, *, request_id: str | None = None) -> None:
        return None


@pytest.fixture(scope="module")
def failed_client():
    """A server whose engine failed to load as the recorded failed health body says."""
    import httpx

    recorded = next(body for body in load("health.json")["valid"] if body["status"] == "failed")
    engine = FakeEngine(
        loaded=False,
        load_error=ModelLoadFailed(recorded["failure"]["reason"], recorded["failure"]["message"]),
        profile=recorded["profile"],
        vision_id=recorded["models"]["vision"]["id"],
        writer_id=recorded["models"]["writer"]["id"],
    )
    app = create_app(engine, make_settings(), gate=TextGateOnly())
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_for_status(client, "failed")
        yield client


@pytest.fixture(scope="module")
def contract_client():
    import httpx

    app = create_app(FakeEngine(), make_settings(), gate=TextGateOnly())  # real image loader
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("case", REQUESTS["valid"], ids=lambda case: case["name"])
def test_valid_requests_are_accepted(contract_client, case):
    response = contract_client.post(case["route"], json=case["body"])
    assert response.status_code == 200, response.text
    model = PipelineResult if case["route"] == "/v1/pipeline" else StageRunResult
    model.model_validate(response.json())


def _as_sampled(name: str, value: object) -> object:
    """A request's sampling value as the engine's Sampling holds it."""
    if name == "logit_bias":
        biases = value.items()  # type: ignore[union-attr]
        return tuple((int(token), float(bias)) for token, bias in biases)
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("case", REQUESTS["valid"], ids=lambda case: case["name"])
def test_valid_requests_sampling_fields_reach_the_engine_as_sent(serve, case):
    served = serve(gate=TextGateOnly())
    assert served.client.post(case["route"], json=case["body"]).status_code == 200
    body = case["body"]
    pipeline = case["route"] == "/v1/pipeline"
    stages = [body.get("describe", {}), body.get("narrate", {})] if pipeline else [body]
    sampling_fields = {f.name for f in dataclass_fields(Sampling)}
    for call, stage in zip(served.engine.calls, stages, strict=True):
        for name in sampling_fields & stage.keys():
            assert getattr(call.sampling, name) == _as_sampled(name, stage[name]), name


@pytest.mark.parametrize("case", REQUESTS["invalid"], ids=lambda case: case["name"])
def test_invalid_requests_get_the_recorded_error(contract_client, case):
    response = contract_client.post(case["route"], json=case["body"])
    assert response.status_code == case["status"], response.text
    error = response.json()["error"]
    assert error["code"] == case["code"]
    if case.get("param") is not None:
        assert error["param"] == case["param"]
    ErrorBody.model_validate(response.json())


@pytest.mark.parametrize(
    "case", ERRORS, ids=lambda case: f"{case['status']}-{case['body']['error']['code']}"
)
def test_error_fixtures_have_the_shape_the_server_produces(case):
    fixture = case["body"]["error"]
    ErrorBody.model_validate(case["body"])
    status, retryable = ERROR_CODES[fixture["code"]]
    assert case["status"] == status or (
        fixture["code"] == "invalid_request" and case["status"] == 422
    )
    retry_after = int(case["headers"]["retry-after"]) if "retry-after" in case["headers"] else None
    # A failed model load is not retryable: its not_ready has no Retry-After.
    assert (retry_after is not None) == (
        fixture["code"] in ("queue_full", "rate_limited", "not_ready")
        and fixture.get("state") != "failed"
    )
    error = ApiError(
        fixture["code"],
        fixture["message"],
        param=fixture.get("param"),
        details=fixture.get("details"),
        retry_after=retry_after,
        state=fixture.get("state"),
        reason=fixture.get("reason"),
    )
    assert error.body(fixture["request_id"]) == case["body"]
    headers = {k.lower(): v for k, v in error.response_headers().items()}
    assert headers.get("retry-after") == case["headers"].get("retry-after")


def parse_sse_file(raw: str) -> list[tuple[str, dict] | None]:
    """Blocks of the file: (event name, data) or None for a ping comment."""
    items: list[tuple[str, dict] | None] = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        if block == ": ping":
            items.append(None)
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        items.append((fields["event"], json.loads(fields["data"])))
    return items


@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream["name"])
def test_the_encoder_writes_the_recorded_streams_byte_for_byte(stream):
    raw = (CONTRACT / stream["file"]).read_bytes()
    renderer = ContractRenderer()
    parts, seq = [], 0
    for item in parse_sse_file(raw.decode("utf-8")):
        if item is None:
            parts.append(PING)
            continue
        seq += 1  # the event's number in the run
        parts.append(renderer.event(seq, *item))
    assert b"".join(parts) == raw


@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream["name"])
def test_recorded_results_fit_the_result_models(stream):
    items = [
        item for item in parse_sse_file((CONTRACT / stream["file"]).read_text("utf-8")) if item
    ]
    model = PipelineResult if stream["route"] == "/v1/pipeline" else StageRunResult
    for name, data in items:
        if name == "done":
            assert model.model_validate(data).model_dump() == data == stream["result"]
        if name == "stage-end":
            StageRunResult.model_validate(
                {"id": "run_0", **{k: v for k, v in data.items() if k != "stage"}}
            )
        if name == "error":
            assert set(data) <= {"code", "message", "retryable", "request_id", "state", "reason"}
            error = ApiError(
                data["code"], data["message"], state=data.get("state"), reason=data.get("reason")
            )
            assert data["retryable"] == error.retryable
            assert error.event_data(data.get("request_id", "r")) == {"request_id": "r", **data}


def test_health_has_every_field_of_the_recorded_bodies(contract_client, failed_client):
    served = {
        "ok": contract_client.get("/health").json(),
        "failed": failed_client.get("/health").json(),
    }
    for body in load("health.json")["valid"]:
        ours = served.get(body["status"], served["ok"])
        assert set(body) <= set(ours), body["status"]
        assert set(body["models"]) == set(ours["models"])
        if body["status"] == "ok":
            for name, model in body["models"].items():
                assert set(model) <= set(ours["models"][name]), name
        if body["status"] == "failed":  # built from the same engine failure: equal, not alike
            assert {key: ours[key] for key in body} == body
    assert "failure" not in served["ok"]


def test_recorded_health_bodies_fit_the_health_model(contract_client):
    extras = contract_client.get("/health").json()  # the fields the fixtures may leave out
    for body in load("health.json")["valid"]:
        Health.model_validate({**extras, **body})
    for body in load("health.json")["invalid"]:
        with pytest.raises(ValidationError):
            Health.model_validate({**extras, **body})


def test_a_failed_load_answers_the_recorded_not_ready_body(failed_client):
    """The server builds the recorded failed-load body from what the engine raised."""
    recorded = next(
        case
        for case in ERRORS
        if case["body"]["error"]["code"] == "not_ready"
        and case["body"]["error"].get("state") == "failed"
    )
    request_id = recorded["body"]["error"]["request_id"]
    response = failed_client.post(
        "/v1/narrate", json={"instruction": "Go."}, headers={"x-request-id": request_id}
    )
    assert response.status_code == recorded["status"]
    assert response.json() == recorded["body"]
    assert "retry-after" not in response.headers


def test_the_runs_fixtures_fit_the_servers_models():
    from pictale_server.api.schemas import RunStatus, StartedRun

    runs = load("runs.json")
    StartedRun.model_validate(runs["started"])
    for status in runs["status"]:
        assert RunStatus.model_validate(status).model_dump(exclude_none=True) == status
