"""What every generation route does before its images: the text gate, then readiness.

The gate runs in a thread (a maximal request takes it a few hundred ms). Plain requests need
the models resident (503 `not_ready` while loading); a stream may wait for them to load, but
not for a load that failed.
"""

from __future__ import annotations

import asyncio

from pictale_server.api.request_context import RequestContext
from pictale_server.runtime.services import Services


async def admit(services: Services, context: RequestContext, texts: dict[str, str], *, stream: bool) -> None:
    await asyncio.to_thread(services.gate.check_text, texts, request_id=context.request_id)
    if stream:
        services.lifecycle.check_failed()
    else:
        services.lifecycle.check_ready()
