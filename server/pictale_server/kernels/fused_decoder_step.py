"""One decode step of a Llama-family decoder, written out over the model's own modules.

transformers' forward for one token launches kernels the captured decode graph can do
without. Each decoder layer adds its two residuals in kernels of their own, the attention
writes the KV cache in a kernel after its rotary embedding, and every step builds a causal
mask. This step runs the same modules and arithmetic with fewer launches:

- every residual add happens inside the RMSNorm after it (`decode_ops.add_rms_norm_`), across
  layers too: a layer's MLP output joins the residual in the next layer's input norm, the
  last one in the final norm;
- rotary embedding and KV-cache write are one kernel (`decode_ops.rotary_cache_write`) at the
  decode loop's position, which is the static cache's write counter; the counters of all
  layers then move on in one launch;
- attention reads slots 0..position from the position tensor, with no mask
  (`decode_attention_kernel`, `last_slot`);
- where the CUDA NF4 kernel serves every q/k/v and gate/up launch (`norm_in_matmul`), those
  launches make their own input: residual add and RMSNorm happen where the kernel loads x
  (`nf4_cuda.norm_gemv`), so only the first layer's input norm and the final norm remain
  launches of their own;
- where rotary positions are the cache slots (the writer), cos and sin come from a table.

The projections are the model's modules and kernels, as in transformers' forward. On the
writer that is 40 layers x 3 = 120 launches fewer per token, plus the mask's and the rotary
embedding's, and ~80 more with the norms in the matmuls.
Qwen2.5-VL's multimodal rotary gives equal temporal, height and width positions at decode,
which is the plain rotary at that position.

Built only where the fused decode ops run (`fused_layers.py`); `decoder_step_for` says why not
otherwise, and the runner keeps transformers' forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pictale_server.kernels.decode_attention_kernel import HEAD_DIMS, split_decode_attention
from pictale_server.kernels.decode_ops import add_rms_norm_, rms_norm, rotary_cache_write, silu_mul
from pictale_server.kernels.fused_layers import MAX_ROWS
from pictale_server.kernels.nf4_cuda import norm_gemv, norm_unsupported

RopePositions = Callable[[torch.Tensor], torch.Tensor]


def step_unsupported(text_model: torch.nn.Module, caches) -> str:
    """'' when the written-out step can run `text_model` over every cache in `caches`, else why not."""
    from transformers.cache_utils import StaticLayer

    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(text_model, name):
            return f"the text model has no {name}"
    config = text_model.config
    if text_model.embed_tokens.weight.dtype not in (torch.bfloat16, torch.float16):
        return "the attention kernel takes bf16 or fp16 activations"
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
            if layer.keys.shape[0] > MAX_ROWS:
                return "a batch larger than the fused ops take"
    return ""


@dataclass(frozen=True)
class _LayerKernels:
    """A layer's q/k/v and gate/up launches on the CUDA NF4 kernel (nf4_cuda.py): its weights
    and the rows of each sibling, for launches that make their own input (`norm_gemv`)."""

    qkv: object  # CudaNF4Weight
    qkv_rows: tuple[int, ...]
    gate_up: object
    gate_rows: int


def _layer_kernels(layer) -> _LayerKernels | None:
    """The layer's fused q/k/v and gate/up launches when the CUDA NF4 kernel serves both (and
    the MLP is a SiLU-gated one), else None."""
    attention, mlp = layer.self_attn, layer.mlp
    qkv = getattr(attention.q_proj, "_fast_nf4_group", None)
    gate_up = getattr(getattr(mlp, "gate_proj", None), "_fast_nf4_group", None)
    if qkv is None or gate_up is None or qkv.cuda_weight is None or gate_up.cuda_weight is None:
        return None
    if len(qkv.splits) != 3 or any(getattr(attention, name)._fast_nf4_group is not qkv for name in ("k_proj", "v_proj")):
        return None
    if len(gate_up.splits) != 2 or getattr(mlp.up_proj, "_fast_nf4_group", None) is not gate_up:
        return None
    if not hasattr(mlp, "down_proj") or getattr(getattr(mlp, "config", None), "hidden_act", None) != "silu":
        return None
    if any(group.rows is not None and 1 not in group.rows for group in (qkv, gate_up)):
        return None
    return _LayerKernels(qkv.cuda_weight, tuple(qkv.splits), gate_up.cuda_weight, gate_up.splits[0])


def _norms_fit(layer, kernels: _LayerKernels) -> bool:
    return not norm_unsupported(kernels.qkv, layer.input_layernorm.weight) and not norm_unsupported(
        kernels.gate_up, layer.post_attention_layernorm.weight
    )


class FusedDecoderStep:
    """`step(token (1, 1), position (1,), cache) -> (1, vocab) logits`, graph-safe.

    With `norm_in_matmul`, where the CUDA NF4 kernel serves every q/k/v and gate/up launch,
    each residual add and RMSNorm before a projection happens inside that projection's launch
    (nf4_cuda.norm_gemv); the first layer's input norm and the final norm stay launches."""

    def __init__(
        self, text_model: torch.nn.Module, lm_head: torch.nn.Module, rope_positions: RopePositions,
        norm_in_matmul: bool = True, rope_table_tokens: int | None = None,
    ) -> None:
        self.text_model = text_model
        self.layers = list(text_model.layers)
        self.lm_head = lm_head
        self.rope_positions = rope_positions
        # Only plain RoPE: a dynamic scaling type recomputes its frequencies from the length.
        plain_rope = getattr(text_model.rotary_emb, "rope_type", None) == "default"
        self.rope_table = self._rope_table(rope_table_tokens) if rope_table_tokens and plain_rope else None
        # The norm each layer's MLP output is added in front of: the next layer's, then the final one.
        self.next_norms = [layer.input_layernorm for layer in self.layers[1:]] + [text_model.norm]
        kernels = [_layer_kernels(layer) for layer in self.layers] if norm_in_matmul else [None]
        self.kernels: list[_LayerKernels] | None = kernels if all(kernels) else None
        self.norm_in_matmul = bool(
            self.kernels and all(_norms_fit(layer, k) for layer, k in zip(self.layers, self.kernels, strict=True))
        )

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
        both = self.rope_table.index_select(1, position)  # [2, 1, head dim]
        return both[0:1], both[1:2]

    def __call__(self, token: torch.Tensor, position: torch.Tensor, cache) -> torch.Tensor:
        if self.norm_in_matmul:
            return self._normed_step(token, position, cache)
        model = self.text_model
        residual = model.embed_tokens(token)
        cos, sin = self._rope(residual, position)
        first = self.layers[0].input_layernorm
        x = rms_norm(residual, first.weight, first.variance_epsilon)
        for layer, cache_layer, next_norm in zip(self.layers, cache.layers, self.next_norms, strict=True):
            attention = layer.self_attn
            q = attention.q_proj(x)
            attended = self._attend(attention, q, attention.k_proj(x), attention.v_proj(x), cos, sin, cache_layer, position)
            norm = layer.post_attention_layernorm
            x = add_rms_norm_(residual, attended, norm.weight, norm.variance_epsilon)
            x = add_rms_norm_(residual, layer.mlp(x), next_norm.weight, next_norm.variance_epsilon)
        self._advance(cache)
        return self.lm_head(x)[:, -1, :]

    def _normed_step(self, token: torch.Tensor, position: torch.Tensor, cache) -> torch.Tensor:
        model = self.text_model
        residual = model.embed_tokens(token)
        cos, sin = self._rope(residual, position)
        first = self.layers[0].input_layernorm
        x = rms_norm(residual, first.weight, first.variance_epsilon)
        delta = None  # what the residual still has to take in: the last MLP's output
        for layer, cache_layer, kernels in zip(self.layers, cache.layers, self.kernels, strict=True):
            attention = layer.self_attn
            if delta is None:  # the first layer: its input norm was a launch of its own
                q, k, v = attention.q_proj(x), attention.k_proj(x), attention.v_proj(x)
            else:
                norm = layer.input_layernorm
                summed = torch.empty_like(residual)
                qkv = norm_gemv(residual, delta, norm.weight, norm.variance_epsilon, summed, kernels.qkv)
                residual = summed
                q, k, v = qkv.view(*residual.shape[:-1], -1).split(kernels.qkv_rows, dim=-1)
            attended = self._attend(attention, q, k, v, cos, sin, cache_layer, position)
            norm = layer.post_attention_layernorm
            summed = torch.empty_like(residual)
            gate_up = norm_gemv(residual, attended, norm.weight, norm.variance_epsilon, summed, kernels.gate_up)
            residual = summed
            gate, up = gate_up.view(*residual.shape[:-1], -1).split(kernels.gate_rows, dim=-1)
            delta = layer.mlp.down_proj(silu_mul(gate, up))
        final = model.norm
        x = add_rms_norm_(residual, delta, final.weight, final.variance_epsilon)
        self._advance(cache)
        return self.lm_head(x)[:, -1, :]

    @staticmethod
    def _attend(attention, q, k, v, cos, sin, cache_layer, position) -> torch.Tensor:
        """Rotary, cache write, attention over slots 0..position and the output projection."""
        heads = (*q.shape[:-1], -1, attention.head_dim)
        keys, values = cache_layer.keys, cache_layer.values
        rotated = rotary_cache_write(
            q.view(heads).transpose(1, 2), k.view(heads).transpose(1, 2), v.view(heads).transpose(1, 2),
            cos, sin, keys, values, position,
        )
        out = split_decode_attention(rotated, keys, values, None, attention.scaling, last_slot=position)
        return attention.o_proj(out.reshape(*q.shape[:-1], -1))

    @staticmethod
    def _advance(cache) -> None:
        """Every layer's write counter on by one token (transformers' static layers keep them)."""
        torch._foreach_add_([layer.cumulative_length for layer in cache.layers], 1)


def decoder_step_for(
    text_model: torch.nn.Module, lm_head: torch.nn.Module, rope_positions: RopePositions, caches,
    norm_in_matmul: bool = True, rope_table_tokens: int | None = None,
) -> tuple[FusedDecoderStep | None, str]:
    """The written-out step for `text_model` over `caches`, or None and why not.
    `rope_table_tokens`: where rotary positions are the cache slots, the cache's length (the
    step then looks cos and sin up in a table)."""
    why_not = step_unsupported(text_model, caches)
    if why_not:
        return None, why_not
    return FusedDecoderStep(text_model, lm_head, rope_positions, norm_in_matmul, rope_table_tokens), ""


__all__ = ["FusedDecoderStep", "decoder_step_for", "step_unsupported"]
