"""`load_image`, the serving layer's entry point: the contract's image cases end to end."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from image_samples import BLUE, RED, bomb_png, data_url, encode, exif_rotated_jpeg, png_bytes, solid
from PIL import Image

from pictale_server.errors import ApiError
from pictale_server.images import ImagePolicy, load_image
from pictale_server.settings import Settings

CONTRACT = Path(__file__).resolve().parents[2] / "tests" / "contract" / "requests.json"
IMAGE_CODES = {"invalid_image", "unsupported_media_type", "image_too_large", "url_not_allowed",
               "image_fetch_failed"}
POLICY = ImagePolicy()


def load(spec: object, policy: ImagePolicy = POLICY, param: str = "image") -> Image.Image:
    return asyncio.run(load_image(spec, policy, param))


def refusal(spec: object, policy: ImagePolicy = POLICY, param: str = "image") -> ApiError:
    with pytest.raises(ApiError) as caught:
        load(spec, policy, param)
    assert caught.value.param is not None and caught.value.param.startswith(param)
    return caught.value


def contract_cases(kind: str) -> list:
    cases = json.loads(CONTRACT.read_text())[kind]
    return [case for case in cases if "image" in case["body"]]


@pytest.mark.parametrize("case", contract_cases("valid"), ids=lambda case: case["name"])
def test_contract_valid_images_load(case: dict) -> None:
    image = load(case["body"]["image"])
    assert image.mode == "RGB"
    assert image.size[0] >= 1 and image.size[1] >= 1


@pytest.mark.parametrize(
    "case",
    [case for case in contract_cases("invalid") if case["code"] in IMAGE_CODES],
    ids=lambda case: case["name"],
)
def test_contract_invalid_images_get_their_code(case: dict) -> None:
    error = refusal(case["body"]["image"])
    assert error.code == case["code"]
    assert error.status == case["status"]


def test_policy_follows_settings() -> None:
    settings = Settings(
        max_image_bytes=1234, max_image_pixels=99, fetch_timeout_s=2.5,
        url_allowlist="images.internal, 10.0.0.0/8",
    )
    policy = ImagePolicy.from_settings(settings)
    assert policy.max_image_bytes == 1234
    assert policy.max_image_pixels == 99
    assert policy.fetch_timeout_s == 2.5
    assert policy.allowlist.hosts == frozenset({"images.internal"})
    assert [str(network) for network in policy.allowlist.networks] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"),
     ("BMP", "image/bmp"), ("TIFF", "image/tiff")],
)
def test_each_format_loads_from_data_url_and_object(fmt: str, media_type: str) -> None:
    data = encode(solid(BLUE, (6, 4)), fmt)
    for spec in (data_url(data, media_type), {"data": base64.b64encode(data).decode()}):
        image = load(spec)
        assert image.size == (6, 4)
        assert image.mode == "RGB"


def test_declared_media_type_is_never_trusted() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert refusal(data_url(svg, "image/png")).code == "unsupported_media_type"
    assert refusal({"data": base64.b64encode(svg).decode(), "media_type": "image/png"}).code == (
        "unsupported_media_type"
    )
    # And a real PNG declared as SVG is a PNG.
    assert load({"data": base64.b64encode(png_bytes()).decode(), "media_type": "image/svg+xml"})


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "invalid_image"),
        (b"<html><body>not a picture</body></html>", "unsupported_media_type"),
        (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "unsupported_media_type"),
        (b"plain text", "unsupported_media_type"),
        (b"\x89PNG\r\n\x1a\n<html></html>", "invalid_image"),
        (png_bytes()[:40], "invalid_image"),
        (bomb_png(), "image_too_large"),
    ],
)
def test_hostile_payloads_get_their_code(payload: bytes, code: str) -> None:
    assert refusal(data_url(payload), param="describe.image").code == code


def test_byte_cap_applies_to_inline_images() -> None:
    data = png_bytes(solid(RED, (64, 64)))
    too_small = ImagePolicy(max_image_bytes=len(data) - 1)
    assert refusal(data_url(data), too_small).code == "image_too_large"
    assert load(data_url(data), ImagePolicy(max_image_bytes=len(data))).size == (64, 64)


def test_result_is_upright_rgb_padded_to_the_processor_limit() -> None:
    assert load(data_url(exif_rotated_jpeg(), "image/jpeg")).size == (20, 40)
    tall = load(data_url(png_bytes(solid(RED, (1, 10_000)))))
    assert tall.size == (50, 10_000)


def test_url_refusals_happen_before_any_fetch() -> None:
    for url in ("http://127.0.0.1/x.png", "http://[::1]/x.png", "http://localhost./x.png",
                "ftp://example.com/x.png", "http://evil@127.0.0.1/"):
        assert refusal(url).code == "url_not_allowed"
