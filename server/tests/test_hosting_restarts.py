"""A container whose models fail to load reports `failed`, then asks for a fresh container while
the restart budget allows; past it, it stays up to say so, and the status endpoint says `failed`
until the window passes (hosting/restart_budget.py, hosting/load_watch.py, and modal_app wiring
them to Modal)."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import live_server, make_settings, wait_for_status
from fakes import FakeEngine, FakeGate
from modal_recipe import FakeModalDict, recipe, record_import  # noqa: F401
from pictale_server.app import create_app
from pictale_server.engine.errors import ModelLoadFailed
from pictale_server.hosting.container_status import KEY_PREFIX
from pictale_server.hosting.load_watch import LoadWatch
from pictale_server.hosting.restart_budget import RestartBudget, budget_key
from pictale_server.hosting.status_publisher import StatusPublisher
from pictale_server.runtime.lifecycle import FailedLoad

OOM = ModelLoadFailed("out_of_memory", "the writer needs 9.1 GiB more than the GPU has free.")
APP = "ap-deployed"
KEY = budget_key(APP)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- the budget -----------------------------------------------------------------------------


def test_the_budget_allows_limit_replacements_within_the_window():
    store, clock = FakeModalDict(), Clock()
    budget = RestartBudget(store, app_id=APP, limit=2, window_s=3600, clock=clock)
    verdicts = [budget.spend() for _ in range(3)]
    assert [v.replace for v in verdicts] == [True, True, False]
    assert [v.failures for v in verdicts] == [1, 2, 3]


def test_failures_older_than_the_window_no_longer_count():
    store, clock = FakeModalDict(), Clock()
    budget = RestartBudget(store, app_id=APP, limit=1, window_s=600, clock=clock)
    assert budget.spend().replace is True
    clock.now += 300
    assert budget.spend().replace is False
    clock.now += 301
    assert budget.spend().replace is False  # the first has left the window, the second not
    clock.now += 601
    assert budget.spend().replace is True


def test_a_successful_load_refunds_the_budget_and_the_record_stays_small():
    store, clock = FakeModalDict(), Clock()
    budget = RestartBudget(store, app_id=APP, limit=2, clock=clock)
    for _ in range(10):
        budget.spend()
        clock.now += 1
    assert len(store.data[KEY]) == 3
    budget.clear()
    assert KEY not in store.data and budget.spend().replace is True


def test_a_record_that_is_not_a_list_of_times_counts_as_none():
    store = FakeModalDict()
    store.data[KEY] = "junk"
    assert RestartBudget(store, app_id=APP, limit=1).spend().replace is True
    store.data[KEY] = [None, "x"]
    assert RestartBudget(store, app_id=APP, limit=1).spend().replace is True


def test_a_failure_recorded_by_a_clock_far_ahead_leaves_the_window_on_time():
    store, clock = FakeModalDict(), Clock()
    store.data[KEY] = [clock.now + 10 * 3600]  # another container's clock, ten hours fast
    budget = RestartBudget(store, app_id=APP, limit=1, window_s=3600, clock=clock)
    assert budget.spend().replace is False  # it counts, as a failure of just now
    assert store.data[KEY] == [clock.now, clock.now]
    clock.now += 3601
    assert budget.spend().replace is True


def test_each_app_spends_and_clears_its_own_budget():
    """`modal serve` of the same file shares the Dict but not the deployment's budget."""
    store = FakeModalDict()
    deployed = RestartBudget(store, app_id=APP, limit=1)
    served = RestartBudget(store, app_id="ap-serve", limit=1)
    assert deployed.spend().replace is True
    assert served.spend().replace is True and served.spend().replace is False
    served.clear()
    assert deployed.spend().replace is False


def test_nonsense_limits_are_refused():
    with pytest.raises(ValueError):
        RestartBudget(FakeModalDict(), app_id=APP, limit=-1)
    with pytest.raises(ValueError):
        RestartBudget(FakeModalDict(), app_id=APP, window_s=0)


# --- the watch ------------------------------------------------------------------------------


def watch(store, replaced, *, limit=2, replace=None):
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP, heartbeat_s=3600)
    publisher.start("loading")
    budget = RestartBudget(store, app_id=APP, limit=limit)
    return LoadWatch(publisher, budget, replace=replace or (lambda: replaced.append(True))), publisher


