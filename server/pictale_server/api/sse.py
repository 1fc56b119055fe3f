"""Server-Sent Events framing for the contract's streams (docs/protocol.md, "Server-Sent Events").

Each event is `event:`, `id:` (its number in the run, runtime/run_log.py) and one `data:` line
of compact JSON, then a blank line; a `: ping` comment keeps idle connections alive. The
framing is byte-exact with tests/contract/streams/*.sse.
"""

from __future__ import annotations

import json
from typing import Any

PING = b": ping\n\n"

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
SSE_MEDIA_TYPE = "text/event-stream"

# SSE breaks lines only at CR and LF, but many clients read streams with their language's
# line splitter (Python's str.splitlines, so httpx's and requests' iter_lines), which also
# breaks at these. JSON may escape any character, so the data line never contains them raw.
_WIDE_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def encode_event(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    payload = payload.translate(_WIDE_LINE_BREAKS)
    return f"event: {name}\nid: {event_id}\ndata: {payload}\n\n".encode()
