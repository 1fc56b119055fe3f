"""What one decode step does, as the decode loop runs it: a forward for one token, then
sampling that feeds the token back. Two implementations, chosen per model by decode_choice.py:

- `ReferenceStep`: transformers' forward (bitsandbytes or plain torch matmuls) and the PyTorch
  sampler. Runs anywhere; the CPU dev profile uses it, and tests use it as the oracle.
- `FastStep` (fast_path/fast_step.py): the written-out step on the CUDA NF4 kernel and the
  sampler's kernels. NF4 models on CUDA GPUs of compute capability 8.0 or newer.

Both read and write only the loop's fixed device buffers, so on a GPU either is captured as
a CUDA graph.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from transformers import StaticCache

from pictale_server.engine.sampling import SamplingTensors, sample_next_token, uniform_noise

DecodePath = Literal["fast", "reference"]


class DecodeStep(Protocol):
    path: DecodePath
    batched: bool  # whether `rows` runs many sequences in one pass (else one forward each)

    def forward(self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache) -> torch.Tensor:
        """One token (1, 1) at cache slot `position` (1,) → (1, vocab) logits."""

    def rows(self, token: torch.Tensor, position: torch.Tensor, regions, pool: StaticCache) -> torch.Tensor:
        """Many sequences, each in its own region of `pool` (written_step.RowRegions): tokens
        (R, 1) at region slots `position` (R,) → (R, vocab) logits. Only steps with `batched`
        have it; the batch runs the others one `forward`-like call per row."""

    def sample_rows(self, logits: torch.Tensor, rows, active: torch.Tensor) -> None:
        """`sample` without top-k/top-p for the rows of `logits` (R, vocab) where `active` (R,)
        is non-zero, each from its row of `rows` (request_sampler.SamplerRows), which also
        keeps those rows' logits. Only steps with `batched` have it."""

    def sample(
        self, logits: torch.Tensor, seen: torch.Tensor, params: SamplingTensors, token: torch.Tensor, by_rank: bool
    ) -> None:
        """Sample from `logits` into `token`, mark it in `seen` and advance `params.step`.
        `by_rank`: whether top-k/top-p are on (sampling.needs_ranking)."""


def accept(next_token: torch.Tensor, seen: torch.Tensor, params: SamplingTensors, token: torch.Tensor) -> None:
    seen.scatter_(1, next_token.view(1, 1), True)
    token.copy_(next_token.view(1, 1))
    params.step.add_(1)


class ReferenceStep:
    """transformers' forward, one sequence per call: a batch runs its rows one after another
    (batch_decoder.py), each on its region's own cache."""

    path: DecodePath = "reference"
    batched = False

    def __init__(self, runner) -> None:
        self.runner = runner

    def forward(self, token, position, cache) -> torch.Tensor:
        return self.runner.decode(token, position, cache)

    def sample(self, logits, seen, params, token, by_rank) -> None:
        accept(sample_next_token(logits, seen, params, uniform_noise, by_rank), seen, params, token)
