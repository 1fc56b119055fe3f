"""How decode attention cuts a cache into programs (decode_attention_kernel.py), in plain
Python: the engine sizes its KV regions with it without importing Triton."""

from __future__ import annotations

BLOCK_L = 64  # cache slots one step of a program reads
MAX_SPLITS = 32  # programs per (row, KV head) at most


def chunk_for(length: int) -> int:
    """Cache slots per program: at most MAX_SPLITS chunks per head, each whole blocks. Each
    distinct chunk is one compilation (four for a 16k cache: 64 slots up to 2k, then 128-512)."""
    per_split = -(-length // MAX_SPLITS)
    return max(BLOCK_L, -(-per_split // BLOCK_L) * BLOCK_L)
