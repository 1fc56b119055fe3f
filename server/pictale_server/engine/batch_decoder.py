"""Continuous batching: many sequences of one model decode together, joining and leaving
between steps, on one thread that owns the model's decode state. Both models decode this way,
each in a batch of its own (the writer's lanes and the vision model's).

Each sequence holds a lane (a row of the batched step's fixed input buffers) and a region of
the KV pool (kv_pool.py), reserved for its worst case at admission: admission is by memory,
first come first served, and a request whose region does not fit waits for one to be freed.
While the first in line finds no region, every waiting sequence is told its place in line
(its `admission`, engine/base.py), again whenever the place changes, and each is told when it
is admitted; a waiting sequence whose request is cancelled leaves the line at once (`withdraw`).
One loop iteration:

1. settle: closed sequences give back their lane and region; rewinds (banned phrases) are
   applied to their lane's state;
2. admit the next waiting sequence when a lane and a region are free, and run ONE slice of its
   prompt (PREFILL_SLICE_TOKENS; a picture's prompt is one slice: runners.QwenVLRunner): a
   running stream never waits for more than one slice; tell the waiting sequences whose place
   changed;
3. launch one decode step over the lanes 0..R-1 (R the smallest bucket holding every busy
   lane): on the fast path one forward for all rows (a CUDA graph per (R, largest attention
   chunk, NF4 kernel)), on the reference path one forward per row; then each lane samples with
   its own settings (request_sampler.py) and the step's tokens are copied to the host;
4. deliver the PREVIOUS step's tokens to their consumers (batch_sequence.py). Steps feed each
   other only through device buffers, so the next step is queued before the host waits for
   this one: the GPU never idles while the host hands out tokens and admits requests. Which
   lanes a step takes is decided on the host before the step in flight is read (a lane's
   `pending` token counts towards its max_tokens and its reader's backlog); a rewind that
   meets a token in flight discards it by its epoch.

Batch invariance, for requests with `deterministic`: a step on tensor cores computes a row the
same way whatever rows share it (the tensor-core NF4 kernel's launch does not depend on the
rows, attention programs follow the row's own region, lm_head always runs LOGIT_ROWS rows,
norms and sampling are per row), and a prompt is always prefilled in the same slices. Steps of
3 rows and more run on tensor cores anyway (faster there); a step of 1-2 rows does when a
deterministic request is in it, and otherwise runs the CUDA-core kernel, faster there, whose
sums differ. So a deterministic request gets the same tokens alone and in a batch; the GPU
suite checks it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from transformers import StaticCache

from pictale_server.engine.base import Admission, Cancel, Sampling
from pictale_server.engine.batch_sequence import Ended, Sequence, stream_tokens
from pictale_server.engine.decode_step import DecodeStep
from pictale_server.engine.fast_path.written_step import LOGIT_ROWS, RowRegions
from pictale_server.engine.gpu_memory import prepare_thread, release_cached_memory, warm_up_stream
from pictale_server.engine.kv_pool import PAGE_TOKENS, KVPool, cache_write_counters
from pictale_server.engine.request_sampler import RequestSampler, Rewind, SamplerMode, SamplerRows
from pictale_server.engine.runners import ModelRunner
from pictale_server.engine.sampler_vocabulary import SamplerVocabulary
from pictale_server.engine.token_readback import TokenReadback
from pictale_server.kernels.attention_chunks import chunk_for

logger = logging.getLogger("pictale.engine")

LANE_BUCKETS = (1, 2, 4, 8, 16)  # rows a step runs: one captured graph each (per chunk)
MAX_LANES = LANE_BUCKETS[-1]
assert MAX_LANES <= LOGIT_ROWS
PREFILL_SLICE_TOKENS = 512  # prompt tokens prefilled between two decode steps
# A lane whose reader has this many tokens unread sits steps out until it catches up: a
# cancelled or slow stream costs at most this many tokens of decoding past what it read.
RUN_AHEAD_TOKENS = 4


class CacheNotWritten(RuntimeError):
    """The model's forward did not write the decode cache it was handed."""


