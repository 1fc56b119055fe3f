"""Which of PyTorch's SDPA kernels the engine's prefills and the vision tower run on.

PyTorch 2.11 tries cuDNN's attention first on Hopper. cuDNN builds an execution plan for every
new shape of query, keys and mask, and a serving engine meets new shapes all the time: a
prompt's last prefill slice is as long as what is left of the prompt, the keys are as long as
the request's KV region (whole pages up to the context), the vision tower's windows follow the
picture's size. Measured on an H100 with both models resident (docs/benchmarks.md): the first
long prompt after load spent 774 and 856 ms in its first two 512-token slices (54-63 ms once
planned), and each later prompt of a new length ~40-50 ms in its slices of new shapes, inside
its time to first token and in every running stream's stall. The memory-efficient kernel
takes the same masks without a plan, so the engine turns cuDNN's attention off.
"""

from __future__ import annotations

import torch


def avoid_planned_attention(device: torch.device) -> None:
    """Keep SDPA off cuDNN's attention (process-wide: it is a switch of PyTorch's)."""
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)
