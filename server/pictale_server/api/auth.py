"""API keys (PICTALE_API_KEYS) and the optional per-caller rate limit.

With keys configured every route but /health needs a key, in `x-api-key: <key>` or
`Authorization: Bearer <key>`, compared in constant time against each key. When `x-api-key` is
sent it is the credential and `Authorization` is not looked at: behind Modal's proxy auth the
`Authorization` header may carry the edge's own token (docs/protocol.md, "Authentication"), so
a dedicated header never competes with it. The caller's identity (which key, or the client
address when no keys are set) scopes rate limits and idempotency keys.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from fastapi import Request

from pictale_server.api.rate_limit import RateLimiter
from pictale_server.api.request_context import get_request_context
from pictale_server.errors import ApiError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _caller_for_key(key: str) -> str:
    return "key:" + _digest(key).hex()[:16]


API_KEY_HEADER = "x-api-key"


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def presented_key(request: Request) -> str | None:
    """The key the request presents: `x-api-key` when sent (non-empty), else the bearer token."""
    dedicated = request.headers.get(API_KEY_HEADER, "").strip()
    return dedicated or _bearer_token(request)


def make_authenticate(api_keys: list[str]) -> Callable[[Request], str]:
    """A FastAPI dependency returning the caller id (also kept on the request context), or
    raising 401 `unauthorized`."""
    # Digests have one length, so the comparison does not leak the keys' lengths either.
    keys = [_digest(key) for key in api_keys]

    def authenticate(request: Request) -> str:
        context = get_request_context(request)
        if not keys:
            context.caller = "client:" + (request.client.host if request.client else "unknown")
            return context.caller
        token = presented_key(request)
        if token is None:
            raise ApiError(
                "unauthorized",
                "Missing API key: send x-api-key: <key> (or Authorization: Bearer <key>).",
            )
        presented = _digest(token)
        # Compare against every key so the time taken does not tell which one nearly matched.
        matched = [hmac.compare_digest(presented, key) for key in keys]
        if not any(matched):
            raise ApiError("unauthorized", "The API key is not valid.")
        context.caller = _caller_for_key(token)
        return context.caller

    return authenticate


def make_rate_limit(
    limiter: RateLimiter | None, authenticate: Callable[[Request], str]
) -> Callable[[Request], str]:
    """A dependency for generation routes: authenticates, then counts the request."""

    def rate_limited_caller(request: Request) -> str:
        caller = authenticate(request)
        if limiter is not None:
            limiter.hit(caller)
        return caller

    return rate_limited_caller
