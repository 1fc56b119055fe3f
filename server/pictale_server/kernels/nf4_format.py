"""bitsandbytes' NF4 storage format, read without bitsandbytes: the packed codes and their scales.

A weight W of shape [N, K] is flattened row-major and cut into blocks of `blocksize` (64)
consecutive elements; each block has one scale (absmax). Codes are 4-bit indices into a
16-entry table, two to a byte, the element with the even index in the HIGH nibble. The packed
tensor holds N*K/2 bytes (bitsandbytes stores it as [N*K/2, 1], possibly in a wider dtype).

With double quantization ("nested") the absmax itself is stored as uint8 codes into a 256-entry
table (`code2`) with one fp32 scale per `blocksize2` (256) absmax entries, plus a constant offset:
    absmax[i] = code2[absmax_u8[i]] * absmax2[i // blocksize2] + offset
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NF4_BLOCKSIZE = 64


class UnsupportedNF4Weight(ValueError):
    """The weight is not in the NF4 format read here (blocksize 64, 2-D, K a multiple of 64)."""


@dataclass(frozen=True)
class NestedAbsmax:
    """The double-quantized absmax of a weight: uint8 codes, per-256-block scales, offsets
    (`offsets` holds bitsandbytes' one offset repeated for every absmax2 block)."""

    code2: torch.Tensor  # fp32 [256]
    absmax2: torch.Tensor  # fp32 [ceil(n_blocks / blocksize2)]
    offsets: torch.Tensor  # fp32, same length as absmax2
    blocksize2: int


@dataclass(frozen=True)
class PackedNF4:
    """One NF4 weight as the kernel reads it: packed codes, scales, the code table, its shape."""

    packed: torch.Tensor  # uint8 [N * K // 2], contiguous
    absmax: torch.Tensor  # fp32 [N * K // 64], or uint8 codes when `nested` is set
    code: torch.Tensor  # fp32 [16]
    out_features: int
    in_features: int
    nested: NestedAbsmax | None = None

    @property
    def n_blocks(self) -> int:
        return self.out_features * self.in_features // NF4_BLOCKSIZE

    def weight_bytes(self) -> int:
        """Bytes a kernel reads for this weight: packed codes plus (first-level) absmax."""
        return self.packed.numel() + self.absmax.numel() * self.absmax.element_size()


def packed_from_quant_state(packed: torch.Tensor, quant_state) -> PackedNF4:
    """Views a bitsandbytes packed weight and its QuantState as a PackedNF4 (no copies of data)."""
    if quant_state.quant_type != "nf4":
        raise UnsupportedNF4Weight(f"quant_type {quant_state.quant_type!r} (only nf4)")
    if quant_state.blocksize != NF4_BLOCKSIZE:
        raise UnsupportedNF4Weight(f"blocksize {quant_state.blocksize} (only {NF4_BLOCKSIZE})")
    shape = tuple(quant_state.shape)
    if len(shape) != 2:
        raise UnsupportedNF4Weight(f"weight shape {shape} is not 2-D")
    out_features, in_features = shape
    if in_features % NF4_BLOCKSIZE:
        raise UnsupportedNF4Weight(f"in_features {in_features} is not a multiple of {NF4_BLOCKSIZE}")
    codes = packed.reshape(-1).view(torch.uint8)
    if codes.numel() != out_features * in_features // 2 or not codes.is_contiguous():
        raise UnsupportedNF4Weight(f"packed tensor of {codes.numel()} bytes does not hold {shape}")
    nested = None
    if quant_state.nested:
        state2 = quant_state.state2
        absmax2 = state2.absmax.float()
        nested = NestedAbsmax(
            code2=state2.code.float(),
            absmax2=absmax2,
            offsets=quant_state.offset.float().reshape(1).expand(absmax2.numel()).contiguous(),
            blocksize2=int(state2.blocksize),
        )
    return PackedNF4(
        packed=codes,
        absmax=quant_state.absmax,
        code=quant_state.code.float(),
        out_features=out_features,
        in_features=in_features,
        nested=nested,
    )


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """The 4-bit codes in element order (high nibble first), as int64."""
    codes = packed.reshape(-1).to(torch.int64)
    return torch.stack([codes >> 4, codes & 0xF], dim=1).reshape(-1)


def dequantize_absmax(weight: PackedNF4) -> torch.Tensor:
    """The fp32 scale of every 64-element block."""
    if weight.nested is None:
        return weight.absmax.float()
    nested = weight.nested
    block2 = torch.arange(weight.n_blocks, device=weight.absmax.device) // nested.blocksize2
    return nested.code2[weight.absmax.to(torch.int64)] * nested.absmax2[block2] + nested.offsets[block2]


def dequantize(weight: PackedNF4) -> torch.Tensor:
    """The fp32 weight [N, K]: code value times its block's absmax, as bitsandbytes computes it."""
    values = weight.code[unpack_codes(weight.packed)].reshape(-1, NF4_BLOCKSIZE)
    values = values * dequantize_absmax(weight).reshape(-1, 1)
    return values.reshape(weight.out_features, weight.in_features)


def reference_linear(x: torch.Tensor, weight: PackedNF4, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ W^T (+ bias) in fp32 on the dequantized weight: the ground truth for the kernel."""
    out = x.float() @ dequantize(weight).t()
    if bias is not None:
        out = out + bias.float()
    return out
