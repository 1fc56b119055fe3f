"""The per-model worker: FIFO order, bounded depth, positions (over the queue and the jobs an
engine holds back), withdrawal, failures."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest
from pydantic import ValidationError

from fakes import WAIT_S
from pictale_server.engine.base import Cancel
from pictale_server.errors import ApiError
from pictale_server.runtime.scheduler import (
    Admitted,
    Dropped,
    Ended,
    Job,
    LoopSink,
    ModelWorker,
    Queued,
    Started,
    Waiting,
)
from pictale_server.settings import Settings


async def next_items(job: Job, count: int) -> list:
    return [await asyncio.wait_for(job.sink.queue.get(), WAIT_S) for _ in range(count)]


async def until_ended(job: Job) -> list:
    items = []
    while not items or not isinstance(items[-1], Ended):
        items.append(await asyncio.wait_for(job.sink.queue.get(), WAIT_S))
    return items


def blocking_job(gate: threading.Event, ran: list[str], name: str, caller: str | None = None) -> Job:
    def work(emit):
        ran.append(name)
        gate.wait(WAIT_S)

    return Job(work=work, cancel=Cancel(), sink=LoopSink(asyncio.get_running_loop()), caller=caller)


def quick_job(ran: list[str], name: str) -> Job:
    def work(emit):
        ran.append(name)
        emit(f"{name}-output")

    return Job(work=work, cancel=Cancel(), sink=LoopSink(asyncio.get_running_loop()))


@pytest.fixture
def worker():
    worker = ModelWorker("writer", depth=2)
    worker.start()
    yield worker
    worker.stop()


def test_jobs_run_in_order_on_the_model_thread(worker):
    async def scenario():
        gate, ran = threading.Event(), []
        first = blocking_job(gate, ran, "first")
        second, third = quick_job(ran, "second"), quick_job(ran, "third")
        worker.submit(first)
        assert isinstance((await next_items(first, 1))[0], Started)
        worker.submit(second)
        worker.submit(third)
        assert await next_items(second, 1) == [Queued(1)]
        assert await next_items(third, 1) == [Queued(2)]
        gate.set()
        await until_ended(first)
        second_items = await until_ended(second)
        third_items = await until_ended(third)
        assert ran == ["first", "second", "third"]
        assert isinstance(second_items[0], Started) and second_items[1:] == [
            "second-output",
            Ended(),
        ]
        assert third_items[0] == Queued(1)  # moved up when the second one started

    asyncio.run(scenario())


def test_a_full_queue_refuses_with_retry_after(worker):
    async def scenario():
        gate, ran = threading.Event(), []
        running = blocking_job(gate, ran, "running")
        worker.submit(running)
        await next_items(running, 1)
        worker.submit(quick_job(ran, "a"))
        worker.submit(quick_job(ran, "b"))
        with pytest.raises(ApiError) as refused:
            worker.submit(quick_job(ran, "c"))
        assert refused.value.code == "queue_full"
        assert refused.value.retry_after >= 1
        assert worker.waiting == 2
        gate.set()

    asyncio.run(scenario())


def test_a_withdrawn_job_never_runs_and_the_queue_moves_up(worker):
    async def scenario():
        gate, ran = threading.Event(), []
        running = blocking_job(gate, ran, "running")
        worker.submit(running)
        await next_items(running, 1)
        leaving, staying = quick_job(ran, "leaving"), quick_job(ran, "staying")
        worker.submit(leaving)
        worker.submit(staying)
        await next_items(staying, 1)
        worker.withdraw(leaving)
        assert await until_ended(leaving) == [Queued(1), Dropped(), Ended()]
        assert await next_items(staying, 1) == [Queued(1)]
        gate.set()
        await until_ended(staying)
        assert ran == ["running", "staying"]

    asyncio.run(scenario())


def test_a_job_cancelled_while_waiting_is_dropped_when_its_turn_comes(worker):
    async def scenario():
        gate, ran = threading.Event(), []
        running = blocking_job(gate, ran, "running")
        worker.submit(running)
        await next_items(running, 1)
        cancelled = quick_job(ran, "cancelled")
        worker.submit(cancelled)
        cancelled.cancel.set()
        gate.set()
        assert (await until_ended(cancelled))[-2:] == [Dropped(), Ended()]
        assert ran == ["running"]

    asyncio.run(scenario())


def test_a_failing_job_reports_its_error_and_the_worker_goes_on(worker):
    async def scenario():
        def explode(emit):
            raise ValueError("broken")

        failing = Job(work=explode, cancel=Cancel(), sink=LoopSink(asyncio.get_running_loop()))
        worker.submit(failing)
        ended = (await until_ended(failing))[-1]
        assert isinstance(ended.error, ValueError)
        after = quick_job([], "after")
        worker.submit(after)
        assert (await until_ended(after))[-1] == Ended()

    asyncio.run(scenario())


def test_stopping_drops_waiting_jobs(worker):
    async def scenario():
        gate, ran = threading.Event(), []
        running = blocking_job(gate, ran, "running")
        worker.submit(running)
        await next_items(running, 1)
        waiting = quick_job(ran, "waiting")
        worker.submit(waiting)
        stopper = threading.Thread(target=worker.stop)
        stopper.start()
        gate.set()
        stopper.join(WAIT_S)
        assert (await until_ended(waiting))[-2:] == [Dropped(), Ended()]
        assert ran == ["running"]
        with pytest.raises(ApiError) as refused:
            worker.submit(quick_job(ran, "late"))
        assert refused.value.code == "not_ready"

    asyncio.run(scenario())


def test_a_stopped_worker_can_start_again(worker):
    # An app's lifespan can run more than once (test clients open it per session).
    worker.stop()
    worker.start()
    worker.start()  # no-op while running

    async def scenario():
        ran: list[str] = []
        job = quick_job(ran, "again")
        worker.submit(job)
        assert (await until_ended(job))[-1] == Ended()
        assert ran == ["again"]

    asyncio.run(scenario())


def test_one_caller_may_hold_only_its_share_of_the_queue():
    async def scenario():
        worker = ModelWorker("writer", depth=4, per_caller=2)
        worker.start()
        try:
            gate, ran = threading.Event(), []

            def job(name: str, caller: str | None) -> Job:
                return blocking_job(gate, ran, name, caller)

            running = job("a-running", "a")
            worker.submit(running)
            assert isinstance((await next_items(running, 1))[0], Started)
            a1, a2 = job("a1", "a"), job("a2", "a")
            worker.submit(a1)
            worker.submit(a2)  # the running job is not waiting: two places are a's share
            with pytest.raises(ApiError) as refused:
                worker.submit(job("a3", "a"))
            assert refused.value.code == "queue_full" and refused.value.retry_after >= 1
            assert "2 requests waiting" in refused.value.message
            b1 = job("b1", "b")
            worker.submit(b1)  # another caller still gets a place
            assert await next_items(b1, 1) == [Queued(3)]
            worker.submit(job("nobody", None))  # jobs without a caller count against the depth only
            with pytest.raises(ApiError, match="queue is full"):
                worker.submit(job("b2", "b"))
            gate.set()
            await until_ended(running)
            await until_ended(a1)  # a1 has started and ended: a has a place again
            worker.submit(job("a3", "a"))
            for waiting in (a2, b1):
                await until_ended(waiting)
            assert ran[:4] == ["a-running", "a1", "a2", "b1"]
        finally:
            worker.stop()

    asyncio.run(scenario())


def test_a_share_as_large_as_the_depth_is_no_share():
    async def scenario():
        worker = ModelWorker("writer", depth=2, per_caller=None)
        gate, ran = threading.Event(), []
        for i in range(2):  # not started: both wait, both fit
            worker.submit(blocking_job(gate, ran, str(i), caller="a"))
        assert worker.waiting == 2

    asyncio.run(scenario())


def test_each_callers_share_defaults_to_half_the_depth(monkeypatch):
    assert Settings(profile="dev").caller_queue_share == 4  # depth 8
    assert Settings(profile="dev", queue_depth=1).caller_queue_share == 1
    assert Settings(profile="dev", queue_depth=3, queue_per_caller=9).caller_queue_share == 3
    monkeypatch.setenv("PICTALE_QUEUE_PER_CALLER", "2")
    assert Settings(profile="dev").caller_queue_share == 2
    with pytest.raises(ValidationError):
        Settings(profile="dev", queue_per_caller=0)


def test_a_worker_of_several_streams_runs_that_many_jobs_at_once_and_queues_the_rest():
    """The writer's worker runs one job per stream (the batch decodes them together); the job
    after those waits its turn and is told its place."""
    worker = ModelWorker("writer", depth=4, concurrency=2)
    worker.start()

    async def scenario():
        gates, ran = [threading.Event(), threading.Event()], []
        first, second = blocking_job(gates[0], ran, "first"), blocking_job(gates[1], ran, "second")
        third = quick_job(ran, "third")
        worker.submit(first)
        worker.submit(second)
        assert isinstance((await next_items(first, 1))[0], Started)
        assert isinstance((await next_items(second, 1))[0], Started)  # no Queued: it started at once
        worker.submit(third)
        assert await next_items(third, 1) == [Queued(1)]
        gates[1].set()
        third_items = await until_ended(third)
        assert isinstance(third_items[0], Started) and third_items[1:] == ["third-output", Ended()]
        assert ran == ["first", "second", "third"] or ran == ["second", "first", "third"]
        gates[0].set()
        await until_ended(first)

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()
    assert sorted(thread.name for thread in worker._threads) == ["pictale-writer-0", "pictale-writer-1"]


def test_a_caller_running_half_the_streams_lets_another_callers_job_go_first():
    """Four streams, two callers: one client's burst may use every idle stream, but once it
    runs its share (half), the next free stream goes to the other caller's job although the
    burst's jobs came first."""
    worker = ModelWorker("writer", depth=8, concurrency=4)
    worker.start()

    async def scenario():
        ran: list[str] = []
        gates = [threading.Event() for _ in range(6)]
        burst = [blocking_job(gates[i], ran, f"a{i}", caller="a") for i in range(5)]
        for job in burst:
            worker.submit(job)
        for job in burst[:4]:  # nobody else waits: all four streams run the burst
            assert isinstance((await until_started(job)), Started)
        other = blocking_job(gates[5], ran, "b0", caller="b")
        worker.submit(other)
        gates[0].set()  # a stream frees: b0 goes before a4
        assert isinstance(await until_started(other), Started)
        assert "a4" not in ran
        for gate in gates:
            gate.set()
        await until_ended(burst[4])

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()


