"""What Modal's own container code does with pictale's web app (modal 1.6.4's ASGI wrapper,
`modal._runtime.asgi`, the code that runs `@modal.asgi_app` in a container).

Modal answers a web request that has not completed within 150 s with a 303 to a result URL
(Modal's "Request timeouts" guide). These tests show the two sides of that limit that run in the
container: a stream's response starts at once, before any model work, and keeps sending bytes
(pings) while it waits; and a request whose caller gave up while it waited in Modal's queue
never becomes a run. What Modal's edge does past 150 s with a response that has started is not
documented: docs/deploy.md lists it under "Verify on first deploy".
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from conftest import make_settings
from fakes import FakeEngine, FakeGate
from pictale_server.app import create_app

modal_asgi = pytest.importorskip("modal._runtime.asgi")
from modal._runtime.execution_context import _set_current_context_ids  # noqa: E402


class FakeIO:
    """The container I/O manager as the wrapper uses it: the request's messages from Modal."""

    def __init__(self, messages: list[dict] | None) -> None:
        self._messages = messages  # None: the request never arrives (its caller went away)

        class GetDataIn:
            @staticmethod
            def aio(function_call_id, attempt_token):
                return self._data_in()

        self.get_data_in = GetDataIn()

    async def _data_in(self):
        if self._messages is None:
            await asyncio.sleep(3600)
        for message in self._messages:
            yield message
        await asyncio.sleep(3600)  # the connection stays open


def http_scope(path: str, body: dict) -> tuple[dict, list[dict]]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"accept", b"text/event-stream"), (b"host", b"x.modal.run")],
        "client": ("203.0.113.1", 50000), "server": ("x.modal.run", 443),
    }
    return scope, [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]


async def run_input(app, scope: dict, io: FakeIO, *, on_message, limit_s: float = 10.0) -> None:
    """One input through Modal's wrapper, lifespan included, as the container runs it."""
    handler, lifespan = modal_asgi.asgi_app_wrapper(app, io)
    lifespan_task = asyncio.create_task(lifespan.background_task())
    await lifespan.lifespan_startup()
    reset = _set_current_context_ids(["in-1"], ["fc-1"], ["attempt-1"])
    try:
        async with asyncio.timeout(limit_s):
            async for message in handler(scope):
                if on_message(message):
                    break
    finally:
        reset()
        await lifespan.lifespan_shutdown()
        lifespan_task.cancel()


def test_a_stream_starts_before_the_models_load_and_pings_while_it_waits():
    gate = threading.Event()
    engine = FakeEngine(loaded=False, load_gate=gate)
    app = create_app(engine, make_settings(ping_interval_s=0.05), gate=FakeGate())
    scope, request = http_scope("/v1/narrate", {"instruction": "Go.", "stream": True})
    started = time.monotonic()
    seen: list[tuple[float, dict]] = []

    def on_message(message: dict) -> bool:
        seen.append((time.monotonic() - started, message))
        body = b"".join(m.get("body", b"") for _, m in seen)
        if body.count(b": ping") >= 3 and not gate.is_set():
            gate.set()  # the models arrive after a few pings
        return b"event: done" in body

    asyncio.run(run_input(app, scope, FakeIO(request), on_message=on_message))
    first_at, first = seen[0]
    assert first["type"] == "http.response.start" and first["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in [tuple(h) for h in first["headers"]]
    assert first_at < 2.0  # long before any model is ready: Modal's 150 s no longer counts against it
    body = b"".join(m.get("body", b"") for _, m in seen)
    assert body.index(b"event: run") < body.index(b'"state":"loading"') < body.index(b": ping") < body.index(b"event: delta")
    assert engine.calls  # and the run went on to generate


def test_a_request_whose_caller_left_while_queued_never_becomes_a_run(monkeypatch):
    """Modal gives the container 5 s to receive a request's body once its input starts; a caller
    that gave up while the input waited in Modal's queue sends none, and the wrapper answers 408
    itself. pictale then starts no run: no GPU work for requests nobody waits for."""
    monkeypatch.setattr(modal_asgi, "FIRST_MESSAGE_TIMEOUT_SECONDS", 0.2)
    engine = FakeEngine()
    app = create_app(engine, make_settings(), gate=FakeGate())
    scope, _ = http_scope("/v1/narrate", {"instruction": "Go.", "stream": True})
    seen: list[dict] = []
    asyncio.run(run_input(app, scope, FakeIO(None), on_message=lambda m: seen.append(m) or False))
    assert seen[0] == {"type": "http.response.start", "status": 408}
    assert engine.calls == []
    assert app.state.services.runs.live() == []
