"""Every kernel builds for the production card, the A10G (sm_86: 100 KB of shared memory per SM,
at most 99 KB per block, 64 K registers per SM), and fits it -- checked on whatever GPU runs the
suite, since compiling for another architecture needs no such GPU.

- The CUDA NF4 kernel: every variant the launcher builds for the two models' K (3584, 4096,
  5120, 14336, 18944) at the A10G's launches, 1..MAX_ROWS rows, with and without bias and
  parts, and the norm-making launches, compiled by NVRTC for sm_86: its dynamic shared memory
  fits a block and leaves room for at least one block per SM, its registers fit. The engine's
  own launches (the models' shapes at one row) must not spill registers.
- The tensor-core NF4 kernel: every variant the batch launches (its lane buckets, both models'
  shapes, bias and parts as the models have them) fits a block and spills no registers.
- The Triton kernels: each launched as the decode step launches it (shapes of both models),
  the signature Triton specializes it for captured instead of compiled for this GPU, then
  compiled for sm_86: its shared memory fits a block.

With PICTALE_KERNEL_REPORT=path set, the registers, spills and shared memory of every build go
to that JSON file.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from pictale_server.kernels import nf4_cuda
from pictale_server.kernels.nf4_cuda import MAX_ROWS, Variant, default_launch
from pictale_server.kernels.nf4_mma import DEFAULT_LAUNCH, MmaVariant
from pictale_server.kernels.nf4_mma import kernel_source as mma_source

A10G = (8, 6)
SHARED_PER_SM = 100 * 1024
SHARED_PER_BLOCK = 99 * 1024
REGISTERS_PER_SM = 64 * 1024
CONFIGS = Path(nf4_cuda.__file__).parents[1] / "engine" / "reference_configs"
REPORT: dict[str, list] = {}


def model_launches() -> list[tuple[str, tuple[int, ...], int, bool, bool]]:
    """(launch, rows of each part, K, bias, makes its own x) of a decoder layer of each
    reference model, from its config: q/k/v and gate/up (read as parts, x made from the
    residual), o and down."""
    found = []
    for path in sorted(CONFIGS.glob("*.config.json")):
        config = json.loads(path.read_text())
        text = config.get("text_config", config)
        hidden, heads, kv_heads = text["hidden_size"], text["num_attention_heads"], text["num_key_value_heads"]
        head_dim = text.get("head_dim") or hidden // heads
        bias = config.get("model_type") == "qwen2_5_vl"  # Qwen2's q/k/v projections have a bias
        inter = text["intermediate_size"]
        name = path.name.split(".")[0]
        found += [
            (f"{name} q/k/v", (heads * head_dim, kv_heads * head_dim, kv_heads * head_dim), hidden, bias, True),
            (f"{name} o", (hidden,), heads * head_dim, False, False),
            (f"{name} gate/up", (inter, inter), hidden, False, True),
            (f"{name} down", (hidden,), inter, False, False),
        ]
    return found


def test_the_model_shapes_are_the_expected_ones() -> None:
    ks = sorted({k for _, _, k, _, _ in model_launches()})
    assert ks == [3584, 4096, 5120, 14336, 18944]


def cuda_variants() -> dict[Variant, set[str]]:
    """Every variant of the kernel the launcher builds for these K on an A10G, with the engine's
    launches that use it."""
    variants: dict[Variant, set[str]] = defaultdict(set)
    for name, parts, k, bias, normed in model_launches():
        n = sum(parts)
        for rows in range(1, MAX_ROWS + 1):
            launch = default_launch(n, k, rows, A10G)
            exact = n % launch.tile_rows == 0
            for has_bias in (False, True):
                for by_parts in (False, True):
                    variants[Variant(k, launch, rows, has_bias, by_parts, False, exact)]
                    if rows == 1:
                        variants[Variant(k, launch, rows, has_bias, by_parts, True, exact)]
            if rows == 1:  # the engine decodes one row
                engine = Variant(k, launch, 1, bias, len(parts) > 1, normed, exact)
                variants[engine].add(name)
    return variants


def build(variant: Variant) -> dict:
    _, log = nf4_cuda.compile_cubin(variant, "86", verbose=True)
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    return {
        "registers": int(registers.group(1)) if registers else None,
        "spill_bytes": int(spills.group(1)) if spills else None,
        "log": log,
    }


def test_every_cuda_kernel_variant_builds_for_the_a10g_and_fits_it() -> None:
    variants = cuda_variants()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        builds = dict(zip(variants, pool.map(build, variants)))
    problems, rows = [], []
    for variant, result in builds.items():
        launch, shared = variant.launch, variant.shared_bytes()
        threads = launch.threads(variant.k)
        resident = nf4_cuda.grid_size(10**9, 1, launch.blocks_per_sm, shared, SHARED_PER_SM)
        row = {
            "K": variant.k, "rows": variant.rows, "bias": variant.has_bias, "parts": variant.parts,
            "norm": variant.norm, "launch": [launch.tile_rows, launch.chunks_per_thread, launch.blocks_per_sm,
                                             launch.wide, launch.row_groups],
            "threads": threads, "shared_bytes": shared, "blocks_per_sm": resident,
            "registers": result["registers"], "spill_bytes": result["spill_bytes"], "engine": sorted(variants[variant]),
        }
        rows.append(row)
        if shared > SHARED_PER_BLOCK or shared + 1024 > SHARED_PER_SM:
            problems.append(f"{row}: shared memory does not fit an sm_86 block")
        if result["registers"] is None or result["registers"] * threads * resident > REGISTERS_PER_SM:
            problems.append(f"{row}: registers do not fit ({result['log'][-400:]})")
        if variants[variant] and result["spill_bytes"] != 0:
            problems.append(f"{row}: one of the engine's launches spills registers")
    REPORT["cuda"] = sorted(rows, key=lambda r: (r["K"], r["rows"], r["norm"], r["parts"], r["bias"]))
    _write_report()
    assert not problems, "\n".join(problems)


def test_every_tensor_core_variant_the_batch_launches_builds_for_the_a10g_and_fits_it() -> None:
    """The tensor-core kernel at the batch's lane buckets (1, 2, 4, 8, 16 rows) for every K and
    part layout of both models: shared memory within a block and an SM, no register spills."""
    variants = {
        MmaVariant(k, DEFAULT_LAUNCH, rows, bias, len(parts) > 1)
        for _, parts, k, bias, _ in model_launches() for rows in (1, 2, 4, 8, 16)
    }

    def build_mma(variant: MmaVariant) -> dict:
        _, log = nf4_cuda.compile_cubin(None, "86", verbose=True, text=mma_source(variant))
        return {"spill_bytes": int(re.search(r"(\d+) bytes spill stores", log).group(1)), "log": log}

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        builds = dict(zip(variants, pool.map(build_mma, variants)))
    problems = []
    for variant, result in builds.items():
        shared = variant.shared_bytes()
        if shared > SHARED_PER_BLOCK or shared + 1024 > SHARED_PER_SM:
            problems.append(f"{variant}: {shared} bytes of shared memory do not fit an sm_86 block")
        if result["spill_bytes"] != 0:
            problems.append(f"{variant}: spills registers ({result['log'][-300:]})")
    assert not problems, "\n".join(problems)


# ---- Triton ----

def triton_launches() -> None:
    """Each Triton kernel of the decode step, launched as the step launches it for both models."""
    from pictale_server.engine.sampling import SamplingTensors
    from pictale_server.kernels.decode_attention_kernel import split_decode_attention
    from pictale_server.kernels.decode_ops import add_rms_norm_, rms_norm, rotary_cache_write, silu_mul
    from pictale_server.engine.request_sampler import SamplerRows
    from pictale_server.kernels.sampler_kernel import sample_and_accept, sample_rows_and_accept
    from pictale_server.kernels.sampling_noise import uniform_noise

    device = torch.device("cuda")
    bf16 = {"device": device, "dtype": torch.bfloat16}
    for hidden, inter, heads, kv_heads, vocab in ((5120, 14336, 32, 8, 131072), (3584, 18944, 28, 4, 152064)):
        dim = 128
        x = torch.randn(1, 1, hidden, **bf16)
        weight = torch.ones(hidden, **bf16)
        rms_norm(x, weight, 1e-5)
        add_rms_norm_(x.clone(), x, weight, 1e-5)
        both = torch.randn(1, 1, 2 * inter, **bf16)
        silu_mul(both[..., :inter], both[..., inter:])
        fused = torch.randn(1, 1, (heads + 2 * kv_heads) * dim, **bf16)
        q = fused[..., : heads * dim].view(1, 1, heads, dim).transpose(1, 2)
        k = fused[..., heads * dim : (heads + kv_heads) * dim].view(1, 1, kv_heads, dim).transpose(1, 2)
        v = fused[..., (heads + kv_heads) * dim :].view(1, 1, kv_heads, dim).transpose(1, 2)
        cos = torch.ones(1, 1, dim, **bf16)
        cache = torch.zeros(1, kv_heads, 16384, dim, **bf16)
        slot = torch.zeros(1, dtype=torch.int64, device=device)
        rotary_cache_write(q, k, v, cos, cos, cache, cache.clone(), slot)
        query = torch.randn(1, heads, 1, dim, **bf16)
        for length in (256, 1024, 4096, 16384):  # each distinct chunk size is its own build
            split_decode_attention(query, cache[:, :, :length], cache[:, :, :length], None, 0.1, last_slot=slot)
        params = SamplingTensors.allocate(device)
        logits = torch.randn(1, vocab, device=device)
        seen = torch.zeros(1, vocab, dtype=torch.bool, device=device)
        sample_and_accept(logits, seen, params, torch.zeros(1, 1, dtype=torch.int64, device=device))
        rows = SamplerRows.allocate(16, vocab, device)  # the batch's plain lanes, sampled together
        sample_rows_and_accept(
            torch.randn(16, vocab, **bf16), rows.seen, rows.params, rows.token,
            torch.ones(16, dtype=torch.int64, device=device), rows.logits,
        )
        uniform_noise(params.seed, params.step, vocab)


def captured_triton_signatures() -> list[dict]:
    """Runs `triton_launches` with Triton's JIT cache hook skipping every compile, so nothing is
    compiled for or launched on this GPU; returns what each launch would have compiled."""
    import triton
    from triton.runtime.jit import JITFunction

    from pictale_server.kernels import decode_attention_kernel, decode_ops, sampler_kernel, sampling_noise

    captured = []

    def hook(*, key, repr, fn, compile, is_manual_warmup, already_compiled, **_):
        captured.append({"fn": fn.jit_function, "signature": compile["signature"], "constants": compile["constants"],
                         "attrs": compile["configs"][0], "num_warps": compile["num_warps"],
                         "num_stages": compile["num_stages"], "name": fn.name})
        return True  # skip compiling: a skipped compile launches nothing

    kernels = [value for module in (decode_attention_kernel, decode_ops, sampler_kernel, sampling_noise)
               for value in vars(module).values() if isinstance(value, JITFunction)]
    saved = {kernel: kernel.device_caches for kernel in kernels}
    previous = triton.knobs.runtime.jit_cache_hook
    try:
        for kernel in kernels:  # no kernel compiled earlier in this process may skip the hook
            kernel.device_caches = defaultdict(kernel.create_binder)
        triton.knobs.runtime.jit_cache_hook = hook
        triton_launches()
        torch.cuda.synchronize()
    finally:
        triton.knobs.runtime.jit_cache_hook = previous
        for kernel, caches in saved.items():
            kernel.device_caches = caches
    return captured


def test_every_triton_kernel_builds_for_the_a10g_and_fits_it() -> None:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.compiler import compile as triton_compile

    captured = captured_triton_signatures()
    names = {launch["name"] for launch in captured}
    assert {"_rms_norm_kernel", "_add_rms_norm_kernel", "_silu_mul_kernel", "_rotary_cache_write_kernel",
            "_partial_kernel", "_combine_kernel", "_scale_kernel", "_pick_kernel", "_choose_kernel",
            "_uniform_noise_kernel"} <= names, names
    target = GPUTarget("cuda", 86, 32)
    rows, problems, seen = [], [], set()
    for launch in captured:
        key = (launch["name"], repr(launch["signature"]), repr(launch["constants"]), launch["num_warps"])
        if key in seen:  # both models launch some kernels alike
            continue
        seen.add(key)
        source = ASTSource(launch["fn"], launch["signature"], launch["constants"], launch["attrs"])
        compiled = triton_compile(source, target=target,
                                  options={"num_warps": launch["num_warps"], "num_stages": launch["num_stages"]})
        shared = compiled.metadata.shared
        rows.append({"kernel": launch["name"], "num_warps": launch["num_warps"], "shared_bytes": shared,
                     "constants": {str(k): str(v) for k, v in launch["constants"].items()}})
        if shared > SHARED_PER_BLOCK:
            problems.append(f"{rows[-1]}: shared memory does not fit an sm_86 block")
    REPORT["triton"] = rows
    _write_report()
    assert not problems, "\n".join(problems)


def _write_report() -> None:
    path = os.environ.get("PICTALE_KERNEL_REPORT")
    if path:
        Path(path).write_text(json.dumps({"device": torch.cuda.get_device_name(), **REPORT}, indent=1))


@pytest.fixture(autouse=True, scope="module")
def _report_once():
    yield
    _write_report()
