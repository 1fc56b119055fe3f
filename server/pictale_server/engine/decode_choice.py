"""The one place that decides which decode step serves a model on this GPU.

Each implementation says `can_implement(runner, caches, device) -> (ok, reason)` and builds
its step; the first that can, in order of preference, serves. The reason the fast path was
not taken is logged and shown in `/health`'s model info, so a model that silently runs slower
than it should is visible. `PICTALE_FAST_PATH=off` forces the reference path (to rule the
fast path out when hunting a problem).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from pictale_server.engine.decode_step import DecodePath, DecodeStep, ReferenceStep

FastPathSetting = Literal["auto", "off"]
logger = logging.getLogger("pictale.engine")


@dataclass(frozen=True)
class DecodeChoice:
    step: DecodeStep
    path: DecodePath
    reason: str  # why the fast path does not serve ("" when it does)


class Implementation(Protocol):
    path: DecodePath

    def can_implement(self, runner, caches, device: torch.device) -> tuple[bool, str]: ...

    def build(self, runner, caches, *, cache_tokens: int) -> DecodeStep: ...


MIN_CAPABILITY = (8, 0)  # bf16 tensor math and the kernels' instructions: A10G (8.6), H100 (9.0)


@functools.cache
def _gpu_unavailable(device: torch.device) -> str:
    """'' when the fast path's kernels can run on `device`, else why not (asked once per device)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return "no CUDA GPU"
    if torch.cuda.get_device_capability(device) < MIN_CAPABILITY:
        major, minor = MIN_CAPABILITY
        return f"the GPU's compute capability is below {major}.{minor}"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    from pictale_server.kernels.nf4_cuda import kernel_unavailable

    return kernel_unavailable(device)


class FastImplementation:
    path: DecodePath = "fast"

    def can_implement(self, runner, caches, device: torch.device) -> tuple[bool, str]:
        why_not = _gpu_unavailable(device)
        if why_not:
            return False, why_not
        from pictale_server.engine.fast_path.projections import Unsupported, nf4_layer_projections
        from pictale_server.engine.fast_path.written_step import structure_unsupported

        text_model, _, _ = runner.step_parts()
        why_not = structure_unsupported(text_model, caches)
        if why_not:
            return False, why_not
        try:
            for index, layer in enumerate(text_model.layers):
                nf4_layer_projections(layer, index)
        except Unsupported as exc:
            return False, str(exc)
        return True, ""

    def build(self, runner, caches, *, cache_tokens: int) -> DecodeStep:
        from pictale_server.engine.fast_path.fast_step import FastStep
        from pictale_server.engine.fast_path.projections import TENSOR_CORE_ROWS, nf4_layer_projections, warm_up
        from pictale_server.engine.fast_path.written_step import WrittenStep

        text_model, lm_head, rope_positions = runner.step_parts()
        projections = [nf4_layer_projections(layer, i) for i, layer in enumerate(text_model.layers)]
        warm_up(projections)  # compiles now: a GPU the kernel cannot be built for falls back here
        table = cache_tokens if runner.rope_positions_are_slots else None
        written = WrittenStep(text_model, lm_head, rope_positions, projections, rope_table_tokens=table)
        return FastStep(written, tensor_core_rows=runner.tensor_core_rows or TENSOR_CORE_ROWS)


class ReferenceImplementation:
    path: DecodePath = "reference"

    def can_implement(self, runner, caches, device: torch.device) -> tuple[bool, str]:
        return True, ""

    def build(self, runner, caches, *, cache_tokens: int) -> DecodeStep:
        return ReferenceStep(runner)


IMPLEMENTATIONS: tuple[Implementation, ...] = (FastImplementation(), ReferenceImplementation())


def choose_decode_step(
    model_name: str, runner, caches, device: torch.device, *, setting: FastPathSetting, cache_tokens: int
) -> DecodeChoice:
    """The step for `runner`'s model over `caches` (the KV views it decodes into)."""
    from pictale_server.kernels.nf4_cuda import CudaKernelUnavailable

    refused = "PICTALE_FAST_PATH=off" if setting == "off" else ""
    for implementation in IMPLEMENTATIONS:
        if implementation.path == "fast" and setting == "off":
            continue
        ok, why_not = implementation.can_implement(runner, caches, device)
        if not ok:
            refused = refused or why_not
            continue
        try:
            step = implementation.build(runner, caches, cache_tokens=cache_tokens)
        except CudaKernelUnavailable as exc:  # a GPU or driver the kernel was never built for
            refused = refused or f"the NF4 kernel could not be built: {exc}"
            continue
        if implementation.path == "fast":
            logger.info("%s decodes on the fast path", model_name)
        elif device.type == "cuda":
            logger.warning("%s decodes on the reference path: %s", model_name, refused)
        else:
            logger.info("%s decodes on the reference path: %s", model_name, refused)
        return DecodeChoice(step, implementation.path, refused if implementation.path != "fast" else "")
    raise AssertionError("the reference implementation always serves")
