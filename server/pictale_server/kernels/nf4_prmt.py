"""The NF4 code lookup in registers: PTX that turns one 32-bit word of codes into 8 fp32 values.

Why this shape: a bandwidth-bound NF4 GEMV on an H100/H200 can afford only ~3-4 integer
instructions per weight element, so neither a 16-way select nor a lookup in global memory
keeps up. `prmt.b32` (byte permute) picks 4 bytes out of 8 by 4 selector nibbles in one
instruction, which is a 4-way lookup in an 8-entry byte table. The table of the 16 code values,
rounded to bf16, is split into its low bytes (L0..L3) and high bytes (H0..H3):

  - codes with bit 3 cleared index the table halves (entries 0-7 and 8-15) with two `prmt`s,
    and a per-byte mask built from bit 3 picks between the halves with one `lop3`;
  - one `prmt` interleaves the looked-up low and high bytes into two bf16 values, and a shift
    or a mask widens each to fp32 (bf16 is the top half of an fp32).

About 29 instructions for 8 elements. The word's 4 bytes hold elements 0..7 of the word in
the order (1, 0, 3, 2, 5, 4, 7, 6) by nibble, because the high nibble of each byte comes first;
the outputs are returned in element order, so the caller multiplies output j with x[8*word + j].
"""

from __future__ import annotations

import struct

import torch
import triton.language as tl

_LOOKUP_HALF = """
    prmt.b32 a, $13, $14, {sel};
    prmt.b32 b, $15, $16, {sel};
    lop3.b32 hb, a, b, {mask}, 0xD8;
    prmt.b32 a, $9, $10, {sel};
    prmt.b32 b, $11, $12, {sel};
    lop3.b32 lb, a, b, {mask}, 0xD8;
    prmt.b32 p, lb, hb, 0x5140;
    and.b32 ${o0}, p, 0xFFFF0000;
    shl.b32 ${o1}, p, 16;
    prmt.b32 p, lb, hb, 0x7362;
    and.b32 ${o2}, p, 0xFFFF0000;
    shl.b32 ${o3}, p, 16;
"""


def bf16_table_bytes(code: torch.Tensor) -> tuple[list[int], list[int]]:
    """The 16 code values rounded to bf16, as 4 words of low bytes and 4 words of high bytes."""
    if code.numel() != 16:
        raise ValueError(f"an NF4 code table has 16 entries, got {code.numel()}")
    bits = code.detach().float().cpu().to(torch.bfloat16).view(torch.int16).tolist()
    low = bytes(value & 0xFF for value in bits)
    high = bytes((value >> 8) & 0xFF for value in bits)
    return list(struct.unpack("<4I", low)), list(struct.unpack("<4I", high))


def table_words(code: torch.Tensor) -> torch.Tensor:
    """The lookup table as 8 int32 words (L0..L3, H0..H3), for the kernel to load once.

    The kernel loads them into registers before its loop and passes them to the PTX as
    operands: as immediates inside the PTX, ptxas re-materializes all 8 before every lookup.
    """
    low, high = bf16_table_bytes(code)
    return torch.tensor([v - (1 << 32) if v >= 1 << 31 else v for v in low + high], dtype=torch.int32)


# $0..$7: fp32 outputs (element order); $8: the word of codes; $9..$16: L0..L3, H0..H3.
LOOKUP_CONSTRAINTS = tl.constexpr("=r,=r,=r,=r,=r,=r,=r,=r,r,r,r,r,r,r,r,r,r")


def lookup_asm() -> str:
    """PTX for `tl.inline_asm_elementwise` (operands as in LOOKUP_CONSTRAINTS)."""
    return (
        "{\n"
        "    .reg .b32 sw, sw1, t0, m0, m1, a, b, hb, lb, p;\n"
        # Selectors with bit 3 cleared (prmt reads bit 3 as "replicate the sign bit").
        + "    and.b32 sw, $8, 0x77777777;\n"
        "    shr.u32 sw1, sw, 16;\n"
        # Per-byte masks from bit 3 of each code: the sign bits of the bytes of w and w << 4
        # are bit 3 of the odd and even nibbles; prmt's sign-replicate mode spreads them.
        "    shl.b32 t0, $8, 4;\n"
        "    prmt.b32 m0, t0, $8, 0xD9C8;\n"
        "    prmt.b32 m1, t0, $8, 0xFBEA;\n"
        + _LOOKUP_HALF.format(sel="sw", mask="m0", o0=0, o1=1, o2=2, o3=3)
        + _LOOKUP_HALF.format(sel="sw1", mask="m1", o0=4, o1=5, o2=6, o3=7)
        + "}"
    )