def test_a_failure_is_worded_and_the_container_replaced_without_reporting_failed():
    """`failed` on the status endpoint means a container stays up to report it; this one goes."""
    store, replaced = FakeModalDict(), []
    hooks = watch(store, replaced)[0].hooks()
    failure = hooks.review_failure(FailedLoad("out_of_memory", OOM.message))
    assert failure.message.startswith(OOM.message)
    assert failure.message.endswith("The next request starts a fresh container (attempt 2 of 3): retry.")
    assert replaced == []  # not before the failure is reported
    hooks.settled("failed", failure)
    assert replaced == [True]
    assert store.data[KEY_PREFIX + "me"]["state"] == "loading"


def test_a_replacement_the_host_refuses_leaves_the_container_up_reporting_failed(caplog):
    store = FakeModalDict()

    def refuse():
        raise RuntimeError("Must be called from within a Modal container.")

    hooks = watch(store, [], replace=refuse)[0].hooks()
    failure = hooks.review_failure(FailedLoad("out_of_memory", OOM.message))
    with caplog.at_level(logging.ERROR, logger="pictale.server"):
        hooks.settled("failed", failure)
    assert store.data[KEY_PREFIX + "me"]["state"] == "failed"
    assert store.data[KEY_PREFIX + "me"]["failure"]["message"] == failure.message
    assert "could not stop taking requests" in caplog.text


def test_past_the_budget_the_container_stays_up_and_says_what_to_do():
    store, replaced = FakeModalDict(), []
    hooks = watch(store, replaced, limit=0)[0].hooks()
    failure = hooks.review_failure(FailedLoad("model_not_found", "no checkpoint."))
    hooks.settled("failed", failure)
    assert replaced == []
    assert "no fresh container is started and this one stays up" in failure.message
    assert "redeploy" in failure.message


def test_a_budget_that_cannot_be_counted_never_replaces():
    class Down(FakeModalDict):
        def __init__(self) -> None:
            super().__init__()

            def fail(*args, **kwargs):
                raise ConnectionError("down")

            self.get = fail

    store, replaced = Down(), []
    hooks = watch(store, replaced)[0].hooks()
    failure = hooks.review_failure(FailedLoad("load_error", "boom."))
    hooks.settled("failed", failure)
    assert replaced == [] and failure.message.endswith("This container stays up to report it.")


def test_a_store_that_fails_when_the_models_are_ready_changes_nothing():
    class Down(FakeModalDict):
        def __init__(self) -> None:
            super().__init__()

            def fail(*args, **kwargs):
                raise ConnectionError("down")

            self.pop = fail

    store = Down()
    publisher = StatusPublisher(store, KEY_PREFIX + "me", app_id=APP)
    LoadWatch(publisher, RestartBudget(store, app_id=APP), replace=lambda: None).models_ready()


def test_ready_is_published_and_refunds_the_budget():
    store, replaced = FakeModalDict(), []
    store.data[KEY] = [1.0]
    hooks = watch(store, replaced)[0].hooks()
    hooks.settled("ready", None)
    assert store.data[KEY_PREFIX + "me"]["state"] == "ready" and KEY not in store.data


# --- wired as modal_app does it, through the served app -------------------------------------


def serve_failing_container(module, monkeypatch, engine):
    """One container of the deployment: modal_app.start_host with a fake Dict and a fake
    stop_fetching_inputs, the app built as Server.web builds it. (url context, stops)"""
    import modal.experimental

    stops: list[bool] = []
    monkeypatch.setattr(module, "state_dict", state)
    monkeypatch.setattr(modal.experimental, "stop_fetching_inputs", lambda: stops.append(True))
    watch, publisher = module.start_host(engine, APP)
    app = create_app(engine, make_settings(), gate=FakeGate(), load_hooks=watch.hooks())
    return live_server(app), stops, publisher


state = FakeModalDict()


