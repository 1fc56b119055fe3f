"""One static KV buffer per layer, seen through caches of doubling length.

Decode attention over a `StaticCache` reads every slot of the buffer, filled or not, so a
16k-slot writer cache made every token of a short story pay for 16k slots. Here each model
keeps ONE buffer of its full context, and a request runs on the shortest view of it that
holds its prompt plus `max_tokens` (1k, 2k, 4k … slots). The views share the memory, so the
longest context still fits; each view gets its own write counter and, on the graph path, its
own captured decode step.
"""

from __future__ import annotations

import torch
from transformers import StaticCache

SMALLEST_BUCKET = 1024


def bucket_lengths(max_tokens: int, smallest: int = SMALLEST_BUCKET) -> list[int]:
    lengths = []
    length = smallest
    while length < max_tokens:
        lengths.append(length)
        length *= 2
    lengths.append(max_tokens)
    return lengths


def kv_shape(config) -> tuple[int, int]:
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return text.num_key_value_heads, head_dim


def view_layer(layer, full_layer, length: int, start: int = 0) -> None:
    """Make `layer` (a fresh StaticLayer of `length` slots) a window onto `full_layer`'s buffer,
    from slot `start`."""
    layer.device = full_layer.device
    layer.batch_size, layer.num_heads = full_layer.batch_size, full_layer.num_heads
    layer.k_head_dim, layer.v_head_dim = full_layer.k_head_dim, full_layer.v_head_dim
    layer.keys = full_layer.keys[:, :, start : start + length]
    layer.values = full_layer.values[:, :, start : start + length]
    layer.cumulative_length = torch.zeros_like(full_layer.cumulative_length)
    layer.is_initialized = True


class KVBuckets:
    def __init__(self, config, max_tokens: int, *, dtype: torch.dtype, device: torch.device) -> None:
        self.max_tokens = max_tokens
        self.device = device
        full = StaticCache(config=config, max_cache_len=max_tokens)
        num_heads, head_dim = kv_shape(config)
        full.early_initialization(
            batch_size=1, num_heads=num_heads, head_dim=head_dim, dtype=dtype, device=device
        )
        self.caches: dict[int, StaticCache] = {}
        for length in bucket_lengths(max_tokens)[:-1]:
            cache = StaticCache(config=config, max_cache_len=length)
            for layer, full_layer in zip(cache.layers, full.layers, strict=True):
                view_layer(layer, full_layer, length)
            self.caches[length] = cache
        self.caches[max_tokens] = full

    @property
    def lengths(self) -> list[int]:
        return list(self.caches)

    def length_for(self, tokens: int) -> int:
        """The shortest bucket that holds `tokens` slots."""
        for length in self.caches:
            if tokens <= length:
                return length
        raise ValueError(f"{tokens} tokens exceed the cache's {self.max_tokens} slots")
