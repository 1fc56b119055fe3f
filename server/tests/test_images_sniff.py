"""Magic-byte sniffing: the bytes decide, whatever the request declares."""

from __future__ import annotations

import pytest
from image_samples import encode, solid

from pictale_server.errors import ApiError
from pictale_server.images.sniff import require_image_format, sniff_format


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {}), ("WEBP", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}),
     ("TIFF", {"compression": "tiff_lzw"})],
)
def test_every_accepted_format_is_recognized(fmt: str, options: dict) -> None:
    assert sniff_format(encode(solid((10, 20, 30)), fmt, **options)) == fmt


def test_big_endian_tiff_is_recognized() -> None:
    assert sniff_format(b"MM\x00*\x00\x00\x00\x08") == "TIFF"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"\xef\xbb\xbf  <svg/>", "SVG"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
        (b"\n<html><script>alert(1)</script></html>", "HTML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"just some text, not an image", "unrecognized"),
        (b"\x00\x00\x00\x0cjxl \r\n\x87\n", "JPEG XL"),
        (b"GIF88a", "unrecognized"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "unrecognized"),
        (b"B", "unrecognized"),
    ],
)
def test_other_content_is_unsupported_media_type(data: bytes, named: str) -> None:
    with pytest.raises(ApiError) as caught:
        require_image_format(data, "image")
    assert caught.value.code == "unsupported_media_type"
    assert caught.value.status == 415
    assert caught.value.param == "image"
    assert named in caught.value.message


def test_zero_bytes_is_invalid_image() -> None:
    with pytest.raises(ApiError) as caught:
        require_image_format(b"", "describe.image")
    assert caught.value.code == "invalid_image"
    assert caught.value.param == "describe.image"
