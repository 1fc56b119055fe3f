"""Turn an image and a ChatML prompt into Qwen2.5-VL model inputs.

Composed from the PIL image processor and the tokenizer instead of `AutoProcessor`: the
Qwen2.5-VL processor class insists on a video processor that needs torchvision, which this
server does not use. The dev and reference profiles both run this exact code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL.Image import Image
from transformers import AutoTokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from pictale_server.engine.chat_format import Segment, markup
from pictale_server.engine.pixel_patches import PatchSpec, image_to_patches
from pictale_server.engine.prompt_tokens import prompt_token_ids

IMAGE_PAD = "<|image_pad|>"
MIN_PIXELS = 56 * 56


@dataclass
class VisionInputs:
    input_ids: torch.Tensor  # (1, L)
    mm_token_type_ids: torch.Tensor  # (1, L): 1 on image tokens
    pixel_values: torch.Tensor  # (patches, C·T·14·14)
    image_grid_thw: torch.Tensor  # (1, 3)

    @property
    def length(self) -> int:
        return self.input_ids.shape[1]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> VisionInputs:
        return VisionInputs(
            input_ids=self.input_ids.to(device),
            mm_token_type_ids=self.mm_token_type_ids.to(device),
            pixel_values=self.pixel_values.to(device, dtype),
            image_grid_thw=self.image_grid_thw.to(device),
        )


class VisionPreprocessor:
    def __init__(
        self, image_processor: Qwen2VLImageProcessorPil, tokenizer, device: torch.device | None = None
    ) -> None:
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.device = device or torch.device("cpu")
        size = image_processor.size
        self.patch_spec = PatchSpec.from_image_processor(
            image_processor,
            min_pixels=_size_value(size, "shortest_edge"),
            max_pixels=_size_value(size, "longest_edge"),
        )
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.merge_length = image_processor.merge_size**2

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        max_pixels: int,
        min_pixels: int = MIN_PIXELS,
        device: torch.device | None = None,
        **hub_kwargs,
    ) -> VisionPreprocessor:
        # The Hub config allows 16k visual tokens; the pixel budget always comes from settings.
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(
            source, min_pixels=min_pixels, max_pixels=max_pixels, **hub_kwargs
        )
        image_processor.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
        return cls(image_processor, tokenizer, device)

    def image_tokens(self, image_grid_thw: torch.Tensor) -> int:
        return int(image_grid_thw.prod().item()) // self.merge_length

    def __call__(self, image: Image, prompt: str | Sequence[Segment]) -> VisionInputs:
        """`prompt`: the segments of chat_format.chatml_segments (content never becomes special
        tokens), or a text that is all template markup."""
        segments = [markup(prompt)] if isinstance(prompt, str) else list(prompt)
        if sum(s.text.count(IMAGE_PAD) for s in segments if s.markup) != 1:
            raise ValueError("the vision prompt must hold exactly one image placeholder")
        # Tokenize with one placeholder, then repeat its id: the same ids as tokenizing the
        # expanded text, without matching ~1,300 special tokens in a 17k-character string.
        ids = torch.tensor([prompt_token_ids(self.tokenizer, segments)], dtype=torch.int64)
        (slot,) = (ids[0] == self.image_token_id).nonzero(as_tuple=True)[0].tolist()
        pixel_values, grid = image_to_patches(image, self.patch_spec, self.device)
        pads = torch.full((1, self.image_tokens(grid)), self.image_token_id, dtype=ids.dtype)
        ids = torch.cat([ids[:, :slot], pads, ids[:, slot + 1 :]], dim=1)
        return VisionInputs(
            input_ids=ids,
            mm_token_type_ids=(ids == self.image_token_id).to(torch.int32),
            pixel_values=pixel_values,
            image_grid_thw=grid,
        )


def _size_value(size, key: str) -> int:
    return int(size[key] if isinstance(size, dict) else getattr(size, key))
