"""A model's KV memory as one pool of cache slots that the sequences of its batch share.

Admission is by memory, not by count: a sequence reserves a region of the pool for its
worst case (prompt + max_tokens, rounded up to whole pages) when it is admitted, and gives it
back when it ends, so a running stream can never run out of cache. Regions are contiguous (the
decode kernels read a region as one range of slots: region_decode_attention) and found first
fit over a free list kept sorted; neighbouring free ranges merge on release. The pool's last
page is scratch: the rows of a batched step that no sequence holds read and write only there.

The writer's pool takes what is free on the card once both models and the vision model's
pool are resident, less room for prefill's temporaries (`pool_tokens`); the vision model's is
sized by its lanes (engine/transformers_engine.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from transformers import StaticCache

from pictale_server.kernels.attention_chunks import chunk_for

PAGE_TOKENS = 256  # reservations are whole pages: fewer, larger holes between regions
# Kept free on a GPU for what a request allocates besides its cache: a prefill slice's
# activations and the bf16 tiles bitsandbytes dequantizes for its matmuls.
GPU_HEADROOM_BYTES = 2 << 30


@dataclass(frozen=True)
class Region:
    """Slots [start, start + length) of the pool."""

    start: int
    length: int

    @property
    def chunk(self) -> int:
        """Slots per attention program over this region (region_decode_attention)."""
        return chunk_for(self.length)


def kv_shape(config) -> tuple[int, int]:
    """KV heads and head dim of a (text) model's attention."""
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return text.num_key_value_heads, head_dim


def view_layer(layer, full_layer, length: int, start: int = 0) -> None:
    """Make `layer` (a fresh StaticLayer of `length` slots) a window onto `full_layer`'s buffer,
    from slot `start`, with a write counter of its own at 0."""
    layer.device = full_layer.device
    layer.batch_size, layer.num_heads = full_layer.batch_size, full_layer.num_heads
    layer.k_head_dim, layer.v_head_dim = full_layer.k_head_dim, full_layer.v_head_dim
    layer.keys = full_layer.keys[:, :, start : start + length]
    layer.values = full_layer.values[:, :, start : start + length]
    layer.cumulative_length = torch.zeros_like(full_layer.cumulative_length)
    layer.is_initialized = True


def cache_write_counters(cache: StaticCache) -> list[torch.Tensor]:
    """Each layer's write counter: a static cache writes at its counter, not at the positions
    it is given, so whoever moves a sequence's position (a rewind) moves these too."""
    return [layer.cumulative_length for layer in cache.layers]


def bytes_per_token(config, dtype: torch.dtype) -> int:
    """Keys and values of every layer for one token."""
    heads, head_dim = kv_shape(config)
    layers = config.get_text_config().num_hidden_layers
    return 2 * layers * heads * head_dim * torch.empty((), dtype=dtype).element_size()


def pool_tokens(free_bytes: int, per_token: int, context_tokens: int, most_tokens: int) -> int:
    """Slots for a pool on a card with `free_bytes` free: all but the headroom, at least one
    whole context (so any request the context allows fits alone), at most `most_tokens`."""
    usable = max(0, free_bytes - GPU_HEADROOM_BYTES) // per_token
    tokens = max(context_tokens, min(usable, most_tokens))
    return _whole_pages(tokens) + PAGE_TOKENS  # + the scratch page


def _whole_pages(tokens: int) -> int:
    return -(-tokens // PAGE_TOKENS) * PAGE_TOKENS


class KVPool:
    def __init__(self, config, tokens: int, *, dtype: torch.dtype, device: torch.device) -> None:
        if tokens < 2 * PAGE_TOKENS or tokens % PAGE_TOKENS:
            raise ValueError(f"a pool is whole pages of {PAGE_TOKENS} slots, at least two: not {tokens}")
        self.config = config
        self.device = device
        self.tokens = tokens
        self.cache = StaticCache(config=config, max_cache_len=tokens)
        heads, head_dim = kv_shape(config)
        self.cache.early_initialization(batch_size=1, num_heads=heads, head_dim=head_dim, dtype=dtype, device=device)
        self.capacity = tokens - PAGE_TOKENS  # what sequences can reserve
        self.scratch = Region(self.capacity, PAGE_TOKENS)
        self._free: list[Region] = [Region(0, self.capacity)]
        self._lock = threading.Lock()

    @property
    def free_tokens(self) -> int:
        with self._lock:
            return sum(region.length for region in self._free)

    def fits_alone(self, tokens: int) -> bool:
        """Whether `tokens` slots could ever be reserved (the whole pool free)."""
        return _whole_pages(tokens) <= self.capacity

    def reserve(self, tokens: int) -> Region | None:
        """A region of at least `tokens` slots, or None while none is free."""
        length = _whole_pages(max(1, tokens))
        with self._lock:
            for index, free in enumerate(self._free):
                if free.length >= length:
                    if free.length == length:
                        del self._free[index]
                    else:
                        self._free[index] = Region(free.start + length, free.length - length)
                    return Region(free.start, length)
        return None

    def release(self, region: Region) -> None:
        with self._lock:
            ranges = sorted([*self._free, region], key=lambda r: r.start)
            merged: list[Region] = []
            for free in ranges:
                if merged and merged[-1].start + merged[-1].length == free.start:
                    merged[-1] = Region(merged[-1].start, merged[-1].length + free.length)
                else:
                    merged.append(free)
            self._free = merged

    def region_cache(self, region: Region) -> StaticCache:
        """A static cache over `region` alone, write counters at 0: what a prefill (and the
        reference step) write the region through."""
        cache = StaticCache(config=self.config, max_cache_len=region.length)
        for layer, full_layer in zip(cache.layers, self.cache.layers, strict=True):
            view_layer(layer, full_layer, region.length, region.start)
        return cache
