"""Fetching an image URL without letting the server be steered into its own network.

Every request, the first and each redirect hop, goes through `PinnedAddressTransport`: it
checks the URL, resolves the host once, refuses the request unless every resolved address is
allowed, then connects to the address it checked (the URL's host swapped for that IP) while the
`Host` header and TLS SNI/certificate checks keep the original name. A DNS answer that changes
between check and connect (rebinding) therefore cannot redirect the connection.
"""

from __future__ import annotations

import asyncio
import socket

import httpx

from pictale_server.errors import ApiError
from pictale_server.images.addresses import (
    IPAddress,
    address_allowed,
    hostname_refusal,
    parse_ip_literal,
)
from pictale_server.images.policy import ImagePolicy
from pictale_server.images.resolve import Resolver, system_resolver

USER_AGENT = "pictale-server"
_DEFAULT_PORTS = {"http": 80, "https": 443}


async def check_destination(
    url: httpx.URL, policy: ImagePolicy, resolver: Resolver, param: str = "image"
) -> IPAddress:
    """The address to connect to for `url`, or `url_not_allowed` / `image_fetch_failed`."""
    if url.scheme not in _DEFAULT_PORTS:
        raise _not_allowed(
            f"The URL scheme {url.scheme!r} is not allowed; use http or https.", param
        )
    if url.userinfo:
        raise _not_allowed("URLs with credentials (user@host) are not allowed.", param)
    host = url.host
    if not host:
        raise _not_allowed("The URL has no host.", param)
    literal = parse_ip_literal(host)
    if literal is not None:
        reason = address_allowed(literal, host, policy.allowlist)
        if reason:
            raise _not_allowed(f"The URL's host is {reason}.", param)
        return literal
    if not policy.allowlist.allows_host(host):
        reason = hostname_refusal(host)
        if reason:
            raise _not_allowed(f"The URL is not allowed: {reason}.", param)
    port = url.port or _DEFAULT_PORTS[url.scheme]
    try:
        addresses = await resolver(host, port)
    except (socket.gaierror, OSError, UnicodeError) as error:
        raise ApiError(
            "image_fetch_failed", f"Could not resolve the image host {host!r} ({error}).",
            param=param,
        ) from None
    for address in addresses:
        reason = address_allowed(address, host, policy.allowlist)
        if reason:
            raise _not_allowed(f"The host {host!r} resolves to {reason}.", param)
    return addresses[0]


class PinnedAddressTransport(httpx.AsyncBaseTransport):
    """Checks each request's destination and connects to the checked address only."""

    def __init__(
        self,
        policy: ImagePolicy,
        resolver: Resolver,
        param: str = "image",
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._param = param
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0, trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        address = await check_destination(request.url, self._policy, self._resolver, self._param)
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = request.url.host
        # httpx already set Host from the original URL; it travels unchanged.
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(address)),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def fetch_image_bytes(
    url: str, policy: ImagePolicy, param: str = "image", resolver: Resolver = system_resolver
) -> bytes:
    """The body at `url`, at most `policy.max_image_bytes`, within `policy.fetch_timeout_s`."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise _not_allowed("The image URL is not a valid http(s) URL.", param) from None
    timeout = policy.fetch_timeout_s
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(parsed, policy, param, resolver)
    except TimeoutError:
        raise _fetch_failed(f"Fetching the image timed out after {timeout:g} s.", param) from None
    except httpx.TooManyRedirects:
        raise _fetch_failed(
            f"The image URL redirected more than {policy.max_redirects} times.", param
        ) from None
    except httpx.TimeoutException:
        raise _fetch_failed(f"Fetching the image timed out after {timeout:g} s.", param) from None
    except httpx.HTTPError as error:
        raise _fetch_failed(f"Fetching the image failed ({type(error).__name__}).", param) from None


async def _fetch(url: httpx.URL, policy: ImagePolicy, param: str, resolver: Resolver) -> bytes:
    client = httpx.AsyncClient(
        transport=PinnedAddressTransport(policy, resolver, param),
        follow_redirects=True,
        max_redirects=policy.max_redirects,
        trust_env=False,
        timeout=policy.fetch_timeout_s,
        headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
    )
    async with client, client.stream("GET", url) as response:
        if not response.is_success:
            raise _fetch_failed(f"The image URL answered HTTP {response.status_code}.", param)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > policy.max_image_bytes:
            raise _too_large(policy, param)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > policy.max_image_bytes:
                raise _too_large(policy, param)
        return bytes(body)


def _not_allowed(message: str, param: str) -> ApiError:
    return ApiError("url_not_allowed", message, param=param)


def _fetch_failed(message: str, param: str) -> ApiError:
    return ApiError("image_fetch_failed", message, param=param)


def _too_large(policy: ImagePolicy, param: str) -> ApiError:
    return ApiError(
        "image_too_large", f"The image is larger than {policy.max_image_bytes} bytes.", param=param
    )
