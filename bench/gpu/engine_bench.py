"""GPU benchmark of the server's own engine, with the seed design as baseline, in one run.

    python3 bench/gpu/engine_bench.py            # every phase, each in its own process

Phases (each a subprocess so its memory cap and peak are its own):
  build     full-size random bf16 checkpoints of both models (uncapped: bf16 does not fit 24 GB)
  seed      the original design: HF `generate`, eager, NF4 + double quant, dynamic cache,
            sampling with repetition penalty — writer decode speed
  quantize  the engine loads both bf16 checkpoints, quantizing to NF4 on load (timed), then
            saves pre-quantized NF4 checkpoints
  engine    the engine loads both NF4 checkpoints under the A10G cap (timed) and is measured:
            describe TTFT, vision decode, writer TTFT and decode, context, pipeline, peak,
            and a per-step kernel profile
  engine_*  decode-only variants: engine_fp32_unfused (Triton NF4 kernel, no fused decode
            ops), engine_cuda_unfused; on request engine_off_fused (bitsandbytes' matmul for
            decode, the rest as the default),
            engine_cuda_fused_dependent (dependent launch on), engine_cuda_fused_torch_noise
            (the sampler's PyTorch noise), engine_cuda_fused_transformers_step (transformers'
            forward instead of the written-out decode step), engine_cuda_fused_separate_norms
            (the written-out step, residual adds and RMSNorms as launches of their own),
            engine_cuda_fused_torch_sampler (the sampler in PyTorch ops), ...
Every run compiles Triton's kernels into a fresh cache directory (the engine phase's load is
cold; PICTALE_BENCH_TRITON_CACHE=keep keeps the machine's); `load_steps` splits the load into
model loading, warm-up and every Triton and NVRTC compilation.
  peak_*    (on request, PICTALE_BENCH_PHASES) peak memory under other allocator settings
Results: $OUT/gpu-<date>.json (bench/results/ keeps the copy that is committed).
PICTALE_BENCH_MEMORY_HISTORY=1 records which code allocated each block, shown in the engine
phase's free-memory layout (slows loading). bench/gpu/context_probe.py shows what grows the
CUDA context the cap counts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "bench" / "gpu")]

WORK = Path(os.environ.get("PICTALE_BENCH_DIR", "/dev/shm/pictale-bench"))
OUT = Path(os.environ.get("OUT", "/tmp/pictale-bench-out"))
PROMPT_TOKENS = 512
DECODE_TOKENS = 256


def phase_build() -> dict:
    from full_size_models import build_vision, build_writer

    result = {}
    if not (WORK / "writer-bf16" / "config.json").exists():
        result.update(build_writer(WORK / "writer-bf16"))
    if not (WORK / "vision-bf16" / "config.json").exists():
        result.update(build_vision(WORK / "vision-bf16"))
    return result


def _writer_prompt(tokenizer, n_tokens: int) -> str:
    """Plain prose of about n_tokens tokens in this tokenizer."""
    sentence = "The lighthouse keeper counted the ships that passed the harbour at dusk. "
    ids = tokenizer(sentence * (n_tokens // 4 + 16), add_special_tokens=False)["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


def phase_seed() -> dict:
    import torch
    from gpu_env import cap_to_a10g, peak_gib
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pictale_server.engine.quantization import nf4_config

    cap = cap_to_a10g()
    path = WORK / "writer-bf16"
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.bfloat16, device_map={"": 0}, quantization_config=nf4_config(double_quant=True)
    )
    load_s = time.perf_counter() - start
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer(_writer_prompt(tokenizer, PROMPT_TOKENS), return_tensors="pt")["input_ids"].to("cuda")
    kwargs = dict(do_sample=True, temperature=0.8, top_p=0.95, repetition_penalty=1.1, pad_token_id=tokenizer.pad_token_id)

    def timed(new_tokens: int) -> tuple[float, int]:
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
        torch.cuda.synchronize()
        return time.perf_counter() - t, out.shape[1] - ids.shape[1]

    timed(4)  # warm-up
    first_s, _ = timed(1)
    total_s, produced = timed(128)
    return {
        **cap,
        "seed_load_from_bf16_s": load_s,
        "seed_writer_ttft_ms_512": first_s * 1000,
        "seed_writer_decode_tok_s": (produced - 1) / (total_s - first_s),
        "seed_peak_gib": peak_gib(),
    }


def _time_load_steps() -> dict:
    """Seconds spent in each step of engine.load() and in kernel compilation (Triton, NVRTC),
    filled in as they run: where a cold load's time goes."""
    import triton.compiler
    import triton.runtime.build

    from pictale_server.engine.transformers_engine import TransformersEngine
    from pictale_server.kernels import nf4_cuda

    spent: dict = {"triton_compiles": 0, "nvrtc_compiles": 0, "triton_launcher_builds": 0, "triton_kernels": {}}

    def timed(owner, name: str, key: str, count: str | None = None) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
                if count:
                    spent[count] += 1

        setattr(owner, name, wrapper)

    for step in ("_load_vision", "_load_writer", "_warm_up", "_enable_nf4_kernel", "_enable_fused_ops"):
        timed(TransformersEngine, step, f"{step.lstrip('_')}_s")
    timed(nf4_cuda, "_nvrtc_cubin", "nvrtc_compile_s", "nvrtc_compiles")
    timed(triton.runtime.build, "_build", "triton_launcher_build_s", "triton_launcher_builds")
    compile = triton.compiler.compile

    def compile_counted(src, *args, **kwargs):  # which kernels, with which constants
        start = time.perf_counter()
        try:
            return compile(src, *args, **kwargs)
        finally:
            spent["triton_compiles"] += 1
            spent["triton_compile_s"] = spent.get("triton_compile_s", 0.0) + time.perf_counter() - start
            constants = ",".join(f"{v}" for v in getattr(src, "constants", {}).values() if not callable(v))
            name = f"{getattr(getattr(src, 'fn', None), '__name__', '?')}({constants})"
            spent["triton_kernels"][name] = spent["triton_kernels"].get(name, 0) + 1

    triton.compiler.compile = compile_counted  # before any kernel binds it
    return spent


