"""The sampler's uniform noise (engine/sampling.py `uniform_noise`) as one kernel.

The PyTorch version hashes the seed and step on 0-d tensors, then every token index: ~45
launches of a few microseconds each inside every decode step's graph. Here one program per
block of token indices does all of it in uint32 arithmetic, which wraps exactly where the
PyTorch version masks its int64 values to 32 bits, so the bits are the same.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 4096


@triton.jit
def _hash32(x):
    """lowbias32 on uint32."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


@triton.jit
def uniform_at(SEED, STEP, index):
    """The noise of token indices `index` for the int64 seed and step at SEED and STEP
    (also used by sampler_kernel.py)."""
    seed = tl.load(SEED)
    step = tl.load(STEP)
    seed_low = (seed & 0xFFFFFFFF).to(tl.uint32)
    seed_high = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    step_low = (step & 0xFFFFFFFF).to(tl.uint32)
    key = _hash32(seed_low ^ _hash32(step_low ^ _hash32(seed_high)))
    bits = _hash32(index.to(tl.uint32) * 0x9E3779B1 + key) >> 8
    return (bits.to(tl.float32) + 0.5) / 16777216.0


@triton.jit
def _uniform_noise_kernel(SEED, STEP, OUT, size, BLOCK: tl.constexpr):
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(OUT + index, uniform_at(SEED, STEP, index), mask=index < size)


def uniform_noise(seed: torch.Tensor, step: torch.Tensor, size: int) -> torch.Tensor:
    """engine.sampling.uniform_noise(seed, step, size), bit for bit, in one launch."""
    out = torch.empty(size, dtype=torch.float32, device=seed.device)
    _uniform_noise_kernel[(triton.cdiv(size, BLOCK),)](
        seed, step, out, size, BLOCK=BLOCK, num_warps=4
    )
    return out


__all__ = ["uniform_at", "uniform_noise"]
