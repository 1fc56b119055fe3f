"""How a model is loaded: dtype, attention kernel, NF4 on a GPU, offline Hub access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoConfig

from pictale_server.engine.model_sources import ModelSource
from pictale_server.engine.quantization import attention_implementation, nf4_config


@dataclass(frozen=True)
class LoadPlan:
    device: torch.device
    dtype: torch.dtype
    quantize: bool  # NF4 on load (False for checkpoints that are already NF4, and on CPU)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def hub_kwargs(source: ModelSource) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"local_files_only": source.local_files_only}
    if source.revision is not None:
        kwargs["revision"] = source.revision
    return kwargs


def is_prequantized(source: ModelSource) -> bool:
    config = AutoConfig.from_pretrained(source.location, **hub_kwargs(source))
    return getattr(config, "quantization_config", None) is not None


def plan_for(
    source: ModelSource, *, device: torch.device, quantize: bool
) -> LoadPlan:
    """bf16 + NF4 on a GPU (unless the checkpoint is NF4 already); float32 on CPU."""
    if device.type != "cuda":
        return LoadPlan(device, torch.float32, quantize=False)
    quantize_now = quantize and not is_prequantized(source)
    return LoadPlan(device, torch.bfloat16, quantize=quantize_now)


def from_pretrained_kwargs(source: ModelSource, plan: LoadPlan) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        **hub_kwargs(source),
        "dtype": plan.dtype,
        "attn_implementation": attention_implementation(cuda=plan.cuda),
    }
    if plan.cuda:
        kwargs["device_map"] = {"": plan.device.index or 0}
    if plan.quantize:
        kwargs["quantization_config"] = nf4_config()
    return kwargs
