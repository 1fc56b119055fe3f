"""Routing a model's decode-time NF4 matmuls to the fused kernel: `enable_fast_nf4(model)`.

Every bitsandbytes `Linear4bit` gets a forward that sends inputs of 1..max_rows rows (decode)
to the kernels and everything else (prefill, fp16 inputs, autograd) to bitsandbytes. Sibling
projections that read the same input are fused: q/k/v and gate/up are computed by one launch
(the first projection called computes all of them, the others return their slice of that
output when they receive the very same input tensor). Two ways to fuse:

- "parts" (with the CUDA kernel): the launch reads each sibling where bitsandbytes loaded it.
  Nothing is copied or freed, so the loader's memory stays packed (a fused copy frees the
  originals and leaves holes between the weights that stay: ~0.4 GiB across both models).
- "copy" (Triton kernel): the siblings' rows are concatenated into one buffer (fuse.py) and the
  originals re-pointed at it, because the Triton kernel reads one weight per launch.

The kernel needs Triton and a CUDA GPU of compute capability 8.0 or newer (A10G, H100, H200),
or Triton's interpreter on CPU (tests). Elsewhere nothing is patched and the handle says why.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from pictale_server.kernels.fuse import can_fuse, fuse_rows
from pictale_server.kernels.nf4_format import PackedNF4, UnsupportedNF4Weight, packed_from_quant_state

log = logging.getLogger(__name__)

MAX_ROWS = 8  # the kernel's limit (nf4_gemv.MAX_ROWS); Triton is imported only when used

FUSED_SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def kernel_lookup_for(device: torch.device) -> tuple[str | None, str]:
    """('asm' | 'plain', '') when the kernel can run on `device`, else (None, why not)."""
    if importlib.util.find_spec("triton") is None:
        return None, "triton is not installed"
    interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if device.type == "cpu":
        return ("plain", "") if interpreting else (None, "the kernel needs a CUDA GPU")
    if device.type != "cuda" or not torch.cuda.is_available():
        return None, f"unsupported device {device}"
    if interpreting:
        return None, "TRITON_INTERPRET is set: kernels run on CPU tensors only"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return None, "the kernel needs compute capability 8.0 or newer"
    return "asm", ""


@dataclass
class _Group:
    """One launch's worth of projections: a single weight, or fused siblings."""

    # NF4KernelWeight: one (a single weight, or siblings fused by copy), or one per sibling
    # when fused by parts (the Triton kernel then runs once per sibling)
    kernel_weights: list[Any]
    biases: list[torch.Tensor | None]  # one per kernel weight
    splits: list[int]
    cuda_weight: Any = None  # CudaNF4Weight, when the CUDA kernel is on
    # Row counts the kernels take; None (before warm-up) takes any 1..max_rows. After
    # `warmup(rows)`, only those: others (a prompt's last few tokens) go to bitsandbytes
    # rather than compile, or autotune, inside a request.
    rows: frozenset[int] | None = None
    last_input: torch.Tensor | None = None
    last_output: torch.Tensor | None = None

    @property
    def in_features(self) -> int:
        return self.kernel_weights[0].in_features

    def triton(self, x2d: torch.Tensor) -> torch.Tensor:
        from pictale_server.kernels.nf4_gemv import nf4_gemv

        if len(self.kernel_weights) == 1:
            return nf4_gemv(x2d, self.kernel_weights[0], self.biases[0])
        out = torch.empty((x2d.shape[0], sum(self.splits)), dtype=x2d.dtype, device=x2d.device)
        start = 0
        for weight, bias in zip(self.kernel_weights, self.biases, strict=True):
            nf4_gemv(x2d, weight, bias, out=out[:, start : start + weight.out_features])
            start += weight.out_features
        return out


