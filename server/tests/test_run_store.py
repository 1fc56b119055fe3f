"""Runs across containers: two apps sharing one run store, as two Modal containers share a
modal.Dict. A run on one is read, followed and cancelled from the other."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ExitStack

import httpx
import pytest
from conftest import LiveStream, iter_sse, live_server, make_settings
from fakes import FakeEngine, FakeGate, Script

from pictale_server.app import create_app
from pictale_server.runtime.run_store import DictRunStore


class FakeModalDict:
    """modal.Dict's put/get with their `.aio` forms, over a plain dict shared by threads."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.lock = threading.Lock()
        owner = self

        class Method:
            def __init__(self, fn) -> None:
                self.fn = fn

            def __call__(self, *args):
                return self.fn(*args)

            async def aio(self, *args):
                await asyncio.sleep(0)
                return self.fn(*args)

        def put(key, value):
            with owner.lock:
                owner.data[key] = value

        def get(key, default=None):
            with owner.lock:
                return owner.data.get(key, default)

        self.put = Method(put)
        self.get = Method(get)


@pytest.fixture
def containers():
    store = DictRunStore(FakeModalDict())
    engines = [FakeEngine(writer=Script(["Once ", "upon ", "a ", "time."], hold_after=2)), FakeEngine()]
    with ExitStack() as stack:
        clients = []
        for engine in engines:
            app = create_app(engine, make_settings(resume_grace_s=30), gate=FakeGate(), run_store=store)
            url = stack.enter_context(live_server(app))
            clients.append(stack.enter_context(httpx.Client(base_url=url, timeout=10)))
        yield clients, engines


def wait_until(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_run_on_one_container_is_resumed_from_another(containers) -> None:
    (a, b), (engine_a, engine_b) = containers
    stream = LiveStream(a, "/v1/narrate", {"instruction": "A"})
    stream.until(lambda event: event.name == "delta" and event.data["text"] == "upon ")
    seen, run_id = stream.events, stream.run_id
    stream.close()
    wait_until(lambda: b.get(f"/v1/runs/{run_id}").status_code == 200)
    assert b.get(f"/v1/runs/{run_id}").json()["state"] == "running"
    engine_a.release.set()
    with b.stream("GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(seen[-1].id)}) as response:
        rest = [item for item in iter_sse(response) if not isinstance(item, str)]
    assert [e.id for e in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    assert "".join(e.data["text"] for e in seen + rest if e.name == "delta") == "Once upon a time."
    wait_until(lambda: b.get(f"/v1/runs/{run_id}").json()["state"] == "done")
    status = b.get(f"/v1/runs/{run_id}").json()
    assert status["result"]["text"] == "Once upon a time." and status["events"] == rest[-1].id
    assert engine_b.calls == [] and len(engine_a.calls) == 1


def test_a_cancel_sent_to_another_container_stops_the_run(containers) -> None:
    (a, b), (engine_a, _) = containers
    stream = LiveStream(a, "/v1/narrate", {"instruction": "A"})
    stream.until_name("delta")
    run_id = stream.run_id
    wait_until(lambda: b.get(f"/v1/runs/{run_id}").status_code == 200)
    assert b.post(f"/v1/runs/{run_id}/cancel").json() == {"id": run_id, "cancelled": True, "state": "cancelled"}
    assert engine_a.wait_for_finish(0) == "cancelled"
    stream.close()


def test_another_callers_run_is_not_found_on_any_container() -> None:
    store = DictRunStore(FakeModalDict())
    with ExitStack() as stack:
        urls = []
        for _ in range(2):
            app = create_app(FakeEngine(), make_settings(api_keys=["k1", "k2"]), gate=FakeGate(), run_store=store)
            urls.append(stack.enter_context(live_server(app)))
        run_id = httpx.post(f"{urls[0]}/v1/narrate", json={"instruction": "A"}, headers={"authorization": "Bearer k1"}).json()["id"]
        time.sleep(0.2)  # the mirror writes after the answer
        other = httpx.get(f"{urls[1]}/v1/runs/{run_id}", headers={"authorization": "Bearer k2"})
        mine = httpx.get(f"{urls[1]}/v1/runs/{run_id}", headers={"authorization": "Bearer k1"})
    assert other.status_code == 404 and mine.json()["state"] == "done"


def test_a_reader_on_another_container_keeps_the_run_from_its_grace_cancel() -> None:
    store = DictRunStore(FakeModalDict())
    engine_a = FakeEngine(writer=Script(["Once ", "upon ", "a ", "time."], hold_after=2))
    with ExitStack() as stack:
        clients = []
        for engine in (engine_a, FakeEngine()):
            app = create_app(engine, make_settings(resume_grace_s=0.5), gate=FakeGate(), run_store=store)
            clients.append(stack.enter_context(httpx.Client(base_url=stack.enter_context(live_server(app)), timeout=10)))
        a, b = clients
        stream = LiveStream(a, "/v1/narrate", {"instruction": "A"})
        stream.until_name("delta")
        run_id = stream.run_id
        stream.close()
        wait_until(lambda: b.get(f"/v1/runs/{run_id}").status_code == 200)
        with b.stream("GET", f"/v1/runs/{run_id}/events") as followed:
            threading.Timer(1.6, engine_a.release.set).start()  # three graces later
            events = [item for item in iter_sse(followed) if not isinstance(item, str)]
    assert events[-1].name == "done" and engine_a.wait_for_finish(0) == "stop"


def test_following_a_run_whose_container_died_stops(monkeypatch) -> None:
    import pictale_server.runtime.run_store as run_store
    from pictale_server.runtime.run_store import StoredRun

    monkeypatch.setattr(run_store, "STALE_S", 0.3)
    monkeypatch.setattr(run_store, "POLL_S", 0.05)
    backing = FakeModalDict()
    store = DictRunStore(backing)
    backing.put("run_x", {"caller": "me", "state": "running", "events": 1, "ended": False, "ended_at": None})
    backing.put("run_x:1", {"name": "run", "data": {"id": "run_x"}})

    async def follow() -> list:
        stored = await StoredRun.find(store, "run_x", "me", 3600)
        return [event async for event in stored.follow(0) if event is not None]

    started = time.monotonic()
    events = asyncio.run(follow())
    assert [event.name for event in events] == ["run"] and time.monotonic() - started < 5
