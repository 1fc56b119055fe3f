"""The vision tower's window attention in one SDPA call (vision_window_attention.py) against
transformers' loop over windows, on a small random Qwen2.5-VL vision encoder."""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from pictale_server.engine.vision_window_attention import batch_window_attention, window_layout


def tower(implementation: str = "sdpa") -> Qwen2_5_VisionTransformerPretrainedModel:
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(
        depth=3, hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=32,
        fullatt_block_indexes=[1], window_size=112, patch_size=14, spatial_merge_size=2,
        temporal_patch_size=2, in_channels=3,
    )
    config._attn_implementation = implementation
    return Qwen2_5_VisionTransformerPretrainedModel(config).eval()


def patches(grid: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = grid
    return torch.randn(t * h * w, 3 * 2 * 14 * 14)


# 16 x 16 patches: 4 whole windows of 8 x 8. 10 x 14 and 6 x 22: windows cut by the edges.
@pytest.mark.parametrize("grid", [(1, 16, 16), (1, 10, 14), (1, 6, 22)])
def test_one_call_per_layer_gives_the_loop_over_windows(grid) -> None:
    model = tower()
    pixels, grid_thw = patches(grid), torch.tensor([grid])
    with torch.no_grad():
        expected = model(pixels, grid_thw=grid_thw).pooler_output
        assert batch_window_attention(model) == 3
        got = model(pixels, grid_thw=grid_thw).pooler_output
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_two_images_in_one_batch_keep_their_own_windows() -> None:
    model = tower()
    pixels = torch.cat([patches((1, 10, 14)), patches((1, 16, 8))])
    grid_thw = torch.tensor([(1, 10, 14), (1, 16, 8)])
    with torch.no_grad():
        expected = model(pixels, grid_thw=grid_thw).pooler_output
        batch_window_attention(model)
        got = model(pixels, grid_thw=grid_thw).pooler_output
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_layout_of_unequal_windows_pads_and_masks() -> None:
    layout = window_layout(torch.tensor([0, 4, 6, 6, 9]))  # windows of 4, 2 and 3 tokens
    assert (layout.tokens, layout.windows, layout.length) == (9, 3, 4)
    assert layout.gather.tolist() == [[0, 1, 2, 3], [4, 5, 9, 9], [6, 7, 8, 9]]
    assert layout.keep.tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10]
    assert layout.mask[:, 0, 0].tolist() == [[True] * 4, [True, True, False, False], [True, True, True, False]]
    assert window_layout(torch.tensor([0, 64, 128])).gather is None  # equal windows: a reshape


def test_eager_attention_keeps_transformers_code() -> None:
    model = tower("eager")
    pixels, grid_thw = patches((1, 10, 14)), torch.tensor([(1, 10, 14)])
    with torch.no_grad():
        expected = model(pixels, grid_thw=grid_thw).pooler_output
        batch_window_attention(model)
        got = model(pixels, grid_thw=grid_thw).pooler_output
    assert torch.equal(got, expected)
