"""The engine's own decode loop: prefill, then one step per token over a static KV cache.

Each model owns one KV buffer for its lifetime, seen through caches of doubling length
(kv_buckets.py): a request runs on the shortest one that holds it, so decode attention reads
only about as many slots as the request can fill. Write counters are reset per request (a
static cache writes at its own counter, not at the positions it is given, so a counter left
over from an earlier request would run past the buffer). A decode step is forward + sampling +
feeding the token back, reading and writing only fixed device buffers, so on CUDA it is
captured once per cache length as a CUDA graph and replayed (`decode_path="graph"`); the eager
path runs the very same step function.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

import torch
from transformers import StaticCache

from pictale_server.engine.base import Sampling
from pictale_server.engine.gpu_memory import release_cached_memory
from pictale_server.engine.kv_buckets import KVBuckets
from pictale_server.engine.sampling import SamplingTensors, sample_next_token, uniform_noise

DecodePath = Literal["graph", "eager"]


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


class DecodeLoop:
    def __init__(
        self,
        runner: ModelRunner,
        *,
        config,
        cache_tokens: int,
        vocab_size: int,
        device: torch.device,
        path: DecodePath,
        fused_decode_ops: bool = False,
    ) -> None:
        if path == "graph" and device.type != "cuda":
            path = "eager"
        self.runner = runner
        self.path: DecodePath = path
        self.cache_tokens = cache_tokens
        self.buckets = KVBuckets(config, cache_tokens, dtype=runner.model.dtype, device=device)
        self._noise = uniform_noise
        if fused_decode_ops and device.type == "cuda":
            from pictale_server.kernels.fused_layers import fuse_cache_writes, fused_ops_unavailable

            for cache in self.buckets.caches.values():
                fuse_cache_writes(cache)
            if not fused_ops_unavailable(device):  # the sampler's noise in one launch, same bits
                from pictale_server.kernels.sampling_noise import uniform_noise as noise_kernel

                self._noise = noise_kernel
        self.bucket = cache_tokens
        self.cache: StaticCache = self.buckets.caches[cache_tokens]
        self.device = device
        self.params = SamplingTensors.allocate(device)
        self.token = torch.zeros((1, 1), dtype=torch.int64, device=device)
        self.position = torch.zeros((1,), dtype=torch.int64, device=device)
        self.seen = torch.zeros((1, vocab_size), dtype=torch.bool, device=device)
        self.logits = torch.zeros((1, vocab_size), dtype=torch.float32, device=device)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._graph_pool = None

    # -- the step (captured as one CUDA graph on the graph path) -------------------------------

    def _accept(self, logits: torch.Tensor) -> None:
        """Sample from `logits` and feed the token back into the step's input buffers."""
        self.logits.copy_(logits)
        next_token = sample_next_token(logits, self.seen, self.params, self._noise)
        self.seen.scatter_(1, next_token.view(1, 1), True)
        self.token.copy_(next_token.view(1, 1))
        self.params.step.add_(1)

    def _step(self) -> None:
        logits = self.runner.decode(self.token, self.position, self.cache)
        self.position.add_(1)
        self._accept(logits)

    # -- per request ---------------------------------------------------------------------------

    def _reset(self, sampling: Sampling, seed: int, prompt_ids: torch.Tensor) -> None:
        self.bucket = self.buckets.length_for(prompt_ids.shape[-1] + sampling.max_tokens)
        self.cache = self.buckets.caches[self.bucket]
        for counter in cache_write_counters(self.cache):
            counter.zero_()
        self.params.assign(sampling, seed)
        self.seen.zero_()
        self.seen[0, prompt_ids.view(-1).to(self.device)] = True
        self.position.fill_(prompt_ids.shape[-1])

    def _capture(self) -> None:
        """Warm up, then capture `_step`. Warm-up mutates state, so it is saved and restored."""
        saved = [t.clone() for t in self._state_tensors()]
        side = torch.cuda.Stream()
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
        self._graphs[self.bucket] = graph

    def _state_tensors(self) -> list[torch.Tensor]:
        p = self.params
        return [
            self.token,
            self.position,
            self.seen,
            self.logits,
            p.step,
            *cache_write_counters(self.cache),
        ]

    def _run_step(self) -> None:
        if self.path == "graph":
            if self.bucket not in self._graphs:
                self._capture()
            self._graphs[self.bucket].replay()
        else:
            self._step()

    @torch.inference_mode()
    def tokens(
        self, inputs: object, prompt_ids: torch.Tensor, sampling: Sampling, seed: int
    ) -> Iterator[int]:
        """Yield generated token ids, lazily: each `next()` runs one step.

        The consumer checks its cancel flag between tokens and stops iterating, so a cancelled
        job stops within one step. Yields at most `sampling.max_tokens` tokens.
        """
        self._reset(sampling, seed, prompt_ids)
        self._accept(self.runner.prefill(inputs, self.cache))
        yield int(self.token.item())
        release_cached_memory(self.device)  # the prompt's temporaries (gpu_memory.py)
        for _ in range(sampling.max_tokens - 1):
            self._run_step()
            yield int(self.token.item())

    def written_tokens(self) -> int:
        """The cache's own write counter (tests check it stays in step with positions)."""
        return int(cache_write_counters(self.cache)[0].item())

    def capture_graphs(self, inputs: object, prompt_ids: torch.Tensor) -> None:
        """Capture the decode step of every cache length now (at load, not in a request)."""
        if self.path != "graph":
            return
        for length in self.buckets.lengths:
            sampling = Sampling(max_tokens=length - prompt_ids.shape[-1], temperature=0.0)
            steps = self.tokens(inputs, prompt_ids, sampling, seed=0)
            for _ in zip(range(2), steps):
                pass
            steps.close()