@dataclass
class FastNF4Handle:
    """What `enable_fast_nf4` did; `disable()` restores bitsandbytes' forwards."""

    enabled: bool
    reason: str = ""
    lookup: str | None = None
    max_rows: int = MAX_ROWS
    patched: list[torch.nn.Module] = field(default_factory=list)
    fused_groups: int = 0
    cuda: bool = False  # the CUDA kernel serves 1..4 rows where it can (see nf4_cuda.py)
    # Kernel weights of disabled layers: CUDA graphs captured while enabled keep the raw
    # pointers of their buffers (the lookup table, fused biases, ...), so they stay alive.
    _retired: list[Any] = field(default_factory=list)

    def warmup(self, rows: tuple[int, ...] = (1,)) -> None:
        """Compile and tune the kernel for every weight shape and row count used; from then
        on the kernels take only those row counts (other few-row inputs: bitsandbytes).

        Call once after enabling and before capturing CUDA graphs: the first call per shape
        compiles and benchmarks (and synchronizes), which must not happen during capture.
        """
        from pictale_server.kernels.nf4_cuda import MAX_ROWS as CUDA_ROWS

        groups = {id(m._fast_nf4_group): m._fast_nf4_group for m in self.patched}.values()
        for group in groups:
            group.rows = frozenset(rows)
        if self.cuda:
            self._warm_cuda(groups, rows)
        done = set()  # one call per shape compiles and tunes the Triton kernel for it
        for group in groups:
            for m in rows:
                if group.cuda_weight is not None and m <= CUDA_ROWS:
                    continue  # the Triton kernel never runs for these
                shapes = {(w.out_features, w.in_features, b is not None) for w, b in zip(group.kernel_weights, group.biases)}
                if not shapes <= done:
                    x = torch.zeros(m, group.in_features, dtype=torch.bfloat16, device=group.kernel_weights[0].words.device)
                    group.triton(x)
                    done |= shapes

    def _warm_cuda(self, groups, rows: tuple[int, ...]) -> None:
        """Compile the CUDA kernel for every shape; if it cannot be built here, every group
        stays on the Triton kernel (logged), which is how the handle then reports itself."""
        from pictale_server.kernels.nf4_cuda import MAX_ROWS as CUDA_ROWS
        from pictale_server.kernels.nf4_cuda import CudaKernelUnavailable, cuda_gemv

        done = set()
        try:
            for group in groups:
                weight = group.cuda_weight
                if weight is None or (weight.out_features, weight.in_features) in done:
                    continue
                done.add((weight.out_features, weight.in_features))
                for m in rows:
                    if m <= CUDA_ROWS:
                        x = torch.zeros(m, weight.in_features, dtype=torch.bfloat16, device=weight.device)
                        cuda_gemv(x, weight)
        except CudaKernelUnavailable as exc:
            log.warning("CUDA NF4 kernel unavailable, using the Triton kernel: %s", exc)
            for group in groups:
                group.cuda_weight = None
            self.cuda = False

    def disable(self) -> None:
        """Give the layers bitsandbytes' forward back (the fused storage stays in place).

        Graphs captured while enabled still run the kernel when replayed; the handle keeps the
        buffers they read alive, so keep the handle as long as such graphs exist.
        """
        for module in self.patched:
            self._retired.append(module._fast_nf4_group)
            del module.forward
            del module._fast_nf4_group
        self.patched.clear()
        self.enabled = False
        self.reason = "disabled"


def _packed_weight(module) -> PackedNF4:
    weight = module.weight
    if getattr(weight, "quant_state", None) is None:
        raise UnsupportedNF4Weight("weight is not quantized yet")
    return packed_from_quant_state(weight.data, weight.quant_state)


def _repoint(module, view: PackedNF4) -> None:
    """Make a Linear4bit read its (unchanged) data from a slice of a fused buffer."""
    weight = module.weight
    weight.data = view.packed.view(weight.data.dtype).reshape(weight.data.shape)
    state = weight.quant_state
    state.absmax = view.absmax
    if view.nested is not None:
        state.state2.absmax = view.nested.absmax2


def _eligible(x: torch.Tensor, k: int, max_rows: int, device: torch.device) -> bool:
    return (
        x.dtype == torch.bfloat16
        and x.device == device
        and x.shape[-1] == k
        and 1 <= x.numel() // k <= max_rows
        and x.stride(-1) == 1
        and not (x.requires_grad and torch.is_grad_enabled())
    )


def _rows(x: torch.Tensor) -> torch.Tensor | None:
    """x as [M, K] without copying, or None when its rows are not 4-byte aligned."""
    x2d = x.reshape(-1, x.shape[-1])
    if x2d.stride(0) % 2 or x2d.data_ptr() % 4:
        return None
    return x2d


def _install(module, group: _Group, index: int, max_rows: int) -> None:
    from pictale_server.kernels import nf4_cuda

    original = module.forward
    start = sum(group.splits[:index])
    width = group.splits[index]
    k = group.in_features
    device = group.kernel_weights[0].words.device
    single = len(group.splits) == 1

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if args or kwargs or not _eligible(x, k, max_rows, device):
            return original(x, *args, **kwargs)
        if not single and index > 0 and group.last_input is x:
            out = group.last_output
        else:
            x2d = _rows(x)
            if x2d is None or (group.rows is not None and x2d.shape[0] not in group.rows):
                return original(x)
            if group.cuda_weight is not None and nf4_cuda.accepts(x2d):
                out = nf4_cuda.cuda_gemv(x2d, group.cuda_weight)
            else:
                out = group.triton(x2d)
            if not single:
                group.last_input, group.last_output = x, out
        if not single:
            out = out[:, start : start + width]
        return out.view(*x.shape[:-1], width)

    module._fast_nf4_group = group
    module.forward = forward


def _siblings(model: torch.nn.Module, is_4bit) -> list[list[torch.nn.Module]]:
    groups = []
    for parent in model.modules():
        for names in FUSED_SIBLINGS:
            members = [getattr(parent, name, None) for name in names]
            if all(is_4bit(m) for m in members):
                groups.append(members)
    return groups


