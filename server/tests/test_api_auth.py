"""API keys and the per-caller rate limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import IMAGE

AUTH_CONTRACT = json.loads(
    (Path(__file__).resolve().parents[2] / "tests" / "contract" / "auth.json").read_text()
)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("case", AUTH_CONTRACT["server"], ids=lambda case: case["name"])
def test_the_key_travels_as_the_contract_says(serve, case):
    served = serve(api_keys=["key-one"])
    headers = {name: value.replace("{key}", "key-one") for name, value in case["headers"].items()}
    response = served.client.post("/v1/narrate", json={"instruction": "Go."}, headers=headers)
    assert response.status_code == case["status"], response.text
    if case["status"] == 401:
        assert response.json()["error"]["code"] == "unauthorized"
        if not case["headers"]:
            assert "x-api-key" in response.json()["error"]["message"]  # it says how to send one


def test_a_key_in_x_api_key_is_the_same_caller_as_that_key_as_bearer(serve):
    served = serve(api_keys=["key-one"], rate_limit_per_minute=1)
    first = served.client.post("/v1/narrate", json={"instruction": "Go."}, headers={"x-api-key": "key-one"})
    assert first.status_code == 200
    second = served.client.post("/v1/narrate", json={"instruction": "Go."}, headers=bearer("key-one"))
    assert second.status_code == 429  # one key, one rate limit, whichever header carried it


def test_keys_are_required_on_every_route_but_health(serve):
    served = serve(api_keys=["key-one", "key-two"])
    assert served.client.get("/health").status_code == 200
    requests = [
        ("/v1/narrate", {"instruction": "Go."}),
        ("/v1/describe", {"image": IMAGE}),
        ("/v1/pipeline", {"image": IMAGE, "instruction": "Go."}),
        ("/v1/runs/run_000000000000000000000000/cancel", {}),
    ]
    for path, body in requests:
        for headers in [
            {},
            bearer("wrong"),
            {"authorization": "key-one"},
            {"authorization": "Basic a2V5LW9uZQ=="},
        ]:
            response = served.client.post(path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    assert served.engine.calls == []


def test_each_configured_key_works(serve):
    served = serve(api_keys=["key-one", "key-two"])
    for key in ("key-one", "key-two"):
        response = served.client.post(
            "/v1/narrate", json={"instruction": "Go."}, headers=bearer(key)
        )
        assert response.status_code == 200
    unknown_run = served.client.post(
        "/v1/runs/run_000000000000000000000000/cancel", headers=bearer("key-two")
    )
    assert unknown_run.status_code == 404


def test_no_keys_configured_means_open(serve):
    served = serve(api_keys=[])
    assert served.client.post("/v1/narrate", json={"instruction": "Go."}).status_code == 200


def test_rate_limit_per_key_answers_429_with_retry_after(serve):
    served = serve(api_keys=["key-one", "key-two"], rate_limit_per_minute=2)
    for _ in range(2):
        ok = served.client.post(
            "/v1/narrate", json={"instruction": "Go."}, headers=bearer("key-one")
        )
        assert ok.status_code == 200
    limited = served.client.post(
        "/v1/narrate", json={"instruction": "Go."}, headers=bearer("key-one")
    )
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    other = served.client.post(
        "/v1/narrate", json={"instruction": "Go."}, headers=bearer("key-two")
    )
    assert other.status_code == 200
    # Cancelling is never rate limited: a caller must always be able to stop its own work.
    cancel = served.client.post(
        "/v1/runs/run_000000000000000000000000/cancel", headers=bearer("key-one")
    )
    assert cancel.status_code == 404


def test_the_rate_window_slides():
    from pictale_server.errors import ApiError
    from pictale_server.api.rate_limit import RateLimiter

    now = [100.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.hit("a")
    now[0] += 30
    limiter.hit("a")
    with pytest.raises(ApiError) as refused:
        limiter.hit("a")
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 30  # until the first hit leaves the window
    now[0] += 30
    limiter.hit("a")  # the first hit has left the window


def test_a_body_that_is_not_json_is_not_answered_before_the_key_is_checked(serve):
    served = serve(api_keys=["key-one"], rate_limit_per_minute=1)
    garbage = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    for path in ("/v1/narrate", "/v1/describe", "/v1/pipeline"):
        response = served.client.post(path, **garbage)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
    with_key = {**garbage, "headers": {**garbage["headers"], **bearer("key-one")}}
    first = served.client.post("/v1/narrate", **with_key)
    assert first.status_code == 400
    assert first.json()["error"]["code"] == "invalid_request"
    second = served.client.post("/v1/narrate", **with_key)  # malformed bodies count too
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limited"
