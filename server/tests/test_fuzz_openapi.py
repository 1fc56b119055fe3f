"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis).

Schemathesis generates requests for every route from `/openapi.json`, both schema-valid ones
and ones that break the schema on purpose, and sends them to the real app under uvicorn. Only
the models are scripted (`FakeEngine`, so thousands of requests take seconds); validation, the
text gate, the image checks, the queue and error shaping are the real code. Every answer must
be below 500, carry `x-request-id`, and, when it is an error, be in the contract's shape with
a known code whose status it has.

Image URLs go through the real address policy with a resolver that resolves nothing, and an
address the policy allows is answered `image_fetch_failed` instead of fetched: the fuzz never
leaves the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from conftest import live_server, make_settings
from fakes import FakeEngine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pictale_server.app import create_app
from pictale_server.errors import ERROR_CODES, ApiError
from pictale_server.images import ImagePolicy, load_image
from pictale_server.images.fetch import check_destination
from pictale_server.images.spec import RemoteImage, parse_image_spec

CASES = 2400  # generated requests in all, across every route, valid and invalid
MIN_CASES = 2000


async def _resolve_nothing(host: str, port: int) -> list:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _offline_image_loader(policy: ImagePolicy):
    """The real loader for inline images; URLs get the real address checks but no fetch."""

    async def load(spec: Any) -> Any:
        source = parse_image_spec(spec, policy, "image")
        if not isinstance(source, RemoteImage):
            return await load_image(spec, policy)
        try:
            url = httpx.URL(source.url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise ApiError(
                "url_not_allowed", "The image URL is not valid.", param="image"
            ) from None
        await check_destination(url, policy, _resolve_nothing, "image")
        raise ApiError("image_fetch_failed", "Fetching is off while fuzzing.", param="image")

    return load


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    config = make_settings()
    app = create_app(
        FakeEngine(), config, image_loader=_offline_image_loader(ImagePolicy.from_settings(config))
    )
    with live_server(app) as url:
        yield url


def _header(response: schemathesis.Response, name: str) -> str | None:
    values = response.headers.get(name)  # lower-case names, list values
    return values[0] if values else None


def _error(body: Any) -> dict[str, Any]:
    """The error in any dialect's body, as {code, message, request_id} (api/error_bodies.py)."""
    if "detail" in body:  # KoboldCpp's routes
        detail = body["detail"]
        return {"code": detail["type"], "message": detail["msg"], "request_id": detail.get("request_id"), **detail}
    return body["error"]  # the contract's, and OpenAI's (whose `code` is the contract's)


def contract_violations(response: schemathesis.Response) -> list[str]:
    """What is wrong with one answer, by the contract's rules (docs/protocol.md, Errors)."""
    problems = []
    status = response.status_code
    request_id = _header(response, "x-request-id")
    if status >= 500:
        problems.append(f"server error {status}")
    if not request_id:
        problems.append("no x-request-id")
    if status < 400:
        return problems
    try:
        error = _error(response.json())
        code = error["code"]
    except (ValueError, KeyError, TypeError):
        return [*problems, f"error body not in the contract's shape: {response.text[:200]!r}"]
    if code not in ERROR_CODES:
        problems.append(f"unknown error code {code!r}")
    elif status != ERROR_CODES[code][0] and not (status == 405 and code == "not_found"):
        problems.append(f"status {status} for code {code}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append(f"{code} without a message")
    if error.get("request_id") != request_id:
        problems.append(f"{code}: request_id differs from x-request-id")
    waits = code in ("queue_full", "rate_limited", "not_ready")
    if waits and error.get("state") != "failed" and not _header(response, "retry-after"):
        problems.append(f"{code} without Retry-After")
    return problems


def test_generated_requests_never_break_the_contract(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    strategy = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    session = requests.Session()
    executed: list[str] = []

    # derandomize: the same cases on every run, so CI is stable; database=None: no files.
    @settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=10)
        executed.append(f"{case.method} {case.path}")
        problems = contract_violations(response)
        try:
            # A schema-valid image string may still be refused (400), so no positive check.
            case.validate_response(response, excluded_checks=[positive_data_acceptance])
        except FailureGroup as group:
            problems.extend(
                f"{type(failure).__name__}: {failure.title}" for failure in group.exceptions
            )
        assert not problems, (case.as_curl_command(), problems)

    check()
    assert len(executed) >= MIN_CASES
    assert set(executed) == {
        "GET /health",
        "POST /v1/describe",
        "POST /v1/narrate",
        "POST /v1/pipeline",
        "POST /v1/runs/{run_id}/cancel",
        "GET /v1/runs/{run_id}",
        "GET /v1/runs/{run_id}/events",
        "GET /v1/models",
        "POST /v1/chat/completions",
        "POST /v1/completions",
        "POST /api/v1/generate",
        "POST /api/extra/generate/stream",
        "POST /api/extra/abort",
        "POST /api/extra/tokencount",
        "GET /api/v1/model",
        "GET /api/v1/info/version",
        "GET /api/extra/version",
        "GET /api/extra/true_max_context_length",
        "GET /api/v1/config/max_context_length",
        "GET /api/v1/config/max_length",
    }
