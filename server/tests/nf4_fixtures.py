"""Helpers for the NF4 kernel tests: bitsandbytes-quantized weights built on CPU."""

from __future__ import annotations

import torch

NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])


def quantize(weight: torch.Tensor, nested: bool = False):
    """bitsandbytes' own NF4 quantization (CPU backend): packed bytes and QuantState."""
    import bitsandbytes.functional as bnbf

    return bnbf.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=nested)
