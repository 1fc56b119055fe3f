"""Many streams at once through one model's batch (engine/batch_decoder.py), timed per token:
what engine_bench.py's concurrency phase reports for each number of streams.

Each stream reads token ids straight from the batch (random weights sample ids the small
tokenizer cannot spell, so text chunks would be held back and could not be timed).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

import torch


@dataclass
class StreamTiming:
    submitted: float
    first: float | None = None
    token_times: list[float] = field(default_factory=list)

    @property
    def ttft_s(self) -> float:
        return (self.first or self.submitted) - self.submitted

    @property
    def decode_tok_s(self) -> float:
        """Tokens after the first over the time from the first to the last."""
        if len(self.token_times) < 2:
            return 0.0
        return (len(self.token_times) - 1) / (self.token_times[-1] - self.token_times[0])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_streams(batch, prompts: list[tuple[object, torch.Tensor]], sampling_for) -> dict:
    """All `prompts` (each as the runner takes it, and its token ids) submitted at once, one
    thread each; their timings summed up."""
    timings = [StreamTiming(0.0) for _ in prompts]
    errors: list[str] = []
    start_gate = threading.Barrier(len(prompts) + 1)

    def stream(index: int) -> None:
        timing = timings[index]
        start_gate.wait()
        timing.submitted = time.perf_counter()
        try:
            inputs, ids = prompts[index]
            for _ in batch.tokens(inputs, ids, sampling_for(index), 1000 + index):
                now = time.perf_counter()
                if timing.first is None:
                    timing.first = now
                timing.token_times.append(now)
        except Exception as error:  # noqa: BLE001 - recorded, the others go on
            errors.append(f"{type(error).__name__}: {error}"[:300])

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    batch.stats.longest_stall_s = 0.0
    steps_before, rows_before = batch.stats.steps, batch.stats.rows
    torch.cuda.reset_peak_memory_stats()
    start_gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    tokens = sum(len(t.token_times) for t in timings)
    first_all = max(t.first or started for t in timings)  # every stream decoding from here
    last_end = min(t.token_times[-1] for t in timings if t.token_times) if tokens else started
    together = sum(
        sum(1 for moment in t.token_times if first_all <= moment <= last_end) for t in timings
    )
    steps = batch.stats.steps - steps_before
    return {
        "streams": len(prompts),
        "tokens": tokens,
        "wall_s": wall,
        "aggregate_tok_s": tokens / wall,
        # Tokens made while every stream was decoding, over that span: the batch's steady rate.
        "steady_aggregate_tok_s": together / (last_end - first_all) if last_end > first_all else None,
        "per_stream_decode_tok_s_median": statistics.median(t.decode_tok_s for t in timings),
        "per_stream_decode_tok_s_min": min(t.decode_tok_s for t in timings),
        "ttft_ms_p50": 1000 * percentile([t.ttft_s for t in timings], 0.5),
        "ttft_ms_p95": 1000 * percentile([t.ttft_s for t in timings], 0.95),
        "longest_stall_ms": 1000 * batch.stats.longest_stall_s,
        "mean_rows_per_step": (batch.stats.rows - rows_before) / steps if steps else 0.0,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "errors": errors,
    }
