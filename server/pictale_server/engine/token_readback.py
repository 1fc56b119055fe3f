"""Sampled tokens copied to the host without waiting for the GPU: a decode loop copies a step's
tokens here and queues its next step before it reads them, so the GPU never idles while the host
hands tokens out. Two slots: one being read while the next is copied in; on a GPU each is pinned
memory with the event its copy recorded, on a CPU the copy is done when `put` returns."""

from __future__ import annotations

import torch


class TokenReadback:
    def __init__(self, rows: int, device: torch.device) -> None:
        pinned = device.type == "cuda"
        self._host = torch.zeros((2, rows), dtype=torch.int64, pin_memory=pinned)
        self._copied = [torch.cuda.Event(), torch.cuda.Event()] if pinned else None

    def put(self, slot: int, tokens: torch.Tensor) -> None:
        """Queue the copy of `tokens` (n,) into `slot` (0 or 1), after the work queued so far."""
        self._host[slot, : tokens.shape[0]].copy_(tokens, non_blocking=True)
        if self._copied is not None:
            self._copied[slot].record()

    def take(self, slot: int) -> list[int]:
        """The tokens of `slot`, once its copy is done. A slot is `put` again only after this."""
        if self._copied is not None:
            self._copied[slot].synchronize()
        return self._host[slot].tolist()
