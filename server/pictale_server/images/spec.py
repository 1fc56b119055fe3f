"""The request's `image` field: which bytes to use, or which URL to fetch.

Shapes (docs/protocol.md, "Images"): a string that is an http(s) URL or a base64 data URL,
`{"url": "..."}`, or `{"data": "<base64>", "media_type": "..."}`. The media type, declared in
either place, is accepted and ignored: the bytes decide.

Base64 is decoded strictly, with two tolerances clients need in practice: ASCII whitespace
(line-wrapped MIME output) is ignored, and the URL-safe alphabet (`-`, `_`) is accepted when it
is used throughout. Padding may be omitted. Anything else is `invalid_image`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from pictale_server.errors import ApiError
from pictale_server.images.policy import ImagePolicy


@dataclass(frozen=True)
class InlineImage:
    data: bytes


@dataclass(frozen=True)
class RemoteImage:
    url: str


ImageSource = InlineImage | RemoteImage

_WHITESPACE = re.compile(rb"[ \t\r\n\f\v]+")
_STANDARD = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE = re.compile(rb"[A-Za-z0-9_-]*={0,2}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def parse_image_spec(spec: object, policy: ImagePolicy, param: str = "image") -> ImageSource:
    if isinstance(spec, str):
        return _parse_string(spec, policy, param)
    if isinstance(spec, dict):
        return _parse_object(spec, policy, param)
    raise ApiError(
        "invalid_request",
        "image must be a URL string, a data URL, {\"url\": ...} or {\"data\": ..., "
        "\"media_type\": ...}.",
        param=param,
    )


def _parse_string(text: str, policy: ImagePolicy, param: str) -> ImageSource:
    stripped = text.strip()
    match = _SCHEME.match(stripped)
    if match is None:
        raise ApiError(
            "invalid_request",
            "image must be an http(s) URL or a data URL (data:image/...;base64,...).",
            param=param,
        )
    scheme = match.group(1).lower()
    if scheme == "data":
        return InlineImage(_decode_data_url(stripped, policy, param))
    if scheme in ("http", "https"):
        return RemoteImage(stripped)
    raise ApiError(
        "url_not_allowed", f"The URL scheme {scheme!r} is not allowed; use http or https.",
        param=param,
    )


def _parse_object(spec: dict, policy: ImagePolicy, param: str) -> ImageSource:
    keys = set(spec)
    if keys == {"url"}:
        url = spec["url"]
        if not isinstance(url, str):
            raise ApiError("invalid_request", "image.url must be a string.", param=f"{param}.url")
        return _parse_url_field(url, policy, f"{param}.url")
    if "data" in keys and keys <= {"data", "media_type"}:
        data, media_type = spec["data"], spec.get("media_type")
        if not isinstance(data, str):
            raise ApiError(
                "invalid_request", "image.data must be a base64 string.", param=f"{param}.data"
            )
        if media_type is not None and not isinstance(media_type, str):
            raise ApiError(
                "invalid_request", "image.media_type must be a string.",
                param=f"{param}.media_type",
            )
        return InlineImage(decode_base64(data, policy, f"{param}.data"))
    raise ApiError(
        "invalid_request",
        "image object must be {\"url\": ...} or {\"data\": ..., \"media_type\": ...} "
        f"(got keys: {', '.join(sorted(map(str, keys))) or 'none'}).",
        param=param,
    )


def _parse_url_field(url: str, policy: ImagePolicy, param: str) -> ImageSource:
    source = _parse_string(url, policy, param)
    if isinstance(source, InlineImage):
        raise ApiError(
            "invalid_request", "image.url must be an http(s) URL; send data URLs as image.",
            param=param,
        )
    return source


def _decode_data_url(url: str, policy: ImagePolicy, param: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise ApiError("invalid_image", "The data URL has no ',' before its data.", param=param)
    parameters = [part.strip().lower() for part in header[len("data:"):].split(";")]
    if "base64" not in parameters[1:]:
        raise ApiError(
            "invalid_image", "Only base64 data URLs are accepted (data:image/...;base64,...).",
            param=param,
        )
    return decode_base64(payload, policy, param)


def decode_base64(text: str, policy: ImagePolicy, param: str) -> bytes:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise _not_base64(param) from None
    compact = _WHITESPACE.sub(b"", raw)
    # 4 characters carry 3 bytes: refuse oversized payloads before decoding them.
    if len(compact) // 4 * 3 > policy.max_image_bytes + 3:
        raise _too_many_bytes(policy, param)
    if _STANDARD.fullmatch(compact):
        altchars = None
    elif _URL_SAFE.fullmatch(compact):
        altchars = b"-_"
    else:
        raise _not_base64(param)
    unpadded = compact.rstrip(b"=")
    if len(unpadded) % 4 == 1:
        raise _not_base64(param)
    padded = unpadded + b"=" * (-len(unpadded) % 4)
    if len(padded) != len(compact) and len(compact) != len(unpadded):
        raise ApiError("invalid_image", "The image data has wrong base64 padding.", param=param)
    try:
        data = base64.b64decode(padded, altchars=altchars, validate=True)
    except binascii.Error:
        raise _not_base64(param) from None
    if len(data) > policy.max_image_bytes:
        raise _too_many_bytes(policy, param)
    return data


def _not_base64(param: str) -> ApiError:
    return ApiError("invalid_image", "The image data is not valid base64.", param=param)


def _too_many_bytes(policy: ImagePolicy, param: str) -> ApiError:
    return ApiError(
        "image_too_large",
        f"The image is larger than {policy.max_image_bytes} bytes.",
        param=param,
    )
