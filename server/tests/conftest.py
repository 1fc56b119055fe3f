"""Shared helpers for the server tests: a live uvicorn server per test app, SSE reading, images."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image

from fakes import FakeEngine, FakeGate
from pictale_server.app import create_app
from pictale_server.settings import Settings


def png_data_url(
    size: tuple[int, int] = (8, 6), colour: tuple[int, int, int] = (200, 30, 30)
) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


IMAGE = png_data_url()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"profile": "dev", "ping_interval_s": 5.0, "api_keys": []}
    values.update(overrides)
    return Settings(**values)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for_status(client: httpx.Client, status: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """Poll /health until its status is `status`; its body. Fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get("/health").json()
        if body["status"] == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/health stayed {body['status']!r}, expected {status!r}")
        time.sleep(0.01)


@dataclass
class Served:
    url: str
    client: httpx.Client
    engine: FakeEngine
    gate: FakeGate
    settings: Settings


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """serve(engine=..., gate=..., **settings) -> a running server around a fresh app."""
    with ExitStack() as stack:

        def start(
            engine: FakeEngine | None = None,
            gate: FakeGate | None = None,
            image_loader: Any = None,
            **settings: Any,
        ) -> Served:
            engine = engine or FakeEngine()
            gate = gate or FakeGate()
            config = make_settings(**settings)
            app = create_app(engine, config, gate=gate, image_loader=image_loader)
            url = stack.enter_context(live_server(app))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=10))
            return Served(url, client, engine, gate, config)

        yield start


@dataclass(frozen=True)
class SseEvent:
    id: int
    name: str
    data: dict[str, Any]


PING = "ping"


def iter_sse(response: httpx.Response) -> Iterator[SseEvent | str]:
    """Events as they arrive; `PING` for each `: ping` comment."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == ": ping":
            yield PING
        elif line == "":
            if fields:
                yield SseEvent(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                fields = {}
        else:
            name, _, value = line.partition(": ")
            fields[name] = value


def read_events(response: httpx.Response) -> list[SseEvent]:
    return [item for item in iter_sse(response) if isinstance(item, SseEvent)]


def names(events: list[SseEvent]) -> list[str]:
    return [event.name for event in events]


class LiveStream:
    """A streaming request read step by step: `until(...)` reads just as far as needed."""

    def __init__(
        self, client: httpx.Client, path: str, body: dict[str, Any], **kwargs: Any
    ) -> None:
        self._context = client.stream("POST", path, json={**body, "stream": True}, **kwargs)
        self.response = self._context.__enter__()
        self._items = iter_sse(self.response)
        self.events: list[SseEvent] = []
        self.pings = 0

    @property
    def run_id(self) -> str:
        return self.events[0].data["id"]

    def until(self, predicate: Callable[[SseEvent], bool]) -> SseEvent:
        for item in self._items:
            if item == PING:
                self.pings += 1
                continue
            self.events.append(item)
            if predicate(item):
                return item
        raise AssertionError(f"stream ended without the awaited event; saw {names(self.events)}")

    def until_name(self, name: str) -> SseEvent:
        return self.until(lambda event: event.name == name)

    def until_pings(self, count: int) -> None:
        for item in self._items:
            if item == PING:
                self.pings += 1
                if self.pings >= count:
                    return
            else:
                self.events.append(item)
        raise AssertionError("stream ended before the pings")

    def rest(self) -> list[SseEvent]:
        for item in self._items:
            if item == PING:
                self.pings += 1
            else:
                self.events.append(item)
        self.close()
        return self.events

    def close(self) -> None:
        """Closes the connection: for the server, the client went away."""
        self._context.__exit__(None, None, None)
