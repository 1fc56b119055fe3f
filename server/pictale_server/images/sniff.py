"""The image format, from the bytes alone: declared media types are never trusted."""

from __future__ import annotations

from pictale_server.errors import ApiError

# Pillow format name -> the media type we report.
ACCEPTED_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}

# Recognized only to name them in the refusal; compared against the lower-cased head.
_KNOWN_REFUSED = (
    (b"%pdf-", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
    (b"<!doctype html", "HTML"),
    (b"<html", "HTML"),
    (b"\x00\x00\x00\x0cjxl ", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"pk\x03\x04", "ZIP"),
    (b"\x1f\x8b", "gzip"),
)


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name of an accepted image, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM") and len(data) >= 14:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def describe_refused(data: bytes) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for magic, name in _KNOWN_REFUSED:
        if head.startswith(magic):
            return name
    if b"<svg" in head:
        return "SVG"
    if b"<html" in head or b"<script" in head:
        return "HTML"
    return "an unrecognized format"


def require_image_format(data: bytes, param: str) -> str:
    """The accepted format of `data`, or the contract's error for bytes that are not one."""
    if not data:
        raise ApiError("invalid_image", "The image is empty (0 bytes).", param=param)
    fmt = sniff_format(data)
    if fmt is None:
        raise ApiError(
            "unsupported_media_type",
            f"The image is {describe_refused(data)}; accepted formats are PNG, JPEG, WebP, GIF, "
            "BMP and TIFF (detected from the bytes, not the declared type).",
            param=param,
        )
    return fmt
