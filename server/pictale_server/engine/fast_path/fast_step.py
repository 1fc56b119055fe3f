"""The fast decode step: the written-out forward on the CUDA NF4 kernel, and the sampler as
kernels (three launches without top-k/top-p, for one row or a batch's plain rows together;
with them, the PyTorch sort and the noise kernel)."""

from __future__ import annotations

import torch

from pictale_server.engine.decode_step import DecodePath, accept
from pictale_server.engine.fast_path.projections import TENSOR_CORE_ROWS
from pictale_server.engine.fast_path.written_step import WrittenStep
from pictale_server.engine.sampling import sample_next_token
from pictale_server.kernels.sampler_kernel import sample_and_accept, sample_rows_and_accept
from pictale_server.kernels.sampling_noise import uniform_noise


class FastStep:
    path: DecodePath = "fast"
    batched = True

    def __init__(self, written: WrittenStep, tensor_core_rows: int = TENSOR_CORE_ROWS) -> None:
        self.written = written
        self.tensor_core_rows = tensor_core_rows  # the model's crossover (runners.py)

    def forward(self, token, position, cache) -> torch.Tensor:
        return self.written(token, position, cache)

    def rows(self, token, position, regions, pool, tensor_cores: bool = False) -> torch.Tensor:
        return self.written.rows(token, position, regions, pool, tensor_cores)

    def tensor_cores_for(self, rows: int, deterministic: bool) -> bool:
        """Whether a step of `rows` lanes runs the tensor-core kernel: from the model's
        `tensor_core_rows` on, where it is the faster one, and at any size when a deterministic
        request steps, since its rows are the same bits at every size (the CUDA-core kernel's
        differ from them)."""
        return self.written.has_tensor_cores and (deterministic or rows >= self.tensor_core_rows)

    def sample_rows(self, logits, rows, active) -> None:
        sample_rows_and_accept(logits, rows.seen[: logits.shape[0]], rows.params, rows.token, active, rows.logits)

    def sample(self, logits, seen, params, token, by_rank) -> None:
        if not by_rank:
            sample_and_accept(logits, seen, params, token)
            return
        accept(sample_next_token(logits, seen, params, uniform_noise, by_rank), seen, params, token)
