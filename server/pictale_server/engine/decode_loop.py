"""The engine's own decode loop: prefill, then one step per token over a static KV cache.

Each model owns one KV buffer for its lifetime, seen through caches of doubling length
(kv_buckets.py): a request runs on the shortest one that holds it, so decode attention reads
only about as many slots as the request can fill. Write counters are reset per request (a
static cache writes at its own counter, not at the positions it is given, so a counter left
over from an earlier request would run past the buffer). A decode step is forward + sampling +
feeding the token back, reading and writing only fixed device buffers, so on CUDA it is
captured as a CUDA graph once per cache length and sampling kind (with or without top-k/top-p)
and replayed; on a CPU the very same step runs eagerly. Which step (reference or fast) is the
engine's choice (decode_choice.py), made once per model and handed in.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import StaticCache

from pictale_server.engine.base import Sampling
from pictale_server.engine.decode_step import DecodeStep
from pictale_server.engine.gpu_memory import release_cached_memory
from pictale_server.engine.kv_buckets import KVBuckets
from pictale_server.engine.request_sampler import RequestSampler, Rewind, SamplerMode
from pictale_server.engine.sampler_vocabulary import SamplerVocabulary
from pictale_server.engine.token_readback import TokenReadback


class ModelRunner(Protocol):
    """How one model family runs a prefill and a single-token decode forward."""

    model: torch.nn.Module

    def prefill(self, inputs: object, cache: StaticCache) -> torch.Tensor:
        """Run the prompt through the model, filling the cache; return (1, vocab) last logits."""

    def decode(
        self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache
    ) -> torch.Tensor:
        """One token (1, 1) at cache slot `position` (1,) → (1, vocab) logits. Graph-safe."""


def cache_write_counters(cache: StaticCache) -> list[torch.Tensor]:
    return [layer.cumulative_length for layer in cache.layers]


_warm_up_streams: dict[torch.device, torch.cuda.Stream] = {}
_warm_up_lock = threading.Lock()


def _warm_up_stream(device: torch.device) -> torch.cuda.Stream:
    """The one stream every graph capture on `device` warms up on. cuBLAS keeps a workspace
    (32 MiB on Hopper) for each stream it has run on, for good: a fresh stream per capture held
    32 MiB per captured graph (0.28 GiB for nine graphs, measured on an H200)."""
    with _warm_up_lock:
        if device not in _warm_up_streams:
            _warm_up_streams[device] = torch.cuda.Stream(device)
        return _warm_up_streams[device]


class CacheNotWritten(RuntimeError):
    """The model's forward did not write the decode loop's KV cache."""


class DecodeLoop:
    """Decodes one request at a time on `runner`'s model with `step` (decode_choice.py), over
    the KV views of `buckets`; on a GPU each step is a replayed CUDA graph, one per (cache
    length, sampler mode: request_sampler.py)."""

    def __init__(
        self,
        runner: ModelRunner,
        buckets: KVBuckets,
        step: DecodeStep,
        *,
        vocab_size: int,
        vocabulary: SamplerVocabulary | None = None,
    ) -> None:
        device = buckets.device
        self.runner = runner
        self.step = step
        self.graphs = device.type == "cuda"
        self.buckets = buckets
        self.cache_tokens = buckets.max_tokens
        self.bucket = self.cache_tokens
        self.cache: StaticCache = buckets.caches[self.cache_tokens]
        self.device = device
        self.vocab_size = vocab_size
        self.sampler = RequestSampler(
            step, vocab_size=vocab_size, context_tokens=self.cache_tokens, device=device, vocabulary=vocabulary
        )
        self.token = self.sampler.token
        self.position = torch.zeros((1,), dtype=torch.int64, device=device)
        self._graphs: dict[tuple[int, SamplerMode], torch.cuda.CUDAGraph] = {}
        self._graph_pool = None
        self._readback = TokenReadback(1, device)  # tokens read while the next step runs (tokens())

    @property
    def mode(self) -> SamplerMode:
        return self.sampler.mode

    @property
    def logits(self) -> torch.Tensor:
        """The last step's logits (1, vocab), float32."""
        return self.sampler.logits

    # -- the step (captured as one CUDA graph on a GPU) ----------------------------------------

    def _step(self) -> None:
        logits = self.step.forward(self.token, self.position, self.cache)
        self.position.add_(1)
        self.sampler.accept(logits)

    # -- per request ---------------------------------------------------------------------------

    def _reset(self, sampling: Sampling, seed: int, prompt_ids: torch.Tensor) -> None:
        self.bucket = self.buckets.length_for(prompt_ids.shape[-1] + sampling.max_tokens)
        self.cache = self.buckets.caches[self.bucket]
        for counter in cache_write_counters(self.cache):
            counter.zero_()
        self.sampler.reset(sampling, seed, prompt_ids)
        self.position.fill_(prompt_ids.shape[-1])

    def _rewind(self, rewind: Rewind) -> None:
        """The answer back to `rewind.index` tokens; the token there sampled again without any
        token banned there (RequestSampler.begin_rewind)."""
        slot = self.sampler.begin_rewind(rewind)
        at = self.sampler.prompt_tokens if slot is None else slot
        self.position.fill_(at)
        for counter in cache_write_counters(self.cache):
            counter.fill_(at)
        if slot is not None:  # the step that wrote the token before, again: its logits are the index's
            self._run_step()
            self.sampler.end_rewind()

    def _capture(self) -> None:
        """Warm up, then capture `_step`. Warm-up mutates state, so it is saved and restored."""
        saved = [t.clone() for t in self._state_tensors()]
        side = _warm_up_stream(self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()  # graphs never replay at once
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._graph_pool, capture_error_mode="thread_local"):
            self._step()
        for tensor, value in zip(self._state_tensors(), saved):
            tensor.copy_(value)
        self._graphs[self.bucket, self.mode] = graph

    def _state_tensors(self) -> list[torch.Tensor]:
        return [self.position, *self.sampler.state_tensors(), *cache_write_counters(self.cache)]

    def _run_step(self) -> None:
        if self.graphs:
            if (self.bucket, self.mode) not in self._graphs:
                self._capture()
            self._graphs[self.bucket, self.mode].replay()
        else:
            self._step()

    def _queue_step(self, index: int) -> None:
        """Launch one step and the copy of its token to pinned host memory (slot index % 2)."""
        self._run_step()
        self._readback.put(index % 2, self.token.view(1))

    def _read_step(self, index: int) -> int:
        return self._readback.take(index % 2)[0]

    @torch.inference_mode()
    def tokens(
        self, inputs: object, prompt_ids: torch.Tensor, sampling: Sampling, seed: int
    ) -> Generator[int, Rewind | None, None]:
        """Yield generated token ids, lazily: each `next()` runs one step.

        The consumer checks its cancel flag between tokens and stops iterating, so a cancelled
        job stops within one step. Yields at most `sampling.max_tokens` answer tokens; a
        `Rewind` sent in (creative mode) takes the answer back and yields the token that
        replaces the one it bans.
        """
        self._reset(sampling, seed, prompt_ids)
        self.sampler.accept_first(self.runner.prefill(inputs, self.cache))
        command = yield int(self.token.item())
        release_cached_memory(self.device)  # the prompt's temporaries (gpu_memory.py)
        answer = 1  # answer tokens yielded
        queued = 0  # steps launched (GPU) whose tokens are not read yet
        while True:
            if command is not None:
                if self.mode != "creative":
                    raise ValueError("rewinds need creative sampling (banned phrases)")
                if queued:
                    torch.cuda.current_stream().synchronize()  # what ran ahead is discarded
                    queued = 0
                self._rewind(command)
                answer = command.index + 1
                command = yield int(self.token.item())
                continue
            if answer >= sampling.max_tokens:
                return
            if self.device.type != "cuda":
                self._run_step()
                answer += 1
                command = yield int(self.token.item())
                continue
            # On a GPU the next step is queued before this step's token is read back: the steps
            # only feed each other through device buffers, so the GPU never waits for the host
            # to stream a token. A consumer that stops early leaves one step to finish unread.
            while queued < 2 and answer + queued < sampling.max_tokens:
                self._queue_step(answer + queued)
                queued += 1
            token = self._read_step(answer)
            queued -= 1
            answer += 1
            command = yield token

    def written_tokens(self) -> int:
        """The cache's own write counter (tests check it stays in step with positions)."""
        return int(cache_write_counters(self.cache)[0].item())

    def check_cache_writes(self, inputs: object, prompt_ids: torch.Tensor) -> None:
        """Decode three greedy tokens and check that the cache's write counter followed them.

        The prefill is the model's own forward, handed the loop's static cache by keyword; a
        transformers release that names that keyword differently takes the cache into its
        `**kwargs` and builds one of its own, and every decode step then attends to an empty
        cache without any error. Loading fails instead (transformers is pinned for this)."""
        sampling = Sampling(max_tokens=3, temperature=0.0)
        for _ in self.tokens(inputs, prompt_ids, sampling, seed=0):
            pass
        expected = prompt_ids.shape[-1] + sampling.max_tokens - 1
        written = self.written_tokens()
        if written != expected:
            raise CacheNotWritten(
                f"the model wrote {written} of {expected} tokens into the decode cache: "
                "is the installed transformers the version pictale pins?"
            )

    def capture_graphs(self, inputs: object, prompt_ids: torch.Tensor) -> None:
        """Capture the decode steps of every cache length now (at load, not in a request):
        one per sampler mode."""
        if not self.graphs:
            return
        for length in self.buckets.lengths:
            for sampling in _one_per_mode(length - prompt_ids.shape[-1]):
                steps = self.tokens(inputs, prompt_ids, sampling, seed=0)
                for _ in zip(range(2), steps):
                    pass
                steps.close()


def _one_per_mode(max_tokens: int) -> list[Sampling]:
    """Settings that select each sampler mode once (plain, ranked, creative)."""
    return [
        Sampling(max_tokens=max_tokens, temperature=0.0),
        Sampling(max_tokens=max_tokens, temperature=1.0, top_p=0.5),
        Sampling(max_tokens=max_tokens, temperature=1.0, presence_penalty=0.1),
    ]
