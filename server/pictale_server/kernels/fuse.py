"""Concatenating the rows of NF4 weights that share an input: q/k/v, gate/up.

bitsandbytes packs each weight's flattened [N, K] row-major in blocks of 64 elements, so with
K a multiple of 64 every row starts a new block: stacking the rows of several weights with the
same K is concatenating their packed bytes and their absmax. The originals are then re-pointed
at slices of the fused buffers, so memory does not grow and bitsandbytes (prefill, eager paths)
keeps working on them unchanged.

With double quantization the second-level scales (one per 256 absmax entries) concatenate too
when each weight's number of blocks is a multiple of 256 (true for both reference models);
each weight's constant offset becomes a per-256-block array.
"""

from __future__ import annotations

import torch

from pictale_server.kernels.nf4_format import NestedAbsmax, PackedNF4, UnsupportedNF4Weight


def can_fuse(weights: list[PackedNF4]) -> str | None:
    """None when the weights can be fused; otherwise why not."""
    first = weights[0]
    for weight in weights[1:]:
        if weight.in_features != first.in_features:
            return "different in_features"
        if not torch.equal(weight.code, first.code):
            return "different code tables"
        if (weight.nested is None) != (first.nested is None):
            return "mixed double quantization"
        if weight.packed.device != first.packed.device:
            return "different devices"
    if first.nested is not None:
        for weight in weights:
            if weight.n_blocks % weight.nested.blocksize2:
                return "double-quantized blocks do not align with the second-level blocks"
            if weight.nested.blocksize2 != first.nested.blocksize2:
                return "different second-level block sizes"
            if not torch.equal(weight.nested.code2, first.nested.code2):
                return "different second-level code tables"
    return None


def fuse_rows(weights: list[PackedNF4]) -> tuple[PackedNF4, list[PackedNF4]]:
    """One PackedNF4 with the rows of all `weights` stacked, and each weight as a view into it.

    The caller points the original parameters at the returned views and drops the old
    storage (see `fast_decode`), so the fused copy replaces rather than duplicates.
    """
    reason = can_fuse(weights)
    if reason:
        raise UnsupportedNF4Weight(f"cannot fuse: {reason}")
    packed = torch.cat([w.packed for w in weights])
    absmax = torch.cat([w.absmax.reshape(-1) for w in weights])
    nested = None
    if weights[0].nested is not None:
        nested = NestedAbsmax(
            code2=weights[0].nested.code2,
            absmax2=torch.cat([w.nested.absmax2 for w in weights]),
            offsets=torch.cat([w.nested.offsets for w in weights]),
            blocksize2=weights[0].nested.blocksize2,
        )
    fused = PackedNF4(
        packed=packed,
        absmax=absmax,
        code=weights[0].code,
        out_features=sum(w.out_features for w in weights),
        in_features=weights[0].in_features,
        nested=nested,
    )
    views = []
    byte_start = block_start = block2_start = 0
    for w in weights:
        n_bytes, n_blocks = w.packed.numel(), w.absmax.numel()
        view_nested = None
        if nested is not None:
            n_blocks2 = w.nested.absmax2.numel()
            view_nested = NestedAbsmax(
                code2=nested.code2,
                absmax2=nested.absmax2[block2_start : block2_start + n_blocks2],
                offsets=nested.offsets[block2_start : block2_start + n_blocks2],
                blocksize2=nested.blocksize2,
            )
            block2_start += n_blocks2
        views.append(
            PackedNF4(
                packed=packed[byte_start : byte_start + n_bytes],
                absmax=absmax[block_start : block_start + n_blocks],
                code=w.code,
                out_features=w.out_features,
                in_features=w.in_features,
                nested=view_nested,
            )
        )
        byte_start += n_bytes
        block_start += n_blocks
    return fused, views
