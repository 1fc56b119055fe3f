"""Prefill and single-token decode for the two model families (`ModelRunner`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import StaticCache

from pictale_server.engine.gpu_memory import release_cached_memory
from pictale_server.engine.vision_inputs import VisionInputs


class ModelRunner(Protocol):
    """How one model family prefills a prompt and runs a single-token decode forward. `row` is
    the row of the batch's step the sequence decodes in (batch_decoder.py): where rotary
    positions are not the cache slots (Qwen2.5-VL), the row keeps the sequence's offset."""

    model: torch.nn.Module
    rope_positions_are_slots: bool
    # The fast path's steps of this many rows and more run on tensor cores; None: the kernels' own.
    tensor_core_rows: int | None

    def prefill_slices(
        self, inputs, cache: StaticCache, tokens: int, *, row: int = 0
    ) -> Iterator[torch.Tensor | None]:
        """The prompt's forward into `cache` in slices of about `tokens`, one per `next()`:
        None after each slice but the last, then the last slice's (1, vocab) logits."""

    def prefill(self, inputs, cache: StaticCache, *, row: int = 0) -> torch.Tensor:
        """The whole prompt's forward into `cache`: its (1, vocab) last logits."""

    def decode(self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache, *, row: int = 0) -> torch.Tensor:
        """One token (1, 1) at cache slot `position` (1,) → (1, vocab) logits. Graph-safe."""

    def step_parts(self):
        """Text decoder, lm_head, and the rotary positions of a batch's cache slots (R,) for
        the fast step."""


@dataclass
class WriterPrompt:
    input_ids: torch.Tensor  # (1, L)


# Long prompts are prefilled in chunks: activations, the bf16 tiles bitsandbytes dequantizes
# for each chunk's matmuls and the attention mask then scale with the chunk, not the prompt,
# which keeps an 8k-token narrate's peak memory down with both models resident.
PREFILL_CHUNK_TOKENS = 2048


