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
    Deployment,
    container_record,
    deployment_status,
    forgotten,
    summarize,
)
from pictale_server.hosting.restart_budget import budget_key
from pictale_server.hosting.status_app import CACHE_S, status_app
from pictale_server.hosting.status_publisher import StatusPublisher
from pictale_server.runtime.lifecycle import FailedLoad

NOW = 1_000_000.0
OOM = FailedLoad("out_of_memory", "the writer needs 9.1 GiB more than the GPU has free")
APP = "ap-deployed"
DEPLOYMENT = Deployment(APP, restart_limit=2, restart_window_s=3600)


def record(state, *, age_s=0.0, failure=None, app_id=APP):
    return container_record(state, app_id=app_id, now=NOW - age_s, since=NOW - 100, failure=failure)


def items(*records):
    return [(f"{KEY_PREFIX}{index}", value) for index, value in enumerate(records)]


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


def test_a_heartbeat_from_a_clock_far_ahead_counts_for_nothing():
    """A dead container whose clock ran an hour fast must not look alive for that hour."""
    assert summarize([record("ready", age_s=-(STALE_AFTER_S - 1))], NOW)["status"] == "ready"
    assert summarize([record("ready", age_s=-3600)], NOW)["status"] == "cold"
    assert forgotten([(KEY_PREFIX + "a", record("ready", age_s=-2 * FORGET_AFTER_S))], NOW) == [KEY_PREFIX + "a"]


# --- the deployment: its own records and its restart budget ------------------------------------


def test_once_the_restart_budget_is_spent_the_deployment_stays_failed_after_its_container_is_gone():
    """The container that stayed up to report the failure scaled down and deleted its record."""
    spent = [NOW - 300, NOW - 200, NOW - 100]  # limit 2: the third failure was not replaced
    body = deployment_status([(budget_key(APP), spent)], NOW, DEPLOYMENT)
    assert body == {"status": "failed", "containers": {"warming": 0, "ready": 0, "failed": 0}}


def test_a_spent_budget_gives_way_to_a_container_that_tries_again_and_to_the_window_passing():
    spent = (budget_key(APP), [NOW - 300, NOW - 200, NOW - 100])
    assert deployment_status([spent, *items(record("loading"))], NOW, DEPLOYMENT)["status"] == "warming"
    assert deployment_status([spent, *items(record("ready"))], NOW, DEPLOYMENT)["status"] == "ready"
    failed = deployment_status([spent, *items(record("failed", failure=OOM))], NOW, DEPLOYMENT)
    assert failed["status"] == "failed" and failed["failure"] == {"reason": "out_of_memory"}
    assert deployment_status([spent], NOW + 3600 - 299, DEPLOYMENT)["status"] == "cold"  # the oldest has left
    replaced = (budget_key(APP), [NOW - 200, NOW - 100])  # the last failure asked for a fresh container
    assert deployment_status([replaced], NOW, DEPLOYMENT)["status"] == "cold"


def test_another_apps_records_and_budget_count_for_nothing():
    """`modal serve` of the same file writes to the same Dict under another app id."""
    other = [
        (KEY_PREFIX + "serve", record("ready", app_id="ap-serve")),
        (KEY_PREFIX + "old", {k: v for k, v in record("ready").items() if k != "app"}),
        (budget_key("ap-serve"), [NOW - 3, NOW - 2, NOW - 1]),
    ]
    assert deployment_status(other, NOW, DEPLOYMENT)["status"] == "cold"
    mine = (KEY_PREFIX + "mine", record("loading"))
    assert deployment_status([*other, mine], NOW, DEPLOYMENT)["status"] == "warming"


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
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP, clock=clock, heartbeat_s=3600)
    publisher.start("loading")
    assert KEY_PREFIX + "dead" not in store.data  # tidied on start
    assert store.data[KEY_PREFIX + "me"] == {"app": APP, "state": "loading", "since": NOW, "heartbeat": NOW}
    clock.now += 30
    publisher.set("failed", OOM)
    assert store.data[KEY_PREFIX + "me"]["state"] == "failed"
    assert store.data[KEY_PREFIX + "me"]["since"] == NOW + 30
    assert store.data[KEY_PREFIX + "me"]["failure"]["reason"] == "out_of_memory"
    publisher.stop()
    assert store.data == {}


def test_heartbeats_keep_the_record_fresh():
    store = FakeModalDict()
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP, heartbeat_s=0.01)
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

    publisher = StatusPublisher(Down(), KEY_PREFIX + "me", app_id=APP, heartbeat_s=0.01)
    publisher.start("loading")
    publisher.set("ready")
    time.sleep(0.05)
    publisher.stop()


class SlowStore(FakeModalDict):
    """Once `hold()` is called, the next put waits until `release()`."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()  # a put is waiting
        self._gate = threading.Event()
        self._armed = False
        plain_put = self.put

        def put(key, value):
            if self._armed:
                self._armed = False
                self.held.set()
                self._gate.wait(5)
            return plain_put(key, value)

        self.put = put

    def hold(self) -> None:
        self._armed = True

    def release(self) -> None:
        self._gate.set()


def in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_slow_write_never_lands_after_a_newer_state():
    store = SlowStore()
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP, heartbeat_s=3600)
    publisher.start("loading")
    store.hold()
    slow = in_thread(publisher.set, "loading")  # as a heartbeat does: the state it has now
    assert store.held.wait(5)
    newer = in_thread(publisher.set, "failed", OOM)
    time.sleep(0.05)
    store.release()
    slow.join(5)
    newer.join(5)
    assert store.data[KEY_PREFIX + "me"]["state"] == "failed"
    publisher.stop()


def test_a_write_in_flight_when_the_container_stops_cannot_bring_its_record_back():
    store = SlowStore()
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP, heartbeat_s=3600)
    publisher.start("loading")
    store.hold()
    slow = in_thread(publisher.set, "ready")
    assert store.held.wait(5)
    stopping = in_thread(publisher.stop)
    time.sleep(0.05)
    store.release()
    slow.join(5)
    stopping.join(10)
    assert store.data == {}


def test_nothing_is_written_once_stopped():
    """The load can settle after the container began to stop."""
    store = FakeModalDict()
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP, heartbeat_s=3600)
    publisher.start("loading")
    publisher.stop()
    publisher.set("failed", OOM)
    assert store.data == {}


# --- the endpoint ---------------------------------------------------------------------------


def status_client(records=None, *, error: Exception | None = None, extra_items=()):
    async def read():
        if error is not None:
            raise error
        return [*items(*(records or [])), *extra_items]

    return TestClient(status_app(read, DEPLOYMENT, clock=lambda: NOW))


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


def test_a_spent_restart_budget_answers_failed_with_503_when_no_container_is_up():
    with status_client([], extra_items=[(budget_key(APP), [NOW - 3, NOW - 2, NOW - 1])]) as client:
        answer = client.get("/")
    assert (answer.status_code, answer.json()["status"]) == (503, "failed")


def test_polls_within_the_cache_time_share_one_read():
    reads, clock = [], Clock()

    async def read():
        reads.append(clock.now)
        return items(record("ready"))

    with TestClient(status_app(read, DEPLOYMENT, clock=clock)) as client:
        assert [client.get("/").json()["status"] for _ in range(3)] == ["ready"] * 3
        assert len(reads) == 1
        clock.now += CACHE_S
        client.get("/")
        assert len(reads) == 2


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
