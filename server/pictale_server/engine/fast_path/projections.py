"""A decoder layer's projections as the fast step calls them: bitsandbytes NF4 weights read in
place by the CUDA kernels, with no module patched.

Two kernels read the same weights: the CUDA-core kernel (kernels/nf4_cuda.py), fastest for one
or two rows, and the tensor-core kernel (kernels/nf4_mma.py), fastest from TENSOR_CORE_ROWS on
and the same bits for a row at any number of rows. The caller picks per step (`tensor_cores`).

Sibling projections that read the same input are one launch: q/k/v and gate/up. The kernels
read each sibling where bitsandbytes loaded it ("parts"), so loading leaves no holes between
the weights. On the CUDA-core kernel the launches before q/k/v and gate/up also make their own
input: the residual add and RMSNorm happen where the kernel loads x (`normed`), so a layer's
norms cost no launch; on tensor cores they are one launch each (add_rms_norm_into).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from pictale_server.kernels.decode_ops import add_rms_norm_into
from pictale_server.kernels.nf4_cuda import (
    CudaNF4Weight,
    cuda_gemv,
    norm_gemv,
    norm_unsupported,
    parts_unsupported,
)
from pictale_server.kernels.nf4_format import PackedNF4, UnsupportedNF4Weight, packed_from_quant_state
from pictale_server.kernels.nf4_mma import launch_unsupported as tensor_cores_unsupported
from pictale_server.kernels.nf4_mma import mma_gemv

# From this many rows of x on, the tensor-core kernel is the faster one on every decode shape of
# both models, its separate norm launches included; at one or two rows the CUDA-core kernel is
# (docs/kernels.md, "Tensor cores for many rows").
TENSOR_CORE_ROWS = 3


class Projection(Protocol):
    """One launch's worth of output features over one input row."""

    out_features: int

    def __call__(self, x: torch.Tensor, tensor_cores: bool = False) -> torch.Tensor:
        """x [R, 1, K] (already normed) → [R, 1, N]: one row per sequence of the step, on the
        tensor-core kernel where asked and supported."""

    def normed(
        self, residual: torch.Tensor, delta: torch.Tensor, norm: torch.nn.Module, residual_out: torch.Tensor,
        tensor_cores: bool = False,
    ) -> torch.Tensor:
        """rms_norm(residual + delta) · W^T → [R, 1, N], with residual + delta stored to
        residual_out (which must not be `residual`)."""


@dataclass(frozen=True)
class LayerProjections:
    qkv: Projection
    qkv_split: tuple[int, int, int]
    o: Projection
    gate_up: Projection
    gate_rows: int
    down: Projection


class NF4Projection:
    """1–3 sibling NF4 linears as one launch of either kernel."""

    def __init__(self, weight: CudaNF4Weight) -> None:
        self.weight = weight
        self.out_features = weight.out_features
        # Shapes the tensor-core kernel does not tile stay on the CUDA-core kernel at every
        # size: a choice per weight, never per row count, so rows stay batch invariant.
        self.tensor_cores = not tensor_cores_unsupported(weight)

    def __call__(self, x: torch.Tensor, tensor_cores: bool = False) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if tensor_cores and self.tensor_cores:
            return mma_gemv(flat, self.weight).view(*x.shape[:-1], -1)
        return cuda_gemv(flat, self.weight).view(*x.shape[:-1], -1)

    def normed(self, residual, delta, norm, residual_out, tensor_cores: bool = False) -> torch.Tensor:
        if tensor_cores and self.tensor_cores:
            x = add_rms_norm_into(residual, delta, norm.weight, norm.variance_epsilon, residual_out)
            return self(x, tensor_cores=True)
        out = norm_gemv(residual, delta, norm.weight, norm.variance_epsilon, residual_out, self.weight)
        return out.view(*residual.shape[:-1], -1)

    def warm_up(self, normed: bool) -> None:
        """Compile the kernel variant this projection launches (NVRTC, ~0.2 s each): before a
        CUDA graph is captured, and where a failure can still choose the reference path. The
        variants of several rows compile in the batch's warm-up forwards before its captures."""
        k = self.weight.in_features
        zeros = torch.zeros((1, k), dtype=torch.bfloat16, device=self.weight.device)
        if normed:
            norm_weight = torch.ones(k, dtype=torch.bfloat16, device=zeros.device)
            norm_gemv(zeros, zeros.clone(), norm_weight, 1e-6, torch.empty_like(zeros), self.weight)
        else:
            cuda_gemv(zeros, self.weight)
        if self.tensor_cores:
            mma_gemv(zeros, self.weight)


