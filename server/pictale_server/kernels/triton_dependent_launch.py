"""Programmatic dependent launch for the Triton decode kernels (dependent_launch.py says why).

A kernel takes a `PDL: tl.constexpr`, calls `after_previous_kernel(PDL)` before anything else,
and is launched with `**launch_options(device)`, which sets PDL and Triton's `launch_pdl`
together: a kernel launched as a dependent must wait, and one that waits costs nothing when
launched the usual way.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from pictale_server.kernels import dependent_launch


@triton.jit
def after_previous_kernel(PDL: tl.constexpr):
    """Let the next kernel start, then wait until the previous one's writes are visible."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()


def launch_options(device: torch.device) -> dict:
    dependent = dependent_launch.active(device)
    return {"PDL": dependent, "launch_pdl": dependent}


__all__ = ["after_previous_kernel", "launch_options"]
