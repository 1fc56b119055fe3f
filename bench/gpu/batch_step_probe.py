"""Where a batched writer step's time goes, and what a batched vision text step would cost.

    python3 bench/gpu/batch_step_probe.py   # after engine_bench.py --phases build,quantize

Both models resident under the A10G cap, as the concurrency phase runs them:
- the writer's captured step (forward to logits) per lane bucket and kernel (CUDA cores /
  tensor cores), its lanes at the scratch page (short attention);
- sampling eight lanes one by one against the batch's one launch set for plain lanes;
- `lm_head` at 1 and 16 rows, and a CUDA profile of five 8-row steps and eight lanes' sampling;
- the vision model's text decoder over 1-16 rows in a KV pool of its own, as a captured graph
  (kernel_bench.graph_time; positions stand in for slot + M-RoPE delta: timing only): what
  batching descriptions would cost per step.
Figures: docs/benchmarks.md, "Continuous batching".
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
from kernel_bench import graph_time  # noqa: E402

from pictale_server.engine.base import Sampling  # noqa: E402
from pictale_server.engine.fast_path.written_step import RowRegions, WrittenStep  # noqa: E402
from pictale_server.engine.kv_pool import PAGE_TOKENS, KVPool  # noqa: E402

BUCKETS = (1, 2, 4, 8, 16)


def timed_us(fn, repeats: int = 40) -> float:
    """GPU time per call, by events around `repeats` calls after three warm-up calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeats * 1000


def kernel_name(tensor_cores: bool) -> str:
    return "tc" if tensor_cores else "cuda"


def writer_step(batch) -> tuple[dict, str]:
    step = batch.step
    out: dict[str, float] = {}
    for rows in BUCKETS:
        for tensor_cores in sorted({step.tensor_cores_for(rows, False), step.tensor_cores_for(rows, True)}):
            out[f"forward_us_{rows}_{kernel_name(tensor_cores)}"] = timed_us(lambda: batch._rows_logits(rows, tensor_cores))
    prompt = torch.arange(100, 612).view(1, -1)
    for lane in range(8):
        batch.samplers[lane].reset(Sampling(max_tokens=8, temperature=0.8, min_p=0.05, repetition_penalty=1.05), lane, prompt)
    logits = batch._rows_logits(8, True)

    def lanes_one_by_one() -> None:
        for lane in range(8):
            batch.samplers[lane].accept(logits[lane : lane + 1])

    out["sample_us_1_lane"] = timed_us(lambda: batch.samplers[0].accept(logits[0:1]))
    out["sample_us_8_lanes_one_by_one"] = timed_us(lanes_one_by_one)
    batch.masks[1, :8] = 1
    out["sample_us_8_lanes_together"] = timed_us(lambda: step.sample_rows(logits, batch.sampling, batch.masks[1, :8]))
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(40):
        lanes_one_by_one()
    out["sample_host_us_8_lanes_one_by_one"] = (time.perf_counter() - start) / 40 * 1e6
    torch.cuda.synchronize()
    written = step.written
    for rows in (1, 16):
        hidden = torch.randn((rows, 1, written.text_model.config.hidden_size), dtype=torch.bfloat16, device="cuda")
        out[f"lm_head_us_{rows}"] = timed_us(lambda: written.lm_head(hidden))
    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        for _ in range(5):
            batch._rows_logits(8, True)
        lanes_one_by_one()
        torch.cuda.synchronize()
    return out, profiler.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60)


def vision_text_step(engine, tensor_cores_for) -> dict:
    vision = engine.loaded("vision")
    written = vision.loop.step.written
    rows_step = WrittenStep(
        written.text_model, written.lm_head, lambda p: p.view(1, -1, 1).expand(3, -1, 1), written.projections
    )
    pool = KVPool(vision.model.config, 16 * 1024 + PAGE_TOKENS, dtype=torch.bfloat16, device=torch.device("cuda"))
    out: dict[str, float] = {}
    with torch.inference_mode():
        for rows in BUCKETS:
            regions = [pool.reserve(1024) for _ in range(rows)]
            first = torch.tensor([region.start for region in regions], device="cuda")
            chunk = torch.tensor([region.chunk for region in regions], device="cuda")
            position = torch.full((rows,), 700, device="cuda")
            token = torch.full((rows, 1), 1000, device="cuda")
            row_regions = RowRegions(first, chunk, max(region.chunk for region in regions))
            tensor_cores = tensor_cores_for(rows, False)

            def step() -> None:
                rows_step.rows(token, position, row_regions, pool.cache, tensor_cores)

            out[f"vision_step_us_{rows}_{kernel_name(tensor_cores)}"] = graph_time([step]) * 1e6
            for region in regions:
                pool.release(region)
    one = out[next(key for key in out if key.startswith("vision_step_us_1_"))]
    for key, us in list(out.items()):
        rows = int(key.split("_")[3])
        out[key.replace("step_us", "aggregate_of_one")] = rows * one / us
    return out


def main() -> None:
    cap_to_a10g()
    engine, load_s = engine_bench._engine("nf4", fast_path="auto", writer_streams=16)
    batch = engine.loaded("writer").loop
    with torch.inference_mode():
        writer, table = writer_step(batch)
    print(json.dumps({"load_s": load_s, **writer}, indent=1))
    print(table)
    print(json.dumps(vision_text_step(engine, batch.step.tensor_cores_for), indent=1))


if __name__ == "__main__":
    main()