class Unsupported(Exception):
    """Why the fast path cannot serve a model (the message is shown in /health)."""


def _packed(module: torch.nn.Module, name: str) -> PackedNF4:
    weight = getattr(module, "weight", None)
    if type(module).__name__ != "Linear4bit" or getattr(weight, "quant_state", None) is None:
        raise Unsupported(f"{name} is not a bitsandbytes NF4 layer: the fast path reads NF4 weights")
    try:
        return packed_from_quant_state(weight.data, weight.quant_state)
    except UnsupportedNF4Weight as exc:
        raise Unsupported(f"{name}: {exc}") from exc


def _nf4(modules: list[torch.nn.Module], names: list[str]) -> NF4Projection:
    parts = [_packed(m, n) for m, n in zip(modules, names, strict=True)]
    why_not = parts_unsupported(parts)
    if why_not:
        raise Unsupported(f"{'/'.join(names)}: {why_not}")
    biases = [m.bias for m in modules]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat([
            b.detach().float() if b is not None else torch.zeros(p.out_features, device=p.packed.device)
            for b, p in zip(biases, parts, strict=True)
        ])
    return NF4Projection(CudaNF4Weight(parts if len(parts) > 1 else parts[0], bias))


def nf4_layer_projections(layer: torch.nn.Module, index: int) -> LayerProjections:
    """The layer's projections on the CUDA NF4 kernel; raises Unsupported with the reason."""
    attention, mlp = layer.self_attn, layer.mlp
    prefix = f"layer {index}"
    if getattr(getattr(mlp, "config", None), "hidden_act", None) != "silu" or not hasattr(mlp, "gate_proj"):
        raise Unsupported(f"{prefix}: the MLP is not SiLU-gated")
    qkv_modules = [attention.q_proj, attention.k_proj, attention.v_proj]
    qkv = _nf4(qkv_modules, [f"{prefix} q_proj", "k_proj", "v_proj"])
    gate_up = _nf4([mlp.gate_proj, mlp.up_proj], [f"{prefix} gate_proj", "up_proj"])
    for projection, norm, name in (
        (qkv, layer.input_layernorm, "input_layernorm"),
        (gate_up, layer.post_attention_layernorm, "post_attention_layernorm"),
    ):
        why_not = norm_unsupported(projection.weight, norm.weight)
        if why_not:
            raise Unsupported(f"{prefix} {name}: {why_not}")
    return LayerProjections(
        qkv=qkv,
        qkv_split=tuple(m.out_features for m in qkv_modules),
        o=_nf4([attention.o_proj], [f"{prefix} o_proj"]),
        gate_up=gate_up,
        gate_rows=mlp.gate_proj.out_features,
        down=_nf4([mlp.down_proj], [f"{prefix} down_proj"]),
    )


def warm_up(layers: list[LayerProjections]) -> None:
    """Compile every kernel variant the step launches (each shape once)."""
    seen = set()
    for index, layer in enumerate(layers):
        for projection, normed in (
            (layer.qkv, index > 0), (layer.o, False), (layer.gate_up, True), (layer.down, False),
        ):
            key = (projection.weight.out_features, projection.weight.in_features, len(projection.weight.parts), normed)
            if key not in seen:
                seen.add(key)
                projection.warm_up(normed)
