"""Load and disconnects against one real server: uvicorn on 127.0.0.1, the dev-profile engine.

- Waves of 24 concurrent streaming requests (12 describe, 12 narrate; each model queues at
  most 8 waiting jobs): every request ends in `done` or a plain 429 `queue_full` with
  Retry-After, none hangs, none is lost.
- Memory: after a warm-up wave, two more waves (one with half its clients leaving mid-stream)
  leave the process's resident memory close to where it was, and keep no request's picture,
  run or job alive. Each describe sends a 2400 x 1600 picture (11 MB decoded), so a leak of
  one picture per request shows up as hundreds of megabytes.
- A client that drops mid-stream stops its generation at once: the request decoding beside it
  ends, and the model's batch frees the stream's lane and KV region.

The engine is the dev engine itself, wrapped only to record how each generation ended.
"""

from __future__ import annotations

import ctypes
import gc
import os
import queue
import resource
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import LiveStream, live_server, read_events
from engine_fixtures import dev_cache_dir, dev_model_paths, dev_settings  # noqa: F401
from hostile_samples import data_url
from image_samples import encode, solid
from PIL import Image

from pictale_server.app import create_app
from pictale_server.engine.base import Finished
from pictale_server.engine.loader import load_engine
from pictale_server.runtime.scheduler import Job

STREAMS = 24  # concurrent streaming requests per wave
WAIT_S = 60.0  # bound for any one request; a request still open after it has hung
MAX_GROWTH = 150 * 1024 * 1024  # resident memory growth allowed after the warm-up wave
SHORT = 24  # max_tokens for the load waves
LONG = 700  # max_tokens of a generation that must be stopped; greedy runs it to the limit
VISION_PIXELS = 64 * 28 * 28  # the vision processor's budget here: 64 visual tokens

PICTURE = data_url(encode(solid((40, 110, 170), (2400, 1600)), "PNG"))


class WatchedEngine:
    """The dev engine, unchanged, with a record of how each generation ended, per model."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.endings: dict[str, queue.Queue[Finished]] = {
            "vision": queue.Queue(),
            "writer": queue.Queue(),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def stream_vision(self, image, messages, sampling, cancel, *, admission=None) -> Iterator:
        chunks = self._engine.stream_vision(image, messages, sampling, cancel, admission=admission)
        return self._watch("vision", chunks)

    def stream_writer(self, messages, sampling, cancel, *, admission=None) -> Iterator:
        chunks = self._engine.stream_writer(messages, sampling, cancel, admission=admission)
        return self._watch("writer", chunks)

    def _watch(self, model: str, chunks: Iterator) -> Iterator:
        for chunk in chunks:
            if isinstance(chunk, Finished):
                self.endings[model].put(chunk)
            yield chunk

    def forget_endings(self) -> None:
        for endings in self.endings.values():
            while not endings.empty():
                endings.get_nowait()


@dataclass
class Server:
    url: str
    app: Any
    engine: WatchedEngine


@pytest.fixture(scope="module")
def server(dev_cache_dir, dev_model_paths) -> Iterator[Server]:  # noqa: F811
    # A dropped stream is cancelled once its client has not resumed within the grace; short
    # here, so a generation that must be stopped is stopped early in its 700 tokens.
    settings = dev_settings(dev_cache_dir, max_pixels=VISION_PIXELS, resume_grace_s=0.05)
    engine = load_engine(settings)
    engine.load()
    watched = WatchedEngine(engine)
    app = create_app(watched, settings)
    with live_server(app) as url:
        yield Server(url, app, watched)


# --- waves of concurrent streams -------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    last_event: str | None = None
    code: str | None = None
    retry_after: str | None = None
    dropped: bool = False


def _request(index: int) -> tuple[str, dict[str, Any]]:
    if index % 2:
        return "/v1/narrate", {"instruction": f"Tale number {index}.", "max_tokens": SHORT}
    return "/v1/describe", {"image": PICTURE, "style": "caption", "max_tokens": SHORT}


class Wave:
    """`STREAMS` clients released at once; `drop_every`-th clients leave after their first delta."""

    def __init__(self, url: str, drop_every: int = 0) -> None:
        self.url = url
        self.drop_every = drop_every
        self.outcomes: dict[int, Outcome] = {}
        self.errors: dict[int, str] = {}
        self.open_now = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self._start = threading.Barrier(STREAMS)

    def run(self) -> Wave:
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(STREAMS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + WAIT_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = [i for i, thread in enumerate(threads) if thread.is_alive()]
        assert hung == [], f"requests still open after {WAIT_S:g} s: {hung}"
        return self

    def _opened(self, delta: int) -> None:
        with self._lock:
            self.open_now += delta
            self.most_open = max(self.most_open, self.open_now)

    def _client(self, index: int) -> None:
        path, body = _request(index)
        drop = bool(self.drop_every) and index % self.drop_every == 0
        try:
            self._start.wait(WAIT_S)
            with httpx.Client(base_url=self.url, timeout=WAIT_S) as client:
                self.outcomes[index] = self._call(client, path, body, drop)
        except (httpx.HTTPError, threading.BrokenBarrierError, ValueError, KeyError) as error:
            self.errors[index] = f"{type(error).__name__}: {error}"

    def _call(self, client: httpx.Client, path: str, body: dict, drop: bool) -> Outcome:
        with client.stream("POST", path, json={**body, "stream": True}) as response:
            if response.status_code != 200:
                response.read()
                return Outcome(
                    response.status_code,
                    code=response.json()["error"]["code"],
                    retry_after=response.headers.get("retry-after"),
                )
            self._opened(+1)
            try:
                if drop:  # leaving the `with` block closes the connection mid-stream
                    return Outcome(200, _read_until_delta(response), dropped=True)
                events = read_events(response)
                return Outcome(200, events[-1].name if events else None)
            finally:
                self._opened(-1)


def _read_until_delta(response: httpx.Response) -> str | None:
    """Reads up to the first delta ("delta"), or to the end: then the last event's name."""
    last = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            last = line.removeprefix("event: ")
            if last == "delta":
                break
    return last


