"""The status endpoint: one word about the GPU containers, answered from a CPU container.

A bare ASGI app (its image holds Python and this package, nothing else), so polling it never
starts or keeps a GPU container. `GET` (or `HEAD`) on any path answers the summary of the
records the GPU containers publish (container_status.py): `200` for `cold`, `warming` and
`ready`; `503` for `failed`, and for `unknown` when the records cannot be read. An uptime
monitor alerts on the status code alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pictale_server import PROTOCOL_VERSION
from pictale_server.hosting.container_status import summarize

logger = logging.getLogger("pictale.server")

ReadRecords = Callable[[], Awaitable[Iterable[Any]]]


def status_app(read_records: ReadRecords, *, clock: Callable[[], float] = time.time):
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, {"error": "GET only"}, head=False, extra=[(b"allow", b"GET, HEAD")])
            return
        try:
            body = summarize(await read_records(), clock())
        except Exception as exc:
            logger.warning("could not read the containers' status records", exc_info=True)
            body = {"status": "unknown", "error": f"the status records could not be read ({type(exc).__name__})"}
        body["version"] = PROTOCOL_VERSION
        code = 200 if body["status"] in ("cold", "warming", "ready") else 503
        await _answer(send, code, body, head=scope["method"] == "HEAD")

    return app


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
