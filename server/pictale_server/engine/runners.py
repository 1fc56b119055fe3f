"""Prefill and single-token decode for the two model families (see decode_loop.ModelRunner)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import StaticCache

from pictale_server.engine.gpu_memory import release_cached_memory
from pictale_server.engine.vision_inputs import VisionInputs


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

    def step_parts(self):
        """Text decoder, lm_head and the rotary positions of a cache slot, for the fast step."""
        return self.model.model, self.model.lm_head, lambda position: position.view(-1, 1)

    def prefill(self, inputs: WriterPrompt, cache: StaticCache) -> torch.Tensor:
        *_, logits = self.prefill_slices(inputs, cache, self.prefill_chunk_tokens)
        return logits

    def prefill_slices(
        self, inputs: WriterPrompt, cache: StaticCache, tokens: int
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
        self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache
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
    from its own stored state; the delta of the current request lives in a device buffer.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.rope_delta = torch.zeros((1,), dtype=torch.int64, device=model.device)

    rope_positions_are_slots = False  # text positions are slots plus the image's delta

    def step_parts(self):
        """Text decoder, lm_head and the rotary positions of a cache slot: at decode the
        temporal, height and width positions are all slot + delta."""

        def rope_positions(position: torch.Tensor) -> torch.Tensor:
            return (position + self.rope_delta).view(1, 1, 1).expand(3, 1, 1)

        return self.model.model.language_model, self.model.lm_head, rope_positions

    def positions(self, inputs: VisionInputs) -> torch.Tensor:
        """(4, 1, L) position ids for a whole prompt: text slots, then temporal/height/width."""
        mrope, deltas = self.model.model.get_rope_index(
            inputs.input_ids,
            mm_token_type_ids=inputs.mm_token_type_ids,
            image_grid_thw=inputs.image_grid_thw,
        )
        slots = torch.arange(inputs.length, device=mrope.device).view(1, 1, -1)
        self.rope_delta.copy_(deltas.view(-1)[:1])
        return torch.cat([slots, mrope], dim=0)

    def image_features(self, inputs: VisionInputs):
        return self.model.model.get_image_features(
            inputs.pixel_values, inputs.image_grid_thw, return_dict=True
        )

    def forward_full(self, inputs: VisionInputs, image_features=None, cache=None, logits_to_keep=0):
        positions = self.positions(inputs)
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

    def prefill(self, inputs: VisionInputs, cache: StaticCache) -> torch.Tensor:
        features = self.image_features(inputs)
        # The tower's temporaries are shaped by patches, the language model's by the prompt:
        # hand the first back before the second is allocated (gpu_memory.py).
        release_cached_memory(self.model.device)
        return self.forward_full(inputs, image_features=features, cache=cache, logits_to_keep=1)[:, -1, :]

    def decode(
        self, token: torch.Tensor, position: torch.Tensor, cache: StaticCache
    ) -> torch.Tensor:
        slot = position.view(1, 1, 1)
        positions = torch.cat([slot, (slot + self.rope_delta).expand(3, 1, 1)], dim=0)
        out = self.model(
            input_ids=token, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        )
        return out.logits[:, -1, :]
