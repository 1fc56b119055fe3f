"""The torch preprocessing must give the vision model what Qwen's own PIL processor gives it."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from pictale_server.engine.pixel_patches import PatchSpec, image_to_patches

MIN_PIXELS, MAX_PIXELS = 56 * 56, 1280 * 28 * 28
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


@pytest.fixture(scope="module")
def reference():
    processor = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, image_mean=MEAN, image_std=STD
    )
    processor.size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    return processor


def _shapes(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (30, 60, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 8, height // 6, width // 2, height // 2 + height // 4), fill=(220, 40, 40))
    draw.rectangle((width * 2 // 3, height // 10, width * 9 // 10, height * 9 // 10), fill=(40, 200, 90))
    return image


def _noise(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * 7 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("image", "mean_tolerance", "max_tolerance"),
    [
        (_shapes(4000, 3000), 1e-3, 0.05),  # downscaled past the pixel budget
        (_shapes(1080, 2400), 1e-3, 0.05),  # portrait phone photo
        (_shapes(40, 30), 1e-3, 0.05),  # upscaled to the minimum
        (_noise(560, 280), 0.0, 0.0),  # already on the grid: no resize, exact
        (_noise(1000, 750), 0.01, 0.5),  # noise is the worst case for resampling
    ],
    ids=["4000x3000", "1080x2400", "40x30", "on-grid", "noise"],
)
def test_patches_match_the_pil_processor(reference, image, mean_tolerance, max_tolerance):
    spec = PatchSpec.from_image_processor(reference, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    expected = reference(images=[image], return_tensors="pt")
    pixel_values, grid = image_to_patches(image, spec, torch.device("cpu"))
    assert torch.equal(grid, expected["image_grid_thw"])
    assert pixel_values.shape == expected["pixel_values"].shape
    difference = (pixel_values - expected["pixel_values"]).abs()
    assert float(difference.mean()) <= mean_tolerance
    assert float(difference.max()) <= max_tolerance


def test_non_rgb_images_are_converted(reference):
    spec = PatchSpec.from_image_processor(reference, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    grey = Image.new("L", (112, 112), 128)
    pixel_values, grid = image_to_patches(grey, spec, torch.device("cpu"))
    expected = reference(images=[grey.convert("RGB")], return_tensors="pt")
    assert torch.equal(grid, expected["image_grid_thw"])
    assert torch.allclose(pixel_values, expected["pixel_values"])
