"""The body cap as clients that send the whole body before reading see it: they get the 413.

A server that answers and closes while request bytes are still unread makes the kernel reset
the connection, and the reset discards the 413 before a client such as urllib reads it. The
cap's middleware therefore reads (and throws away) a bounded amount past the limit first.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from pictale_server.api import body_limit
from pictale_server.api.body_limit import BodyLimitMiddleware
from pictale_server.api.request_context import CONTEXT_SCOPE_KEY, RequestContext

LIMIT = 1024 * 1024  # 1 MiB: far more than the socket buffers, so most of the body is unread


def _post(url: str, data, headers: dict[str, str]) -> urllib.error.HTTPError:
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    return answer.value


def _assert_413(answer: urllib.error.HTTPError) -> None:
    assert answer.code == 413
    body = json.loads(answer.read())
    assert body["error"]["code"] == "request_too_large"
    assert body["error"]["request_id"] == answer.headers["x-request-id"]


def test_a_body_just_over_the_cap_sent_whole_gets_the_413(serve):
    served = serve(max_body_bytes=LIMIT)
    body = json.dumps({"instruction": "x" * LIMIT}).encode()  # LIMIT + 19 bytes
    assert LIMIT < len(body) < LIMIT + 64
    for _ in range(3):  # every time, not by luck of timing
        _assert_413(_post(f"{served.url}/v1/narrate", body, {}))
    # and the server still answers on a fresh connection afterwards
    assert served.client.post("/v1/narrate", json={"instruction": "Go."}).status_code == 200


def test_a_chunked_body_over_the_cap_sent_whole_gets_the_413(serve):
    served = serve(max_body_bytes=LIMIT)

    def chunks():  # an iterable body without Content-Length: urllib sends it chunked
        yield b'{"instruction": "'
        for _ in range(LIMIT // 65536 + 8):  # half a MiB over the cap
            yield b"y" * 65536
        yield b'"}'

    _assert_413(_post(f"{served.url}/v1/narrate", chunks(), {}))


# --- the bound on what is drained ---------------------------------------------------------------


def _scope() -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/narrate",
        "headers": [(b"content-type", b"application/json")],
        CONTEXT_SCOPE_KEY: RequestContext(request_id="req_test", arrived=0.0),
    }


async def _never_called(scope, receive, send) -> None:
    raise AssertionError("an oversized body reached the app")


def _run(middleware: BodyLimitMiddleware, scope: dict, receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


def test_draining_stops_at_its_byte_budget():
    middleware = BodyLimitMiddleware(_never_called, max_body_bytes=1000, drain_bytes=5000)
    reads = 0

    async def endless_body() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"z" * 500, "more_body": True}

    sent = _run(middleware, _scope(), endless_body)
    assert sent[0]["status"] == 413
    assert 12 <= reads <= 13  # 6,000 bytes of budget in 500-byte messages, then the 413


def test_draining_stops_at_its_time_budget(monkeypatch):
    monkeypatch.setattr(body_limit, "DRAIN_TIMEOUT_S", 0.05)
    middleware = BodyLimitMiddleware(_never_called, max_body_bytes=1000)
    first = True

    async def stalled_body() -> dict:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"z" * 1500, "more_body": True}
        await asyncio.sleep(3600)  # a client that stops sending
        raise AssertionError("unreachable")

    sent = _run(middleware, _scope(), stalled_body)
    assert sent[0]["status"] == 413


def test_a_declared_length_far_over_the_cap_or_expecting_continue_is_refused_unread():
    async def no_reads() -> dict:
        raise AssertionError("the body was read")

    middleware = BodyLimitMiddleware(_never_called, max_body_bytes=1000, drain_bytes=1000)
    huge = _scope()
    huge["headers"].append((b"content-length", b"2001"))
    assert _run(middleware, huge, no_reads)[0]["status"] == 413
    expecting = _scope()
    expecting["headers"] += [(b"content-length", b"1500"), (b"expect", b"100-continue")]
    assert _run(middleware, expecting, no_reads)[0]["status"] == 413
