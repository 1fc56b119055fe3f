"""CORS: which web pages may call the API directly from the browser.

Off unless `PICTALE_CORS_ORIGINS` names origins (or "*"), except on the dev profile, where any
origin may: a local server with random weights holds nothing worth protecting, and a page
under development should just work. On a real deployment, allowing an origin lets its pages
send requests with whatever key they hold: put keys in browsers only behind your own proxy
(examples/proxy-server.ts) or as per-user keys you can revoke (docs/server.md, "CORS").

Starlette's middleware does the work; preflights answer 204 (no body) rather than its 200
"OK", and every header a client reads is exposed (the request id, Retry-After, run ids).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

ALLOWED_HEADERS = (
    "authorization", "x-api-key", "content-type", "accept", "idempotency-key", "last-event-id",
    "x-request-id", "modal-key", "modal-secret",
)
EXPOSED_HEADERS = (
    "x-request-id", "retry-after", "x-pictale-run-id", "x-pictale-unapplied",
)
PREFLIGHT_MAX_AGE_S = 600


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    def preflight_response(self, request_headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            return response
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return Response(status_code=204, headers=headers)


def cors_origins(configured: Sequence[str], profile: str) -> list[str]:
    if configured:
        return list(configured)
    return ["*"] if profile == "dev" else []
