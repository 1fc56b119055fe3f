"""Decoder layers whose attention skip connection rides on the CUDA NF4 kernel.

A decode step of a Mistral / Qwen2 decoder layer ends its attention block with a separate
element-wise launch, `residual + o_proj(attention)`. The CUDA kernel's epilogue can add the
residual instead (rounded as PyTorch rounds the two steps, so the result is the same): one
launch fewer per layer, for ~0.3-0.7 us more in the o_proj kernel (an H200 measured the add
alone at ~2.4 us inside the decode graph).

The MLP's skip connection and its SiLU gate were tried the same way and dropped: with K of
14336 or 18944 the epilogue and a SiLU prologue (each block computes the gate for all of K)
cost more kernel time than the launches they saved (docs/kernels.md).

`patch_decoder_layers(model)` gives each such layer a forward that, for a decode step, runs
the layer's own modules in the original order and offers the residual to `o_proj`, which sits
inside the attention module and reports whether its kernel added it; whatever the kernel cannot
take (prefill, bitsandbytes or the Triton kernel, more rows than it reads) is added here, so the
layer's result does not depend on which path ran.
"""

from __future__ import annotations

import torch

from .fast_decode import MAX_ROWS

DECODER_LAYER_CLASSES = ("MistralDecoderLayer", "Qwen2DecoderLayer", "Qwen2_5_VLDecoderLayer")


def _o_proj_group(layer):
    attention = getattr(layer, "self_attn", None)
    group = getattr(getattr(attention, "o_proj", None), "_fast_nf4_group", None)
    if group is None or group.cuda_weight is None or len(group.splits) != 1:
        return None
    return group


def _decode_forward(layer, original, o_group):
    def forward(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        rows = hidden_states.numel() // max(1, hidden_states.shape[-1])
        if args or hidden_states.dim() < 2 or rows > MAX_ROWS or hidden_states.dtype != torch.bfloat16:
            return original(hidden_states, *args, **kwargs)
        residual = hidden_states
        hidden = layer.input_layernorm(hidden_states)
        o_group.offered_residual, o_group.residual_taken = residual, False
        try:
            hidden, _ = layer.self_attn(hidden_states=hidden, **kwargs)
            taken = o_group.residual_taken
        finally:
            o_group.offered_residual, o_group.residual_taken = None, False
        hidden = hidden if taken else residual + hidden

        residual = hidden
        return residual + layer.mlp(layer.post_attention_layernorm(hidden))

    return forward


def patch_decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Patch every decoder layer of `model` whose o_proj runs on the CUDA kernel (after
    `enable_fast_nf4(..., cuda=True)`); returns the layers patched (undo: `del layer.forward`)."""
    patched = []
    for module in model.modules():
        if type(module).__name__ not in DECODER_LAYER_CLASSES:
            continue
        group = _o_proj_group(module)
        if group is None or not all(hasattr(module, name) for name in ("input_layernorm", "post_attention_layernorm", "mlp")):
            continue
        module.forward = _decode_forward(module, module.forward, group)
        group.variants.add(True)
        patched.append(module)
    return patched


__all__ = ["DECODER_LAYER_CLASSES", "patch_decoder_layers"]