def _engine(weights: str, **overrides):
    from pictale_server.engine.loader import load_engine
    from pictale_server.settings import Settings

    settings = Settings(
        profile="custom",
        vision_model=str(WORK / f"vision-{weights}"),
        writer_model=str(WORK / f"writer-{weights}"),
        **overrides,
    )
    engine = load_engine(settings)
    start = time.perf_counter()
    engine.load()
    return engine, time.perf_counter() - start


def phase_quantize() -> dict:
    import torch
    from gpu_env import cap_to_a10g

    cap = cap_to_a10g()
    # Saved checkpoints are bitsandbytes' own: the decode kernel (which re-points fused
    # weights) stays off while quantizing.
    engine, load_s = _engine("bf16", nf4_kernel="off")
    resident = torch.cuda.memory_allocated() / 2**30
    for name, loaded in (("vision", engine._vision), ("writer", engine._writer)):
        target = WORK / f"{name}-nf4"
        loaded.model.save_pretrained(target)
        source = WORK / f"{name}-bf16"
        for extra in source.iterdir():
            if extra.suffix in (".json", ".jinja", ".txt", ".model") and not (target / extra.name).exists():
                (target / extra.name).write_bytes(extra.read_bytes())
    return {**cap, "load_from_bf16_s": load_s, "resident_gib_after_quantize": resident}


class Clock:
    """Times one generation: start → first chunk → last chunk, and the token count."""

    def __init__(self, chunks, cancel=None, stop_after: int | None = None) -> None:
        import torch

        start = time.perf_counter()
        first = None
        self.finished = None
        self.text = ""
        deltas = 0
        for chunk in chunks:
            if first is None:
                torch.cuda.synchronize()
                first = time.perf_counter()
            if hasattr(chunk, "finish_reason"):
                self.finished = chunk
            else:
                self.text += chunk.text
                deltas += 1
                if stop_after is not None and deltas >= stop_after:
                    cancel.set()
        torch.cuda.synchronize()
        end = time.perf_counter()
        self.ttft_ms = ((first or end) - start) * 1000
        self.total_s = end - start
        produced = self.finished.output_tokens if self.finished else 0
        self.output_tokens = produced
        self.input_tokens = self.finished.input_tokens if self.finished else 0


