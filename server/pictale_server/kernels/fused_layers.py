"""Routing a model's decode-time RMSNorm, rotary embedding, SiLU gate and attention to
one kernel each (decode_ops.py, decode_attention_kernel.py).

`enable_fused_decode_ops(model)` gives every RMSNorm and SiLU MLP of the known families a
forward that takes the fused kernel for inputs of at most MAX_ROWS rows (a decode step) and
transformers' own code for everything else (prefill, the vision tower's patches). Mistral's
rotary embedding is a module-level function that its attention looks up at call time, so it
is replaced in that module by a dispatcher that does the same (one replacement per process,
undone when the last handle is disabled). Qwen2.5-VL's multimodal rotary keeps its code.
Attention layers are marked for the split-K decode kernel, which the "pictale_sdpa" attention
(engine/decode_attention.py) then uses for single-token queries on a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from dataclasses import dataclass, field

import torch

from pictale_server.engine.decode_attention import SPLIT_KERNEL_FLAG

MAX_ROWS = 8
NORM_CLASSES = ("MistralRMSNorm", "Qwen2RMSNorm", "Qwen2_5_VLRMSNorm")
MLP_CLASSES = ("MistralMLP", "Qwen2MLP")
ATTENTION_CLASSES = ("MistralAttention", "Qwen2_5_VLAttention")


def fused_ops_unavailable(device: torch.device) -> str:
    """'' when the fused ops can run on `device`, else why not."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if device.type == "cpu":
        return "" if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") else "the fused ops need a CUDA GPU"
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"unsupported device {device}"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "the fused ops need compute capability 8.0 or newer"
    return ""


@functools.cache
def _runs_on(device: torch.device) -> bool:
    """fused_ops_unavailable(device) == "", asked once per device (the rotary dispatcher asks
    on every call, inside eager decode steps too)."""
    return fused_ops_unavailable(device) == ""


def _few_rows(x: torch.Tensor, device: torch.device) -> bool:
    return (
        x.device == device
        and x.dim() >= 2
        and x.numel() // max(1, x.shape[-1]) <= MAX_ROWS
        and x.stride(-1) == 1
        and not (x.requires_grad and torch.is_grad_enabled())
    )


def _patch_norm(module, device: torch.device) -> None:
    from pictale_server.kernels.decode_ops import rms_norm

    original = module.forward

    def forward(hidden_states: torch.Tensor) -> torch.Tensor:
        if _few_rows(hidden_states, device):
            return rms_norm(hidden_states, module.weight, module.variance_epsilon)
        return original(hidden_states)

    module.forward = forward


def _is_silu(module) -> bool:
    return getattr(getattr(module, "config", None), "hidden_act", None) == "silu"


def _patch_mlp(module, device: torch.device) -> None:
    from pictale_server.kernels.decode_ops import silu_mul

    original = module.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if _few_rows(x, device):
            return module.down_proj(silu_mul(module.gate_proj(x), module.up_proj(x)))
        return original(x)

    module.forward = forward


class _MistralRotary:
    """Replaces modeling_mistral.apply_rotary_pos_emb while at least one handle needs it."""

    lock = threading.Lock()
    users = 0
    original = None

    @classmethod
    def acquire(cls) -> None:
        from transformers.models.mistral import modeling_mistral

        from pictale_server.kernels.decode_ops import rotary

        with cls.lock:
            if cls.users == 0:
                original = modeling_mistral.apply_rotary_pos_emb

                def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
                    if (
                        unsqueeze_dim == 1 and q.dim() == 4 and q.shape[2] == 1 and k.shape[2] == 1
                        and q.shape[0] <= MAX_ROWS and q.stride(-1) == 1 and k.stride(-1) == 1
                        and cos.shape[-2] == 1 and q.device == cos.device
                        and _runs_on(q.device)
                    ):
                        return rotary(q, k, cos, sin)
                    return original(q, k, cos, sin, unsqueeze_dim)

                cls.original = original
                modeling_mistral.apply_rotary_pos_emb = apply_rotary_pos_emb
            cls.users += 1

    @classmethod
    def release(cls) -> None:
        from transformers.models.mistral import modeling_mistral

        with cls.lock:
            cls.users -= 1
            if cls.users == 0 and cls.original is not None:
                modeling_mistral.apply_rotary_pos_emb = cls.original
                cls.original = None


def fuse_cache_writes(cache) -> int:
    """Give every full-attention layer of a transformers StaticCache a one-kernel update for
    single-token writes on a GPU (decode_ops.cache_write); other writes keep transformers' update.
    Returns the number of layers changed (0 where the fused ops cannot run)."""
    from transformers.cache_utils import StaticLayer

    from pictale_server.kernels.decode_ops import cache_write

    changed = 0
    for layer in cache.layers:
        # Only the plain full-attention layer: subclasses (sliding window) keep more state.
        if type(layer) is not StaticLayer or not layer.is_initialized or not _runs_on(layer.keys.device):
            continue
        original = layer.update

        def update(key_states, value_states, *args, layer=layer, original=original, **kwargs):
            if (
                key_states.shape[-2] == 1 and value_states.shape == key_states.shape
                and key_states.device == layer.keys.device and key_states.dtype == layer.keys.dtype
                and key_states.stride(-1) == 1 and value_states.stride(-1) == 1
                and layer.keys.stride(-1) == 1 and layer.values.stride(-1) == 1
            ):
                cache_write(key_states, value_states, layer.keys, layer.values, layer.cumulative_length)
                return layer.keys, layer.values
            return original(key_states, value_states, *args, **kwargs)

        layer.update = update
        changed += 1
    return changed


@dataclass
class FusedOpsHandle:
    enabled: bool
    reason: str = ""
    patched: list[torch.nn.Module] = field(default_factory=list)
    attention: list[torch.nn.Module] = field(default_factory=list)
    rotary: bool = False

    def disable(self) -> None:
        for module in self.patched:
            del module.forward
        self.patched.clear()
        for module in self.attention:
            delattr(module, SPLIT_KERNEL_FLAG)
        self.attention.clear()
        if self.rotary:
            _MistralRotary.release()
            self.rotary = False
        self.enabled = False
        self.reason = "disabled"


def enable_fused_decode_ops(model: torch.nn.Module) -> FusedOpsHandle:
    """Fuse the decode-time element-wise steps of `model` (on its device, before graphs are
    captured). Where Triton or a suitable GPU is missing nothing changes and the handle says why."""
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return FusedOpsHandle(enabled=False, reason="the model has no parameters")
    why_not = fused_ops_unavailable(device)
    if why_not:
        return FusedOpsHandle(enabled=False, reason=why_not)
    handle = FusedOpsHandle(enabled=True)
    for module in model.modules():
        name = type(module).__name__
        if name in NORM_CLASSES and hasattr(module, "variance_epsilon"):
            _patch_norm(module, device)
            handle.patched.append(module)
        elif name in MLP_CLASSES and _is_silu(module):
            _patch_mlp(module, device)
            handle.patched.append(module)
        if name in ATTENTION_CLASSES:
            setattr(module, SPLIT_KERNEL_FLAG, True)  # decode attention: one split-K kernel
            handle.attention.append(module)
        if name == "MistralAttention" and not handle.rotary:
            _MistralRotary.acquire()
            handle.rotary = True
    if not handle.patched and not handle.attention:
        return FusedOpsHandle(enabled=False, reason="no RMSNorm, SiLU MLP or attention layer to fuse")
    return handle


__all__ = ["MAX_ROWS", "FusedOpsHandle", "enable_fused_decode_ops", "fuse_cache_writes", "fused_ops_unavailable"]
