"""Split-K attention for one query token over the KV cache ("flash decoding"), in two launches.

The decode attention in engine/decode_attention.py is six to eight PyTorch kernels per layer
(scores product, scale, mask, softmax, cast, weighted sum, copies); at batch 1 each costs ~2-7 us
whatever it reads. Here the cache is cut into chunks along its length; one program per (batch,
KV head, chunk) computes the scores of that head's grouped queries on tensor cores, an online
softmax and the weighted values, and a second launch merges the chunks, one program per query
row. Scores and the running softmax are fp32; the probabilities meet V in bf16 (as the PyTorch
path, which casts the softmax to V's dtype before its product), accumulated in fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from pictale_server.kernels.attention_chunks import BLOCK_L, MAX_SPLITS, chunk_for

HEAD_DIMS = (64, 128, 256)


@triton.jit
def _partial_kernel(
    Q, K, V, MASK, FIRST, CHUNKS, ACC, MAX, SUM,
    stride_qb, stride_qh, stride_kb, stride_kh, stride_kl, stride_vb, stride_vh, stride_vl,
    stride_mb, length, scale, kv_heads, splits,
    G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr,
    MASK_KIND: tl.constexpr,  # 0 none, 1 bool (True attends), 2 additive, 3 last slot (int64),
    #                           4 regions: first slot, last slot and chunk per row (int64)
    FP32_DOT: tl.constexpr,  # Triton's interpreter multiplies bf16 as raw integers: fp32 there
):
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = bh // kv_heads
    h = bh % kv_heads
    g = tl.arange(0, GP)
    d = tl.arange(0, D)
    q = tl.load(Q + b * stride_qb + (h * G + g)[:, None] * stride_qh + d[None, :], mask=(g < G)[:, None], other=0.0)
    m_i = tl.full([GP], float("-inf"), tl.float32)
    l_i = tl.zeros([GP], tl.float32)
    acc = tl.zeros([GP, D], tl.float32)
    if MASK_KIND >= 3:
        last = tl.load(MASK + b * stride_mb)
    if MASK_KIND == 4:  # the row's own chunk (at most CHUNK), from its own first slot
        chunk = tl.load(CHUNKS + b)
        base = tl.load(FIRST + b) + split * chunk
    else:
        chunk = CHUNK
        base = split * CHUNK
    # Blocks past a row's own chunk are wholly masked and change none of its sums (alpha = 1,
    # p = 0): a row's result does not depend on the CHUNK of the launch it shares.
    for start in range(0, CHUNK, BLOCK):
        offsets = start + tl.arange(0, BLOCK)
        slots = base + offsets
        valid = (slots < length) & (offsets < chunk)
        if MASK_KIND >= 3:  # slots not yet written are not even read
            valid = valid & (slots <= last)
        k = tl.load(K + b * stride_kb + h * stride_kh + slots[:, None] * stride_kl + d[None, :],
                    mask=valid[:, None], other=0.0)
        # V is requested with K, before the scores it waits for: one memory round trip, not two
        v = tl.load(V + b * stride_vb + h * stride_vh + slots[:, None] * stride_vl + d[None, :],
                    mask=valid[:, None], other=0.0)
        if FP32_DOT:
            s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee") * scale
        else:
            s = tl.dot(q, tl.trans(k)) * scale
        if MASK_KIND == 1:
            keep = tl.load(MASK + b * stride_mb + slots, mask=valid, other=0)
            valid = valid & (keep != 0)
        elif MASK_KIND == 2:
            s += tl.load(MASK + b * stride_mb + slots, mask=valid, other=0.0).to(tl.float32)[None, :]
        s = tl.where(valid[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        if FP32_DOT:
            pv = tl.dot(p.to(v.dtype).to(tl.float32), v.to(tl.float32), input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        l_i = l_i * alpha + tl.sum(p, axis=1)
        m_i = m_new
    # Only the G real query rows go out (tl.dot needs 16): the merge then reads a quarter as much.
    real = g < G
    slot = (bh * splits + split) * G + g
    tl.store(MAX + slot, m_i, mask=real)
    tl.store(SUM + slot, l_i, mask=real)
    tl.store(ACC + slot[:, None] * D + d[None, :], acc, mask=real[:, None])


@triton.jit
def _combine_kernel(
    ACC, MAX, SUM, OUT, splits, kv_heads, stride_ob, stride_oh,
    G: tl.constexpr, D: tl.constexpr, SPLITS: tl.constexpr,
):
    """Program (batch x KV head, query of the group): all chunks of one query row in one tile."""
    bh = tl.program_id(0)
    gi = tl.program_id(1)
    b = bh // kv_heads
    h = bh % kv_heads
    s = tl.arange(0, SPLITS)
    d = tl.arange(0, D)
    present = s < splits
    rows = (bh * splits + s) * G + gi
    m = tl.load(MAX + rows, mask=present, other=float("-inf"))
    total_max = tl.max(m, axis=0)
    safe = tl.where(total_max == float("-inf"), 0.0, total_max)
    w = tl.exp(m - safe)
    total = tl.sum(tl.load(SUM + rows, mask=present, other=0.0) * w, axis=0)
    acc = tl.load(ACC + rows[:, None] * D + d[None, :], mask=present[:, None], other=0.0)
    out = tl.sum(acc * w[:, None], axis=0) / total
    tl.store(OUT + b * stride_ob + (h * G + gi) * stride_oh + d, out.to(OUT.dtype.element_ty))


def split_decode_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    last_slot: torch.Tensor | None = None,
) -> torch.Tensor:
    """query (B, Hq, 1, D), key/value (B, Hkv, L, D) with unit last stride, mask None or
    (B, 1, 1, L) with unit last stride (bool: True attends; float: added) → (B, 1, Hq, D).
    Instead of a mask, `last_slot` (int64 device tensor of 1 or B elements) attends to slots
    0..last_slot of each row: a causal decode step without a mask to build."""
    batch, query_heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    group = query_heads // kv_heads
    padded = max(16, triton.next_power_of_2(group))  # tl.dot needs 16 rows
    chunk = chunk_for(length)
    splits = triton.cdiv(length, chunk)
    programs = batch * kv_heads
    acc = torch.empty((programs, splits, group, dim), dtype=torch.float32, device=query.device)
    maxima = torch.empty((programs, splits, group), dtype=torch.float32, device=query.device)
    sums = torch.empty_like(maxima)
    out = torch.empty((batch, 1, query_heads, dim), dtype=query.dtype, device=query.device)
    if last_slot is not None:
        if mask is not None:
            raise ValueError("pass a mask or last_slot, not both")
        kind, mask_arg, stride_mb = 3, last_slot, (1 if last_slot.numel() > 1 else 0)
    elif mask is None:
        kind, mask_arg, stride_mb = 0, query, 0
    else:
        kind = 1 if mask.dtype == torch.bool else 2
        mask_arg, stride_mb = mask, (mask.stride(0) if mask.shape[0] > 1 else 0)
    _partial_kernel[(programs, splits)](
        query, key, value, mask_arg, mask_arg, mask_arg, acc, maxima, sums,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2), stride_mb, length, scale, kv_heads, splits,
        G=group, GP=padded, D=dim, CHUNK=chunk, BLOCK=BLOCK_L, MASK_KIND=kind,
        FP32_DOT=query.device.type == "cpu", num_warps=4,
    )
    _combine_kernel[(programs, group)](
        acc, maxima, sums, out, splits, kv_heads, out.stride(0), out.stride(2),
        G=group, D=dim, SPLITS=MAX_SPLITS, num_warps=4,
    )
    return out


def region_decode_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    first: torch.Tensor,
    last: torch.Tensor,
    chunk: torch.Tensor,
    scale: float,
    max_chunk: int,
) -> torch.Tensor:
    """Attention of each row's query over its own region of a shared cache: query (B, Hq, 1, D),
    key/value (1, Hkv, L, D) with unit last stride, and per row (int64 device tensors of B
    elements) the region's first slot, the last slot to attend to and the slots per program,
    a multiple of BLOCK_L with chunk * MAX_SPLITS covering the region (`chunk_for` of its
    length); `max_chunk` is at least every row's chunk (one compilation each). A row's
    programs and their order depend only on its own region, so its output is the same bits
    whatever other rows share the launch → (B, 1, Hq, D)."""
    batch, query_heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    group = query_heads // kv_heads
    padded = max(16, triton.next_power_of_2(group))
    programs = batch * kv_heads
    acc = torch.empty((programs, MAX_SPLITS, group, dim), dtype=torch.float32, device=query.device)
    maxima = torch.empty((programs, MAX_SPLITS, group), dtype=torch.float32, device=query.device)
    sums = torch.empty_like(maxima)
    out = torch.empty((batch, 1, query_heads, dim), dtype=query.dtype, device=query.device)
    _partial_kernel[(programs, MAX_SPLITS)](
        query, key, value, last, first, chunk, acc, maxima, sums,
        query.stride(0), query.stride(1), 0, key.stride(1), key.stride(2),
        0, value.stride(1), value.stride(2), 1, length, scale, kv_heads, MAX_SPLITS,
        G=group, GP=padded, D=dim, CHUNK=max_chunk, BLOCK=BLOCK_L, MASK_KIND=4,
        FP32_DOT=query.device.type == "cpu", num_warps=4,
    )
    _combine_kernel[(programs, group)](
        acc, maxima, sums, out, MAX_SPLITS, kv_heads, out.stride(0), out.stride(2),
        G=group, D=dim, SPLITS=MAX_SPLITS, num_warps=4,
    )
    return out


def accepts(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None) -> bool:
    dim = query.shape[-1]
    return (
        query.dtype in (torch.bfloat16, torch.float16)
        and key.dtype == query.dtype == value.dtype
        and dim in HEAD_DIMS
        and query.shape[1] % key.shape[1] == 0
        and query.stride(-1) == key.stride(-1) == value.stride(-1) == 1
        and key.shape == value.shape
        and (mask is None or (mask.dim() == 4 and mask.shape[1] == mask.shape[2] == 1
                              and mask.shape[-1] == key.shape[2] and mask.stride(-1) == 1))
    )


__all__ = ["HEAD_DIMS", "MAX_SPLITS", "accepts", "chunk_for", "region_decode_attention", "split_decode_attention"]
