"""How the gate refuses: a decision code in a `content_refused` error and one log line.

The log line carries the code and the request id, never the text or the image.
"""

from __future__ import annotations

import logging

from pictale_server.errors import ApiError

logger = logging.getLogger("pictale.safety")


def refusal(code: str, *, request_id: str | None = None, param: str | None = None) -> ApiError:
    logger.warning("content refused: code=%s request_id=%s", code, request_id or "-")
    return ApiError(
        "content_refused", f"This request was refused by the content policy ({code}).", param=param
    )
