"""Decoding: every format and mode to upright RGB, bombs refused before allocating."""

from __future__ import annotations

import io
import random

import pytest
from image_samples import (
    BLUE,
    RED,
    WHITE,
    animated_gif,
    bomb_png,
    close,
    encode,
    exif_rotated_jpeg,
    png_bytes,
    rgb16_png,
    solid,
)
from PIL import Image, ImageFile

from pictale_server.errors import ApiError
from pictale_server.images.decode import PAD_COLOUR, decode_image, pad_to_aspect_ratio
from pictale_server.images.policy import ImagePolicy
from pictale_server.images.sniff import require_image_format

POLICY = ImagePolicy()


def decode(data: bytes, policy: ImagePolicy = POLICY) -> Image.Image:
    return decode_image(data, require_image_format(data, "image"), policy, "image")


def refusal(data: bytes, policy: ImagePolicy = POLICY) -> ApiError:
    with pytest.raises(ApiError) as caught:
        decode(data, policy)
    assert caught.value.param == "image"
    return caught.value


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {"quality": 95}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"quality": 90}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_deflate"}),
    ],
)
def test_each_format_decodes_to_rgb_with_its_colours(fmt: str, options: dict) -> None:
    image = decode(encode(solid((200, 40, 90), (24, 16)), fmt, **options))
    assert image.mode == "RGB"
    assert image.size == (24, 16)
    assert close(image.getpixel((12, 8)), (200, 40, 90))


def test_exif_orientation_6_is_applied() -> None:
    image = decode(exif_rotated_jpeg())
    assert image.size == (20, 40)
    # Rotated 90 degrees clockwise: the stored left (red) half is now on top.
    assert close(image.getpixel((10, 5)), RED, 40)
    assert close(image.getpixel((10, 35)), BLUE, 40)


def test_malformed_exif_is_ignored() -> None:
    data = encode(solid(RED, (8, 4)), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    with pytest.warns(UserWarning, match="Corrupt EXIF"):
        image = decode(data)
    assert image.size == (8, 4)


def test_animated_webp_uses_its_first_frame() -> None:
    frames = [solid(RED, (16, 16)), solid(BLUE, (16, 16))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert decode(data).getpixel((8, 8)) == RED


def test_greyscale_with_a_transparent_value_shows_white_there() -> None:
    grey = Image.new("L", (2, 1), 0)
    grey.putpixel((1, 0), 90)
    image = decode(encode(grey, "PNG", transparency=0))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == (90, 90, 90)


def test_animated_gif_uses_its_first_frame() -> None:
    image = decode(animated_gif())
    assert image.mode == "RGB"
    assert image.getpixel((8, 8)) == RED


def test_rgba_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    image = decode(encode(rgba, "PNG"))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == BLUE
    assert close(image.getpixel((2, 0)), (127, 127, 127), 2)


def test_la_is_composited_on_white() -> None:
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (0, 255))
    image = decode(encode(la, "PNG"))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == (0, 0, 0)


def test_palette_with_transparent_index_shows_white_there() -> None:
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    data = encode(palette, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).info.get("transparency") == 0
    image = decode(data)
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == RED


def test_palette_with_transparency_in_gif_shows_white_there() -> None:
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 0), 1)
    image = decode(encode(palette, "GIF", transparency=0))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == BLUE


