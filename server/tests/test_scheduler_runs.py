"""The run registry: cancel hooks, final states, retention, idempotency keys."""

from __future__ import annotations

from pictale_server.runtime.runs import RETENTION_S, RunRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_run_ids_have_the_contract_shape():
    run = RunRegistry().create(arrived=0.0, caller="c", idempotency_key=None)
    assert run.id.startswith("run_") and len(run.id) == 28
    int(run.id[4:], 16)


def test_cancel_runs_hooks_once_and_not_after_the_end():
    registry = RunRegistry()
    run = registry.create(0.0, "c", None)
    calls = []
    run.on_cancel(lambda: calls.append("hook"))
    assert run.request_cancel() is True
    assert run.cancel.is_set and calls == ["hook"]
    assert registry.finish(run, completed=False) == "cancelled"
    assert run.request_cancel() is False
    assert calls == ["hook"]


def test_a_hook_added_after_cancelling_runs_at_once():
    run = RunRegistry().create(0.0, "c", None)
    run.request_cancel()
    calls = []
    run.on_cancel(lambda: calls.append("late"))
    assert calls == ["late"]


def test_ended_runs_are_remembered_for_ten_minutes():
    clock = Clock()
    registry = RunRegistry(clock=clock)
    run = registry.create(0.0, "c", None)
    registry.finish(run, completed=True)
    clock.now += RETENTION_S - 1
    assert registry.get(run.id) is run
    clock.now += 2
    assert registry.get(run.id) is None


def test_live_runs_are_never_forgotten():
    clock = Clock()
    registry = RunRegistry(clock=clock)
    run = registry.create(0.0, "c", None)
    clock.now += 10 * RETENTION_S
    assert registry.get(run.id) is run
    assert registry.live() == [run]


def test_same_idempotency_key_cancels_the_live_run():
    registry = RunRegistry()
    first = registry.create(0.0, "caller-a", "key-1")
    second = registry.create(0.0, "caller-a", "key-1")
    assert first.cancel.is_set and not second.cancel.is_set


def test_idempotency_keys_are_per_caller_and_per_live_run():
    registry = RunRegistry()
    mine = registry.create(0.0, "caller-a", "key-1")
    registry.create(0.0, "caller-b", "key-1")
    assert not mine.cancel.is_set  # another caller's key never touches my run
    registry.finish(mine, completed=True)
    later = registry.create(0.0, "caller-a", "key-1")
    assert not later.cancel.is_set and mine.state == "done"


def test_an_ended_run_keeps_nothing_of_its_request():
    import gc
    import weakref

    class Work:  # stands in for a job's image and prompts
        pass

    def hook_holding(work: Work):
        return lambda: work

    registry = RunRegistry()
    run = registry.create(0.0, "c", None)
    work = Work()
    run.on_cancel(hook_holding(work))
    alive = weakref.ref(work)
    del work
    gc.collect()
    assert alive() is not None  # a live run holds its work, to cancel it
    registry.finish(run, completed=True)
    gc.collect()
    assert alive() is None
    assert registry.get(run.id) is run


def test_finish_decides_the_final_state_from_the_flow_and_the_stop_flag():
    registry = RunRegistry()
    completed, failed, cancelled, cancelled_but_completed = (
        registry.create(0.0, "c", None) for _ in range(4)
    )
    cancelled.request_cancel()
    cancelled_but_completed.request_cancel()
    assert registry.finish(completed, completed=True) == "done"
    assert registry.finish(failed, completed=False) == "error"
    assert registry.finish(cancelled, completed=False) == "cancelled"
    # A cancelled stream still ends with `done` (finish_reason "cancelled"): the run is cancelled.
    assert registry.finish(cancelled_but_completed, completed=True) == "cancelled"
    assert registry.live() == []


def test_the_first_finish_wins():
    registry = RunRegistry()
    run = registry.create(0.0, "c", None)
    assert registry.finish(run, completed=True) == "done"
    ended_at = run.ended_at
    run.cancel.set()  # a late stop flag (e.g. a disconnect after the answer) changes nothing
    assert registry.finish(run, completed=False) == "done"
    assert run.state == "done" and run.ended_at == ended_at
