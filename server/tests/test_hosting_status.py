"""The status endpoint's side of things: the containers' records, their heartbeats, the answer.

hosting/container_status.py, hosting/status_publisher.py and hosting/status_app.py, with a plain
dict standing in for the modal.Dict the containers share.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from modal_recipe import FakeModalDict
from pictale_server.hosting.container_status import (
    FORGET_AFTER_S,
    KEY_PREFIX,
    STALE_AFTER_S,
    container_record,
    forgotten,
    summarize,
)
from pictale_server.hosting.status_app import status_app
from pictale_server.hosting.status_publisher import StatusPublisher
from pictale_server.runtime.lifecycle import FailedLoad

NOW = 1_000_000.0
OOM = FailedLoad("out_of_memory", "the writer needs 9.1 GiB more than the GPU has free")


def record(state, *, age_s=0.0, failure=None):
    return container_record(state, now=NOW - age_s, since=NOW - 100, failure=failure)


# --- the summary ----------------------------------------------------------------------------


def test_no_container_is_cold():
    assert summarize([], NOW) == {"status": "cold", "containers": {"warming": 0, "ready": 0, "failed": 0}}


def test_a_loading_container_is_warming_and_a_ready_one_wins():
    assert summarize([record("loading")], NOW)["status"] == "warming"
    assert summarize([record("loading"), record("ready")], NOW)["status"] == "ready"


def test_a_replacement_warming_up_wins_over_the_failed_container_it_replaces():
    body = summarize([record("failed", failure=OOM), record("loading")], NOW)
    assert body["status"] == "warming" and "failure" not in body


def test_a_container_that_stays_up_failed_says_why_but_keeps_the_details_private():
    body = summarize([record("failed", failure=OOM)], NOW)
    assert body["status"] == "failed"
    assert body["failure"] == {"reason": "out_of_memory"}  # the message is for /health and the log


def test_a_record_without_a_recent_heartbeat_counts_for_nothing():
    assert summarize([record("ready", age_s=STALE_AFTER_S + 1)], NOW)["status"] == "cold"
    assert summarize([record("ready", age_s=STALE_AFTER_S - 1)], NOW)["status"] == "ready"
    assert summarize([None, "junk", {"state": "ready"}, {"state": "dancing", "heartbeat": NOW}], NOW)["status"] == "cold"


def test_only_long_dead_container_records_are_forgotten():
    items = [
        (KEY_PREFIX + "a", record("ready", age_s=FORGET_AFTER_S + 1)),
        (KEY_PREFIX + "b", record("ready", age_s=STALE_AFTER_S + 1)),
        (KEY_PREFIX + "c", "junk"),
        ("load-failures", [NOW - FORGET_AFTER_S * 2]),
    ]
    assert forgotten(items, NOW) == [KEY_PREFIX + "a", KEY_PREFIX + "c"]


# --- the publisher --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_the_publisher_writes_on_start_on_change_and_deletes_on_stop():
    store, clock = FakeModalDict(), Clock()
    store.data[KEY_PREFIX + "dead"] = record("ready", age_s=FORGET_AFTER_S + 1)
    publisher = StatusPublisher(store, KEY_PREFIX + "me", clock=clock, heartbeat_s=3600)
    publisher.start("loading")
    assert KEY_PREFIX + "dead" not in store.data  # tidied on start
    assert store.data[KEY_PREFIX + "me"] == {"state": "loading", "since": NOW, "heartbeat": NOW}
    clock.now += 30
    publisher.set("failed", OOM)
    assert store.data[KEY_PREFIX + "me"]["state"] == "failed"
    assert store.data[KEY_PREFIX + "me"]["since"] == NOW + 30
    assert store.data[KEY_PREFIX + "me"]["failure"]["reason"] == "out_of_memory"
    publisher.stop()
    assert store.data == {}


def test_heartbeats_keep_the_record_fresh():
    store = FakeModalDict()
    publisher = StatusPublisher(store, KEY_PREFIX + "me", heartbeat_s=0.01)
    publisher.start("ready")
    first = store.data[KEY_PREFIX + "me"]["heartbeat"]
    deadline = time.monotonic() + 5
    while store.data[KEY_PREFIX + "me"]["heartbeat"] == first:
        assert time.monotonic() < deadline, "no heartbeat"
        time.sleep(0.01)
    assert store.data[KEY_PREFIX + "me"]["state"] == "ready"
    publisher.stop()


def test_a_failing_store_never_stops_the_container():
    class Down(FakeModalDict):
        def __init__(self) -> None:
            super().__init__()

            def fail(*args, **kwargs):
                raise ConnectionError("the store is unreachable")

            self.put = self.pop = self.items = fail

    publisher = StatusPublisher(Down(), KEY_PREFIX + "me", heartbeat_s=0.01)
    publisher.start("loading")
    publisher.set("ready")
    time.sleep(0.05)
    publisher.stop()


# --- the endpoint ---------------------------------------------------------------------------


def status_client(records=None, *, error: Exception | None = None):
    async def read():
        if error is not None:
            raise error
        return records or []

    return TestClient(status_app(read, clock=lambda: NOW))


def test_cold_warming_and_ready_answer_200_and_failed_503():
    for records, status, code in [
        ([], "cold", 200),
        ([record("loading")], "warming", 200),
        ([record("ready")], "ready", 200),
        ([record("failed", failure=OOM)], "failed", 503),
    ]:
        with status_client(records) as client:
            answer = client.get("/")
        assert (answer.status_code, answer.json()["status"]) == (code, status)
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["version"] == "1"


def test_records_that_cannot_be_read_answer_unknown_with_503():
    with status_client(error=ConnectionError("down")) as client:
        answer = client.get("/health")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unknown" and "ConnectionError" in answer.json()["error"]


def test_head_answers_without_a_body_and_other_methods_are_refused():
    with status_client([record("ready")]) as client:
        head = client.head("/")
        post = client.post("/", json={})
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


def test_the_endpoint_imports_nothing_but_the_standard_library():
    """Its image has no locks installed: Python without site-packages must import it."""
    script = "import pictale_server.hosting.status_app, pictale_server.hosting.container_status"
    server_dir = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-S", "-c", script], cwd=server_dir, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_concurrent_polls_are_answered():
    with status_client([record("ready")]) as client:
        results = []
        threads = [threading.Thread(target=lambda: results.append(client.get("/").status_code)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert results == [200] * 8
