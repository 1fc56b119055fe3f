"""Model state through HTTP: loading, ready, failed — /health, plain 503s and waiting streams."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from conftest import IMAGE, LiveStream, live_server, make_settings, names, wait_for_status
from fakes import WAIT_S, FakeEngine, FakeGate
from pictale_server.app import create_app
from pictale_server.engine.errors import ModelLoadFailed
from pictale_server.errors import ApiError
from pictale_server.runtime.lifecycle import FailedLoad, LoadHooks, ModelLifecycle
from pictale_server.settings import Settings

OOM = ModelLoadFailed("out_of_memory", "the writer needs 9.1 GiB more than the GPU has free")
GENERATION = [
    ("/v1/narrate", {"instruction": "Go."}),
    ("/v1/describe", {"image": IMAGE}),
    ("/v1/pipeline", {"image": IMAGE, "instruction": "Go."}),
]


def test_loading_health_and_503_say_loading_with_retry_after(serve):
    load_gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=load_gate))
    try:
        health = served.client.get("/health").json()
        assert health["status"] == "loading" and "failure" not in health
        for path, body in GENERATION:
            response = served.client.post(path, json=body)
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "not_ready" and error["state"] == "loading"
            assert "reason" not in error
            assert int(response.headers["retry-after"]) >= 1
    finally:
        load_gate.set()
    assert wait_for_status(served.client, "ok").get("failure") is None


def test_a_failed_load_keeps_the_engines_reason_and_message(serve):
    served = serve(FakeEngine(loaded=False, load_error=OOM))
    health = wait_for_status(served.client, "failed")
    assert health["failure"] == {"reason": "out_of_memory", "message": OOM.message}
    assert health["models"]["writer"]["loaded"] is False
    assert set(health) >= {"profile", "models", "version", "queue"}


def test_generation_after_a_failed_load_is_503_failed_without_retry_after(serve):
    served = serve(FakeEngine(loaded=False, load_error=OOM))
    wait_for_status(served.client, "failed")
    for path, body in GENERATION:
        for stream in (False, True):  # a stream is refused before it opens: nothing to wait for
            response = served.client.post(
                path, json={**body, "stream": stream}, headers={"x-request-id": "req-fail-1"}
            )
            assert response.status_code == 503, (path, stream)
            assert response.headers["content-type"].startswith("application/json")
            assert "retry-after" not in response.headers
            assert response.json() == {
                "error": {
                    "code": "not_ready",
                    "message": f"The models failed to load (out_of_memory): {OOM.message}",
                    "request_id": "req-fail-1",
                    "state": "failed",
                    "reason": "out_of_memory",
                }
            }
    assert served.engine.calls == []


def test_a_stream_waiting_on_a_load_that_fails_gets_a_final_error_event(serve):
    load_gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=load_gate, load_error=OOM))
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "Go."})
    assert stream.until_name("status").data == {"state": "loading"}
    load_gate.set()
    events = stream.rest()
    assert names(events) == ["run", "status", "error"]
    assert events[-1].data == {
        "code": "not_ready",
        "message": f"The models failed to load (out_of_memory): {OOM.message}",
        "retryable": False,
        "request_id": stream.response.headers["x-request-id"],
        "state": "failed",
        "reason": "out_of_memory",
    }
    answer = served.client.post(f"/v1/runs/{stream.run_id}/cancel").json()
    assert answer == {"id": stream.run_id, "cancelled": False, "state": "error"}
    assert served.engine.calls == []


def test_any_other_load_exception_is_load_error_without_its_text(serve):
    load_gate = threading.Event()
    engine = FakeEngine(loaded=False, load_gate=load_gate, load_error=MemoryError("no room"))
    served = serve(engine)
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "Go."})
    stream.until_name("status")
    load_gate.set()
    error = stream.rest()[-1]
    assert error.name == "error"
    assert error.data["reason"] == "load_error" and error.data["retryable"] is False
    assert "room" not in error.data["message"]
    health = wait_for_status(served.client, "failed")
    assert health["failure"]["reason"] == "load_error"
    assert "room" not in health["failure"]["message"]
    plain = served.client.post("/v1/narrate", json={"instruction": "Go."})
    assert plain.status_code == 503 and plain.json()["error"]["reason"] == "load_error"


def test_a_stream_waiting_on_a_load_that_succeeds_still_runs(serve):
    load_gate = threading.Event()
    served = serve(FakeEngine(loaded=False, load_gate=load_gate))
    stream = LiveStream(served.client, "/v1/narrate", {"instruction": "Go."})
    stream.until_name("status")
    load_gate.set()
    assert names(stream.rest())[-2:] == ["stage-end", "done"]
    answer = served.client.post(f"/v1/runs/{stream.run_id}/cancel").json()
    assert answer["state"] == "done"


# --- the lifecycle object on its own ----------------------------------------------------------


class FlakyEngine(FakeEngine):
    """Fails its first load, loads on the second."""

    def load(self) -> None:
        self.attempts = getattr(self, "attempts", 0) + 1
        if self.attempts == 1:
            raise ModelLoadFailed("unsupported_gpu", "compute capability 6.1 is below 8.0")
        self.loaded = True


def _settle(lifecycle: ModelLifecycle) -> str:
    deadline = time.monotonic() + WAIT_S
    while lifecycle.state == "loading":
        assert time.monotonic() < deadline, "the load never settled"
        time.sleep(0.005)
    return lifecycle.state


def test_the_lifecycle_starts_loading_fails_and_a_new_start_tries_again():
    engine = FlakyEngine(loaded=False)
    lifecycle = ModelLifecycle(engine)
    assert lifecycle.state == "loading" and lifecycle.failure is None
    lifecycle.start()
    assert _settle(lifecycle) == "failed"
    assert lifecycle.failure.reason == "unsupported_gpu"
    with pytest.raises(ApiError) as refused:
        lifecycle.check_ready()
    assert refused.value.state == "failed" and refused.value.retry_after is None
    lifecycle.start()  # a later lifespan
    assert _settle(lifecycle) == "ready"
    assert lifecycle.failure is None
    lifecycle.check_ready()


def test_hooks_word_a_failure_before_anyone_sees_it_and_hear_both_outcomes():
    settled = []

    def review(failure: FailedLoad) -> FailedLoad:
        assert lifecycle.state == "loading"  # nobody has been told yet
        return FailedLoad(failure.reason, failure.message + " A fresh container is starting.")

    lifecycle = ModelLifecycle(
        FlakyEngine(loaded=False),
        LoadHooks(review_failure=review, settled=lambda state, failure: settled.append((state, failure))),
    )
    lifecycle.start()
    assert _settle(lifecycle) == "failed"
    with pytest.raises(ApiError) as refused:
        lifecycle.check_ready()
    assert refused.value.message.endswith("A fresh container is starting.")
    lifecycle.start()
    assert _settle(lifecycle) == "ready"
    deadline = time.monotonic() + WAIT_S
    while len(settled) < 2:  # the hook runs just after the state settles
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert settled == [("failed", lifecycle_failure(refused.value)), ("ready", None)]


def lifecycle_failure(error: ApiError) -> FailedLoad:
    return FailedLoad(error.reason, error.message.split(": ", 1)[1])


def test_a_hook_that_raises_does_not_keep_the_state_loading():
    def broken(*args):
        raise RuntimeError("the host's store is down")

    lifecycle = ModelLifecycle(FlakyEngine(loaded=False), LoadHooks(review_failure=broken, settled=broken))
    lifecycle.start()
    assert _settle(lifecycle) == "failed"
    assert lifecycle.failure.reason == "unsupported_gpu"
    lifecycle.start()
    assert _settle(lifecycle) == "ready"


def test_an_engine_already_loaded_is_ready_without_loading():
    class Loaded(FakeEngine):
        def load(self) -> None:
            raise AssertionError("loaded again")

    lifecycle = ModelLifecycle(Loaded())
    assert lifecycle.state == "ready"
    lifecycle.start()
    assert lifecycle.state == "ready"


# --- the real engine with models that do not exist -------------------------------------------


def test_the_real_engine_with_missing_models_reports_model_not_found():
    """A custom profile naming absolute paths that do not exist: the load fails at once (no
    Hub call), /health says why, generation is refused with 503 and no Retry-After."""
    from pictale_server.engine.loader import load_engine

    settings = Settings(
        profile="custom", vision_model="/nonexistent/vision", writer_model="/nonexistent/writer"
    )
    engine = load_engine(settings)
    app = create_app(engine, make_settings(profile="custom"), gate=FakeGate())
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        health = wait_for_status(client, "failed", timeout_s=60)
        assert health["profile"] == "custom"
        assert health["failure"]["reason"] == "model_not_found"
        assert "/nonexistent/" in health["failure"]["message"]
        assert health["models"]["vision"] == {"id": "/nonexistent/vision", "loaded": False}
        response = client.post("/v1/narrate", json={"instruction": "Go."})
        assert response.status_code == 503
        assert "retry-after" not in response.headers
        error = response.json()["error"]
        assert error["code"] == "not_ready"
        assert error["state"] == "failed" and error["reason"] == "model_not_found"
        assert error["message"].startswith("The models failed to load (model_not_found): ")
        assert error["request_id"] == response.headers["x-request-id"]