_PAIR_HALF = """
    prmt.b32 a, $9, $10, {sel};
    prmt.b32 b, $11, $12, {sel};
    lop3.b32 hb, a, b, {mask}, 0xD8;
    prmt.b32 a, $5, $6, {sel};
    prmt.b32 b, $7, $8, {sel};
    lop3.b32 lb, a, b, {mask}, 0xD8;
    prmt.b32 ${o0}, lb, hb, 0x4051;
    prmt.b32 ${o1}, lb, hb, 0x6273;
"""

# $0..$3: bf16 pairs (elements 2i in the low half, 2i+1 in the high half); $4: the word of
# codes; $5..$12: L0..L3, H0..H3.
PAIR_LOOKUP_CONSTRAINTS = tl.constexpr("=r,=r,=r,=r,r,r,r,r,r,r,r,r,r")


def pair_lookup_asm() -> str:
    """PTX: one word of codes to 4 pairs of bf16 values, ordered like pairs of x in memory."""
    return (
        "{\n"
        "    .reg .b32 sw, sw1, t0, m0, m1, a, b, hb, lb;\n"
        "    and.b32 sw, $4, 0x77777777;\n"
        "    shr.u32 sw1, sw, 16;\n"
        "    shl.b32 t0, $4, 4;\n"
        "    prmt.b32 m0, t0, $4, 0xD9C8;\n"
        "    prmt.b32 m1, t0, $4, 0xFBEA;\n"
        + _PAIR_HALF.format(sel="sw", mask="m0", o0=0, o1=1)
        + _PAIR_HALF.format(sel="sw1", mask="m1", o0=2, o1=3)
        + "}"
    )


# $0: fp32 result; $1..$4: weight pairs; $5..$8: x pairs (two bf16 each).
PAIR_DOT_CONSTRAINTS = tl.constexpr("=r,r,r,r,r,r,r,r,r")

# The 8 products of a word summed with bf16x2 fused multiply-adds (two running sums of four
# products each, rounded to bf16 at every step), then widened and added in fp32.
PAIR_DOT_ASM = tl.constexpr(
    "{\n"
    "    .reg .b32 acc, zero, lo, hi;\n"
    "    mov.b32 zero, 0x80008000;\n"
    "    fma.rn.bf16x2 acc, $1, $5, zero;\n"
    "    fma.rn.bf16x2 acc, $2, $6, acc;\n"
    "    fma.rn.bf16x2 acc, $3, $7, acc;\n"
    "    fma.rn.bf16x2 acc, $4, $8, acc;\n"
    "    shl.b32 lo, acc, 16;\n"
    "    and.b32 hi, acc, 0xFFFF0000;\n"
    "    add.f32 $0, lo, hi;\n"
    "}"
)


def _emulated_halves(word: int, code: torch.Tensor) -> list[tuple[int, int]]:
    """The looked-up (low bytes, high bytes) registers of both halves of a word, as the PTX
    computes them instruction by instruction (for tests on CPU)."""
    low, high = bf16_table_bytes(code)
    word &= 0xFFFFFFFF
    sw = word & 0x77777777
    t0 = (word << 4) & 0xFFFFFFFF
    masks = (_prmt(t0, word, 0xD9C8), _prmt(t0, word, 0xFBEA))
    halves = []
    for selector, mask in ((sw & 0xFFFF, masks[0]), (sw >> 16, masks[1])):
        hb = _select(_prmt(high[0], high[1], selector), _prmt(high[2], high[3], selector), mask)
        lb = _select(_prmt(low[0], low[1], selector), _prmt(low[2], low[3], selector), mask)
        halves.append((lb, hb))
    return halves


def _prmt(a: int, b: int, selector: int) -> int:
    source = a.to_bytes(4, "little") + b.to_bytes(4, "little")
    out = bytearray()
    for i in range(4):
        nibble = (selector >> (4 * i)) & 0xF
        byte = source[nibble & 7]
        out.append((0xFF if byte & 0x80 else 0x00) if nibble & 8 else byte)
    return int.from_bytes(out, "little")


def _select(a: int, b: int, mask: int) -> int:
    """lop3 with table 0xD8: bits of b where mask is set, of a elsewhere."""
    return (mask & b) | (~mask & a & 0xFFFFFFFF)


def emulate_lookup(word: int, code: torch.Tensor) -> list[float]:
    """The 8 fp32 values lookup_asm produces for one word, in element order."""
    outputs = []
    for lb, hb in _emulated_halves(word, code):
        for pair_selector in (0x5140, 0x7362):
            pair = _prmt(lb, hb, pair_selector)
            outputs += [_as_float(pair & 0xFFFF0000), _as_float(pair << 16)]
    return outputs


def emulate_pair_lookup(word: int, code: torch.Tensor) -> list[int]:
    """The 4 bf16 pairs pair_lookup_asm produces for one word, as 32-bit integers."""
    return [_prmt(lb, hb, selector) for lb, hb in _emulated_halves(word, code) for selector in (0x4051, 0x6273)]


def _as_float(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]
