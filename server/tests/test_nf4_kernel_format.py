"""The NF4 storage format as read without bitsandbytes, against bitsandbytes."""

from __future__ import annotations

import pytest
import torch
from nf4_fixtures import NF4_CODE, quantize

from pictale_server.kernels.nf4_format import (
    UnsupportedNF4Weight,
    dequantize,
    packed_from_quant_state,
    unpack_codes,
)


def test_codes_are_two_per_byte_high_nibble_first() -> None:
    assert unpack_codes(torch.tensor([0x1F, 0xA0], dtype=torch.uint8)).tolist() == [1, 15, 10, 0]


def test_bitsandbytes_uses_the_nf4_code_table_the_tests_use() -> None:
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