@dataclass
class BatchStats:
    """What the batch did since it started (benchmarks and /health read it)."""

    steps: int = 0
    rows: int = 0  # sum over steps of the sequences each step decoded
    # The longest time between two steps' tokens while streams kept decoding: one step, plus
    # whatever ran between (a prompt slice, an admission).
    longest_stall_s: float = 0.0
    _last_delivery: float | None = None


@dataclass(frozen=True)
class InFlight:
    """A launched step whose tokens the host has not read: which sequence each lane held and
    in which epoch, and where its tokens land on the host."""

    lanes: tuple[tuple[int, Sequence, int], ...]  # (lane, sequence, epoch at launch)
    slot: int  # its slot of the token readback (and of the host masks)


def _report(tell, *args) -> None:
    """Call a request's listener; what it raises is logged, and never stops the batch."""
    try:
        tell(*args)
    except Exception:  # noqa: BLE001
        logger.exception("telling a request where it stands failed")


_started: weakref.WeakSet[BatchDecoder] = weakref.WeakSet()


@atexit.register
def _stop_started_batches() -> None:
    """Stop every batch's thread before the interpreter exits: a daemon thread still launching
    GPU work while CUDA is torn down can abort the process (a benchmark's run that had written
    its results ended in SIGABRT once)."""
    for decoder in list(_started):
        decoder.stop()


def lane_bucket(rows: int) -> int:
    for bucket in LANE_BUCKETS:
        if rows <= bucket:
            return bucket
    raise ValueError(f"a step takes at most {MAX_LANES} rows, not {rows}")


