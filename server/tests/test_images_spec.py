"""The `image` field: every accepted shape, and a typed error for everything else."""

from __future__ import annotations

import base64

import pytest
from image_samples import png_bytes

from pictale_server.errors import ApiError
from pictale_server.images.policy import ImagePolicy
from pictale_server.images.spec import InlineImage, RemoteImage, parse_image_spec

POLICY = ImagePolicy()
PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()


def parsed(spec: object, policy: ImagePolicy = POLICY) -> InlineImage | RemoteImage:
    return parse_image_spec(spec, policy, "image")


def refusal(spec: object, param: str = "image", policy: ImagePolicy = POLICY) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_image_spec(spec, policy, param)
    return caught.value


@pytest.mark.parametrize(
    "spec",
    [
        f"data:image/png;base64,{B64}",
        f"DATA:IMAGE/PNG;BASE64,{B64}",
        f"data:image/jpeg;base64,{B64}",  # declared type is ignored; the bytes decide later
        f"data:;base64,{B64}",
        f"data:image/png;charset=binary;base64,{B64}",
        f"  data:image/png;base64,{B64}\n",
        "data:image/png;base64," + "\n".join(B64[i : i + 76] for i in range(0, len(B64), 76)),
        f"data:image/png;base64,{B64.rstrip('=')}",
        {"data": B64, "media_type": "image/png"},
        {"data": B64, "media_type": "image/svg+xml"},
        {"data": B64},
        {"data": B64, "media_type": None},
        {"data": f" {B64[:10]}\r\n{B64[10:]} "},
    ],
)
def test_inline_shapes_yield_the_exact_bytes(spec: object) -> None:
    assert parsed(spec) == InlineImage(PNG)


def test_url_safe_alphabet_is_accepted() -> None:
    data = bytes(range(256)) * 3  # contains every 6-bit group, so '+' and '/' in standard form
    url_safe = base64.urlsafe_b64encode(data).decode()
    assert "-" in url_safe and "_" in url_safe
    assert parsed({"data": url_safe}) == InlineImage(data)
    assert parsed({"data": url_safe.rstrip("=")}) == InlineImage(data)


@pytest.mark.parametrize(
    "spec",
    ["https://images.example.com/cat.png", "http://images.example.com/a.png?x=1",
     "HTTPS://images.example.com/b.webp", {"url": "https://images.example.com/c.jpg"}],
)
def test_http_urls_are_remote_sources(spec: object) -> None:
    source = parsed(spec)
    assert isinstance(source, RemoteImage)
    assert source.url == (spec["url"] if isinstance(spec, dict) else spec)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("@@@not-base64@@@", "alphabet"),
        (B64[:-5] + "+" + "-" + B64[-3:], "mixed alphabets"),
        (B64 + "=", "extra padding"),
        (B64 + "===", "padding run"),
        ("A", "dangling character"),
        ("AB=C", "padding in the middle"),
        ("aGVsbG8=\u00e9", "non-ascii"),
        (B64[:20] + "%2B" + B64[20:], "percent-encoding"),
    ],
)
def test_bad_base64_is_invalid_image(payload: str, why: str) -> None:
    for spec, param in (
        (f"data:image/png;base64,{payload}", "image"),
        ({"data": payload}, "image.data"),
    ):
        error = refusal(spec)
        assert error.code == "invalid_image", why
        assert error.param == param


@pytest.mark.parametrize(
    "spec",
    [
        "data:image/png,%89PNG%0D%0A",
        "data:image/png;utf8,<svg/>",
        "data:text/plain,hello",
        "data:image/png;base64",
        "data:base64,AAAA",
    ],
)
def test_data_urls_that_are_not_base64_are_invalid_image(spec: str) -> None:
    assert refusal(spec).code == "invalid_image"


@pytest.mark.parametrize(
    "spec",
    ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://127.0.0.1:6379/_INFO",
     "javascript:alert(1)", "dict://127.0.0.1:11211/stats", "ws://example.com/",
     "FILE:///etc/passwd", {"url": "file:///etc/passwd"}, {"url": "ldap://example.com/"}],
)
def test_other_schemes_are_url_not_allowed(spec: object) -> None:
    error = refusal(spec)
    assert error.code == "url_not_allowed"
    assert error.param == ("image.url" if isinstance(spec, dict) else "image")


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (None, "image"),
        (42, "image"),
        (["https://images.example.com/a.png"], "image"),
        (b"\x89PNG", "image"),
        ("", "image"),
        ("cat.png", "image"),
        ("//images.example.com/a.png", "image"),
        ({}, "image"),
        ({"href": "https://images.example.com/a.png"}, "image"),
        ({"url": "https://a.example/x.png", "data": B64}, "image"),
        ({"data": B64, "media_type": "image/png", "extra": 1}, "image"),
        ({"media_type": "image/png"}, "image"),
        ({"url": 5}, "image.url"),
        ({"url": f"data:image/png;base64,{B64}"}, "image.url"),
        ({"data": 5}, "image.data"),
        ({"data": B64, "media_type": 7}, "image.media_type"),
    ],
)
def test_other_shapes_are_invalid_request_with_param(spec: object, param: str) -> None:
    error = refusal(spec)
    assert error.code == "invalid_request"
    assert error.param == param


def test_nested_param_is_used_in_errors() -> None:
    assert refusal("ftp://x/", param="describe.image").param == "describe.image"
    assert refusal({"data": "@@"}, param="describe.image").param == "describe.image.data"


def test_oversized_base64_is_refused_before_decoding() -> None:
    small = ImagePolicy(max_image_bytes=1000)
    exactly = base64.b64encode(b"\x00" * 1000).decode()
    assert parsed({"data": exactly}, small) == InlineImage(b"\x00" * 1000)
    over = base64.b64encode(b"\x00" * 1001).decode()
    error = refusal({"data": over}, policy=small)
    assert error.code == "image_too_large"
    assert error.status == 413
    # Far over the cap and not even valid base64: the size decides first, without decoding.
    assert refusal({"data": "@" * 10_000}, policy=small).code == "image_too_large"