async def until_started(job: Job):
    while True:
        item = await asyncio.wait_for(job.sink.queue.get(), WAIT_S)
        if isinstance(item, Started):
            return item


class HeldJob:
    """A job whose engine holds it back: it reports `Waiting(place)` (and later places as the
    test says), then `Admitted` and an output when admitted, or ends without (withdrawn). The
    test's orders reach the job's thread through a queue, so none is lost however the two
    threads interleave."""

    def __init__(self, name: str, place: int) -> None:
        self.place = place
        self.orders: queue.SimpleQueue = queue.SimpleQueue()  # a later place, or ("end", admitted)
        self.job = Job(work=self._work, cancel=Cancel(), sink=LoopSink(asyncio.get_running_loop()))
        self.name = name

    def _work(self, emit) -> None:
        emit(Waiting(self.place))
        while True:
            order = self.orders.get(timeout=WAIT_S)
            if isinstance(order, int):
                emit(Waiting(order))
                continue
            break
        if order[1]:
            emit(Admitted(0.0))
            emit(f"{self.name}-output")

    def move_to(self, place: int) -> None:
        self.orders.put(place)

    def end(self, admitted: bool) -> None:
        self.orders.put(("end", admitted))


def test_jobs_the_engine_holds_back_come_first_in_every_position():
    """Three streams: one runs, two are held back by the engine (waiting for memory); a job
    that has no thread yet is behind both of them. As the held jobs are admitted or withdrawn,
    everyone behind moves up, and an admitted job is told nothing more."""
    worker = ModelWorker("writer", depth=4, concurrency=3)
    worker.start()

    async def scenario():
        gate, ran = threading.Event(), []
        running = blocking_job(gate, ran, "running")
        worker.submit(running)
        assert isinstance(await until_started(running), Started)
        first, second = HeldJob("first", 1), HeldJob("second", 2)
        worker.submit(first.job)
        assert [type(i) for i in await next_items(first.job, 2)] == [Started, Queued]
        worker.submit(second.job)
        assert isinstance(await until_started(second.job), Started)
        assert await next_items(second.job, 1) == [Queued(2)]
        assert first.job.position == 1
        queued = quick_job(ran, "queued")
        worker.submit(queued)
        assert await next_items(queued, 1) == [Queued(3)]
        assert worker.waiting == 3

        first.end(admitted=True)  # the engine admits the first: the others move up
        assert await until_ended(first.job) == [Admitted(0.0), "first-output", Ended()]
        second.move_to(1)  # the engine's place for it follows; the worker's rank did already
        assert await next_items(second.job, 1) == [Queued(1)]
        # moved up when the first was admitted, then took the stream the first's end freed
        assert await next_items(queued, 1) == [Queued(2)]
        assert isinstance(await until_started(queued), Started)

        second.end(admitted=False)  # withdrawn while held: it never ran
        assert await until_ended(second.job) == [Ended()]
        assert worker.waiting == 0
        gate.set()
        await until_ended(running)

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()


