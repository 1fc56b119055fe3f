"""The vision tower's window attention as one SDPA call per layer.

Qwen2.5-VL's vision encoder attends within windows of 8 x 8 patches in 28 of its 32 layers.
transformers runs that, for every attention implementation but flash-attn (not installed
here), as a Python loop: split q/k/v at the window boundaries (a host sync per layer), one SDPA
call per window, then concatenate -- for a 1 MP image ~80 windows, so ~2,300 small SDPA calls
per describe, each a few kernel launches and some Python. Windows hold consecutive tokens (the
tower orders its patches window by window), so here they become one batch: a reshape when all
windows have the same length, else windows padded to the longest with padded keys masked out.
Same attention per window; one call.

`batch_window_attention(model)` patches every Qwen2_5_VLVisionAttention of a model whose
attention implementation is SDPA-based; flash-attn keeps its own varlen path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SDPA_IMPLEMENTATIONS = ("sdpa", "pictale_sdpa")


@dataclass(frozen=True)
class WindowLayout:
    """How a sequence of `tokens` splits into `windows` of at most `length` tokens."""

    tokens: int
    windows: int
    length: int
    gather: torch.Tensor | None  # [windows, length] token index, `tokens` for padding; None: equal windows
    keep: torch.Tensor | None  # [windows * length] flat positions of real tokens, in sequence order
    mask: torch.Tensor | None  # [windows, 1, 1, length] True where a key is a real token


def window_layout(cu_seqlens: torch.Tensor) -> WindowLayout:
    bounds = [int(b) for b in cu_seqlens.tolist()]
    spans = [(start - bounds[0], end - start) for start, end in zip(bounds, bounds[1:]) if end > start]
    lengths = [size for _, size in spans]
    tokens, windows, length = bounds[-1] - bounds[0], len(spans), max(lengths)
    if all(n == length for n in lengths):
        return WindowLayout(tokens, windows, length, None, None, None)
    device = cu_seqlens.device
    starts = torch.tensor([start for start, _ in spans], device=device)
    sizes = torch.tensor(lengths, device=device)
    offsets = torch.arange(length, device=device)
    real = offsets[None, :] < sizes[:, None]
    gather = torch.where(real, starts[:, None] + offsets[None, :], tokens)
    keep = real.flatten().nonzero().flatten()
    return WindowLayout(tokens, windows, length, gather, keep, real[:, None, None, :])


class _LayoutCache:
    """The tower passes the same cu_seqlens tensor to every layer of one forward: its layout
    is worked out (one host sync) once per tensor, not once per layer."""

    def __init__(self) -> None:
        self._entries: list[tuple[torch.Tensor, WindowLayout]] = []

    def get(self, cu_seqlens: torch.Tensor) -> WindowLayout:
        for tensor, layout in self._entries:
            if tensor is cu_seqlens:
                return layout
        layout = window_layout(cu_seqlens)
        self._entries = [*self._entries[-1:], (cu_seqlens, layout)]  # windowed + full attention
        return layout


def windowed_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: WindowLayout, scale: float
) -> torch.Tensor:
    """q, k, v: [tokens, heads, head_dim] -> [tokens, heads * head_dim], attention within windows."""
    heads, dim = q.shape[1], q.shape[2]
    if layout.gather is None:
        def batched(t: torch.Tensor) -> torch.Tensor:
            return t.view(layout.windows, layout.length, heads, dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(batched(q), batched(k), batched(v), scale=scale)
        return out.transpose(1, 2).reshape(layout.tokens, heads * dim)

    def padded(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t.new_zeros(1, heads, dim)])[layout.gather].transpose(1, 2)

    out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=layout.mask, scale=scale)
    return out.transpose(1, 2).reshape(layout.windows * layout.length, heads * dim)[layout.keep]


def _forward(module, original, layouts: _LayoutCache):
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    def forward(hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
        if module.config._attn_implementation not in SDPA_IMPLEMENTATIONS or position_embeddings is None:
            return original(hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs)
        tokens = hidden_states.shape[0]
        q, k, v = module.qkv(hidden_states).reshape(tokens, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        out = windowed_sdpa(q, k, v, layouts.get(cu_seqlens), module.scaling)
        return module.proj(out)

    return forward


def batch_window_attention(model: torch.nn.Module) -> int:
    """Patch the vision attention layers of `model`; returns how many."""
    layouts = _LayoutCache()
    patched = 0
    for module in model.modules():
        if type(module).__name__ == "Qwen2_5_VLVisionAttention":
            module.forward = _forward(module, module.forward, layouts)
            patched += 1
    return patched


__all__ = ["WindowLayout", "batch_window_attention", "window_layout", "windowed_sdpa"]
