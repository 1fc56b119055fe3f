"""The one entry point the serving layer calls: a request's `image` field -> an RGB picture."""

from __future__ import annotations

import asyncio

from PIL.Image import Image

from pictale_server.images.decode import decode_image
from pictale_server.images.fetch import fetch_image_bytes
from pictale_server.images.policy import ImagePolicy
from pictale_server.images.resolve import Resolver, system_resolver
from pictale_server.images.sniff import require_image_format
from pictale_server.images.spec import InlineImage, parse_image_spec


async def load_image(
    spec: object,
    policy: ImagePolicy,
    param: str = "image",
    *,
    resolver: Resolver = system_resolver,
) -> Image:
    """Parse, fetch or decode base64, sniff, decode and normalize an image.

    Raises `ApiError` with the contract's codes (docs/images.md); `param` names the request
    field in those errors (e.g. "image" or "describe.image").
    """
    source = parse_image_spec(spec, policy, param)
    if isinstance(source, InlineImage):
        data = source.data
    else:
        data = await fetch_image_bytes(source.url, policy, param, resolver=resolver)
    fmt = require_image_format(data, param)
    # Decoding is CPU work that can take a while on a large image: keep the loop free.
    return await asyncio.to_thread(decode_image, data, fmt, policy, param)
