"""Bytes of an accepted format -> one upright RGB picture the vision processor can take.

Order matters for safety: the header's declared size is checked against the pixel cap before
any pixel is decoded, so a decompression bomb never allocates its canvas.
"""

from __future__ import annotations

import io
import math
import struct
import zlib

from PIL import Image, ImageOps, UnidentifiedImageError

from pictale_server.errors import ApiError
from pictale_server.images.policy import ImagePolicy

# Mid grey: reads as "nothing here" to a vision model, unlike black or white bars of content.
PAD_COLOUR = (128, 128, 128)
# Transparent pixels are shown on white, as viewers and browsers do.
BACKGROUND = (255, 255, 255)

# What Pillow's decoders raise on truncated or corrupt input.
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
    zlib.error,
)


def decode_image(data: bytes, fmt: str, policy: ImagePolicy, param: str = "image") -> Image.Image:
    """Decode `data` (already sniffed as Pillow format `fmt`) under the policy's pixel cap.

    Pillow's own bomb limit (`Image.MAX_IMAGE_PIXELS`, raised from `open`) stays in force as
    a second guard; it is mapped to the same error.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
        _check_pixels(image.size, policy, param)
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise _too_many_pixels(None, policy, param) from None
    except ApiError:
        raise
    except UnidentifiedImageError:
        raise ApiError(
            "invalid_image", f"The image looks like {fmt} but cannot be decoded.", param=param
        ) from None
    except _DECODE_ERRORS as error:
        raise ApiError(
            "invalid_image",
            f"The {fmt} image is truncated or corrupt ({type(error).__name__}).",
            param=param,
        ) from None
    rgb = to_rgb(image, param)
    return pad_to_aspect_ratio(rgb, policy.max_aspect_ratio, policy.max_image_pixels)


def _check_pixels(size: tuple[int, int], policy: ImagePolicy, param: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ApiError("invalid_image", "The image has no pixels.", param=param)
    if width * height > policy.max_image_pixels:
        raise _too_many_pixels(size, policy, param)


def _too_many_pixels(size: tuple[int, int] | None, policy: ImagePolicy, param: str) -> ApiError:
    declared = f" ({size[0]}x{size[1]})" if size else ""
    return ApiError(
        "image_too_large",
        f"The image has more than {policy.max_image_pixels} pixels{declared}.",
        param=param,
    )


def to_rgb(image: Image.Image, param: str = "image") -> Image.Image:
    """Every Pillow mode to 8-bit RGB: alpha composited on white, deep and float modes scaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
        return _flatten_alpha(image.convert("RGBA")) if has_alpha else image.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _flatten_alpha(image.convert("RGBA"))
    if mode in ("L", "1", "CMYK", "YCbCr", "RGBX", "HSV"):
        if "transparency" in image.info:
            return _flatten_alpha(image.convert("RGBA"))
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _deep_grey_to_rgb(image)
    try:
        return image.convert("RGB")
    except ValueError:
        raise ApiError(
            "invalid_image", f"The image's colour mode {mode} is not supported.", param=param
        ) from None


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _deep_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale to 8 bits by scaling, never by clipping.

    Pillow's own conversion clips I;16 values above 255 to white. Values are scaled by the
    range the data declares: 0-255 kept, 0-65535 (16-bit) divided by 257, 0.0-1.0 floats
    stretched to 255, anything else mapped from its own minimum and maximum.
    """
    wide = image.convert("F")
    low, high = wide.getextrema()
    if low >= 0 and high <= 1.0 and image.mode == "F":
        scale, offset = 255.0, 0.0
    elif low >= 0 and high <= 255 and not image.mode.startswith("I;16"):
        scale, offset = 1.0, 0.0
    elif low >= 0 and high <= 65535:
        scale, offset = 255.0 / 65535.0, 0.0
    else:
        span = (high - low) or 1.0
        scale, offset = 255.0 / span, -low * 255.0 / span
    return wide.point(lambda value: value * scale + offset).convert("L").convert("RGB")


def pad_to_aspect_ratio(image: Image.Image, max_ratio: int, max_pixels: int) -> Image.Image:
    """Centre the image on a neutral canvas so its sides are at most `max_ratio`:1.

    The canvas grows with the square of the long side, so a long strip within the pixel cap
    could still ask for a huge canvas: such strips are first scaled down (keeping their
    proportions) until the padded canvas fits `max_pixels`. The vision processor downsizes far
    below that anyway.
    """
    width, height = image.size
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= max_ratio * short_side:
        return image
    if long_side * math.ceil(long_side / max_ratio) > max_pixels:
        fitted = math.isqrt(max_pixels * max_ratio)
        while fitted * math.ceil(fitted / max_ratio) > max_pixels:
            fitted -= 1
        scale = fitted / long_side
        short_fitted = max(1, round(short_side * scale))
        size = (fitted, short_fitted) if width > height else (short_fitted, fitted)
        image = image.resize(size, Image.Resampling.BOX)
        width, height = image.size
        long_side = fitted
    padded_short = math.ceil(long_side / max_ratio)
    canvas_size = (width, padded_short) if width > height else (padded_short, height)
    canvas = Image.new("RGB", canvas_size, PAD_COLOUR)
    canvas.paste(image, ((canvas_size[0] - width) // 2, (canvas_size[1] - height) // 2))
    return canvas
