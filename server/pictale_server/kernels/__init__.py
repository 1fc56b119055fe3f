"""Custom GPU kernels for decoding: a fused NF4 dequantize-and-multiply (see docs/kernels.md).

Importable without the server's web stack. Triton is imported only when a kernel is built
(`pictale_server.kernels.nf4_gemv`), so importing `enable_fast_nf4` costs nothing where the
kernel never runs; bitsandbytes is needed only to patch a model.
"""

from pictale_server.kernels.fast_decode import FastNF4Handle, enable_fast_nf4, kernel_lookup_for
from pictale_server.kernels.nf4_format import PackedNF4, UnsupportedNF4Weight, packed_from_quant_state, reference_linear

__all__ = [
    "FastNF4Handle",
    "PackedNF4",
    "UnsupportedNF4Weight",
    "enable_fast_nf4",
    "kernel_lookup_for",
    "packed_from_quant_state",
    "reference_linear",
]
