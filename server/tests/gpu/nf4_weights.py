"""NF4 weights for the GPU tests, made on the GPU without bitsandbytes, and the error bounds
the kernel's outputs are held to."""

from __future__ import annotations

import torch

from pictale_server.kernels.nf4_format import NF4_BLOCKSIZE, PackedNF4, dequantize

# bitsandbytes' NF4 code table (bitsandbytes.functional.get_4bit_type("nf4"))
NF4_CODE = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]


def quantize_nf4(weight: torch.Tensor) -> PackedNF4:
    """bitsandbytes' NF4 layout: per 64 weights one fp32 absmax, each weight the nearest code of
    weight / absmax, two codes a byte, the even element in the high nibble."""
    n, k = weight.shape
    code = torch.tensor(NF4_CODE, device=weight.device)
    blocks = weight.float().reshape(-1, NF4_BLOCKSIZE)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks / torch.where(absmax > 0, absmax, 1.0)[:, None]
    codes = torch.bucketize(scaled.reshape(-1), (code[1:] + code[:-1]) / 2).reshape(-1, 2)
    packed = (codes[:, 0] << 4 | codes[:, 1]).to(torch.uint8)
    return PackedNF4(packed=packed, absmax=absmax.contiguous(), code=code, out_features=n, in_features=k)


def random_nf4(n: int, k: int, *, zero_blocks: bool = False, outlier_block: bool = False, seed: int = 0) -> PackedNF4:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    weight = torch.randn(n, k, device="cuda", generator=generator) * 0.02
    if zero_blocks:
        weight.view(-1, NF4_BLOCKSIZE)[::3] = 0  # absmax 0
    if outlier_block:
        weight[min(3, n - 1), :NF4_BLOCKSIZE] *= 1000
    return quantize_nf4(weight)


def concatenated(parts: list[PackedNF4]) -> PackedNF4:
    """The parts' rows as one weight (fp32 absmax: codes and scales simply follow each other)."""
    return PackedNF4(
        packed=torch.cat([part.packed for part in parts]), absmax=torch.cat([part.absmax for part in parts]),
        code=parts[0].code, out_features=sum(part.out_features for part in parts), in_features=parts[0].in_features,
    )


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def within_bf16_bound(out: torch.Tensor, x: torch.Tensor, weight: PackedNF4, ref: torch.Tensor) -> bool:
    """Every output within what summing a word's 8 products in bf16 and rounding the result to
    bf16 can cost: 2^-5 of sqrt(sum_k (x_k w_k)^2) (about 8 standard deviations of the
    accumulated rounding) plus 2^-8 of the value. A wrong row or a wrong block fails it."""
    w = dequantize(weight)
    scale = (x.float().square() @ w.square().t()).sqrt()
    error = (out.float() - ref.float()).abs()
    return bool((error <= 2**-5 * scale + 2**-8 * ref.float().abs() + 1e-30).all())
