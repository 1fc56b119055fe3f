"""The writer's KV pool: regions reserved for a worst case, first fit, merged when released."""

from __future__ import annotations

import pytest
import torch
from transformers import MistralConfig

from pictale_server.engine.kv_pool import (
    GPU_HEADROOM_BYTES,
    PAGE_TOKENS,
    KVPool,
    Region,
    bytes_per_token,
    pool_tokens,
)

CONFIG = MistralConfig(
    vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=8,
)


def pool(pages: int) -> KVPool:
    return KVPool(CONFIG, (pages + 1) * PAGE_TOKENS, dtype=torch.float32, device=torch.device("cpu"))


def test_a_reservation_is_whole_pages_and_the_last_page_is_scratch() -> None:
    kv = pool(4)
    assert kv.capacity == 4 * PAGE_TOKENS
    assert kv.scratch == Region(4 * PAGE_TOKENS, PAGE_TOKENS)
    region = kv.reserve(PAGE_TOKENS + 1)
    assert region == Region(0, 2 * PAGE_TOKENS)
    assert kv.free_tokens == 2 * PAGE_TOKENS


def test_a_reservation_that_does_not_fit_waits_and_fits_once_released() -> None:
    kv = pool(4)
    first, second = kv.reserve(2 * PAGE_TOKENS), kv.reserve(2 * PAGE_TOKENS)
    assert kv.reserve(1) is None
    kv.release(first)
    assert kv.reserve(3 * PAGE_TOKENS) is None  # two pages free, not three
    kv.release(second)
    assert kv.reserve(4 * PAGE_TOKENS) == Region(0, 4 * PAGE_TOKENS)  # merged again


def test_first_fit_takes_the_earliest_hole_that_holds_the_request() -> None:
    kv = pool(6)
    regions = [kv.reserve(PAGE_TOKENS) for _ in range(6)]
    kv.release(regions[1])
    kv.release(regions[3])
    kv.release(regions[4])
    assert kv.reserve(2 * PAGE_TOKENS) == Region(3 * PAGE_TOKENS, 2 * PAGE_TOKENS)
    assert kv.reserve(PAGE_TOKENS) == Region(PAGE_TOKENS, PAGE_TOKENS)


def test_a_region_cache_is_a_window_onto_the_pool() -> None:
    kv = pool(4)
    region = kv.reserve(PAGE_TOKENS)
    region = kv.reserve(PAGE_TOKENS)  # the second page: slots 256..511
    cache = kv.region_cache(region)
    cache.layers[0].keys.fill_(1.0)
    keys = kv.cache.layers[0].keys
    assert keys[:, :, region.start : region.start + region.length].eq(1.0).all()
    assert keys[:, :, : region.start].eq(0.0).all() and keys[:, :, region.start + region.length :].eq(0.0).all()
    assert int(cache.layers[0].cumulative_length) == 0


def test_the_pool_takes_what_the_card_has_free_but_the_headroom() -> None:
    per_token = bytes_per_token(CONFIG, torch.bfloat16)
    assert per_token == 2 * 2 * 2 * 8 * 2  # k and v, layers, heads, head dim, bf16
    free = GPU_HEADROOM_BYTES + 10_000 * per_token
    tokens = pool_tokens(free, per_token, context_tokens=1024, most_tokens=100_000)
    assert tokens == 10_240 + PAGE_TOKENS  # whole pages, and the scratch page
    assert pool_tokens(free, per_token, 1024, most_tokens=2048) == 2048 + PAGE_TOKENS
    # Never less than one whole context, so any request the context allows fits alone.
    assert pool_tokens(0, per_token, 4096, 100_000) == 4096 + PAGE_TOKENS


def test_a_pool_is_whole_pages() -> None:
    with pytest.raises(ValueError, match="whole pages"):
        KVPool(CONFIG, 3 * PAGE_TOKENS + 1, dtype=torch.float32, device=torch.device("cpu"))