class CausalLMRunner:
    """Any decoder-only model (the writer): positions are the cache slots."""

    def __init__(
        self, model: torch.nn.Module, prefill_chunk_tokens: int = PREFILL_CHUNK_TOKENS
    ) -> None:
        self.model = model
        self.prefill_chunk_tokens = prefill_chunk_tokens

    rope_positions_are_slots = True  # rotary positions never leave the cache: a table can hold them
    tensor_core_rows = None  # the kernels' own crossover (fast_path/projections.TENSOR_CORE_ROWS)

    def step_parts(self):
        """Text decoder, lm_head and the rotary positions of cache slots, for the fast step."""
        return self.model.model, self.model.lm_head, lambda position: position.view(-1, 1)

    def prefill(self, inputs: WriterPrompt, cache: StaticCache, *, row: int = 0) -> torch.Tensor:
        *_, logits = self.prefill_slices(inputs, cache, self.prefill_chunk_tokens)
        return logits

    def prefill_slices(
        self, inputs: WriterPrompt, cache: StaticCache, tokens: int, *, row: int = 0
    ) -> Iterator[torch.Tensor | None]:
        """The prompt's forward in slices of `tokens`, one per `next()`: None after each slice
        but the last, then the last slice's (1, vocab) logits. A batch decodes its running
        streams between two slices."""
        ids = inputs.input_ids.to(self.model.device)
        last = ids.shape[1]
        for start in range(0, last, tokens):
            chunk = ids[:, start : start + tokens]
            positions = torch.arange(start, start + chunk.shape[1], device=ids.device).unsqueeze(0)
            out = self.model(
                input_ids=chunk,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            yield out.logits[:, -1, :] if start + tokens >= last else None

    def decode(
        self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache, *, row: int = 0
    ) -> torch.Tensor:
        out = self.model(
            input_ids=token,
            position_ids=position.view(1, 1),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :]


class QwenVLRunner:
    """Qwen2.5-VL: multimodal rotary positions (M-RoPE) offset from the cache slots by a delta.

    Position ids are passed as four rows, text slot first, so the model never derives them
    from its own stored state. At decode the temporal, height and width positions are all
    slot + delta; each row of the batch's step keeps its sequence's delta in a device buffer,
    set by the sequence's prefill, so a captured step reads it like any other input.
    """

    def __init__(self, model: torch.nn.Module, rows: int = 16) -> None:  # a batched step's most (LANE_BUCKETS)
        self.model = model
        self.rope_deltas = torch.zeros((rows,), dtype=torch.int64, device=model.device)
        # One forward over a whole prompt at a time, the vision tower's included: the batch's
        # prefill and the safety gate's scoring (another thread) each hold a prompt's
        # temporaries, and the memory kept free beside the KV pools is sized for one.
        self.whole_prompt = threading.Lock()

    rope_positions_are_slots = False  # text positions are slots plus the image's delta
    # Two rows on the CUDA-core kernel cost this model's step 4.19 ms against 2.41 for one row,
    # and four rows on tensor cores 3.37 ms (H100, docs/benchmarks.md): tensor cores from two.
    tensor_core_rows = 2

    def step_parts(self):
        """Text decoder, lm_head and the rotary positions of the rows' cache slots (R,)."""

        def rope_positions(position: torch.Tensor) -> torch.Tensor:
            rows = position.numel()
            return (position.view(-1) + self.rope_deltas[:rows]).view(1, rows, 1).expand(3, rows, 1)

        return self.model.model.language_model, self.model.lm_head, rope_positions

    def positions(self, inputs: VisionInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(4, 1, L) position ids for a whole prompt (text slots, then temporal/height/width),
        and the (1,) delta of the positions after it from their slots."""
        mrope, deltas = self.model.model.get_rope_index(
            inputs.input_ids,
            mm_token_type_ids=inputs.mm_token_type_ids,
            image_grid_thw=inputs.image_grid_thw,
        )
        slots = torch.arange(inputs.length, device=mrope.device).view(1, 1, -1)
        return torch.cat([slots, mrope], dim=0), deltas.view(-1)[:1]

    def image_features(self, inputs: VisionInputs):
        return self.model.model.get_image_features(
            inputs.pixel_values, inputs.image_grid_thw, return_dict=True
        )

    def forward_full(self, inputs: VisionInputs, image_features=None, cache=None, logits_to_keep=0, *, row=None):
        """The model over the whole prompt; with `row`, that row's delta is set for decoding on."""
        positions, delta = self.positions(inputs)
        if row is not None:
            self.rope_deltas[row : row + 1].copy_(delta)
        kwargs = (
            {"pixel_values": inputs.pixel_values}
            if image_features is None
            else {"mm_encoder_outputs": {"image": image_features}}
        )
        return self.model(
            input_ids=inputs.input_ids,
            image_grid_thw=inputs.image_grid_thw,
            position_ids=positions,
            cache=cache,
            use_cache=cache is not None,
            logits_to_keep=logits_to_keep,
            **kwargs,
        ).logits

    def prefill(self, inputs: VisionInputs, cache: StaticCache, *, row: int = 0) -> torch.Tensor:
        with self.whole_prompt:
            features = self.image_features(inputs)
            # The tower's temporaries are shaped by patches, the language model's by the prompt:
            # hand the first back before the second is allocated (gpu_memory.py).
            release_cached_memory(self.model.device)
            logits = self.forward_full(inputs, image_features=features, cache=cache, logits_to_keep=1, row=row)
            return logits[:, -1, :]

    def prefill_slices(
        self, inputs: VisionInputs, cache: StaticCache, tokens: int, *, row: int = 0
    ) -> Iterator[torch.Tensor | None]:
        """The whole prompt in one slice, whatever `tokens`: the image's features come from the
        vision tower in one pass, and a describe's prompt is short (the image's tokens and a
        few hundred more)."""
        yield self.prefill(inputs, cache, row=row)

    def decode(
        self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache, *, row: int = 0
    ) -> torch.Tensor:
        slot = position.view(1, 1, 1)
        rope = slot + self.rope_deltas[row : row + 1].view(1, 1, 1)
        positions = torch.cat([slot, rope.expand(3, 1, 1)], dim=0)
        out = self.model(
            input_ids=token, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        )
        return out.logits[:, -1, :]