def decode_profile(run_decode, steps: int) -> dict:
    """Kernels one decode step runs, and GPU time by kind, from the profiler (graph replays
    included), for `steps` decode steps of `run_decode()`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run_decode()
        torch.cuda.synchronize()
    kinds: dict[str, list] = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        name = event.name
        kind = ("nf4_cuda" if "nf4_gemv_cuda" in name else "nf4_triton" if "nf4_gemv" in name
                else "fused_ops" if any(k in name for k in ("_rms_norm", "_rotary", "_silu_mul")) else
                "attention_kernel" if any(k in name for k in ("_partial_kernel", "_combine_kernel")) else
                "gemm" if any(k in name for k in ("gemm", "gemv", "cublas", "cutlass", "sm90", "sm80")) else
                "softmax" if "softmax" in name.lower() else "other")
        entry = kinds.setdefault(kind, [0, 0.0, {}])
        us = event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
        entry[0] += 1
        entry[1] += us
        per_name = entry[2].setdefault(name[:80], [0, 0.0])
        per_name[0] += 1
        per_name[1] += us
    # "top": [kernel name, launches, GPU us] over all the steps, most launched first
    return {
        kind: {"kernels_per_step": count / steps, "us_per_step": us / steps,
               "top": [[n, c, round(t, 1)] for n, (c, t) in sorted(names.items(), key=lambda kv: -kv[1][0])[:25]]}
        for kind, (count, us, names) in kinds.items()
    }


def replay_profile(loop, steps: int = 64) -> dict:
    """decode_profile of the captured decode step alone: `steps` replays of the graph the last
    request ran on (no prefill, no host work between steps)."""
    import torch

    graph = loop._graphs[loop.bucket, loop.by_rank]
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(steps):
        graph.replay()
    end.record()
    end.synchronize()
    # With dependent launch a kernel's profiled time includes its wait for the previous one,
    # so the kinds' times overlap; the step's own time is measured without the profiler.
    profile = decode_profile(lambda: [graph.replay() for _ in range(steps)], steps)
    return {"step_us": begin.elapsed_time(end) * 1e3 / steps, **profile}


def phase_engine(
    kernel: str = "cuda",
    full: bool = True,
    fused: bool = True,
    dependent: bool = False,
    noise_kernel: bool = True,
    written_step: bool = True,
    norm_in_matmul: bool = True,
    sampler_kernel: bool = True,
) -> dict:
    import numpy as np
    import torch
    from gpu_env import cap_to_a10g, peak_gib
    from PIL import Image

    from pictale_server.engine.base import Cancel, Sampling
    from pictale_server.runtime.prompts import describe_messages, narrate_messages
    from pictale_server.safety.gate import SafetyGate
    from pictale_server.settings import Settings

    cap = cap_to_a10g()
    if os.environ.get("PICTALE_BENCH_MEMORY_HISTORY"):  # who allocated each block (slows loading)
        torch.cuda.memory._record_memory_history(max_entries=200_000, stacks="python")
    result: dict = dict(cap)
    if not noise_kernel:  # the decode loop then keeps the sampler's PyTorch noise
        from pictale_server.engine.sampling import uniform_noise
        from pictale_server.kernels import sampling_noise

        sampling_noise.uniform_noise = uniform_noise
    if not sampler_kernel:  # the decode loop then samples with PyTorch ops
        from pictale_server.kernels import sampler_kernel as sampler_module

        sampler_module.sample_and_accept = None
    if not written_step:  # the decode loops then keep transformers' forward
        from pictale_server.kernels import fused_decoder_step

        fused_decoder_step.decoder_step_for = lambda *args, **kwargs: (None, "off for this variant")
    elif not norm_in_matmul:  # the written-out step with its norms as launches of their own
        from pictale_server.kernels import fused_decoder_step

        step_for = fused_decoder_step.decoder_step_for
        fused_decoder_step.decoder_step_for = lambda *args, **kwargs: step_for(*args, **{**kwargs, "norm_in_matmul": False})
    load_steps = _time_load_steps()
    engine, load_s = _engine("nf4", nf4_kernel=kernel, fused_decode_ops=fused, dependent_launch=dependent)
    result["load_steps"] = dict(load_steps)
    free, total = torch.cuda.mem_get_info()
    result["context_gib_after_load"] = (total - free - torch.cuda.memory_reserved()) / 2**30
    result["nf4_kernel"], result["fused_decode_ops"] = kernel, fused
    label = f"{kernel}_{'fused' if fused else 'unfused'}" + ("_dependent" if dependent else "")
    label += "" if noise_kernel else "_torch_noise"
    label += "" if written_step else "_transformers_step"
    label += "" if norm_in_matmul else "_separate_norms"
    label += "" if sampler_kernel else "_torch_sampler"
    result["load_s"] = load_s
    result["resident_gib_both"] = torch.cuda.memory_allocated() / 2**30
    result["decode_path"] = engine._writer.loop.path
    result["writer_cache_tokens"] = engine._writer.loop.cache_tokens
    result["writer_weight_bytes_per_token"] = weight_bytes(engine._writer.model)
    result["vision_text_weight_bytes_per_token"] = weight_bytes(engine._vision.model, skip="visual")

    rng = np.random.default_rng(0)

    def image(w: int, h: int) -> Image.Image:
        return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))

    def describe(img, max_tokens: int) -> Clock:
        sampling = Sampling(max_tokens=max_tokens, temperature=0.2, top_p=0.9, repetition_penalty=1.05, seed=5)
        return Clock(engine.stream_vision(img, describe_messages("detailed"), sampling, Cancel()))

    def context_of(total_tokens: int) -> str:
        """A scene context whose templated writer prompt is about total_tokens long."""
        overhead = engine.writer_prompt_ids(narrate_messages("Continue the story.", "x")).shape[1]
        return _writer_prompt(tokenizer, max(total_tokens - overhead, 1))

    def narrate(context: str, max_tokens: int, stop_after: int | None = None, temperature: float = 0.8) -> Clock:
        sampling = Sampling(
            max_tokens=max_tokens, temperature=temperature, min_p=0.05, repetition_penalty=1.05, seed=7
        )
        cancel = Cancel()
        chunks = engine.stream_writer(narrate_messages("Continue the story.", context), sampling, cancel)
        return Clock(chunks, cancel, stop_after)

    def rate(generate) -> float:
        """Decode tokens/s from two runs of the same seeded request that differ only in length.

        Timed start to finish, so prefill cancels out and nothing depends on when text chunks
        appear (random weights sample ids the small test tokenizer cannot spell, so chunks are
        held back to the end).
        """
        short = generate(16)
        long = generate(16 + DECODE_TOKENS)
        return (long.output_tokens - short.output_tokens) / (long.total_s - short.total_s)

    tokenizer = engine._writer.tokenizer
    errors: dict[str, str] = {}

    only = set(filter(None, os.environ.get("PICTALE_BENCH_SECTIONS", "").split(",")))

    def section(fn):
        """Run one measurement; a failure is recorded, and the rest still run.
        PICTALE_BENCH_SECTIONS (comma-separated names) runs only those."""
        if only and fn.__name__ not in only:
            return fn
        try:
            fn()
        except Exception as error:  # noqa: BLE001
            errors[fn.__name__] = f"{type(error).__name__}: {error}"[:500]
        result["errors"] = errors
        (OUT / f"phase-{sys.argv[1]}.json").write_text(json.dumps(result, indent=1))
        return fn

    @section
    def warm_up():
        describe(image(1000, 1000), 8)  # includes graph capture
        narrate(context_of(256), 8)
        torch.cuda.reset_peak_memory_stats()

    @section
    def first_decode_logits():
        # Prefill is bitsandbytes' on every variant; the first decode step is where they differ.
        narrate(context_of(PROMPT_TOKENS), 2, temperature=0.0)
        torch.save(engine._writer.loop.logits.float().cpu(), WORK / f"logits-{label}.pt")

    if not full:
        @section
        def writer_decode():
            context = context_of(PROMPT_TOKENS)
            runs = [rate(lambda n: narrate(context, n)) for _ in range(5)]
            result[f"writer_decode_tok_s_{label}"] = sorted(runs)[2]
            result[f"writer_decode_tok_s_runs_{label}"] = runs
            img = image(1000, 1000)
            result[f"vision_decode_tok_s_{label}"] = rate(lambda n: describe(img, n))

        @section
        def profile_step():
            context = context_of(PROMPT_TOKENS)
            narrate(context, 8)
            result[f"decode_profile_{label}"] = replay_profile(engine._writer.loop)

        result[f"load_s_{label}"] = load_s
        return {k: v for k, v in result.items() if label in k or k == "errors"}

    resident = torch.cuda.memory_allocated()
    peak_reserved = [0]  # the highest reserved memory over every request measured

    def memory_of(name: str, request) -> object:
        """Run one request and record how far above the resident weights it took the
        allocator (peak allocated, peak reserved), in GiB."""
        torch.cuda.reset_peak_memory_stats()
        out = request()
        result.setdefault("memory_above_resident_gib", {})[name] = [
            (torch.cuda.max_memory_allocated() - resident) / 2**30,
            (torch.cuda.max_memory_reserved() - resident) / 2**30,
        ]
        peak_reserved[0] = max(peak_reserved[0], torch.cuda.max_memory_reserved())
        return out

    @section
    def describe_ttft():
        for label, (w, h) in {"1mp": (1000, 1000), "4000x3000": (4000, 3000), "1080x2400": (1080, 2400)}.items():
            img = image(w, h)
            runs = [memory_of(f"describe_{label}", lambda: describe(img, 1)) for _ in range(3)]
            result[f"describe_ttft_ms_{label}"] = sorted(r.ttft_ms for r in runs)[1]
            result[f"describe_input_tokens_{label}"] = runs[0].input_tokens
        # Baseline in the same process: transformers' loop over the vision tower's windows.
        attention = [m for m in engine._vision.model.modules() if type(m).__name__ == "Qwen2_5_VLVisionAttention"]
        for module in attention:
            module._batched_forward = module.forward
            del module.forward
        try:
            img = image(1000, 1000)
            runs = [describe(img, 1) for _ in range(3)]
            result["describe_ttft_ms_1mp_window_loop"] = sorted(r.ttft_ms for r in runs)[1]
        finally:
            for module in attention:
                module.forward = module._batched_forward
                del module._batched_forward

    @section
    def vision_decode():
        img = image(1000, 1000)
        result["vision_decode_tok_s"] = rate(lambda n: describe(img, n))

    @section
    def writer_ttft():
        for n in (2048, 8192):
            runs = [memory_of(f"narrate_{n}", lambda: narrate(context_of(n), 1)) for _ in range(2)]
            result[f"writer_ttft_ms_{n // 1024}k"] = min(r.ttft_ms for r in runs)
            result[f"writer_input_tokens_{n // 1024}k"] = runs[0].input_tokens
        # Over the 1 MP (and larger) describes and the 2k and 8k narrates above, context included.
        result["peak_gib_both_resident"] = peak_gib(peak_reserved[0])

    @section
    def allocator_state():
        """Where the allocator's reserved-but-free memory sits after the requests above: CUDA
        graph pools or the default pool (large / small segments), before and after
        empty_cache, and the segments holding the most free bytes."""
        def summary() -> dict:
            kinds: dict = {}
            free_segments = []
            for seg in torch.cuda.memory._snapshot()["segments"]:
                pool = tuple(seg.get("segment_pool_id", (0, 0)))
                kind = "graph_pool" if pool != (0, 0) else seg.get("segment_type", "?")
                entry = kinds.setdefault(kind, {"segments": 0, "reserved_gib": 0.0, "allocated_gib": 0.0})
                entry["segments"] += 1
                entry["reserved_gib"] += seg["total_size"] / 2**30
                entry["allocated_gib"] += seg["allocated_size"] / 2**30
                free_segments.append(((seg["total_size"] - seg["allocated_size"]) / 2**20, seg["total_size"] / 2**20,
                                      kind, len(seg.get("blocks", []))))
            free_segments.sort(reverse=True)
            return {"by_kind": kinds, "most_free_mib": free_segments[:8]}

        torch.cuda.synchronize()
        result["allocator_at_rest"] = summary()
        result["allocator_free_layout"] = free_layout(engine)
        free, total = torch.cuda.mem_get_info()
        result["context_gib_at_rest"] = (total - free - torch.cuda.memory_reserved()) / 2**30
        torch.cuda.empty_cache()
        result["allocator_after_empty_cache"] = summary()

    @section
    def writer_decode():
        context = context_of(PROMPT_TOKENS)
        runs = [rate(lambda n: narrate(context, n)) for _ in range(5)]
        result["writer_decode_tok_s"] = sorted(runs)[2]
        result["writer_decode_tok_s_runs"] = runs
        result["writer_decode_bucket"] = engine._writer.loop.bucket

    @section
    def writer_decode_profile():
        context = context_of(PROMPT_TOKENS)
        narrate(context, 8)
        result[f"decode_profile_{label}"] = replay_profile(engine._writer.loop)

    @section
    def writer_decode_full_cache():
        # The same request on the full 16k-slot cache view (what the engine did before buckets).
        buckets = engine._writer.loop.buckets
        context = context_of(PROMPT_TOKENS)
        buckets.length_for = lambda tokens: buckets.max_tokens  # every request on the full view
        try:
            result["writer_decode_tok_s_full_cache"] = rate(lambda n: narrate(context, n))
            result["writer_decode_full_cache_bucket"] = engine._writer.loop.bucket
        finally:
            del buckets.length_for

    @section
    def writer_decode_eager_loop():
        loop = engine._writer.loop
        path, loop.path = loop.path, "eager"
        try:
            context = context_of(PROMPT_TOKENS)
            result["writer_decode_tok_s_eager_loop"] = rate(lambda n: narrate(context, n))
        finally:
            loop.path = path

    @section
    def graph_matches_eager():
        loop = engine._writer.loop
        context = context_of(PROMPT_TOKENS)
        graph_text = narrate(context, 48, temperature=0.0).text
        path, loop.path = loop.path, "eager"
        try:
            eager_text = narrate(context, 48, temperature=0.0).text
        finally:
            loop.path = path
        result["writer_graph_matches_eager_greedy_48"] = graph_text == eager_text

    @section
    def sampler_noise_kernel():
        from pictale_server.engine.sampling import uniform_noise
        from pictale_server.kernels.sampling_noise import uniform_noise as noise_kernel

        vocab = engine._writer.model.config.vocab_size
        cases = [(0, 0), (7, 1), (2**62 + 99, 2**33 + 5), (123456789, 4095)]
        result["sampler_noise_kernel_bit_equal"] = all(
            torch.equal(noise_kernel(s, t, vocab), uniform_noise(s, t, vocab))
            for s, t in ((torch.tensor(a, device="cuda"), torch.tensor(b, device="cuda")) for a, b in cases)
        )
        result["sampler_noise_kernel_in_use"] = engine._writer.loop._noise is noise_kernel

    @section
    def longest_context():
        limit = engine._settings.max_context_tokens
        clock = narrate(context_of(limit - 64 - 256), 64)
        result["writer_context_tested_tokens"] = clock.input_tokens + clock.output_tokens
        result["peak_gib_longest_context"] = peak_gib()
        spare = cap["allocator_cap_gib"] * 2**30 - torch.cuda.max_memory_reserved()
        result["headroom_gib_at_longest_context"] = spare / 2**30

    @section
    def pipeline():
        gate = SafetyGate.from_settings(Settings())
        img = image(1000, 1000)
        start = time.perf_counter()
        description = describe(img, 256)
        gate_start = time.perf_counter()
        try:
            gate.check_image(img, engine)
            result["pipeline_gate_verdict"] = "allowed"
        except Exception as error:  # noqa: BLE001 — random weights: the verdict is noise, the time is not
            result["pipeline_gate_verdict"] = getattr(error, "code", type(error).__name__)
        result["pipeline_gate_ms"] = (time.perf_counter() - gate_start) * 1000
        story = narrate(context_of(PROMPT_TOKENS), 1024)
        result["pipeline_s_256_1024"] = time.perf_counter() - start
        result["pipeline_tokens"] = [description.output_tokens, story.output_tokens]

    return result


def phase_peak(label: str, alloc_conf: str | None = None, prefill_chunk: int | None = None) -> dict:
    """Peak memory (context included) after the same 1 MP / 4000x3000 / 1080x2400 describes and
    2k / 8k narrates as the engine phase, under one allocator setting or writer prefill chunk."""
    if alloc_conf:
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = alloc_conf  # before torch initializes CUDA
    import numpy as np
    import torch
    from gpu_env import cap_to_a10g, peak_gib
    from PIL import Image

    from pictale_server.engine.base import Cancel, Sampling
    from pictale_server.runtime.prompts import describe_messages, narrate_messages

    cap_to_a10g()
    engine, load_s = _engine("nf4")
    if prefill_chunk:
        engine._writer.loop.runner.prefill_chunk_tokens = prefill_chunk
    rng = np.random.default_rng(0)
    tokenizer = engine._writer.tokenizer
    describe = Sampling(max_tokens=8, temperature=0.2, seed=5)
    for w, h in ((1000, 1000), (1000, 1000), (4000, 3000), (1080, 2400)):
        image = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        Clock(engine.stream_vision(image, describe_messages("detailed"), describe, Cancel()))
    overhead = engine.writer_prompt_ids(narrate_messages("Continue the story.", "x")).shape[1]
    ttft = {}
    for n in (2048, 8192):
        context = _writer_prompt(tokenizer, n - overhead)
        clock = Clock(engine.stream_writer(narrate_messages("Continue the story.", context),
                                           Sampling(max_tokens=1, temperature=0.8, seed=7), Cancel()))
        ttft[n] = clock.ttft_ms
    return {f"peak_gib_{label}": peak_gib(), f"writer_ttft_ms_8k_{label}": ttft[8192],
            f"load_s_{label}": load_s, f"resident_gib_{label}": torch.cuda.memory_allocated() / 2**30}


def _tensor_names(engine) -> dict[int, str]:
    """Start address -> a readable name for the engine's long-lived GPU tensors."""
    names: dict[int, str] = {}
    for label, loaded in (("vision", engine._vision), ("writer", engine._writer)):
        for name, tensor in list(loaded.model.named_parameters()) + list(loaded.model.named_buffers()):
            names.setdefault(tensor.data_ptr(), f"{label}.{name}")
            state = getattr(tensor, "quant_state", None)
            if state is not None:
                names.setdefault(state.absmax.data_ptr(), f"{label}.{name}.absmax")
        for tokens, cache in loaded.loop.buckets.caches.items():
            for i, layer in enumerate(cache.layers):
                for kind in ("keys", "values"):
                    tensor = getattr(layer, kind, None)
                    if tensor is not None:
                        names.setdefault(tensor.data_ptr(), f"{label}.cache[{i}].{kind}")
    return names


