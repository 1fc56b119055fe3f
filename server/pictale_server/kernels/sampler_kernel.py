"""The sampler without top-k and top-p (engine/sampling.py, `by_rank=False`) in three launches,
the decode loop's bookkeeping for the chosen token included.

In PyTorch ops the sampler of a decode step is ~20 launches over the vocabulary (repetition
penalty, temperature, the min-p threshold, Gumbel noise, two argmax reductions), ~50 us per
token on an H200, where a single-row argmax over 131k logits alone takes ~8 us. Here:

1. one program per block of the vocabulary: repetition penalty and temperature, the block's
   greedy candidate (first index of the largest penalized logit) and the block's best scaled
   logit;
2. one program per block: the min-p threshold from every block's best, the Gumbel noise of
   each kept token (the same counter hash as `sampling_noise.py`), the block's sampled
   candidate;
3. one program: the first index of the best candidate among the blocks, greedy or sampled by
   temperature, as `sample_next_token` picks; it stores the token where the next step reads it,
   marks it seen (for the repetition penalty) and moves the sampler's step on, which are three
   more launches in PyTorch.

The arithmetic is PyTorch's: divisions rounded as IEEE divides (`div_rn`), logarithms from
libdevice (CUDA's `logf`, which PyTorch calls), ties broken by the lowest index as
`torch.argmax` breaks them. Under Triton's interpreter (tests) the logarithm is NumPy's.

One compiled kernel serves every lane of a batch: a lane's settings, token and masks are a row
of the batch's and start at any offset, and they are read one element at a time, so their
pointers are not specialized on 16-byte alignment and their strides not on value. Specialized,
the first request in a new lane compiled the kernels again inside the request, ~1 s on an H100
that every running stream waited out.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice

from pictale_server.kernels.sampling_noise import uniform_at

BLOCK = 8192


@triton.jit
def _log(x, EXACT_LOG: tl.constexpr):
    if EXACT_LOG:
        return libdevice.log(x)
    return tl.log(x)


@triton.jit
def _first_best(values, index):
    """(largest value, lowest index holding it) of a block; -inf blocks give index `size`."""
    best = tl.max(values, axis=0)
    first = tl.min(tl.where(values == best, index, 2147483647), axis=0)
    return best, first


@triton.jit(do_not_specialize=["params_stride"], do_not_specialize_on_alignment=["PENALTY", "TEMPERATURE", "ACTIVE"])
def _scale_kernel(
    LOGITS, logits_stride, SEEN, seen_stride, PENALTY, TEMPERATURE, params_stride, SCALED, GREEDY_VALUE,
    GREEDY_INDEX, BLOCK_BEST, KEPT, ACTIVE, size, blocks, BLOCK: tl.constexpr, KEEP: tl.constexpr,
    HAS_ACTIVE: tl.constexpr,
):
    block, row = tl.program_id(0), tl.program_id(1)
    index = block * BLOCK + tl.arange(0, BLOCK)
    inside = index < size
    logits = tl.load(LOGITS + row * logits_stride + index, mask=inside, other=float("-inf")).to(tl.float32)
    if KEEP:
        keep = inside
        if HAS_ACTIVE:
            keep = keep & (tl.load(ACTIVE + row) != 0)
        tl.store(KEPT + row * size + index, logits, mask=keep)
    seen = tl.load(SEEN + row * seen_stride + index, mask=inside, other=0) != 0
    penalty = tl.load(PENALTY + row * params_stride)
    penalized = tl.where(logits > 0, tl.math.div_rn(logits, penalty), logits * penalty)
    penalized = tl.where(seen, penalized, logits)
    value, first = _first_best(penalized, index)
    tl.store(GREEDY_VALUE + row * blocks + block, value)
    tl.store(GREEDY_INDEX + row * blocks + block, first)
    scaled = tl.math.div_rn(penalized, tl.maximum(tl.load(TEMPERATURE + row * params_stride), 1e-5))
    tl.store(SCALED + row * size + index, scaled, mask=inside)
    tl.store(BLOCK_BEST + row * blocks + block, tl.max(scaled, axis=0))


@triton.jit(do_not_specialize=["params_stride"], do_not_specialize_on_alignment=["MIN_P", "SEED", "STEP"])
def _pick_kernel(
    SCALED, BLOCK_BEST, MIN_P, SEED, STEP, params_stride, SAMPLED_VALUE, SAMPLED_INDEX,
    size, blocks, BLOCK: tl.constexpr, BLOCKS: tl.constexpr, EXACT_LOG: tl.constexpr,
):
    block, row = tl.program_id(0), tl.program_id(1)
    others = tl.arange(0, BLOCKS)
    best = tl.max(tl.load(BLOCK_BEST + row * blocks + others, mask=others < blocks, other=float("-inf")), axis=0)
    threshold = best + _log(tl.load(MIN_P + row * params_stride), EXACT_LOG)
    index = block * BLOCK + tl.arange(0, BLOCK)
    inside = index < size
    scaled = tl.load(SCALED + row * size + index, mask=inside, other=float("-inf"))
    noise = uniform_at(SEED + row * params_stride, STEP + row * params_stride, index)
    gumbel = -_log(-_log(noise, EXACT_LOG), EXACT_LOG)
    candidate = tl.where(scaled < threshold, float("-inf"), scaled) + gumbel
    candidate = tl.where(inside, candidate, float("-inf"))
    value, first = _first_best(candidate, index)
    tl.store(SAMPLED_VALUE + row * blocks + block, value)
    tl.store(SAMPLED_INDEX + row * blocks + block, first)


@triton.jit(
    do_not_specialize=["params_stride", "token_stride"],
    do_not_specialize_on_alignment=["TEMPERATURE", "STEP", "TOKEN", "ACTIVE", "SEEN"],
)
def _choose_kernel(
    GREEDY_VALUE, GREEDY_INDEX, SAMPLED_VALUE, SAMPLED_INDEX, TEMPERATURE, STEP, params_stride,
    TOKEN, token_stride, SEEN, seen_stride, ACTIVE, blocks, BLOCKS: tl.constexpr, HAS_ACTIVE: tl.constexpr,
):
    row = tl.program_id(0)
    block = tl.arange(0, BLOCKS)
    present = block < blocks
    greedy_value = tl.load(GREEDY_VALUE + row * blocks + block, mask=present, other=float("-inf"))
    greedy_index = tl.load(GREEDY_INDEX + row * blocks + block, mask=present, other=2147483647)
    _, greedy = _first_best(greedy_value, greedy_index)
    sampled_value = tl.load(SAMPLED_VALUE + row * blocks + block, mask=present, other=float("-inf"))
    sampled_index = tl.load(SAMPLED_INDEX + row * blocks + block, mask=present, other=2147483647)
    _, sampled = _first_best(sampled_value, sampled_index)
    token = tl.where(tl.load(TEMPERATURE + row * params_stride) > 0, sampled, greedy)
    active = True
    if HAS_ACTIVE:
        active = tl.load(ACTIVE + row) != 0
    tl.store(TOKEN + row * token_stride, token.to(tl.int64), mask=active)
    tl.store(SEEN + row * seen_stride + token, 1, mask=active)
    step = STEP + row * params_stride
    tl.store(step, tl.load(step) + 1, mask=active)


def sample_and_accept(logits: torch.Tensor, seen: torch.Tensor, params, token: torch.Tensor) -> None:
    """On a GPU, for one row of logits (batch 1): token[...] = sample_next_token(logits, seen,
    params, by_rank=False), then seen[token] = True and params.step += 1, as the decode loop does
    after sampling. logits (1, vocab) float, seen (1, vocab) bool, token one int64 element."""
    sample_rows_and_accept(logits, seen, params, token.view(1, 1))


def sample_rows_and_accept(
    logits: torch.Tensor, seen: torch.Tensor, params, token: torch.Tensor, active: torch.Tensor | None = None,
    kept: torch.Tensor | None = None,
) -> None:
    """`sample_and_accept` for R rows in three launches, each row with its own settings: logits
    (R, vocab), seen (R, vocab) bool, token (R, 1) int64, `params` a SamplingTensors of R
    values per setting (`SamplingTensors.allocate(rows=R)`) or, for one row, 0-d ones. Only
    rows where `active` (R,) is non-zero take their token (and mark it, and step on); every
    row's arithmetic is the one-row kernel's, so a row's token is the same at any R. `kept`
    (R, vocab) float32 contiguous, where given, receives the active rows' logits as float32."""
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    rows, size = logits.shape
    blocks = triton.cdiv(size, BLOCK)
    padded = max(2, triton.next_power_of_2(blocks))
    device = logits.device
    params_stride = params.temperature.stride(0) if params.temperature.dim() else 0
    scaled = torch.empty((rows, size), dtype=torch.float32, device=device)
    greedy_value = torch.empty((rows, blocks), dtype=torch.float32, device=device)
    greedy_index = torch.empty((rows, blocks), dtype=torch.int32, device=device)
    block_best = torch.empty((rows, blocks), dtype=torch.float32, device=device)
    sampled_value = torch.empty((rows, blocks), dtype=torch.float32, device=device)
    sampled_index = torch.empty((rows, blocks), dtype=torch.int32, device=device)
    seen_bytes = seen.view(torch.uint8)
    _scale_kernel[(blocks, rows)](
        logits, logits.stride(0), seen_bytes, seen_bytes.stride(0), params.repetition_penalty, params.temperature,
        params_stride, scaled, greedy_value, greedy_index, block_best, kept if kept is not None else scaled,
        active if active is not None else token, size, blocks, BLOCK=BLOCK, KEEP=kept is not None,
        HAS_ACTIVE=active is not None, num_warps=8,
    )
    _pick_kernel[(blocks, rows)](
        scaled, block_best, params.min_p, params.seed, params.step, params_stride, sampled_value, sampled_index,
        size, blocks, BLOCK=BLOCK, BLOCKS=padded, EXACT_LOG=device.type == "cuda" and not _interpreting(),
        num_warps=8,
    )
    _choose_kernel[(rows,)](
        greedy_value, greedy_index, sampled_value, sampled_index, params.temperature, params.step, params_stride,
        token, token.stride(0), seen_bytes, seen_bytes.stride(0), active if active is not None else token,
        blocks, BLOCKS=padded, HAS_ACTIVE=active is not None, num_warps=1,
    )


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


__all__ = ["sample_and_accept", "sample_rows_and_accept"]
