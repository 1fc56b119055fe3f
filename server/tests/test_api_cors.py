"""CORS: pages of allowed origins may call the API; preflights never meet auth."""

from __future__ import annotations

from fakes import FakeEngine

PAGE = "https://app.example"
PREFLIGHT = {
    "origin": PAGE,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, idempotency-key",
}


def test_an_allowed_origin_gets_a_204_preflight_without_a_key(serve) -> None:
    served = serve(FakeEngine(profile="reference"), api_keys=["k"], cors_origins=[PAGE])
    response = served.client.options("/v1/narrate", headers=PREFLIGHT)
    assert response.status_code == 204 and response.content == b""
    assert response.headers["access-control-allow-origin"] == PAGE
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].lower().split(",")}
    assert {"authorization", "x-api-key", "content-type", "idempotency-key", "last-event-id"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_answers_to_an_allowed_origin_expose_what_clients_read(serve) -> None:
    served = serve(FakeEngine(profile="reference"), api_keys=["k"], cors_origins=[PAGE])
    refused = served.client.post("/v1/narrate", json={"instruction": "A"}, headers={"origin": PAGE})
    assert refused.status_code == 401  # the key is still required
    assert refused.headers["access-control-allow-origin"] == PAGE
    exposed = refused.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed and "x-pictale-run-id" in exposed


def test_another_origin_is_refused_and_gets_no_cors_headers(serve) -> None:
    served = serve(FakeEngine(profile="reference"), cors_origins=[PAGE])
    response = served.client.options("/v1/narrate", headers={**PREFLIGHT, "origin": "https://evil.example"})
    assert response.status_code == 400
    answer = served.client.post("/v1/narrate", json={"instruction": "A"}, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_a_deployment_allows_no_origin_unless_told(serve) -> None:
    served = serve(FakeEngine(profile="reference"))
    response = served.client.options("/v1/narrate", headers=PREFLIGHT)
    assert response.status_code == 405 and "access-control-allow-origin" not in response.headers


def test_the_dev_profile_allows_any_origin(serve) -> None:
    served = serve(FakeEngine(profile="dev"))
    response = served.client.options("/v1/narrate", headers={**PREFLIGHT, "origin": "http://localhost:5173"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