def enable_fast_nf4(
    model: torch.nn.Module, *, fuse: bool | str = True, max_rows: int = MAX_ROWS, products: str = "fp32",
    cuda: bool = False,
) -> FastNF4Handle:
    """Route the decode-time matmuls of every bitsandbytes NF4 layer of `model` to the kernel.

    Call after the model is loaded and on its device, before capturing CUDA graphs, then
    `handle.warmup(rows)`. Safe to call anywhere: where the kernel cannot run (no Triton, no
    CUDA, an older GPU) it changes nothing and returns a handle with `enabled=False` and the
    reason. Layers it cannot read (not NF4, blocksize other than 64) keep bitsandbytes.
    `products="bf16x2"` sums each 8 products with packed bf16 FMAs (GPU only; ~10-15% faster
    on an H200, relative error ~3.6e-3 instead of ~2.6e-3; bitsandbytes' own is ~3.3e-3).
    `cuda=True` sends 1..4 rows to the shared-memory-table CUDA kernel (nf4_cuda.py; bf16x2
    products, fp32 absmax only) and keeps the Triton kernel for the rest.
    `fuse`: True fuses q/k/v and gate/up by "parts" where the CUDA kernel reads them (fp32
    absmax) and by "copy" otherwise; "parts", "copy" or False choose (module docstring).
    """
    import bitsandbytes as bnb

    if not 1 <= max_rows <= MAX_ROWS:
        raise ValueError(f"max_rows must be within 1..{MAX_ROWS}, got {max_rows}")
    if fuse not in (True, False, "parts", "copy"):
        raise ValueError(f"fuse must be True, False, 'parts' or 'copy', got {fuse!r}")

    def is_4bit(module) -> bool:
        return isinstance(module, bnb.nn.Linear4bit) and not hasattr(module, "_fast_nf4_group")

    layers = [m for m in model.modules() if is_4bit(m)]
    if not layers:
        return FastNF4Handle(enabled=False, reason="the model has no bitsandbytes 4-bit layers")
    device = layers[0].weight.device
    lookup, why_not = kernel_lookup_for(device)
    if lookup is None:
        return FastNF4Handle(enabled=False, reason=why_not)
    if products not in ("fp32", "bf16x2"):
        raise ValueError(f"products must be 'fp32' or 'bf16x2', got {products!r}")
    if lookup == "plain":
        products = "fp32"

    from pictale_server.kernels.nf4_gemv import NF4KernelWeight

    cuda = cuda and lookup == "asm"
    handle = FastNF4Handle(enabled=True, lookup=lookup, max_rows=max_rows, cuda=cuda)

    def kernel_weight(packed: PackedNF4) -> NF4KernelWeight:
        return NF4KernelWeight(packed, lookup=lookup, products=products)

    def cuda_weight(packed: PackedNF4 | list[PackedNF4], bias: torch.Tensor | None):
        """The CUDA kernel's weight (several weights: read as parts of one), or None where the
        CUDA kernel is off or cannot read them (then the Triton kernel serves)."""
        from pictale_server.kernels.nf4_cuda import CudaNF4Weight, parts_unsupported

        parts = packed if isinstance(packed, list) else [packed]
        if not cuda or parts_unsupported(parts):
            return None
        return CudaNF4Weight(parts, bias, pairs=True)

    def install(members, group: _Group) -> None:
        for index, module in enumerate(members):
            _install(module, group, index, max_rows)
            handle.patched.append(module)

    plans: list[list[torch.nn.Module]] = _siblings(model, is_4bit) if fuse else []
    in_groups = {id(m) for members in plans for m in members}
    plans += [[m] for m in layers if id(m) not in in_groups]
    for members in plans:
        try:
            packed = [_packed_weight(m) for m in members]
        except UnsupportedNF4Weight:
            continue
        biases = [m.bias.detach() if m.bias is not None else None for m in members]
        splits = [w.out_features for w in packed]
        if len(members) == 1 or can_fuse(packed) is not None:
            for module, weight, bias in zip(members, packed, biases):
                install([module], _Group([kernel_weight(weight)], [bias], [weight.out_features], cuda_weight(weight, bias)))
            continue
        bias = None
        if any(b is not None for b in biases):
            bias = torch.cat([
                b.float() if b is not None else torch.zeros(m.out_features, device=device)
                for b, m in zip(biases, members)
            ])
        reads_parts = cuda_weight(packed, bias)
        if fuse == "parts" or (fuse is True and reads_parts is not None):
            group = _Group([kernel_weight(w) for w in packed], biases, splits, reads_parts)
        else:
            fused, views = fuse_rows(packed)
            for module, view in zip(members, views):
                _repoint(module, view)
            group = _Group([kernel_weight(fused)], [bias], splits, cuda_weight(fused, bias))
        install(members, group)
        handle.fused_groups += 1
    if lookup == "asm":
        torch.cuda.empty_cache()
    return handle
