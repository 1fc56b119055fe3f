"""Synthetic test images, generated on the fly: shapes and flat colours, nothing else."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(colour: tuple[int, ...] | int, size: tuple[int, int] = (8, 8), mode: str = "RGB"):
    return Image.new(mode, size, colour)


def png_bytes(image: Image.Image | None = None) -> bytes:
    return encode(image or solid(RED), "PNG")


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def handmade_png(
    width: int, height: int, *, bit_depth: int, colour_type: int, rows: bytes | None = None
) -> bytes:
    """A PNG written chunk by chunk, for headers Pillow will not write (huge, 16-bit RGB).

    `rows` is the raw scanline data (filter byte + pixels per row); None writes a few bytes
    only, which is all a header check may ever look at.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress(rows if rows is not None else b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~100-byte PNG declaring width x height RGB pixels (7.5 GB at 50000 x 50000)."""
    return handmade_png(width, height, bit_depth=8, colour_type=2)


def rgb16_png(colour16: tuple[int, int, int], size: tuple[int, int] = (4, 4)) -> bytes:
    width, height = size
    pixel = struct.pack(">HHH", *colour16)
    rows = b"".join(b"\x00" + pixel * width for _ in range(height))
    return handmade_png(width, height, bit_depth=16, colour_type=2, rows=rows)


def exif_rotated_jpeg() -> bytes:
    """40x20 stored, left half red and right half blue, tagged orientation 6 (rotate 90 CW)."""
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif, quality=95)


def animated_gif() -> bytes:
    frames = [solid(RED, (16, 16)), solid(BLUE, (16, 16))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(actual, expected, strict=True))
