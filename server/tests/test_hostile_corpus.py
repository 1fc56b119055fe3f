"""A corpus of hostile requests against the real server on the dev profile.

Real engine (tiny random-weight models), real image loader, real safety gate, real uvicorn.
Each request in `CORPUS` must get the contract's answer (docs/protocol.md, "Errors"): its
status, its code, the error body's shape, the request id. Afterwards the server must be healthy
and still serve describe, narrate and pipeline streams to the end.

Two servers share one engine: `open` has the default settings (no keys, no URL allowlist), so
every loopback spelling is refused; `guarded` has an API key and allowlists 127.0.0.1, where a
local image server answers, so redirects can start at an allowed host and try to lead
somewhere the policy refuses (metadata, private, loopback by another name, other schemes).
Nothing leaves the machine: refused addresses are refused before any connection, and the only
names looked up end in `.invalid`, which fail without a query.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import hostile_samples as samples
import httpx
import pytest
from conftest import live_server, read_events
from engine_fixtures import (  # noqa: F401 - pytest fixtures
    dev_cache_dir,
    dev_engine,
    dev_model_paths,
    dev_settings,
    scene_image,
)
from hostile_corpus import CORPUS, KEY, LOCAL, PLAIN_JSON, Bad
from local_image_server import start_image_server

from pictale_server.app import create_app
from pictale_server.errors import ERROR_CODES, ApiError
from pictale_server.safety.gate import SafetyGate


def test_the_corpus_is_large_and_its_names_unique() -> None:
    assert len(CORPUS) >= 40
    assert len({case.name for case in CORPUS}) == len(CORPUS)
    assert {case.server for case in CORPUS} == {"open", "guarded"}


# --- running it -------------------------------------------------------------------------------


@dataclass
class Servers:
    clients: dict[str, httpx.Client]
    local_images: str
    apps: dict[str, Any]


@pytest.fixture(scope="module")
def servers(dev_cache_dir, dev_engine) -> Iterator[Servers]:  # noqa: F811
    settings = {
        "open": dev_settings(dev_cache_dir),
        "guarded": dev_settings(dev_cache_dir, api_keys=[KEY], url_allowlist=["127.0.0.1"]),
    }
    apps = {name: create_app(dev_engine, config) for name, config in settings.items()}
    with ExitStack() as stack:
        images = start_image_server(body_cap_hint=8 * samples.MiB)  # "big" means 32 MiB
        stack.callback(images.close)
        clients = {}
        for name, app in apps.items():
            base_url = stack.enter_context(live_server(app))
            clients[name] = stack.enter_context(httpx.Client(base_url=base_url, timeout=60))
        yield Servers(clients, images.url(""), apps)


def _content(case: Bad, local_images: str) -> bytes | Iterator[bytes] | None:
    body = case.body
    if body is None:
        return None
    if callable(body):
        return body()
    if isinstance(body, bytes):
        return body
    return json.dumps(body).replace(LOCAL, local_images).encode()


def send(servers: Servers, case: Bad) -> httpx.Response:
    headers = {**PLAIN_JSON}
    if case.server == "guarded":
        headers["authorization"] = f"Bearer {KEY}"
    headers.update(case.headers)
    return servers.clients[case.server].request(
        case.method,
        case.path,
        content=_content(case, servers.local_images),
        headers={name: value for name, value in headers.items() if value},  # "" drops one
    )


def error_in_any_dialect(body: Any) -> dict[str, Any]:
    """The error of the contract's, OpenAI's or KoboldCpp's body (api/error_bodies.py)."""
    if "detail" in body:
        detail = body["detail"]
        return {**detail, "code": detail["type"], "message": detail["msg"]}
    return body["error"]


def mismatch(case: Bad, response: httpx.Response) -> str | None:
    """Why `response` is not an answer the contract allows for `case`, or None."""
    request_id = response.headers.get("x-request-id")
    if not request_id:
        return "no x-request-id"
    if response.status_code == 200 and "" in case.codes:
        result = response.json()
        return None if result.get("finish_reason") in ("stop", "length") else f"result {result}"
    try:
        error = error_in_any_dialect(response.json())
        code = error["code"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}, not a contract error body: {response.text[:160]!r}"
    expected_status = case.status or ERROR_CODES.get(code, (None,))[0]
    problems = []
    if code not in case.codes:
        problems.append(f"code {code!r} ({error.get('message')!r}), expected {case.codes}")
    if response.status_code != expected_status:
        problems.append(f"status {response.status_code} for {code}")
    if not response.headers.get("content-type", "").startswith("application/json"):
        problems.append("error not sent as JSON")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append("no message")
    if error.get("request_id") != request_id:
        problems.append("request_id differs from x-request-id")
    if case.param is not None and error.get("param") != case.param:
        problems.append(f"param {error.get('param')!r}, expected {case.param!r}")
    if code == "unauthorized" and response.headers.get("www-authenticate") != "Bearer":
        problems.append("401 without WWW-Authenticate: Bearer")
    if code == "not_found" and response.status_code == 405 and "allow" not in response.headers:
        problems.append("405 without Allow")
    return "; ".join(problems) or None


@pytest.fixture(scope="module")
def corpus_mismatches(servers: Servers) -> dict[str, str]:
    """Runs the whole corpus once; the tests below read its outcome."""
    found: dict[str, str] = {}
    for case in CORPUS:
        try:
            problem = mismatch(case, send(servers, case))
        except httpx.HTTPError as error:
            problem = f"transport error {type(error).__name__}: {error}"
        if problem:
            found[case.name] = problem
    return found


def test_every_hostile_request_gets_its_contract_error(corpus_mismatches: dict[str, str]) -> None:
    assert corpus_mismatches == {}


# --- afterwards -------------------------------------------------------------------------------


def _image_the_gate_allows(engine: Any) -> str:
    """The pipeline checks the image with the dev model, whose verdict on a given picture is
    arbitrary but fixed: pick a synthetic picture it lets through."""
    gate = SafetyGate()
    for size in ((64, 48), (96, 64), (120, 90), (160, 120), (200, 150), (320, 240)):
        picture = scene_image(size)
        try:
            gate.check_image(picture, engine)
        except ApiError:
            continue
        return samples.data_url(samples.encode(picture, "PNG"))
    raise AssertionError("the dev model refuses every candidate picture")


def streamed(client: httpx.Client, path: str, body: dict[str, Any]) -> list:
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        return read_events(response)


def test_the_server_is_healthy_and_serving_after_the_corpus(
    corpus_mismatches: dict[str, str],
    servers: Servers,
    dev_engine,  # noqa: F811
) -> None:
    client = servers.clients["open"]
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["queue"] == {"vision": 0, "writer": 0}
    for app in servers.apps.values():
        assert app.state.services.runs.live() == []

    picture = _image_the_gate_allows(dev_engine)
    runs = {
        "describe": streamed(client, "/v1/describe", {"image": picture, "max_tokens": 16}),
        "narrate": streamed(
            client, "/v1/narrate", {"instruction": "A lighthouse.", "max_tokens": 16}
        ),
        "pipeline": streamed(
            client,
            "/v1/pipeline",
            {
                "image": picture,
                "instruction": "A short tale about this place.",
                "describe": {"max_tokens": 16},
                "narrate": {"max_tokens": 16},
            },
        ),
    }
    for route, events in runs.items():
        assert events[-1].name == "done", (route, [event.name for event in events])
    story = runs["pipeline"][-1].data
    assert story["description"]["finish_reason"] in ("stop", "length")
    assert story["story"]["finish_reason"] in ("stop", "length")
