"""Facts about the GPU a benchmark runs on, and the A10G emulation cap.

The cap emulates the production card (NVIDIA A10G: 23,028 MiB usable = 22.49 GiB) on a
bigger one: the CUDA context is counted, so the allocator gets 22.49 GiB minus what the
context already holds.
"""

from __future__ import annotations

import time

import torch

A10G_USABLE_GIB = 23028 / 1024
A10G_BANDWIDTH_TB_S = 0.600
GIB = 2**30


def copy_bandwidth_tb_s(size_bytes: int = 2 * GIB, repeats: int = 20) -> float:
    """Device-to-device copy rate, counting bytes read plus bytes written."""
    src = torch.empty(size_bytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    del src, dst
    torch.cuda.empty_cache()
    return 2 * size_bytes / seconds / 1e12


def cap_to_a10g() -> dict:
    """Limit this process's GPU memory to what an A10G offers, context included."""
    torch.cuda.init()
    torch.empty(1, device="cuda")  # creates the context
    free, total = torch.cuda.mem_get_info()
    context = total - free
    allowed = A10G_USABLE_GIB * GIB - context
    torch.cuda.set_per_process_memory_fraction(allowed / total)
    return {"cap_gib": A10G_USABLE_GIB, "context_gib": context / GIB, "allocator_cap_gib": allowed / GIB}


def device_facts() -> dict:
    props = torch.cuda.get_device_properties(0)
    return {
        "device": props.name,
        "sm_count": props.multi_processor_count,
        "total_gib": props.total_memory / GIB,
        "torch": torch.__version__,
    }


def peak_gib(peak_reserved: int | None = None) -> float:
    """Peak allocator memory (since the last reset, unless given) plus the context: what
    nvidia-smi would show at the peak."""
    free, total = torch.cuda.mem_get_info()
    context = total - free - torch.cuda.memory_reserved()
    reserved = torch.cuda.max_memory_reserved() if peak_reserved is None else peak_reserved
    return (reserved + max(context, 0)) / GIB