def test_a_held_job_that_leaves_lets_the_queue_behind_it_move_up():
    """Two streams, both busy (one running, one held back): the queued job is second; when
    the held one is withdrawn, it is told it is first before it takes the free stream."""
    worker = ModelWorker("writer", depth=4, concurrency=2)
    worker.start()

    async def scenario():
        gate, ran = threading.Event(), []
        running = blocking_job(gate, ran, "running")
        worker.submit(running)
        await until_started(running)
        held = HeldJob("held", 1)
        worker.submit(held.job)
        assert (await next_items(held.job, 2))[1] == Queued(1)
        queued = quick_job(ran, "queued")
        worker.submit(queued)
        assert await next_items(queued, 1) == [Queued(2)]

        held.end(admitted=False)
        items = await until_ended(queued)
        assert items[0] == Queued(1) and isinstance(items[1], Started)
        assert items[2:] == ["queued-output", Ended()]
        gate.set()
        await until_ended(running)

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()


def test_a_place_reported_after_the_job_ended_is_ignored():
    """The engine's thread may report a place as the job ends: it must not leave a ghost."""
    worker = ModelWorker("writer", depth=2, concurrency=1)
    worker.start()

    async def scenario():
        late: list = []

        def work(emit):
            late.append(emit)

        job = Job(work=work, cancel=Cancel(), sink=LoopSink(asyncio.get_running_loop()))
        worker.submit(job)
        await until_ended(job)
        late[0](Waiting(1))
        assert worker.waiting == 0
        after = quick_job([], "after")
        worker.submit(after)
        assert isinstance((await until_ended(after))[0], Started)  # no Queued: nobody waits

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()