def test_opaque_palette_keeps_its_colours() -> None:
    palette = solid((10, 200, 30), (4, 4)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert palette.mode == "P"
    image = decode(encode(palette, "PNG"))
    assert close(image.getpixel((0, 0)), (10, 200, 30), 4)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted_to_rgb(fmt: str) -> None:
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    stored = Image.open(io.BytesIO(encode(cyan, fmt)))
    assert stored.mode == "CMYK"
    image = decode(encode(cyan, fmt))
    assert image.mode == "RGB"
    assert close(image.getpixel((4, 4)), (0, 255, 255), 16)


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    grey16 = Image.new("I;16", (3, 1))
    grey16.putpixel((0, 0), 65535)
    grey16.putpixel((1, 0), 32896)
    grey16.putpixel((2, 0), 1028)
    data = encode(grey16, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    image = decode(data)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert close(image.getpixel((1, 0)), (128, 128, 128), 1)
    # Clipping would turn this dark grey (1028/65535) into white.
    assert close(image.getpixel((2, 0)), (4, 4, 4), 1)


def test_16_bit_rgb_png_decodes() -> None:
    image = decode(rgb16_png((65535, 0, 32896)))
    assert image.mode == "RGB"
    assert close(image.getpixel((1, 1)), (255, 0, 128), 1)


def test_32_bit_integer_tiff_is_scaled_from_its_16_bit_range() -> None:
    deep = Image.new("I", (2, 1))
    deep.putpixel((0, 0), 0)
    deep.putpixel((1, 0), 60000)
    image = decode(encode(deep, "TIFF"))
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert close(image.getpixel((1, 0)), (233, 233, 233), 1)


def test_8_bit_range_integer_tiff_keeps_its_values() -> None:
    deep = Image.new("I", (2, 1), 100)
    assert decode(encode(deep, "TIFF")).getpixel((0, 0)) == (100, 100, 100)


def test_float_tiff_in_unit_range_is_stretched() -> None:
    floats = Image.new("F", (2, 1), 0.0)
    floats.putpixel((1, 0), 1.0)
    floats.putpixel((0, 0), 0.5)
    image = decode(encode(floats, "TIFF"))
    assert close(image.getpixel((0, 0)), (128, 128, 128), 1)
    assert image.getpixel((1, 0)) == WHITE


def test_negative_floats_are_mapped_by_their_own_range() -> None:
    floats = Image.new("F", (2, 1), -5.0)
    floats.putpixel((1, 0), 5.0)
    image = decode(encode(floats, "TIFF"))
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((1, 0)) == WHITE


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_bilevel_images_become_black_and_white_rgb(fmt: str) -> None:
    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    image = decode(encode(bilevel, fmt))
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((1, 0)) == WHITE


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_greyscale_becomes_rgb(fmt: str) -> None:
    image = decode(encode(Image.new("L", (8, 8), 77), fmt))
    assert image.mode == "RGB"
    assert close(image.getpixel((4, 4)), (77, 77, 77), 3)


def test_multi_page_tiff_uses_its_first_page() -> None:
    pages = [solid(RED), solid(BLUE)]
    image = decode(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert image.getpixel((0, 0)) == RED


def test_one_pixel_image_is_fine() -> None:
    image = decode(png_bytes(solid(BLUE, (1, 1))))
    assert image.size == (1, 1)
    assert image.getpixel((0, 0)) == BLUE


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files_are_invalid_image(fmt: str, keep: float) -> None:
    noisy = Image.effect_noise((64, 64), 80).convert("RGB")
    data = encode(noisy, fmt)
    error = refusal(data[: int(len(data) * keep)])
    assert error.code == "invalid_image"
    assert error.status == 400


def test_png_header_followed_by_html_is_invalid_image() -> None:
    polyglot = b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"
    assert refusal(polyglot).code == "invalid_image"


def test_png_with_trailing_html_is_decoded_as_the_png_it_is() -> None:
    # Only the decoded pixels go further; bytes after IEND are never used or echoed back.
    image = decode(png_bytes(solid(RED)) + b"<html><script>alert(1)</script></html>")
    assert image.getpixel((0, 0)) == RED


def test_jpeg_magic_followed_by_garbage_is_invalid_image() -> None:
    assert refusal(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20).code == "invalid_image"


@pytest.fixture
def decoding_forbidden(monkeypatch) -> None:
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)


@pytest.mark.usefixtures("decoding_forbidden")
def test_decompression_bomb_is_refused_from_its_header_without_decoding() -> None:
    data = bomb_png(8_000, 8_000)  # 192 MB of RGB if it were ever decoded
    assert len(data) < 200
    error = refusal(data)
    assert error.code == "image_too_large"
    assert error.status == 413
    assert "8000x8000" in error.message


@pytest.mark.usefixtures("decoding_forbidden")
def test_gigapixel_bomb_stopped_by_pillow_is_image_too_large_too() -> None:
    # 50000x50000 trips Pillow's own hard limit inside open(), before our header check;
    # even a policy looser than that limit never decodes it.
    for policy in (POLICY, ImagePolicy(max_image_pixels=10**12)):
        assert refusal(bomb_png(50_000, 50_000), policy).code == "image_too_large"


def test_pixel_cap_is_inclusive() -> None:
    tight = ImagePolicy(max_image_pixels=100)
    assert decode(png_bytes(solid(RED, (10, 10))), tight).size == (10, 10)
    assert refusal(png_bytes(solid(RED, (10, 11))), tight).code == "image_too_large"


@pytest.mark.parametrize(
    ("size", "padded"),
    [
        ((1, 10_000), (50, 10_000)),
        ((10_000, 1), (10_000, 50)),
        ((201, 1), (201, 2)),
        ((200, 1), (200, 1)),
        ((1, 1), (1, 1)),
        ((3, 601), (4, 601)),
    ],
)
def test_extreme_aspect_ratios_are_padded_to_200_to_1(size, padded) -> None:
    image = decode(png_bytes(solid(RED, size)))
    assert image.size == padded
    assert max(image.size) <= 200 * min(image.size)


@pytest.mark.parametrize("size", [(1, 5000), (5000, 1), (2, 4500)])
def test_long_strips_are_scaled_so_the_padded_canvas_fits_the_pixel_cap(size) -> None:
    # Padded at full size, 1 x 5000 would need a 25 x 5000 canvas: over a 10,000-pixel cap.
    tight = ImagePolicy(max_image_pixels=10_000)
    image = decode(png_bytes(solid(RED, size)), tight)
    width, height = image.size
    assert width * height <= 10_000
    assert max(width, height) <= 200 * min(width, height)
    assert max(width, height) == 1400  # the longest side whose padded canvas still fits
    centre = (width // 2, height // 2)
    assert image.getpixel(centre) == RED


def test_padding_is_neutral_and_centres_the_picture() -> None:
    padded = pad_to_aspect_ratio(solid(RED, (1, 1000)), 200, 40_000_000)
    assert padded.size == (5, 1000)
    assert padded.getpixel((2, 500)) == RED
    assert padded.getpixel((0, 500)) == PAD_COLOUR
    assert padded.getpixel((4, 500)) == PAD_COLOUR


# Pillow warns about the corrupt input it reads; the outcome is what is asserted.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_mutated_files_end_in_a_typed_error_or_an_rgb_image(fmt: str) -> None:
    """Seeded byte flips, truncations and splices: never an exception outside the contract."""
    rng = random.Random(f"mutations-{fmt}")
    original = encode(Image.effect_noise((24, 24), 60).convert("RGB"), fmt)
    outcomes = set()
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(6, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(6, len(data))]
        if rng.random() < 0.2:
            start = rng.randrange(6, len(data))
            data[start:start] = rng.randbytes(rng.randint(1, 64))
        try:
            image = decode(bytes(data), ImagePolicy(max_image_pixels=4_000_000))
        except ApiError as error:
            assert error.code in {"invalid_image", "image_too_large", "unsupported_media_type"}
            outcomes.add(error.code)
        else:
            assert image.mode == "RGB"
            outcomes.add("decoded")
    assert "invalid_image" in outcomes or "image_too_large" in outcomes


@pytest.mark.parametrize("size", [(1, 10_000), (10_000, 1), (7, 1401), (201, 1)])
def test_qwen_processor_refuses_the_raw_shape_and_accepts_the_decoded_one(size) -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    raw_width, raw_height = size
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(raw_height, raw_width)
    width, height = decode(png_bytes(solid(RED, size))).size
    resized_height, resized_width = smart_resize(height, width, max_pixels=1280 * 28 * 28)
    assert resized_height % 28 == 0 and resized_width % 28 == 0