def free_layout(engine, segments: int = 8) -> list:
    """The segments holding the most free bytes, block by block: (MiB, state, what) where
    `what` names a known tensor or, with PICTALE_BENCH_MEMORY_HISTORY, the code that allocated it."""
    import torch

    names = _tensor_names(engine)
    snapshot = torch.cuda.memory._snapshot()
    ranked = sorted(snapshot["segments"], key=lambda seg: seg["allocated_size"] - seg["total_size"])
    layout = []
    for seg in ranked[:segments]:
        blocks = []
        for block in seg["blocks"]:
            what = names.get(block["address"], "")
            if not what and block.get("frames"):
                frames = [f for f in block["frames"] if "/torch/" not in f["filename"]]
                what = "; ".join(f"{Path(f['filename']).name}:{f['line']}:{f['name']}" for f in frames[:3])
            entry = [round(block["size"] / 2**20, 2), block["state"][:8], what[:160]]
            if blocks and not entry[2] and not blocks[-1][2] and blocks[-1][1] == entry[1]:
                blocks[-1][0] = round(blocks[-1][0] + entry[0], 2)  # runs of anonymous blocks merged
            else:
                blocks.append(entry)
        free = [b for b in blocks if b[1] == "inactive"]
        layout.append({
            "segment_mib": seg["total_size"] / 2**20,
            "free_mib": (seg["total_size"] - seg["allocated_size"]) / 2**20,
            "pool": list(seg.get("segment_pool_id", (0, 0))),
            "free_blocks_mib": sorted((b[0] for b in free), reverse=True)[:12],
            "blocks_next_to_free": [
                blocks[i] for i in range(len(blocks))
                if blocks[i][1] == "inactive" or (i and blocks[i - 1][1] == "inactive")
                or (i + 1 < len(blocks) and blocks[i + 1][1] == "inactive")
            ][:60],
        })
    return layout


