"""The shared contract fixtures (tests/contract/) against the server's models, app and encoder.

The vitest suite loads the same files, so the two halves of pictale cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import live_server, make_settings
from fakes import FakeEngine
from pictale_server.app import create_app
from pictale_server.errors import ERROR_CODES, ApiError
from pictale_server.api.schemas import ErrorBody, PipelineResult, StageRunResult
from pictale_server.api.sse import PING, EventEncoder

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
    assert (retry_after is not None) == (
        fixture["code"] in ("queue_full", "rate_limited", "not_ready")
    )
    error = ApiError(
        fixture["code"],
        fixture["message"],
        param=fixture.get("param"),
        details=fixture.get("details"),
        retry_after=retry_after,
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
    encoder = EventEncoder()
    encoded = b"".join(
        PING if item is None else encoder.encode(*item)
        for item in parse_sse_file(raw.decode("utf-8"))
    )
    assert encoded == raw


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
            assert set(data) <= {"code", "message", "retryable", "request_id"}
            assert data["retryable"] == ERROR_CODES[data["code"]][1]


def test_health_has_every_field_of_the_recorded_bodies(contract_client):
    ours = contract_client.get("/health").json()
    for body in load("health.json")["valid"]:
        assert set(body) <= set(ours)
        assert set(body["models"]) == set(ours["models"])
