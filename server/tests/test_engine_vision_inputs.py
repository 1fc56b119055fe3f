import pytest
from engine_fixtures import scene_image
from PIL import Image

from pictale_server.engine.chat_format import format_chatml
from pictale_server.engine.vision_inputs import MIN_PIXELS, VisionPreprocessor

pytest_plugins = ["engine_fixtures"]

MAX_PIXELS = 1280 * 28 * 28
PROMPT = format_chatml([{"role": "user", "content": "Describe."}], with_image=True)


@pytest.fixture(scope="module")
def preprocessor(dev_model_paths):
    return VisionPreprocessor.from_pretrained(dev_model_paths.vision, max_pixels=MAX_PIXELS)


def image_tokens(inputs) -> int:
    return int(inputs.mm_token_type_ids.sum())


def test_a_12_megapixel_photo_stays_within_1280_visual_tokens(preprocessor):
    inputs = preprocessor(Image.new("RGB", (4000, 3000), (10, 90, 30)), PROMPT)
    t, h, w = inputs.image_grid_thw[0].tolist()
    assert image_tokens(inputs) == t * h * w // 4 <= 1280
    assert h * w * 14 * 14 <= MAX_PIXELS
    assert inputs.pixel_values.shape[0] == t * h * w


def test_a_tall_phone_screenshot_stays_within_the_budget(preprocessor):
    assert image_tokens(preprocessor(Image.new("RGB", (1080, 2400)), PROMPT)) <= 1280


def test_a_tiny_image_is_scaled_up_to_at_least_min_pixels(preprocessor):
    inputs = preprocessor(Image.new("RGB", (10, 10)), PROMPT)
    _, h, w = inputs.image_grid_thw[0].tolist()
    assert h * w * 14 * 14 >= MIN_PIXELS
    assert image_tokens(inputs) >= 4


def test_the_pixel_budget_follows_the_setting_not_the_checkpoint(dev_model_paths):
    small = VisionPreprocessor.from_pretrained(dev_model_paths.vision, max_pixels=256 * 28 * 28)
    assert image_tokens(small(Image.new("RGB", (4000, 3000)), PROMPT)) <= 256


def test_image_placeholder_is_expanded_between_vision_markers(preprocessor):
    inputs = preprocessor(scene_image(), PROMPT)
    tokenizer = preprocessor.tokenizer
    ids = inputs.input_ids[0].tolist()
    start = ids.index(tokenizer.convert_tokens_to_ids("<|vision_start|>"))
    end = ids.index(tokenizer.convert_tokens_to_ids("<|vision_end|>"))
    assert end - start - 1 == image_tokens(inputs)
    assert set(ids[start + 1 : end]) == {preprocessor.image_token_id}


def test_ids_equal_tokenizing_the_expanded_prompt(preprocessor):
    inputs = preprocessor(scene_image(), PROMPT)
    expanded = PROMPT.replace("<|image_pad|>", "<|image_pad|>" * image_tokens(inputs))
    expected = preprocessor.tokenizer(expanded, add_special_tokens=False)["input_ids"]
    assert inputs.input_ids[0].tolist() == expected


def test_a_prompt_without_exactly_one_image_placeholder_is_refused(preprocessor):
    with pytest.raises(ValueError):
        preprocessor(scene_image(), "no image here")


def test_non_rgb_modes_are_converted(preprocessor):
    inputs = preprocessor(Image.new("RGBA", (64, 64), (1, 2, 3, 4)), PROMPT)
    assert inputs.pixel_values.shape[1] == 3 * 2 * 14 * 14