def eventually(condition, limit_s: float = 1.0) -> bool:
    """Whether `condition` holds within `limit_s` (the hooks run just after the state settles)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_three_containers_fail_two_are_replaced_and_the_third_stays_up(recipe, monkeypatch):
    module, _ = recipe
    state.data.clear()
    outcomes = []
    for attempt in range(3):
        server, stops, publisher = serve_failing_container(module, monkeypatch, FakeEngine(loaded=False, load_error=OOM))
        with server as url, httpx.Client(base_url=url, timeout=10) as client:
            health = wait_for_status(client, "failed")
            refused = client.post("/v1/narrate", json={"instruction": "Go."}).json()["error"]
            records = lambda: [v for k, v in state.data.items() if k.startswith(KEY_PREFIX)]  # noqa: E731
            replaced = eventually(lambda: bool(stops))
            assert eventually(lambda: len(records()) == 1)
            outcomes.append((replaced, records()[0]["state"], health["failure"]["message"], refused))
        publisher.stop()  # Modal runs @modal.exit when the container goes
    assert [(replaced, published) for replaced, published, *_ in outcomes] == [
        (True, "loading"),  # on its way out: the deployment is still trying
        (True, "loading"),
        (False, "failed"),  # stays up to report it
    ]
    for *_, message, refused in outcomes:
        assert refused["state"] == "failed" and refused["reason"] == "out_of_memory"
        assert message in refused["message"]
    assert "attempt 2 of 3" in outcomes[0][2] and "attempt 3 of 3" in outcomes[1][2]
    assert "stays up to report it" in outcomes[2][2]
    assert not [k for k in state.data if k.startswith(KEY_PREFIX)]  # each container deleted its record
    with status_endpoint(module, monkeypatch) as client:
        answer = client.get("/")
    assert (answer.status_code, answer.json()["status"]) == (503, "failed")  # not `cold`: still broken


def status_endpoint(module, monkeypatch) -> TestClient:
    """The status function's ASGI app, as its container builds it, over the same fake Dict."""
    monkeypatch.setattr(module, "state_dict", state)
    monkeypatch.setattr(module, "deployed_app_id", lambda: APP)
    return TestClient(module.status.local())


def test_a_container_that_loads_clears_the_failures(recipe, monkeypatch):
    module, _ = recipe
    state.data.clear()
    state.data[KEY] = [1e12, 1e12]  # two recent failures
    server, stops, publisher = serve_failing_container(module, monkeypatch, FakeEngine(loaded=False))
    with server as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_for_status(client, "ok")
    publisher.stop()
    assert stops == [] and KEY not in state.data


def test_a_container_restored_with_its_models_starts_ready(recipe, monkeypatch):
    """With GPU snapshots the engine is loaded before the app exists: no load settles to say so."""
    module, _ = recipe
    state.data.clear()
    state.data[KEY] = [1e12]
    monkeypatch.setattr(module, "state_dict", state)
    _, publisher = module.start_host(FakeEngine(loaded=True), APP)
    record = state.data[publisher.key]
    assert record["state"] == "ready" and KEY not in state.data
    publisher.stop()


def test_a_serve_of_the_same_file_cannot_make_the_deployment_look_ready(recipe, monkeypatch):
    module, _ = recipe
    state.data.clear()
    spent = [time.time()] * 3  # the deployment's budget
    state.data[KEY] = spent
    monkeypatch.setattr(module, "state_dict", state)
    _, publisher = module.start_host(FakeEngine(loaded=True), "ap-serve")
    assert state.data[publisher.key]["app"] == "ap-serve" and state.data[KEY] == spent
    with status_endpoint(module, monkeypatch) as client:
        assert client.get("/").json()["status"] == "failed"
    publisher.stop()


def test_the_app_id_is_the_one_modal_gives_the_container(monkeypatch):
    """Modal's container entrypoint calls `_init_container` on the file's app before any
    @modal.enter or web endpoint runs; outside a container there is no id to scope by."""
    from modal._utils.async_utils import synchronizer
    from modal.running_app import RunningApp

    module, _ = record_import(monkeypatch)
    with pytest.raises(RuntimeError):
        module.deployed_app_id()
    synchronizer._translate_in(module.app)._init_container(None, RunningApp("ap-0123456789abcdefghijkl"))
    assert module.deployed_app_id() == "ap-0123456789abcdefghijkl"
