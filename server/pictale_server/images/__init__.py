"""Request images: parse the `image` field, fetch URLs safely, sniff, decode, normalize to RGB.

    policy = ImagePolicy.from_settings(settings)
    image = await load_image(spec, policy)  # PIL.Image.Image in RGB, or ApiError

docs/images.md describes what is accepted and refused.
"""

from pictale_server.images.load import load_image
from pictale_server.images.policy import ImagePolicy, UrlAllowlist

__all__ = ["ImagePolicy", "UrlAllowlist", "load_image"]
