"""What each prefill slice of the writer costs, for prompts of several lengths in turn after load.

    python3 bench/gpu/prefill_shapes_probe.py   # after engine_bench.py --phases build,quantize

Each 512-token slice is timed alone (synchronized), with the allocator's counters that moved;
the first prompt also gets a CPU + CUDA profile. A slice that costs far more the first time
its shape is seen is a kernel planned or compiled per shape: this found cuDNN's attention
planning every new prefill shape (engine/attention_backends.py, docs/benchmarks.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_bench  # noqa: E402
from gpu_env import cap_to_a10g  # noqa: E402

from pictale_server.engine.kv_pool import PAGE_TOKENS  # noqa: E402
from pictale_server.engine.runners import WriterPrompt  # noqa: E402

SLICE_TOKENS = 512
COUNTERS = ("num_alloc_retries", "num_device_alloc", "num_device_free", "num_sync_all_streams")


def counters() -> dict[str, int]:
    stats = torch.cuda.memory_stats()
    return {key: stats.get(key, 0) for key in COUNTERS}


def main() -> None:
    cap_to_a10g()
    engine, _ = engine_bench._engine("nf4", fast_path="auto", writer_streams=16)
    batch = engine.loaded("writer").loop
    backends = torch.backends.cuda
    print("SDPA enabled: flash", backends.flash_sdp_enabled(), "efficient", backends.mem_efficient_sdp_enabled(),
          "cudnn", backends.cudnn_sdp_enabled(), "math", backends.math_sdp_enabled())

    def slices(ids: torch.Tensor, label: str, profiled: bool = False) -> None:
        region = batch.pool.reserve(ids.shape[-1] + PAGE_TOKENS)
        cache = batch.pool.region_cache(region)
        rows = []
        profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) if profiled else None
        if profiler is not None:
            profiler.__enter__()  # around the timed slices: the first prompt's plans are what it shows
        with torch.inference_mode():
            steps = batch.runner.prefill_slices(WriterPrompt(ids.view(1, -1)), cache, SLICE_TOKENS)
            while True:
                before = counters()
                torch.cuda.synchronize()
                start = time.perf_counter()
                try:
                    next(steps)
                except StopIteration:
                    break
                torch.cuda.synchronize()
                ms = (time.perf_counter() - start) * 1000
                after = counters()
                rows.append((round(ms, 1), {key: after[key] - before[key] for key in COUNTERS if after[key] != before[key]}))
        if profiler is not None:
            profiler.__exit__(None, None, None)
            print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=22, max_name_column_width=50))
        batch.pool.release(region)
        print(label, "region", region.length, json.dumps(rows), flush=True)

    batch.wait_idle()
    for tokens, label in ((4096, "4k first"), (4096, "4k again"), (3000, "3k first"), (6000, "6k first"),
                          (6000, "6k again"), (2000, "2k first")):
        slices(engine_bench.story_prompt_ids(engine, tokens), label, profiled=label == "4k first")


if __name__ == "__main__":
    main()
