"""One decode step of a Llama-family decoder, written out over the model's own weights.

transformers' forward for one token launches kernels a captured decode graph can do without:
each decoder layer adds its two residuals in kernels of their own, RMSNorm is eight small
kernels, the attention writes the KV cache in a kernel after its rotary embedding, and every
step builds a causal mask. This step computes the same arithmetic with fewer launches:

- every residual add and RMSNorm happens where the next projection loads its input
  (`Projection.normed`: the CUDA NF4 kernel's prologue), across layers too: a layer's MLP
  output joins the residual in the next layer's q/k/v launch, the last one in the final norm;
  only the first layer's input norm and the final norm are launches of their own;
- rotary embedding and KV-cache write are one kernel (`decode_ops.rotary_cache_write`) at the
  decode loop's position, which is the static cache's write counter; the counters of all
  layers then move on in one launch;
- attention reads slots 0..position from the position tensor, with no mask
  (`decode_attention_kernel`, `last_slot`);
- where rotary positions are the cache slots (the writer), cos and sin come from a table.

Qwen2.5-VL's multimodal rotary gives equal temporal, height and width positions at decode,
which is the plain rotary at that position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from pictale_server.engine.fast_path.projections import LayerProjections
from pictale_server.kernels.decode_attention_kernel import HEAD_DIMS, region_decode_attention, split_decode_attention
from pictale_server.kernels.decode_ops import add_rms_norm_, rms_norm, rotary_cache_write, silu_mul

RopePositions = Callable[[torch.Tensor], torch.Tensor]

# Rows lm_head always computes (written_step.WrittenStep._logits): the most a batched step takes.
LOGIT_ROWS = 16


def structure_unsupported(text_model: torch.nn.Module, caches) -> str:
    """'' when the written-out step can run `text_model` over every cache in `caches`, else why not."""
    from transformers.cache_utils import StaticLayer

    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(text_model, name):
            return f"the text model has no {name}"
    config = text_model.config
    if text_model.embed_tokens.weight.dtype != torch.bfloat16:
        return "the step takes bf16 activations"
    if getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True):
        return "sliding-window attention"
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()):
        return "layers other than full attention"
    for layer in text_model.layers:
        attention = getattr(layer, "self_attn", None)
        if attention is None or not all(
            hasattr(attention, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
        ):
            return "an attention layer without q/k/v/o projections"
        if attention.head_dim not in HEAD_DIMS:
            return f"head dim {attention.head_dim}: the attention kernel takes {HEAD_DIMS}"
        for norm in (getattr(layer, "input_layernorm", None), getattr(layer, "post_attention_layernorm", None)):
            if norm is None or not hasattr(norm, "variance_epsilon"):
                return "a layer without RMSNorms"
        if not hasattr(layer, "mlp"):
            return "a layer without an MLP"
    if not hasattr(text_model.norm, "variance_epsilon"):
        return "the final norm is not an RMSNorm"
    for cache in caches:
        if len(cache.layers) != len(text_model.layers):
            return "the cache has a different number of layers"
        for layer in cache.layers:
            if type(layer) is not StaticLayer or not layer.is_initialized:
                return "a cache layer that is not an initialized static layer"
            if layer.keys.shape[0] != 1:
                return "a cache for more than one sequence"
    return ""


class WrittenStep:
    """`step(token (1, 1), position (1,), cache) -> (1, vocab) logits` for one sequence, and
    `step.rows(...)` for many in one shared cache (continuous batching); graph-safe."""

    def __init__(
        self,
        text_model: torch.nn.Module,
        lm_head: torch.nn.Module,
        rope_positions: RopePositions,
        projections: Sequence[LayerProjections],
        rope_table_tokens: int | None = None,
    ) -> None:
        self.text_model = text_model
        self.layers = list(text_model.layers)
        if len(projections) != len(self.layers):
            raise ValueError("one LayerProjections per decoder layer")
        self.projections = list(projections)
        self.has_tensor_cores = any(
            getattr(p, "tensor_cores", False) for layer in self.projections for p in (layer.qkv, layer.o, layer.gate_up, layer.down)
        )
        self.lm_head = lm_head
        self.rope_positions = rope_positions
        # Only plain RoPE: a dynamic scaling type recomputes its frequencies from the length.
        plain_rope = getattr(text_model.rotary_emb, "rope_type", None) == "default"
        self.rope_table = self._rope_table(rope_table_tokens) if rope_table_tokens and plain_rope else None

    def _rope_table(self, tokens: int) -> torch.Tensor:
        """cos and sin of every position below `tokens` (positions being the cache slots),
        [2, tokens, head dim], from the model's own rotary embedding (element-wise, so each row
        has the bits a single position gets): one gather per step instead of the ~9 launches
        that compute them."""
        weight = self.text_model.embed_tokens.weight
        positions = torch.arange(tokens, device=weight.device).view(1, -1)
        with torch.inference_mode():
            cos, sin = self.text_model.rotary_emb(weight[:1], positions)
        return torch.stack([cos.reshape(tokens, -1), sin.reshape(tokens, -1)])

    def _rope(self, residual: torch.Tensor, position: torch.Tensor):
        if self.rope_table is None:
            return self.text_model.rotary_emb(residual, self.rope_positions(position))
        both = self.rope_table.index_select(1, position)  # [2, rows, head dim]
        rows = position.numel()
        return both[0].view(rows, 1, -1), both[1].view(rows, 1, -1)

    def __call__(self, token: torch.Tensor, position: torch.Tensor, cache) -> torch.Tensor:
        """One sequence (1, 1) at cache slot `position` (1,) of its own cache → (1, vocab)."""

        def attend(attention, q, k, v, cos, sin, index) -> torch.Tensor:
            layer = cache.layers[index]
            keys, values = layer.keys, layer.values
            rotated = rotary_cache_write(q, k, v, cos, sin, keys, values, position)
            return split_decode_attention(rotated, keys, values, None, attention.scaling, last_slot=position)

        x = self._forward(token, position, attend)
        _advance(cache)
        return self.lm_head(x)[:, -1, :]

    def rows(
        self, token: torch.Tensor, position: torch.Tensor, regions: RowRegions, pool, tensor_cores: bool = False
    ) -> torch.Tensor:
        """Many sequences at once, each in its own region of `pool` (one static cache of batch 1
        that every row writes its own slots of): token (R, 1) at region slot `position` (R,)
        → (R, vocab). With `tensor_cores`, the projections run the tensor-core kernel: then
        each row's logits are the same bits whatever rows share the step; on the CUDA-core
        kernel they are the same bits at any row count that kernel runs."""
        slot = regions.first + position

        def attend(attention, q, k, v, cos, sin, index) -> torch.Tensor:
            layer = pool.layers[index]
            keys, values = layer.keys, layer.values
            rotated = rotary_cache_write(q, k, v, cos, sin, keys, values, slot)
            return region_decode_attention(
                rotated, keys, values, regions.first, slot, regions.chunk, attention.scaling, regions.max_chunk
            )

        return self._logits(self._forward(token, position, attend, tensor_cores))

    def _forward(self, token: torch.Tensor, position: torch.Tensor, attend, tensor_cores: bool = False) -> torch.Tensor:
        model = self.text_model
        residual = model.embed_tokens(token)  # [rows, 1, hidden]
        cos, sin = self._rope(residual, position)
        first = self.layers[0].input_layernorm
        x = rms_norm(residual, first.weight, first.variance_epsilon)
        delta = None  # what the residual still has to take in: the last MLP's output
        for index, (layer, proj) in enumerate(zip(self.layers, self.projections, strict=True)):
            attention = layer.self_attn
            if delta is None:  # the first layer: its input norm was a launch of its own
                qkv = proj.qkv(x, tensor_cores=tensor_cores)
            else:
                summed = torch.empty_like(residual)
                qkv = proj.qkv.normed(residual, delta, layer.input_layernorm, summed, tensor_cores=tensor_cores)
                residual = summed
            q, k, v = qkv.split(proj.qkv_split, dim=-1)
            heads = (*q.shape[:-1], -1, attention.head_dim)
            attended = attend(
                attention, q.view(heads).transpose(1, 2), k.view(heads).transpose(1, 2),
                v.view(heads).transpose(1, 2), cos, sin, index,
            ).reshape(*q.shape[:-1], -1)
            attended = proj.o(attended, tensor_cores=tensor_cores)
            summed = torch.empty_like(residual)
            gate_up = proj.gate_up.normed(
                residual, attended, layer.post_attention_layernorm, summed, tensor_cores=tensor_cores
            )
            residual = summed
            gate, up = gate_up.split(proj.gate_rows, dim=-1)
            delta = proj.down(silu_mul(gate, up), tensor_cores=tensor_cores)
        final = model.norm
        return add_rms_norm_(residual, delta, final.weight, final.variance_epsilon)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """lm_head over LOGIT_ROWS rows whatever the batch: cuBLAS picks its kernel (and so its
        sums' order) by shape, so a fixed shape keeps a row's logits the same bits at any batch
        size. The product reads the weight once either way (memory-bound): the padding costs
        compute only."""
        rows = x.shape[0]
        padded = x.new_zeros((LOGIT_ROWS, *x.shape[1:]))
        padded[:rows] = x
        return self.lm_head(padded)[:rows, -1, :]


@dataclass(frozen=True)
class RowRegions:
    """Where each row of a batched step lives in the pool (int64 device tensors of R): its
    region's first slot and its attention chunk (region_decode_attention), and the largest
    chunk of any row (one compilation and, on a GPU, one captured step each)."""

    first: torch.Tensor
    chunk: torch.Tensor
    max_chunk: int


def _advance(cache) -> None:
    """Every layer's write counter on by one token (transformers' static layers keep them)."""
    torch._foreach_add_([layer.cumulative_length for layer in cache.layers], 1)
