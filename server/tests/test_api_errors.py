"""Request ids, error reshaping, body cap and last-resort 500s: one error shape everywhere."""

from __future__ import annotations

import re

import pytest

from conftest import IMAGE
from pictale_server.errors import ERROR_CODES

GENERATED_ID = re.compile(r"^req_[0-9a-f]{24}$")


def assert_error(response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def test_every_response_carries_a_request_id(serve):
    served = serve()
    for response in [
        served.client.get("/health"),
        served.client.post("/v1/narrate", json={"instruction": "Go."}),
        served.client.post("/v1/narrate", json={}),
        served.client.get("/nowhere"),
    ]:
        assert GENERATED_ID.match(response.headers["x-request-id"])
    with served.client.stream(
        "POST", "/v1/narrate", json={"instruction": "Go.", "stream": True}
    ) as stream:
        assert GENERATED_ID.match(stream.headers["x-request-id"])


def test_a_valid_client_request_id_is_echoed_and_an_invalid_one_replaced(serve):
    served = serve()
    echoed = served.client.get("/health", headers={"x-request-id": "client-42:a.b_c"})
    assert echoed.headers["x-request-id"] == "client-42:a.b_c"
    refused = served.client.post("/v1/narrate", json={}, headers={"x-request-id": "mine-1"})
    assert refused.json()["error"]["request_id"] == "mine-1"
    for bad in ["has space", "x" * 129, "semi;colon"]:
        replaced = served.client.get("/health", headers={"x-request-id": bad})
        assert GENERATED_ID.match(replaced.headers["x-request-id"])


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/narrate", {}, "instruction"),
        ("/v1/narrate", {"instruction": "Hi", "max_tokens": 4097}, "max_tokens"),
        ("/v1/narrate", {"instruction": "Hi", "max_tokens": "5"}, "max_tokens"),
        ("/v1/narrate", {"instruction": "Hi", "top_p": 0}, "top_p"),
        ("/v1/narrate", {"instruction": "Hi", "stop": [""]}, "stop.0"),
        (
            "/v1/narrate",
            {"instruction": "Hi", "history": [{"role": "system", "content": "x"}]},
            "history.0.role",
        ),
        (
            "/v1/narrate",
            {"instruction": "Hi", "history": [{"role": "user", "content": "x" * 40_000}] * 2},
            "history",
        ),
        ("/v1/narrate", {"instruction": "Hi", "stream": "yes"}, "stream"),
        ("/v1/describe", {"image": IMAGE, "max_tokens": 2049}, "max_tokens"),
        ("/v1/describe", {"image": {"href": "x"}}, "image"),
        ("/v1/describe", {"image": IMAGE, "style": "poem"}, "style"),
        (
            "/v1/pipeline",
            {"image": IMAGE, "instruction": "Hi", "narrate": {"max_tokens": 0}},
            "narrate.max_tokens",
        ),
        (
            "/v1/pipeline",
            {"image": IMAGE, "instruction": "Hi", "describe": {"style": 3}},
            "describe.style",
        ),
    ],
)
def test_validation_errors_are_invalid_request_with_a_dotted_param(serve, path, body, param):
    served = serve()
    error = assert_error(served.client.post(path, json=body), 400, "invalid_request", param)
    assert error["details"][0]["param"] == param
    assert all(set(detail) == {"param", "message"} for detail in error["details"])


def test_every_field_error_is_listed(serve):
    served = serve()
    body = {"instruction": "", "temperature": 3, "top_k": -1}
    error = served.client.post("/v1/narrate", json=body).json()["error"]
    assert {detail["param"] for detail in error["details"]} == {
        "instruction",
        "temperature",
        "top_k",
    }


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_are_invalid_request(serve, content):
    served = serve()
    response = served.client.post(
        "/v1/narrate", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "invalid_request")


def test_unknown_routes_and_methods(serve):
    served = serve()
    assert_error(served.client.get("/v1/nothing"), 404, "not_found")
    wrong_method = served.client.get("/v1/narrate")
    assert_error(wrong_method, 405, "not_found")
    assert wrong_method.headers["allow"] == "POST"


def test_bodies_over_the_cap_are_refused_before_parsing(serve):
    served = serve(max_body_bytes=2048)
    big = {"instruction": "x" * 4000}
    assert_error(served.client.post("/v1/narrate", json=big), 413, "request_too_large")

    def chunks():  # no Content-Length: the cap counts the bytes as they come
        yield b'{"instruction": "'
        for _ in range(10):
            yield b"y" * 512
        yield b'"}'

    chunked = served.client.post(
        "/v1/narrate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413, "request_too_large")
    assert served.client.post("/v1/narrate", json={"instruction": "small"}).status_code == 200


def test_unexpected_failures_are_internal_without_details(serve):
    async def broken_loader(spec):
        raise RuntimeError("secret detail /etc/passwd")

    served = serve(image_loader=broken_loader)
    response = served.client.post("/v1/describe", json={"image": IMAGE})
    error = assert_error(response, 500, "internal")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["message"] == "Internal server error."
    assert served.client.post("/v1/narrate", json={"instruction": "Go."}).status_code == 200


def test_error_statuses_come_from_the_contract_table(serve):
    # The statuses the app answers are the ones errors.py maps each code to.
    assert ERROR_CODES["request_too_large"] == (413, False)
    assert ERROR_CODES["queue_full"] == (429, True)
