"""The status endpoint: one word about the GPU containers, answered from a CPU container.

A bare ASGI app (its image holds Python and this package, nothing else), so polling it never
starts or keeps a GPU container. `GET` (or `HEAD`) on any path answers the deployment's summary
of what the GPU containers publish (container_status.py): `200` for `cold`, `warming` and
`ready`; `503` for `failed`, and for `unknown` when the records cannot be read. An uptime
monitor alerts on the status code alone. The summary is read at most once per `CACHE_S`: polls
in between get the last one, so a crowd of monitors costs the store one read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pictale_server import PROTOCOL_VERSION
from pictale_server.hosting.container_status import Deployment, deployment_status

logger = logging.getLogger("pictale.server")

ReadItems = Callable[[], Awaitable[Iterable[tuple[str, Any]]]]  # every (key, value) of the store
CACHE_S = 5.0


def status_app(
    read_items: ReadItems, deployment: Deployment, *, clock: Callable[[], float] = time.time, cache_s: float = CACHE_S
):
    cached: dict[str, Any] = {}  # "body", and "at": when it was read
    refreshing = asyncio.Lock()

    async def summary() -> dict[str, Any]:
        async with refreshing:  # polls that arrive together wait for one read
            now = clock()
            if "body" not in cached or not 0 <= now - cached["at"] < cache_s:
                cached["body"], cached["at"] = await _read_summary(read_items, deployment, now), now
            return dict(cached["body"])

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, {"error": "GET only"}, head=False, extra=[(b"allow", b"GET, HEAD")])
            return
        body = await summary()
        code = 200 if body["status"] in ("cold", "warming", "ready") else 503
        await _answer(send, code, body, head=scope["method"] == "HEAD")

    return app


async def _read_summary(read_items: ReadItems, deployment: Deployment, now: float) -> dict[str, Any]:
    try:
        body = deployment_status(await read_items(), now, deployment)
    except Exception as exc:
        logger.warning("could not read the containers' status records", exc_info=True)
        body = {"status": "unknown", "error": f"the status records could not be read ({type(exc).__name__})"}
    body["version"] = PROTOCOL_VERSION
    return body


async def _answer(send: Callable, code: int, body: dict, *, head: bool, extra: list | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else payload})


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
