"""The NF4 storage format as read without bitsandbytes, and the register lookup's arithmetic."""

from __future__ import annotations

import random

import pytest
import torch
from nf4_fixtures import NF4_CODE, quantize

from pictale_server.kernels.nf4_format import (
    UnsupportedNF4Weight,
    dequantize,
    packed_from_quant_state,
    unpack_codes,
)
from pictale_server.kernels.nf4_prmt import emulate_lookup, table_words


def test_codes_are_two_per_byte_high_nibble_first() -> None:
    assert unpack_codes(torch.tensor([0x1F, 0xA0], dtype=torch.uint8)).tolist() == [1, 15, 10, 0]


def test_bitsandbytes_uses_the_nf4_table_the_lookup_is_built_for() -> None:
    import bitsandbytes.functional as bnbf

    assert torch.equal(bnbf.get_4bit_type("nf4", device="cpu"), NF4_CODE)


@pytest.mark.parametrize("nested", [False, True])
def test_reference_decoder_matches_bitsandbytes_dequantize(nested: bool) -> None:
    import bitsandbytes.functional as bnbf

    torch.manual_seed(0)
    weight = torch.randn(96, 320, dtype=torch.bfloat16)
    weight[5] = 0
    weight[7, :64] *= 1000
    packed, state = quantize(weight, nested=nested)
    ours = dequantize(packed_from_quant_state(packed, state))
    theirs = bnbf.dequantize_4bit(packed, state).float()
    # bitsandbytes rounds its output to bf16; ours stays fp32.
    assert torch.allclose(ours.to(torch.bfloat16).float(), theirs, rtol=0, atol=0)


def test_double_quantized_layout_matches_bitsandbytes_state() -> None:
    packed, state = quantize(torch.randn(64, 512, dtype=torch.bfloat16), nested=True)
    weight = packed_from_quant_state(packed, state)
    assert weight.absmax.dtype == torch.uint8 and weight.absmax.numel() == 64 * 512 // 64
    assert weight.nested.blocksize2 == 256
    assert weight.nested.absmax2.numel() == weight.nested.offsets.numel() == 2


def test_unsupported_formats_are_refused_with_a_reason() -> None:
    import bitsandbytes.functional as bnbf

    packed, state = bnbf.quantize_4bit(torch.randn(8, 128), blocksize=128, quant_type="nf4")
    with pytest.raises(UnsupportedNF4Weight, match="blocksize 128"):
        packed_from_quant_state(packed, state)
    packed, state = bnbf.quantize_4bit(torch.randn(8, 128), blocksize=64, quant_type="fp4")
    with pytest.raises(UnsupportedNF4Weight, match="fp4"):
        packed_from_quant_state(packed, state)


def test_register_lookup_decodes_every_code_in_every_position() -> None:
    bf16_code = NF4_CODE.to(torch.bfloat16).float()
    words = [sum(code << (4 * i) for i in range(8)) for code in range(16)]
    rng = random.Random(7)
    words += [rng.getrandbits(32) for _ in range(3000)]
    for word in words:
        expected = bf16_code[unpack_codes(torch.tensor(list(word.to_bytes(4, "little")), dtype=torch.uint8))]
        assert emulate_lookup(word, NF4_CODE) == expected.tolist(), hex(word)


def test_lookup_table_words_hold_the_bf16_bytes() -> None:
    table = table_words(NF4_CODE)
    low, high = table[:4], table[4:]
    bits = NF4_CODE.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
    for index in range(16):
        word, shift = index // 4, 8 * (index % 4)
        assert (int(low[word]) >> shift) & 0xFF == int(bits[index]) & 0xFF
        assert (int(high[word]) >> shift) & 0xFF == int(bits[index]) >> 8