def weight_bytes(model, skip: str | None = None) -> int:
    """Bytes of parameters and buffers one decode step reads (everything but the embedding)."""
    total = 0
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if "embed_tokens" in name or (skip and skip in name):
            continue
        total += tensor.numel() * tensor.element_size()
        state = getattr(tensor, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
    return total


PHASES = {
    "build": phase_build,
    "seed": phase_seed,
    "quantize": phase_quantize,
    "engine": phase_engine,  # the engine as configured by default (CUDA NF4 kernel, fused ops)
    "engine_without_kernel": lambda: phase_engine("off", full=True),  # only if "engine" failed
    # variants, decode only: the previous default (Triton fp32 kernel, no fused ops) first
    "engine_fp32_unfused": lambda: phase_engine("fp32", full=False, fused=False),
    "engine_fp32_fused": lambda: phase_engine("fp32", full=False, fused=True),
    "engine_cuda_unfused": lambda: phase_engine("cuda", full=False, fused=False),
    "engine_cuda_fused": lambda: phase_engine("cuda", full=False, fused=True),
    # bitsandbytes' matmul for decode (no NF4 kernel), everything else as the default
    "engine_off_fused": lambda: phase_engine("off", full=False, fused=True),
    # the same with programmatic dependent launch (off by default; Hopper and newer only)
    "engine_cuda_fused_dependent": lambda: phase_engine("cuda", full=False, fused=True, dependent=True),
    # the same with the sampler's noise from PyTorch ops instead of its kernel
    "engine_cuda_fused_torch_noise": lambda: phase_engine("cuda", full=False, fused=True, noise_kernel=False),
    # the same with transformers' forward for the decode step instead of the written-out one
    "engine_cuda_fused_transformers_step": lambda: phase_engine("cuda", full=False, fused=True, written_step=False),
    # the written-out step with each residual add + RMSNorm as its own launch
    "engine_cuda_fused_separate_norms": lambda: phase_engine("cuda", full=False, fused=True, norm_in_matmul=False),
    # ... and with the sampler in PyTorch ops instead of its three kernels
    "engine_cuda_fused_torch_sampler": lambda: phase_engine("cuda", full=False, fused=True, sampler_kernel=False),
    "engine_bnb_unfused": lambda: phase_engine("off", full=False, fused=False),
    "peak_default": lambda: phase_peak("default"),
    "peak_expandable": lambda: phase_peak("expandable", alloc_conf="expandable_segments:True"),
    "peak_chunk1k": lambda: phase_peak("chunk1k", prefill_chunk=1024),
}


def main() -> None:
    if len(sys.argv) > 1:
        name = sys.argv[1]
        result = PHASES[name]()
        (OUT / f"phase-{name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1), flush=True)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    # Cold loads: Triton's kernels and launchers compiled afresh in this run, whatever an
    # earlier run left in a cache directory (phases after the first may reuse them);
    # PICTALE_BENCH_TRITON_CACHE=keep measures with the cache as the machine has it.
    if os.environ.get("PICTALE_BENCH_TRITON_CACHE") != "keep":
        os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="triton-cache-")
    import torch
    from gpu_env import copy_bandwidth_tb_s, device_facts

    summary = {"date": dt.date.today().isoformat(), **device_facts(), "copy_tb_s": copy_bandwidth_tb_s()}
    torch.cuda.empty_cache()
    phases = os.environ.get("PICTALE_BENCH_PHASES", "build,seed,quantize,engine,engine_fp32_unfused,engine_cuda_unfused").split(",")
    if "engine" in phases:
        phases.insert(phases.index("engine") + 1, "engine_without_kernel")
    for name in phases:
        if name == "engine_without_kernel" and "engine_failed" not in summary:
            continue
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, name], stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            (OUT / f"phase-{name}.stderr.txt").write_text(proc.stderr[-20000:])
            print(proc.stderr[-3000:], flush=True)
        summary[f"{name}_phase_s"] = time.perf_counter() - start
        path = OUT / f"phase-{name}.json"
        if proc.returncode != 0:
            summary[f"{name}_failed"] = proc.returncode
        if path.exists():
            summary.update(json.loads(path.read_text()))
    bw = summary["copy_tb_s"] * 1e12
    if "writer_weight_bytes_per_token" in summary:
        per_token = summary["writer_weight_bytes_per_token"] + 160 * 1024 * (PROMPT_TOKENS + DECODE_TOKENS // 2)
        summary["writer_bytes_per_token"] = per_token
        summary["writer_bound_tok_s"] = bw / per_token
        if summary.get("writer_decode_tok_s"):
            summary["writer_decode_of_bound"] = summary["writer_decode_tok_s"] / summary["writer_bound_tok_s"]
            if summary.get("seed_writer_decode_tok_s"):
                summary["writer_decode_vs_seed"] = summary["writer_decode_tok_s"] / summary["seed_writer_decode_tok_s"]
    reference = WORK / "logits-off_unfused.pt"
    for variant in ("fp32_unfused", "fp32_fused", "cuda_unfused", "cuda_fused", "off_fused"):
        path = WORK / f"logits-{variant}.pt"
        if reference.exists() and path.exists():
            ours, theirs = torch.load(path), torch.load(reference)
            summary[f"kernel_{variant}_vs_bnb_first_step_logits_rel"] = float((ours - theirs).norm() / theirs.norm())
    for variant in ("cuda_fused_transformers_step", "cuda_fused_separate_norms", "cuda_fused_torch_sampler"):  # the written-out step against
        ours, theirs = WORK / "logits-cuda_fused.pt", WORK / f"logits-{variant}.pt"
        if ours.exists() and theirs.exists():
            ours, theirs = torch.load(ours), torch.load(theirs)
            summary[f"first_step_logits_rel_vs_{variant}"] = float((ours - theirs).norm() / theirs.norm())
            summary[f"first_step_argmax_equal_{variant}"] = bool(torch.equal(ours.argmax(-1), theirs.argmax(-1)))
    serial, dependent = WORK / "logits-cuda_fused.pt", WORK / "logits-cuda_fused_dependent.pt"
    if serial.exists() and dependent.exists():
        summary["dependent_launch_first_step_logits_equal"] = bool(torch.equal(torch.load(serial), torch.load(dependent)))
    if summary.get("writer_decode_tok_s_off_fused"):
        summary["writer_decode_kernel_speedup"] = summary["writer_decode_tok_s"] / summary["writer_decode_tok_s_off_fused"]
    if "vision_text_weight_bytes_per_token" in summary:
        summary["vision_bound_tok_s"] = bw / summary["vision_text_weight_bytes_per_token"]
    out = OUT / f"gpu-{summary['date']}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
