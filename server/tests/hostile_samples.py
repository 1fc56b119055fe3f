"""Hostile image payloads for the hostile-input corpus, generated on the fly and cheap.

Every picture is a flat colour or a gradient; the "hostile" part is the container: headers that
declare billions of pixels, files cut short, other formats posing as images, files that are
two formats at once. Nothing here is larger than a few kilobytes except `oversized_image`.
"""

from __future__ import annotations

import base64
import struct

from image_samples import bomb_png, encode, handmade_png, solid
from PIL import Image

MiB = 1024 * 1024

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
    b'<script>alert(1)</script><rect width="8" height="8"/></svg>'
)
SVG_WITH_XML_PROLOGUE = b'<?xml version="1.0"?>\n' + SVG
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
PDF_HEAD = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def gradient(size: tuple[int, int] = (64, 64)) -> Image.Image:
    """Enough detail that compressed files are a few kilobytes, so cutting them hurts."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 4 % 256, y * 4 % 256, (x + y) % 256) for y in range(height) for x in range(width)]
    )
    return image


def png() -> bytes:
    return encode(gradient(), "PNG")


def jpeg() -> bytes:
    return encode(gradient(), "JPEG", quality=90)


def gif() -> bytes:
    return encode(gradient().convert("P"), "GIF")


def webp() -> bytes:
    return encode(gradient(), "WEBP")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


# --- decompression bombs: tiny files whose headers declare enormous canvases -----------------


def png_bomb() -> bytes:
    return bomb_png(50_000, 50_000)


def png_just_over_the_pixel_cap() -> bytes:
    """6,400 x 6,400 = 40.96 MP, one row over a 40 MP cap's worth."""
    return handmade_png(6_400, 6_400, bit_depth=8, colour_type=2)


def gif_bomb() -> bytes:
    """A real 4x4 GIF whose logical screen and frame claim 65,535 x 65,535."""
    data = bytearray(encode(solid(1, (4, 4), "P"), "GIF"))
    data[6:10] = struct.pack("<HH", 65_535, 65_535)
    frame = data.index(b"\x2c")  # image descriptor: position (4 bytes), then size
    data[frame + 5 : frame + 9] = struct.pack("<HH", 65_535, 65_535)
    return bytes(data)


def jpeg_bomb() -> bytes:
    """A real 16x16 JPEG whose frame header claims 65,000 x 65,000."""
    data = bytearray(encode(solid((10, 120, 200), (16, 16)), "JPEG"))
    frame = data.index(b"\xff\xc0")  # SOF0: marker, length (2), precision (1), height, width
    data[frame + 5 : frame + 9] = struct.pack(">HH", 65_000, 65_000)
    return bytes(data)


def bmp_bomb() -> bytes:
    """A BMP header claiming 100,000 x 100,000 pixels at 24 bits, with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, 100_000, 100_000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def oversized_image() -> bytes:
    """21 MiB that start like a PNG: over the 20 MiB image cap, under the 30 MiB body cap
    once base64-encoded (28 MiB)."""
    return b"\x89PNG\r\n\x1a\n" + bytes(21 * MiB)


# --- files that are two things at once ------------------------------------------------------


def html_then_png() -> bytes:
    """An HTML page with a PNG appended: browsers render the page; the bytes start as HTML."""
    return HTML + png()


def pdf_then_png() -> bytes:
    return PDF_HEAD + png()


def png_signature_then_html() -> bytes:
    """Claims PNG in its first eight bytes, then is an HTML page."""
    return b"\x89PNG\r\n\x1a\n" + HTML


def gif_header_then_script() -> bytes:
    """A GIF header (16 x 16) followed by JavaScript, the classic GIF/JS polyglot shape."""
    return b"GIF89a" + struct.pack("<HH", 16, 16) + b"*/=1;alert(document.domain)//"


def jpeg_start_then_html() -> bytes:
    return b"\xff\xd8\xff\xe0" + HTML


def zip_with_png_inside() -> bytes:
    return b"PK\x03\x04" + bytes(26) + png()


# --- extreme shapes: valid images the vision processor cannot take as they are ---------------


def strip(size: tuple[int, int]) -> bytes:
    return encode(solid((30, 160, 90), size), "PNG")