def check_wave(wave: Wave) -> tuple[int, int]:
    """Every request answered as the contract allows; returns (streamed, refused)."""
    assert wave.errors == {}
    assert sorted(wave.outcomes) == list(range(STREAMS)), "a request was lost"
    streamed = refused = 0
    for index, outcome in wave.outcomes.items():
        if outcome.status == 200:
            expected = "delta" if outcome.dropped else "done"
            assert outcome.last_event in (expected, "done"), (index, outcome)
            streamed += 1
        else:
            assert (outcome.status, outcome.code) == (429, "queue_full"), (index, outcome)
            assert outcome.retry_after is not None and int(outcome.retry_after) >= 1
            refused += 1
    return streamed, refused


def settle(server: Server) -> None:
    """Wait (bounded) until every run has ended and no job waits; fail if that never comes."""
    services = server.app.state.services
    deadline = time.monotonic() + WAIT_S
    while services.runs.live() or any(services.scheduler.queue_sizes().values()):
        assert time.monotonic() < deadline, "runs still live after the wave"
        time.sleep(0.02)
    health = httpx.get(f"{server.url}/health", timeout=WAIT_S).json()
    assert health["status"] == "ok"
    assert health["queue"] == {"vision": 0, "writer": 0}


def _release_free_heap() -> None:
    """Ask glibc to hand freed heap pages back, so resident memory reflects live data only."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as is
        pass


def resident_bytes() -> int:
    """The process's resident memory now (Linux); elsewhere its peak, which a leak also grows."""
    gc.collect()
    _release_free_heap()
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), kind))


def test_waves_of_concurrent_streams_end_in_done_or_queue_full_and_leave_no_trace(
    server: Server,
) -> None:
    figures = []
    warm_up = Wave(server.url).run()
    figures.append(("warm-up", *check_wave(warm_up), warm_up.most_open))
    settle(server)
    gc.collect()
    baseline = resident_bytes()
    pictures, jobs = live(Image.Image), live(Job)

    for name, wave in (("full", Wave(server.url)), ("half drop", Wave(server.url, drop_every=2))):
        wave.run()
        figures.append((name, *check_wave(wave), wave.most_open))
        settle(server)
    gc.collect()
    growth = resident_bytes() - baseline

    print(f"\nwaves of {STREAMS} (streamed, refused, most open at once): {figures}")
    print(
        f"resident memory: {baseline / 2**20:.0f} MiB after warm-up, {growth / 2**20:+.0f} MiB after"
    )
    assert max(most_open for *_, most_open in figures) > 1, "the streams never overlapped"
    assert growth < MAX_GROWTH
    assert live(Image.Image) <= pictures
    assert live(Job) <= jobs


GREEDY = {"temperature": 0, "repetition_penalty": 0.5}  # loops without an end token


@pytest.mark.parametrize(
    ("path", "model", "long_body", "next_body"),
    [
        (
            "/v1/narrate",
            "writer",
            {"instruction": "A lighthouse.", "max_tokens": LONG, **GREEDY},
            {"instruction": "Next.", "max_tokens": 8},
        ),
        (
            "/v1/describe",
            "vision",
            {"image": PICTURE, "max_tokens": LONG, **GREEDY},
            {"image": PICTURE, "max_tokens": 8},
        ),
    ],
)
def test_a_client_that_drops_mid_stream_stops_its_generation_and_frees_the_model(
    server: Server, path: str, model: str, long_body: dict, next_body: dict
) -> None:
    settle(server)
    server.engine.forget_endings()
    with httpx.Client(base_url=server.url, timeout=WAIT_S) as client:
        dropped = LiveStream(client, path, long_body)
        dropped.until_name("delta")
        behind = LiveStream(client, path, next_body)  # decodes beside it: each model batches

        dropped.close()
        endings = [server.engine.endings[model].get(timeout=WAIT_S)]
        if endings[0].finish_reason != "cancelled":  # the short one beside it may end first
            endings.append(server.engine.endings[model].get(timeout=WAIT_S))
        ending = next((e for e in endings if e.finish_reason == "cancelled"), endings[0])
        assert ending.finish_reason == "cancelled", f"the generation was not stopped: {endings}"
        assert ending.output_tokens < LONG // 4

        events = behind.rest()
        assert [e.data for e in events if e.name == "status"][-1] == {"state": "running"}
        assert events[-1].name == "done"
        assert events[-1].data["finish_reason"] in ("stop", "length")

    runs = server.app.state.services.runs
    deadline = time.monotonic() + WAIT_S
    while runs.get(dropped.run_id).state != "cancelled":
        assert time.monotonic() < deadline, runs.get(dropped.run_id).state
        time.sleep(0.01)
    batch = server.engine.loaded(model).loop
    while batch.busy_lanes or batch.pool.free_tokens != batch.pool.capacity:
        assert time.monotonic() < deadline, (batch.busy_lanes, batch.pool.free_tokens)
        time.sleep(0.01)
