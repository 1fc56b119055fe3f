"""The small element-wise steps of the written-out decode step, one Triton kernel each.

At batch 1 every launch inside the captured decode graph costs ~2 us however little it
computes, and transformers writes these steps as chains of PyTorch ops: RMSNorm is 8 kernels
(cast, pow, mean, add, rsqrt, mul, cast, mul), the rotary embedding 10 (q and k: mul, neg, cat,
mul, add), a static-cache write 5, the SiLU gate 2. Each function here is one launch that rounds
exactly where the PyTorch chain rounds (bf16 after each PyTorch op on bf16 tensors, fp32 inside
RMSNorm), so outputs match to the last bit except where fp32 sums are reordered or
rsqrt/sigmoid approximations differ by an ulp:

- `rms_norm`: transformers' RMSNorm;
- `add_rms_norm_`: a decoder layer's residual add (in place) and the RMSNorm after it;
  `add_rms_norm_into` the same with the sum stored elsewhere;
- `rotary_cache_write`: the rotary embedding of q and k and the KV-cache write of k and v;
- `silu_mul`: the MLP's gate, silu(gate) * up.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _round(x, DTYPE: tl.constexpr):
    """fp32 -> DTYPE, round to nearest even (as PyTorch rounds). bf16 is rounded by hand:
    Triton's interpreter truncates, and the tests compare against PyTorch bit for bit."""
    if DTYPE == tl.bfloat16:
        bits = x.to(tl.int32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
        rounded = tl.where((bits & 0x7FFFFFFF) > 0x7F800000, bits | 0x400000, rounded)  # NaN
        return (rounded >> 16).to(tl.int16).to(tl.bfloat16, bitcast=True)
    return x.to(DTYPE)


@triton.jit
def _rms_normed(x, w, N, eps, X_DTYPE: tl.constexpr, Y_DTYPE: tl.constexpr):
    """transformers' RMSNorm of one fp32 row x of N values: normalized in fp32, rounded to the
    input's dtype, times the weight, rounded to the output's."""
    variance = tl.sum(x * x, axis=0) / N
    normed = _round(x * (1.0 / tl.sqrt(variance + eps)), X_DTYPE)
    return _round(w.to(tl.float32) * normed.to(tl.float32), Y_DTYPE)


@triton.jit
def _rms_norm_kernel(X, W, Y, stride_x, stride_y, N, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(W + cols, mask=mask, other=0.0)  # requested with x: one memory round trip, not two
    y = _rms_normed(x, w, N, eps, X.dtype.element_ty, Y.dtype.element_ty)
    tl.store(Y + row * stride_y + cols, y, mask=mask)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """weight * (x.float() * rsqrt(mean(x.float()**2) + eps)).to(x.dtype), per row of the last dim."""
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    out_dtype = torch.result_type(weight, rows[:0])
    out = torch.empty(rows.shape, dtype=out_dtype, device=x.device)
    block = triton.next_power_of_2(n)
    _rms_norm_kernel[(rows.shape[0],)](
        rows, weight, out, rows.stride(0), out.stride(0), n, eps,
        BLOCK=block, num_warps=8 if block >= 4096 else 4,
    )
    return out.view(x.shape)


@triton.jit
def _add_rms_norm_kernel(
    R, X, W, Y, S, stride_r, stride_x, stride_y, stride_s, N, eps, BLOCK: tl.constexpr
):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    r = tl.load(R + row * stride_r + cols, mask=mask, other=0.0)
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0)
    w = tl.load(W + cols, mask=mask, other=0.0)
    total = _round(r.to(tl.float32) + x.to(tl.float32), R.dtype.element_ty)  # PyTorch's bf16 add
    tl.store(S + row * stride_s + cols, total, mask=mask)
    y = _rms_normed(total.to(tl.float32), w, N, eps, R.dtype.element_ty, Y.dtype.element_ty)
    tl.store(Y + row * stride_y + cols, y, mask=mask)


def add_rms_norm_(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """residual += x (in place, rounded as PyTorch's add), then rms_norm(residual, weight, eps):
    a decoder layer's residual add and the RMSNorm that follows it, in one launch."""
    return add_rms_norm_into(residual, x, weight, eps, residual)


def add_rms_norm_into(
    residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float, residual_out: torch.Tensor
) -> torch.Tensor:
    """residual_out = residual + x (rounded as PyTorch's add), then rms_norm(residual_out, weight,
    eps), in one launch; residual_out may be the residual itself (`add_rms_norm_`)."""
    n = residual.shape[-1]
    r = residual.view(-1, n)
    rows = x.reshape(-1, n)
    total = residual_out.view(-1, n)
    out = torch.empty(r.shape, dtype=torch.result_type(weight, r[:0]), device=residual.device)
    block = triton.next_power_of_2(n)
    _add_rms_norm_kernel[(r.shape[0],)](
        r, rows, weight, out, total, r.stride(0), rows.stride(0), out.stride(0), total.stride(0), n, eps,
        BLOCK=block, num_warps=8 if block >= 4096 else 4,
    )
    return out.view(residual.shape)


@triton.jit
def _rotate_head(x_ptr, COS, SIN, b, stride_cb, D: tl.constexpr):
    """One head of transformers' rotary embedding: x * cos + rotate_half(x) * sin, each product
    rounded to x's dtype before the sum, as the PyTorch chain rounds."""
    half: tl.constexpr = D // 2
    d = tl.arange(0, D)
    partner = (d + half) % D
    sign = tl.where(d < half, -1.0, 1.0)
    cos = tl.load(COS + b * stride_cb + d).to(tl.float32)
    sin = tl.load(SIN + b * stride_cb + d).to(tl.float32)
    x = tl.load(x_ptr + d)
    rotated = tl.load(x_ptr + partner) * sign  # rotate_half: cat(-x2, x1); negation is exact
    a = _round(x.to(tl.float32) * cos, x.dtype)
    c = _round(rotated.to(tl.float32) * sin, x.dtype)
    return _round(a.to(tl.float32) + c.to(tl.float32), x.dtype)


def _angle_rows(cos: torch.Tensor, sin: torch.Tensor, batch: int, dim: int):
    """cos and sin [B, 1, D] as [B, D] rows with one row stride between them (the kernels take one)."""
    cos2 = cos.reshape(batch, dim)
    sin2 = sin.reshape(batch, dim)
    if sin2.stride() != cos2.stride():
        return cos2.contiguous(), sin2.contiguous()
    return cos2, sin2


@triton.jit
def _silu_mul_kernel(G, U, Y, stride_g, stride_u, N, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    g = tl.load(G + row * stride_g + cols, mask=mask, other=0.0)
    u = tl.load(U + row * stride_u + cols, mask=mask, other=0.0)
    gf = g.to(tl.float32)
    act = _round(gf / (1.0 + tl.exp(-gf)), g.dtype)
    tl.store(Y + row * N + cols, _round(act.to(tl.float32) * u.to(tl.float32), g.dtype), mask=mask)


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up, each rounded to the input dtype as PyTorch does (rows may be strided)."""
    n = gate.shape[-1]
    g = gate.reshape(-1, n)
    u = up.reshape(-1, n)
    out = torch.empty(g.shape, dtype=gate.dtype, device=gate.device)
    block = 2048
    _silu_mul_kernel[(g.shape[0], triton.cdiv(n, block))](
        g, u, out, g.stride(0), u.stride(0), n, BLOCK=block, num_warps=4,
    )
    return out.view(gate.shape)


@triton.jit
def _rotary_cache_write_kernel(
    Q, K, V, COS, SIN, Q_OUT, KEYS, VALUES, SLOT, stride_slot,
    q_heads, k_heads, stride_qb, stride_qh, stride_kb, stride_kh, stride_vb, stride_vh, stride_cb,
    stride_kcb, stride_kch, stride_kcl, stride_vcb, stride_vch, stride_vcl,
    length, D: tl.constexpr,
):
    """Program (b, h): q head h, k head h - q_heads, or v head h - q_heads - k_heads."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    d = tl.arange(0, D)
    slot = tl.load(SLOT + b * stride_slot)
    inside = (d < D) & (slot < length)
    if h < q_heads:
        row = _rotate_head(Q + b * stride_qb + h * stride_qh, COS, SIN, b, stride_cb, D)
        tl.store(Q_OUT + (b * q_heads + h) * D + d, row)
    elif h < q_heads + k_heads:
        kh = h - q_heads
        row = _rotate_head(K + b * stride_kb + kh * stride_kh, COS, SIN, b, stride_cb, D)
        tl.store(KEYS + b * stride_kcb + kh * stride_kch + slot * stride_kcl + d, row, mask=inside)
    else:
        vh = h - q_heads - k_heads
        row = tl.load(V + b * stride_vb + vh * stride_vh + d)
        tl.store(VALUES + b * stride_vcb + vh * stride_vch + slot * stride_vcl + d, row, mask=inside)


def rotary_cache_write(q, k, v, cos, sin, keys, values, slot) -> torch.Tensor:
    """transformers' apply_rotary_pos_emb(q, k, cos, sin) for one position per row, then the
    rotated k and v stored at cache slot `slot` (an int64 device tensor of 1 or B elements, one
    per row): keys/values[b, :, slot[b]] = k[b], v[b]. One launch for what transformers'
    attention does in fifteen. A slot past the cache is not written. No counter moves: the
    caller keeps a static cache layer's `cumulative_length` in step.

    q [B, Hq, 1, D], k and v [B, Hk, 1, D] (any strides with a unit last one), cos/sin [B, 1, D],
    keys/values [B, Hk, L, D], or [1, Hk, L, D] shared by all rows (a pool every row writes its
    own slots of). Returns the rotated q as a new contiguous tensor of q's shape.
    """
    batch, q_heads, _, dim = q.shape
    k_heads = k.shape[1]
    q_out = torch.empty((batch, q_heads, 1, dim), dtype=q.dtype, device=q.device)
    cos2, sin2 = _angle_rows(cos, sin, batch, dim)
    _rotary_cache_write_kernel[(batch, q_heads + 2 * k_heads)](
        q, k, v, cos2, sin2, q_out, keys, values, slot, 1 if slot.numel() > 1 else 0,
        q_heads, k_heads, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        cos2.stride(0), keys.stride(0) if keys.shape[0] > 1 else 0, keys.stride(1), keys.stride(2),
        values.stride(0) if values.shape[0] > 1 else 0, values.stride(1), values.stride(2), keys.shape[2],
        D=dim, num_warps=1,
    )
    return q_out


__all__ = ["add_rms_norm_", "rms_norm", "rotary_cache_write", "silu_mul"]