class BatchDecoder:
    def __init__(
        self,
        runner: ModelRunner,
        pool: KVPool,
        step: DecodeStep,
        *,
        lanes: int,
        vocab_size: int,
        context_tokens: int,
        vocabulary: SamplerVocabulary | None = None,
        name: str,
    ) -> None:
        if not 1 <= lanes <= MAX_LANES:
            raise ValueError(f"lanes: 1..{MAX_LANES}, not {lanes}")
        device = pool.device
        self.name = name  # the model's, in logs and errors
        self.runner = runner
        self.pool = pool
        self.step = step
        self.device = device
        self.lanes = lanes
        self.vocab_size = vocab_size
        self.context_tokens = context_tokens
        self.buckets = LANE_BUCKETS[: LANE_BUCKETS.index(lane_bucket(lanes)) + 1]
        rows = self.buckets[-1]
        scratch = pool.scratch
        # The batched step's inputs: row i is lane i; a lane no sequence holds points at scratch.
        self.sampling = SamplerRows.allocate(rows, vocab_size, device)
        self.token = self.sampling.token
        self.position = torch.zeros((rows,), dtype=torch.int64, device=device)
        self.first = torch.full((rows,), scratch.start, dtype=torch.int64, device=device)
        self.chunk = torch.full((rows,), scratch.chunk, dtype=torch.int64, device=device)
        # Per lane, for the step being launched: [0] 1 where the lane steps (its position moves
        # on), [1] 1 where its request samples in the batch's one sampler launch (plain mode).
        self.masks = torch.zeros((2, rows), dtype=torch.int64, device=device)
        self.moving = self.masks[0]
        self._masked: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # host copy of `masks`
        self._chunks = [scratch.chunk] * rows  # host copy of `chunk`
        self.samplers = [
            RequestSampler(
                step, vocab_size=vocab_size, context_tokens=context_tokens, device=device,
                vocabulary=vocabulary, rows=self.sampling, row=i,
            )
            for i in range(lanes)
        ]
        self._lanes: list[Sequence | None] = [None] * lanes
        self._caches: list[StaticCache | None] = [None] * lanes  # each lane's region (reference decode)
        self._waiting: deque[Sequence] = deque()
        self._prefilling: tuple[Sequence, Iterator[torch.Tensor | None]] | None = None
        self._head_blocked = False  # the first waiting sequence found no region: wait for a release
        self._places_stale = False  # the line changed: tell the waiting sequences their places
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.graphs = device.type == "cuda" and step.batched
        # (rows, largest attention chunk, tensor cores) -> the forward's graph
        self._graphs: dict[tuple[int, int, bool], torch.cuda.CUDAGraph] = {}
        self._graph_pool = None
        # The batched step's logits land here, whichever graph made them: a lane that samples on
        # its own (ranked, creative) replays one captured sampler per (lane, mode) over its row.
        self.step_logits = torch.zeros((rows, vocab_size), dtype=runner.model.dtype, device=device)
        self._sampler_graphs: dict[tuple[int, SamplerMode], torch.cuda.CUDAGraph] = {}
        self._sampler_pool = None
        # Two steps' worth on the host (one being read while the next is copied): their tokens,
        # and the `masks` that went up with them.
        self._readback = TokenReadback(rows, device)
        self._host_masks = torch.zeros((2, 2, rows), dtype=torch.int64, pin_memory=device.type == "cuda")
        self._in_flight: InFlight | None = None
        self._launched = 0
        self.stats = BatchStats()

    # -- the consumer's side ---------------------------------------------------------------------

    @property
    def cache_tokens(self) -> int:
        """The most tokens one request's prompt and answer may hold together."""
        return self.context_tokens

    @property
    def logits(self) -> torch.Tensor:
        """Lane 0's last sampled logits (1, vocab): the last step of a request that ran alone
        (tests and benchmarks compare them)."""
        return self.samplers[0].logits

    def tokens(
        self,
        inputs: object,
        prompt_ids: torch.Tensor,
        sampling: Sampling,
        seed: int,
        *,
        cancel: Cancel | None = None,
        admission: Admission | None = None,
    ):
        """Generated token ids of one request (a Rewind may be sent in: batch_sequence.py); the
        request joins the batch at the first `next()`. `inputs` is the prompt as the runner
        takes it (runners.py), `prompt_ids` its token ids. `admission` hears the request's place
        while it waits for memory and its admission; `cancel` set while it waits takes it out of
        the line (it then yields no token)."""
        worst_case = prompt_ids.shape[-1] + sampling.max_tokens
        if worst_case > self.context_tokens or not self.pool.fits_alone(worst_case):
            raise ValueError(f"{prompt_ids.shape[-1]} + {sampling.max_tokens} tokens exceed the context")
        ids = prompt_ids.detach().view(1, -1).cpu()
        sequence = Sequence(inputs, ids, sampling, seed, cancel=cancel, admission=admission)
        return stream_tokens(sequence, self)

    def submit(self, sequence: Sequence) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"{self.name}'s batch has stopped")
            self._start_locked()
            self._waiting.append(sequence)
            self._places_stale = True  # behind a blocked head it waits, and is told so
            self._cond.notify_all()

    def withdraw(self, sequence: Sequence) -> None:
        """Take a sequence whose request was cancelled out of the line; no-op once admitted
        (its reader then stops between two tokens). Its reader gets the end of its tokens, the
        sequences behind it are told their new places, and the new first in line may fit."""
        with self._cond:
            try:
                self._waiting.remove(sequence)
            except ValueError:
                return
            self._head_blocked = False
            self._places_stale = True
            self._cond.notify_all()
        sequence.out.put(Ended(sequence.epoch))

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @property
    def busy_lanes(self) -> int:
        with self._cond:
            return sum(sequence is not None for sequence in self._lanes)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until no lane is held and nothing waits (a stream that ended leaves at the decoder's
        next loop): graph capture at load must not meet the decoder's own GPU work."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                idle = self._in_flight is None and self._prefilling is None
                if idle and not self._waiting and all(s is None for s in self._lanes):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}'s batch did not go idle")
            time.sleep(0.005)

    # -- the thread ------------------------------------------------------------------------------

    def _start_locked(self) -> None:
        _started.add(self)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"pictale-batch ({self.name})", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _has_work_locked(self) -> bool:
        if self._in_flight is not None or self._prefilling is not None or self._places_stale:
            return True
        if self._waiting and not self._head_blocked:
            return True
        for sequence in self._lanes:
            if sequence is None:
                continue
            if sequence.closed.is_set() or not sequence.commands.empty():
                return True
            if self._stepping(sequence):
                return True
        return any(sequence.closed.is_set() for sequence in self._waiting)

    @staticmethod
    def _stepping(sequence: Sequence) -> bool:
        """Prefilled, short of max_tokens with its token in flight counted (or rewound), and
        read up to RUN_AHEAD_TOKENS, that token counted too."""
        if sequence.region is None:
            return False
        made = sequence.answer + sequence.pending
        if not (sequence.rewinding or (sequence.answer > 0 and made < sequence.sampling.max_tokens)):
            return False
        # The flag is raised before the queue is counted: a reader that takes a token after the
        # count sees it raised and wakes the decoder (batch_sequence.stream_tokens).
        sequence.waits_for_reader = True
        sequence.waits_for_reader = sequence.out.qsize() + sequence.pending >= RUN_AHEAD_TOKENS
        return not sequence.waits_for_reader

    def _loop(self) -> None:
        prepare_thread(self.device)
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._stopping and not self._has_work_locked():
                        self._cond.wait()
                    if self._stopping:
                        break
                try:
                    self._tick()
                except Exception as exc:  # noqa: BLE001 - no reader may wait for a thread that died
                    logger.exception("%s's batch failed", self.name)
                    self._fail_everything(exc)
            self._fail_everything(RuntimeError(f"{self.name}'s batch stopped"))

    def _tick(self) -> None:
        self._settle()
        self._admit()
        self._tell_places()
        if self._prefilling is not None:
            self._prefill_slice()
        stepping = [lane for lane, s in enumerate(self._lanes) if s is not None and self._stepping(s)]
        previous, launched = self._in_flight, None
        if stepping:
            held = [(lane, self._lanes[lane]) for lane in stepping]
            try:
                launched = self._launch_step(stepping)
            except Exception as exc:  # noqa: BLE001 - every stream of the step learns of it
                logger.exception("a batched decode step failed")
                self._settle_failed_launch()
                self._fail_sequences(held, exc)
        if previous is not None:
            try:
                self._deliver_step(previous)
            except Exception as exc:  # noqa: BLE001 - e.g. a CUDA error surfacing at the read
                logger.exception("reading a batched decode step failed")
                # The step queued behind it ran on what it wrote: its tokens are lost with it.
                lost = [*previous.lanes, *(launched.lanes if launched is not None else ())]
                launched = None
                self._fail_sequences([(lane, sequence) for lane, sequence, _ in lost], exc)
        self._in_flight = launched  # only now: until the read above is done, the batch is not idle
        if launched is None and previous is None:
            self.stats._last_delivery = None  # nothing decoding: no stall to count

    def _fail_sequences(self, held: list[tuple[int, Sequence]], error: BaseException) -> None:
        """End these sequences with `error` and free the lanes they still hold: a lane given to
        another sequence since keeps it (that one was in neither failed step)."""
        failed: list[int] = []
        for lane, sequence in held:
            if self._lanes[lane] is sequence and lane not in failed:
                failed.append(lane)
        for lane in failed:
            self._lanes[lane].out.put(Ended(self._lanes[lane].epoch, error))
        for lane in failed:
            self._release(lane)

    def _settle_failed_launch(self) -> None:
        """After a launch raised part way: wait for what it queued (the copy of its masks from
        the pinned ring may still be pending, and no read will wait for it), and send the
        masks up afresh at the next launch."""
        self._masked = ((), ())
        self.masks.zero_()
        if self.device.type == "cuda":
            try:
                torch.cuda.current_stream(self.device).synchronize()
            except Exception:  # noqa: BLE001 - a failed device: the readers learn of it anyway
                logger.exception("waiting for a failed step's work failed")

    # -- joining and leaving ---------------------------------------------------------------------

    def _settle(self) -> None:
        with self._cond:
            closed_waiting = [s for s in self._waiting if s.closed.is_set()]
            for sequence in closed_waiting:
                self._waiting.remove(sequence)
            if closed_waiting:
                self._head_blocked = False  # another request may be first now
                self._places_stale = True
        for lane, sequence in enumerate(self._lanes):
            if sequence is None:
                continue
            if sequence.closed.is_set():
                self._release(lane)
                continue
            while not sequence.commands.empty():
                epoch, rewind = sequence.commands.get()
                try:
                    self._rewind(lane, sequence, epoch, rewind)
                except Exception as exc:  # noqa: BLE001 - e.g. a rewind without creative sampling
                    sequence.out.put(Ended(epoch, exc))

    def _admit(self) -> None:
        if self._prefilling is not None:
            return
        with self._cond:
            if not self._waiting or None not in self._lanes:
                return
            head = self._waiting[0]
            region = self.pool.reserve(head.worst_case_tokens)
            if region is None:
                if not self._head_blocked:
                    self._places_stale = True  # the line now waits for memory: tell it so
                self._head_blocked = True
                return
            self._waiting.popleft()
            self._places_stale = True
            lane = self._lanes.index(None)
            head.region, head.lane = region, lane
            self._lanes[lane] = head
        if head.admission is not None:
            _report(head.admission.admitted)
        cache = self.pool.region_cache(region)
        self._caches[lane] = cache
        sampler = self.samplers[lane]
        sampler.reset(head.sampling, head.seed, head.prompt_ids)
        slices = self.runner.prefill_slices(head.inputs, cache, PREFILL_SLICE_TOKENS, row=lane)
        self._prefilling = (head, slices)

    def _tell_places(self) -> None:
        """Tell each waiting sequence its place in line where it changed. A sequence is told
        once it waits for memory: while the first in line finds no region, every one; after,
        those already told and everyone behind them (they wait behind someone who waits). One
        that waits only for a prefill or a lane to end is admitted without being told."""
        told: list[tuple[Sequence, int]] = []
        with self._cond:
            if not self._places_stale:
                return
            self._places_stale = False
            waits = self._head_blocked
            for place, sequence in enumerate(self._waiting, 1):
                waits = waits or sequence.place is not None
                if waits and sequence.place != place and not sequence.closed.is_set():
                    sequence.place = place
                    told.append((sequence, place))
        # Outside the lock (the listener takes its own), and only ever on this thread: a
        # sequence hears its places in order, and admitted() last.
        for sequence, place in told:
            if sequence.admission is not None:
                _report(sequence.admission.waiting, place)

    def _prefill_slice(self) -> None:
        sequence, slices = self._prefilling
        lane = sequence.lane
        try:
            logits = next(slices)
            if logits is None:
                return
            self._prefilling = None
            self.samplers[lane].accept_first(logits)
        except Exception as exc:  # noqa: BLE001 - the request that brought the prompt learns of it
            self._prefilling = None
            sequence.out.put(Ended(sequence.epoch, exc))
            self._release(lane)
            return
        region = sequence.region
        self.position[lane] = sequence.prompt_tokens
        self.first[lane] = region.start
        self.chunk[lane] = region.chunk
        self._chunks[lane] = region.chunk
        release_cached_memory(self.device)  # the prompt's temporaries (gpu_memory.py)
        self._deliver(lane, sequence, int(self.token[lane, 0]))

    def _release(self, lane: int) -> None:
        """The lane and its region free again (a prefill of its sequence stops); the lane's
        device inputs back to scratch. The bookkeeping comes first and the device writes cannot
        raise out of here: after a CUDA error they fail too, and every other reader must still
        learn of the failure."""
        sequence = self._lanes[lane]
        if self._prefilling is not None and self._prefilling[0] is sequence:
            self._prefilling = None  # its prompt's next slice would write a freed region
        self._caches[lane] = None
        self._chunks[lane] = self.pool.scratch.chunk
        with self._cond:
            self._lanes[lane] = None
            self._head_blocked = False
        if sequence is not None and sequence.region is not None:
            self.pool.release(sequence.region)
            sequence.region = None
        try:
            self.first[lane] = self.pool.scratch.start
            self.chunk[lane] = self.pool.scratch.chunk
            self.position[lane] = 0
        except Exception:  # noqa: BLE001 - a failed device; the readers were told already
            logger.exception("resetting lane %d failed", lane)

    def _rewind(self, lane: int, sequence: Sequence, epoch: int, rewind: Rewind) -> None:
        """The lane back to `rewind.index` answer tokens (RequestSampler.begin_rewind): at the
        answer's start the replacement is sampled from the prefill's logits at once; elsewhere
        the next step recomputes the index from the token before it."""
        sampler = self.samplers[lane]
        if sampler.mode != "creative":  # refused before anything of the lane changes
            raise ValueError("rewinds need creative sampling (banned phrases)")
        sequence.epoch = epoch
        sequence.pending = 0  # a token in flight belongs to the old epoch: it is dropped
        slot = sampler.begin_rewind(rewind)
        at = sequence.prompt_tokens if slot is None else slot
        self.position[lane] = at
        cache = self._caches[lane]
        if cache is not None:
            for counter in cache_write_counters(cache):
                counter.fill_(at)
        if slot is None:
            sequence.answer = 0
            self._deliver(lane, sequence, int(self.token[lane, 0]))
        else:
            sequence.answer = rewind.index
            sequence.rewinding = True

    def _deliver(self, lane: int, sequence: Sequence, token: int) -> None:
        sequence.out.put((sequence.epoch, token))
        sequence.answer += 1
        if sequence.answer >= sequence.sampling.max_tokens:
            # At max_tokens the lane stops stepping (`_stepping`) but keeps its region until
            # its reader closes: a rewind may still come.
            sequence.out.put(Ended(sequence.epoch))

    def _fail_everything(self, error: BaseException) -> None:
        with self._cond:
            waiting, self._waiting = list(self._waiting), deque()
        for sequence in waiting:
            sequence.out.put(Ended(sequence.epoch, error))
        self._prefilling = None
        self._in_flight = None
        held = [lane for lane, sequence in enumerate(self._lanes) if sequence is not None]
        for lane in held:
            self._lanes[lane].out.put(Ended(self._lanes[lane].epoch, error))
        for lane in held:
            self._release(lane)

    # -- the step --------------------------------------------------------------------------------

    def _launch_step(self, stepping: list[int]) -> InFlight:
        """Queue one step over `stepping` (forward, sampling, each token fed back into its
        lane) and the copy of its tokens to the host; nothing here waits for the GPU."""
        rows = lane_bucket(stepping[-1] + 1)
        if self.step.batched:
            deterministic = any(self._lanes[lane].sampling.deterministic for lane in stepping)
            logits = self._rows_logits(rows, self.step.tensor_cores_for(rows, deterministic))
            per_lane = {}
        else:
            per_lane = {
                lane: self.runner.decode(
                    self.token[lane : lane + 1], self.position[lane : lane + 1], self._caches[lane], row=lane
                )
                for lane in stepping
            }
        slot = self._launched % 2
        self._launched += 1
        # Plain-mode lanes sample in one launch on a batched step; the others one by one.
        together = [lane for lane in stepping if self.samplers[lane].mode == "plain"] if self.step.batched else []
        self._set_masks(stepping, together, slot)
        self.position[:rows].add_(self.moving[:rows])  # only lanes that stepped move on
        if together:
            self.step.sample_rows(logits, self.sampling, self.masks[1, :rows])
        lanes = []
        for lane in stepping:
            sequence = self._lanes[lane]
            sampler = self.samplers[lane]
            if lane in per_lane:
                sampler.accept(per_lane[lane])
            elif lane not in together:
                self._sample_lane(lane)
            if sequence.rewinding:
                sampler.end_rewind()
                sequence.rewinding = False
            sequence.pending += 1
            lanes.append((lane, sequence, sequence.epoch))
        self._readback.put(slot, self.token[:rows, 0])
        self.stats.steps += 1
        self.stats.rows += len(stepping)
        return InFlight(tuple(lanes), slot)

    def _deliver_step(self, step: InFlight) -> None:
        """Wait for a launched step and hand each token to its sequence, unless a rewind has
        moved the sequence to another epoch since (the token was made for the old one)."""
        tokens = self._readback.take(step.slot)
        now = time.perf_counter()
        if self.stats._last_delivery is not None:
            self.stats.longest_stall_s = max(self.stats.longest_stall_s, now - self.stats._last_delivery)
        self.stats._last_delivery = now
        for lane, sequence, epoch in step.lanes:
            if sequence.epoch != epoch:
                continue
            sequence.pending -= 1
            self._deliver(lane, sequence, tokens[lane])

    def _set_masks(self, stepping: list[int], together: list[int], slot: int) -> None:
        """`masks` for this step: a lane that sits a step out (its reader behind, at max_tokens,
        prefilling) keeps its position and its token. They go up from pinned memory without
        waiting for the step in flight; the host row is written again two launches on, after
        this step's tokens were read."""
        wanted = (tuple(stepping), tuple(together))
        if wanted != self._masked:
            host = self._host_masks[slot]
            host.zero_()
            for row, lanes in enumerate(wanted):
                host[row, list(lanes)] = 1
            self.masks.copy_(host, non_blocking=True)
            self._masked = wanted

    def _regions(self, rows: int, max_chunk: int) -> RowRegions:
        return RowRegions(self.first[:rows], self.chunk[:rows], max_chunk)

    def _rows_logits(self, rows: int, tensor_cores: bool) -> torch.Tensor:
        """The batched forward over lanes 0..rows-1, its logits in `step_logits`."""
        max_chunk = max(self._chunks[:rows])
        if not self.graphs:
            self._forward(rows, self._regions(rows, max_chunk), tensor_cores)
        else:
            key = (rows, max_chunk, tensor_cores)
            if key not in self._graphs:
                self._capture(*key)
            self._graphs[key].replay()
        return self.step_logits[:rows]

    def _forward(self, rows: int, regions: RowRegions, tensor_cores: bool) -> None:
        logits = self.step.rows(self.token[:rows], self.position[:rows], regions, self.pool.cache, tensor_cores)
        self.step_logits[:rows].copy_(logits)

    def _sample_lane(self, lane: int) -> None:
        """A lane that samples on its own (ranked or creative mode) from its row of
        `step_logits`: on a GPU one replayed graph, not the tens of small launches DRY, XTC and
        the penalties take (eager, they cost a lone creative stream ~5 % of its speed)."""
        sampler = self.samplers[lane]
        if not self.graphs:
            sampler.accept(self.step_logits[lane : lane + 1])
            return
        key = (lane, sampler.mode)
        if key not in self._sampler_graphs:
            self._capture_sampler(lane)
        self._sampler_graphs[key].replay()

    def _capture_sampler(self, lane: int) -> None:
        """Capture the lane's sampler in its current mode; what the warm-up changes of the
        lane's state is saved and restored around it."""
        sampler = self.samplers[lane]
        logits = self.step_logits[lane : lane + 1]
        saved = [tensor.clone() for tensor in sampler.state_tensors()]
        if self._sampler_pool is None:
            self._sampler_pool = torch.cuda.graph_pool_handle()  # samplers never replay at once
        graph = self._captured(lambda: sampler.accept(logits), self._sampler_pool)
        for tensor, value in zip(sampler.state_tensors(), saved, strict=True):
            tensor.copy_(value)
        self._sampler_graphs[lane, sampler.mode] = graph

    def _capture(self, rows: int, max_chunk: int, tensor_cores: bool) -> None:
        """Capture the forward over `rows` lanes. It writes the cache at each lane's current
        slot what the lane's next step writes there anyway."""
        regions = self._regions(rows, max_chunk)
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()  # graphs never replay at once
        graph = self._captured(lambda: self._forward(rows, regions, tensor_cores), self._graph_pool)
        self._graphs[rows, max_chunk, tensor_cores] = graph

    def _captured(self, work: Callable[[], None], pool) -> torch.cuda.CUDAGraph:
        """`work` run twice on the warm-up stream (kernels compiled and tuned, workspaces
        allocated), then captured into `pool`."""
        side = warm_up_stream(self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                work()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            work()
        return graph

    # -- at load ---------------------------------------------------------------------------------

    def check_cache_writes(self, inputs: object, prompt_ids: torch.Tensor) -> None:
        """Prefill a prompt into a region and check that the region's write counter followed.

        The prefill is the model's own forward, handed the region's static cache by keyword; a
        transformers release that names that keyword differently takes the cache into its
        `**kwargs` and builds one of its own, and every decode step then attends to an empty
        cache without any error. Loading fails instead (transformers is pinned for this)."""
        self.wait_idle()
        region = self.pool.reserve(prompt_ids.shape[-1])
        try:
            cache = self.pool.region_cache(region)
            with torch.inference_mode():
                self.runner.prefill(inputs, cache)
            written = int(cache_write_counters(cache)[0].item())
        finally:
            self.pool.release(region)
        if written != prompt_ids.shape[-1]:
            raise CacheNotWritten(
                f"the model wrote {written} of {prompt_ids.shape[-1]} tokens into the decode cache: "
                "is the installed transformers the version pictale pins?"
            )

    def warm_samplers(self, inputs: object, prompt_ids: torch.Tensor) -> None:
        """Two tokens in each sampler mode (plain, ranked, creative), so their kernels compile
        at load, not in a request; on a GPU, then every lane's captured sampler of the modes
        that sample alone."""
        modes = (
            Sampling(max_tokens=2, temperature=0.0),
            Sampling(max_tokens=2, temperature=1.0, top_p=0.5),
            Sampling(max_tokens=2, temperature=1.0, presence_penalty=0.1),
        )
        for sampling in modes:
            for _ in self.tokens(inputs, prompt_ids, sampling, seed=0):
                pass
        if not self.graphs:
            return
        self.wait_idle()
        with torch.inference_mode():
            for sampling in modes[1:]:
                for lane, sampler in enumerate(self.samplers):
                    sampler.reset(sampling, 0, prompt_ids)
                    if (lane, sampler.mode) not in self._sampler_graphs:
                        self._capture_sampler(lane)

    def capture_graphs(self) -> None:
        """Capture the batched step for every lane bucket, attention chunk and kernel choice now
        (at load, not in a request): the chunks of every region length the context allows."""
        if not self.graphs:
            return
        self.wait_idle()
        chunks = sorted({chunk_for(length) for length in range(PAGE_TOKENS, self.context_tokens + PAGE_TOKENS, PAGE_TOKENS)})
        # Each bucket's kernels, and a deterministic request's where they differ from them.
        kernels = {(rows, self.step.tensor_cores_for(rows, deterministic)) for rows in self.buckets for deterministic in (False, True)}
        with torch.inference_mode():
            for rows, tensor_cores in sorted(kernels):
                for max_chunk in chunks:
                    if (rows, max_chunk, tensor_cores) not in self._graphs:
                        self._capture(rows, max_chunk, tensor_cores)
