"""The rows NF4 kernel (kernels/nf4_rows.py) under Triton's interpreter: against the fp32
reference on the dequantized weight, bias, ragged shapes, more rows than one tile, and a row's
output unchanged by the rows beside it.

Run by test_nf4_rows_interpret.py in a process of its own with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import pytest
import torch
import triton.language as tl
from gpu.nf4_weights import NF4_CODE, quantize_nf4

from pictale_server.kernels.nf4_format import dequantize, reference_linear
from pictale_server.kernels.nf4_rows import MAX_ROWS, RowsNF4Weight, nf4_rows, pair_table

if type(tl.zeros).__name__ == "JITFunction":
    raise RuntimeError("run with TRITON_INTERPRET=1 set before anything imports triton")


def weight(n: int, k: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return quantize_nf4(torch.randn(n, k, generator=generator) * 0.02)


def rows(m: int, k: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=generator).to(torch.bfloat16)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref).norm() / ref.norm()).item()


def test_the_pair_table_holds_both_nibbles_code_values():
    code = torch.tensor(NF4_CODE)
    table = pair_table(code)
    for byte in (0x00, 0x0F, 0xF0, 0x7A, 0xA7, 0xFF):
        even = (table[byte] & 0xFFFF).to(torch.int16).view(torch.bfloat16)
        odd = (table[byte] >> 16).to(torch.int16).view(torch.bfloat16)
        assert even.item() == code[byte >> 4].to(torch.bfloat16).item()
        assert odd.item() == code[byte & 0xF].to(torch.bfloat16).item()


@pytest.mark.parametrize("m,n,k", [(1, 64, 128), (3, 40, 192), (16, 96, 64), (17, 32, 128), (5, 33, 256)])
def test_matches_the_fp32_reference(m, n, k):
    packed = weight(n, k, seed=n + k)
    x = rows(m, k, seed=m)
    out = nf4_rows(x, RowsNF4Weight(packed))
    assert out.shape == (m, n) and out.dtype == torch.bfloat16
    # the code values are rounded to bf16 before the dot, the output to bf16 after it
    assert relative_error(out, reference_linear(x, packed)) < 1e-2


def test_adds_the_bias():
    packed = weight(48, 128)
    bias = torch.randn(48).to(torch.bfloat16)
    x = rows(2, 128)
    out = nf4_rows(x, RowsNF4Weight(packed, bias))
    assert relative_error(out, reference_linear(x, packed, bias)) < 1e-2


def test_reads_each_block_with_its_own_scale():
    # one block per feature scaled 1000x: a kernel that used the wrong block's absmax would be off
    # by far more than rounding
    w = torch.randn(32, 192) * 0.02
    w[:, 64:128] *= 1000
    packed = quantize_nf4(w)
    x = rows(4, 192)
    assert relative_error(nf4_rows(x, RowsNF4Weight(packed)), reference_linear(x, packed)) < 1e-2


def test_a_rows_output_does_not_depend_on_the_rows_beside_it():
    packed = RowsNF4Weight(weight(64, 256))
    batch = rows(8, 256, seed=7)
    together = nf4_rows(batch, packed)
    for i in range(8):
        assert torch.equal(nf4_rows(batch[i : i + 1], packed), together[i : i + 1])
    assert torch.equal(nf4_rows(batch[:3], packed), together[:3])


def test_writes_into_a_strided_output_view():
    packed = RowsNF4Weight(weight(32, 128))
    x = rows(2, 128)
    wide = torch.zeros(2, 96, dtype=torch.bfloat16)
    nf4_rows(x, packed, out=wide[:, 32:64])
    assert torch.equal(wide[:, 32:64], nf4_rows(x, packed))
    assert not wide[:, :32].any() and not wide[:, 64:].any()


def test_refuses_what_it_cannot_compute():
    packed = RowsNF4Weight(weight(32, 128))
    with pytest.raises(ValueError, match="bf16"):
        nf4_rows(rows(1, 64), packed)
    with pytest.raises(ValueError, match="bf16"):
        nf4_rows(rows(1, 128).float(), packed)
    with pytest.raises(ValueError, match="at most"):
        nf4_rows(rows(MAX_ROWS + 1, 128), packed)


def test_the_dequantized_weight_is_what_the_reference_multiplies():
    packed = weight(16, 64)
    assert torch.allclose(reference_linear(torch.eye(64), packed).t(), dequantize(packed))
