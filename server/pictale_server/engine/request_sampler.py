"""One request's sampling state on the device: its settings, the token it fed back, what it has
seen, the creative samplers' buffers, and the bans and rewinds of banned phrases.

A batch (batch_decoder.py) keeps one per lane, each a row of the batch's `SamplerRows`. Every
buffer is allocated once and updated in place, so a captured CUDA graph that samples reads a
request's settings from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from pictale_server.engine.base import Sampling
from pictale_server.engine.creative_samplers import (
    CreativeState,
    creative_accept,
    creative_sample_next_token,
    needs_creative,
)
from pictale_server.engine.decode_step import DecodeStep
from pictale_server.engine.sampler_vocabulary import SamplerVocabulary
from pictale_server.engine.sampling import SamplingTensors, needs_ranking

SamplerMode = Literal["plain", "ranked", "creative"]


@dataclass(frozen=True)
class Rewind:
    """Sent into a decode loop's `tokens()`: take the answer back to its first `index` tokens and
    sample the token at `index` again, never `banned` there (banned_phrases.py)."""

    index: int
    banned: int


@dataclass(frozen=True)
class SamplerRows:
    """The sampling state of several requests side by side, row i being request i's: a batch
    samples its plain rows in one launch from them (`DecodeStep.sample_rows`)."""

    params: SamplingTensors  # each setting a tensor of one value per row
    token: torch.Tensor  # (rows, 1) int64: the token each row fed back
    seen: torch.Tensor  # (rows, vocab) bool
    logits: torch.Tensor  # (rows, vocab) float32: each row's last sampled logits

    @classmethod
    def allocate(cls, rows: int, vocab_size: int, device: torch.device) -> SamplerRows:
        return cls(
            SamplingTensors.allocate(device, rows=rows),
            torch.zeros((rows, 1), dtype=torch.int64, device=device),
            torch.zeros((rows, vocab_size), dtype=torch.bool, device=device),
            torch.zeros((rows, vocab_size), dtype=torch.float32, device=device),
        )


class RequestSampler:
    """Samples one sequence's tokens with `step`'s sampler into `token` (1, 1).

    Its token, settings, seen tokens and logits are row `row` of `rows` (a batch's, which its
    batched step reads tokens from), or of rows of its own.
    Three modes: "plain" (the step's own sampler, kernels on the fast path), "ranked"
    (top-k/top-p: a sort of the vocabulary that other settings skip, sampling.needs_ranking)
    and "creative" (creative_samplers.py: bias, penalties, DRY, XTC, and the bookkeeping that
    rewinds need).
    """

    def __init__(
        self,
        step: DecodeStep,
        *,
        vocab_size: int,
        context_tokens: int,
        device: torch.device,
        vocabulary: SamplerVocabulary | None = None,
        rows: SamplerRows | None = None,
        row: int = 0,
    ) -> None:
        self.step = step
        self.vocabulary = vocabulary
        if rows is None:
            rows = SamplerRows.allocate(1, vocab_size, device)
        self.params = rows.params.row(row)
        self.token = rows.token[row : row + 1]
        self.seen = rows.seen[row : row + 1]
        self.logits = rows.logits[row : row + 1]
        self.creative = CreativeState.allocate(vocab_size, context_tokens, device)
        self.mode: SamplerMode = "ranked"
        self.prompt_tokens = 0
        self._first_logits = torch.zeros((1, vocab_size), dtype=torch.float32, device=device)
        self._base_bias = torch.zeros((1, vocab_size), dtype=torch.float32, device=device)
        self._bans: dict[int, set[int]] = {}  # answer index -> tokens banned there

    def accept(self, logits: torch.Tensor) -> None:
        """Sample from `logits` (1, vocab) and feed the token back into `token`. Graph-safe."""
        self.logits.copy_(logits)
        if self.mode == "creative":
            chosen = creative_sample_next_token(logits, self.seen, self.creative, self.params)
            creative_accept(chosen, self.seen, self.creative, self.params, self.token)
        else:
            self.step.sample(logits, self.seen, self.params, self.token, self.mode == "ranked")

    def accept_first(self, logits: torch.Tensor) -> None:
        """The prefill's logits: kept in creative mode (a rewind to the answer's start samples
        them again), then accepted."""
        if self.mode == "creative":
            self._first_logits.copy_(logits)
        self.accept(logits)

    def reset(self, sampling: Sampling, seed: int, prompt_ids: torch.Tensor) -> None:
        device = self.seen.device
        self.params.assign(sampling, seed)
        self.mode = "creative" if needs_creative(sampling) else "ranked" if needs_ranking(sampling) else "plain"
        ids = prompt_ids.view(-1).to(device)
        self.seen.zero_()
        self.seen[0, ids] = True
        self.prompt_tokens = int(prompt_ids.shape[-1])
        self._bans = {}
        if self.mode == "creative":
            self._reset_creative(sampling, ids)

    def _reset_creative(self, sampling: Sampling, ids: torch.Tensor) -> None:
        state = self.creative
        state.counts.zero_()
        state.history[: ids.shape[0]].copy_(ids)
        state.length.fill_(ids.shape[0])
        self._base_bias.zero_()
        for token, bias in sampling.logit_bias:
            self._base_bias[0, token] = float("-inf") if bias <= -100 else bias
        state.bias.copy_(self._base_bias)
        # The masks come from the vocabulary's texts, decoded at the first request that needs them.
        vocabulary = self.vocabulary
        dry = vocabulary is not None and sampling.dry_multiplier > 0
        state.breakers.copy_(vocabulary.breakers(sampling.dry_sequence_breakers) if dry else False)
        xtc = vocabulary is not None and sampling.xtc_probability > 0
        state.xtc_keep.copy_(vocabulary.xtc_keep if xtc else False)

    def begin_rewind(self, rewind: Rewind) -> int | None:
        """Take the answer back to `rewind.index` tokens, with every token banned there banned.
        Bans recorded further on belonged to the text that was taken back.

        At the answer's start the prefill's logits are sampled again here and None returned.
        Otherwise `token` is set to the answer's token before the index and its slot returned:
        the caller runs the step at that slot (whose logits are the index's), then calls
        `end_rewind`."""
        if self.mode != "creative":
            raise ValueError("rewinds need creative sampling (banned phrases)")
        index, prompt = rewind.index, self.prompt_tokens
        self._bans = {i: bans for i, bans in self._bans.items() if i <= index}
        self._bans.setdefault(index, set()).add(rewind.banned)
        state = self.creative
        kept = prompt + index
        state.length.fill_(kept)
        self.seen.zero_()
        self.seen[0, state.history[:kept]] = True
        state.counts.zero_()
        answer = state.history[prompt:kept]
        state.counts[0].scatter_add_(0, answer, torch.ones_like(answer, dtype=torch.float32))
        state.bias.copy_(self._base_bias)
        state.bias[0, list(self._bans[index])] = float("-inf")
        if index == 0:
            self.accept(self._first_logits)
            self.end_rewind()
            return None
        self.token.fill_(int(state.history[kept - 1]))
        return kept - 1

    def end_rewind(self) -> None:
        """The bans of the rewound index lifted once its token is sampled."""
        self.creative.bias.copy_(self._base_bias)

    def state_tensors(self) -> list[torch.Tensor]:
        """What a warm-up before a graph capture changes (saved and restored around it)."""
        c = self.creative
        return [self.token, self.seen, self.logits, self.params.step, c.counts, c.history, c.length]
