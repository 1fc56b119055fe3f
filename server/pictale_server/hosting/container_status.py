"""What the GPU containers tell the status endpoint, through a store they share.

Each container keeps one record under its own key (`container:<id>`): written when it starts,
on every change of its models' state and every `HEARTBEAT_S` in between, and deleted when it
stops. A record whose heartbeat is older than `STALE_AFTER_S` belongs to a container that
ended without saying so, and counts for nothing. `summarize` turns the records into the one
word an uptime monitor needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Protocol

# Standard library only: the status endpoint's image has nothing else (status_app.py).

Status = Literal["cold", "warming", "ready", "failed"]
ContainerState = Literal["loading", "ready", "failed"]  # runtime/lifecycle.py's ModelState


class Failure(Protocol):  # runtime/lifecycle.py's FailedLoad
    reason: str
    message: str


KEY_PREFIX = "container:"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 4 * HEARTBEAT_S
# Records of containers that died are deleted once this old, so the store does not fill up.
FORGET_AFTER_S = 24 * 3600.0

_STATUS_OF: dict[str, Status] = {"loading": "warming", "ready": "ready", "failed": "failed"}


def container_record(state: ContainerState, *, now: float, since: float, failure: Failure | None = None) -> dict[str, Any]:
    """One container's record: its models' state, since when, the heartbeat, and why it failed."""
    record: dict[str, Any] = {"state": state, "since": since, "heartbeat": now}
    if state == "failed" and failure is not None:
        record["failure"] = {"reason": failure.reason, "message": failure.message}
    return record


def is_live(record: Any, now: float) -> bool:
    return (
        isinstance(record, dict)
        and record.get("state") in _STATUS_OF
        and isinstance(record.get("heartbeat"), (int, float))
        and now - record["heartbeat"] <= STALE_AFTER_S
    )


def summarize(records: Iterable[Any], now: float) -> dict[str, Any]:
    """`{"status", "containers": {state: count}, "failure"?: {"reason"}}` from every container's
    record. The answer is public: a failure's message (paths, sizes) stays in /health and the log.

    ready when any container is ready; else warming when any is loading (a replacement for a
    failed one included); else failed when a container stays up to report a failed load; else
    cold (none running: the next request starts one).
    """
    live = [record for record in records if is_live(record, now)]
    counts = {status: 0 for status in ("warming", "ready", "failed")}
    for record in live:
        counts[_STATUS_OF[record["state"]]] += 1
    status: Status = next((s for s in ("ready", "warming", "failed") if counts[s]), "cold")
    body: dict[str, Any] = {"status": status, "containers": counts}
    if status == "failed":
        failed = max((r for r in live if r["state"] == "failed"), key=lambda r: r["heartbeat"])
        if isinstance(failed.get("failure"), dict):
            body["failure"] = {"reason": failed["failure"].get("reason")}
    return body


def forgotten(items: Iterable[tuple[str, Any]], now: float) -> list[str]:
    """Keys of container records too old to matter (containers that died without deleting them)."""
    return [
        key
        for key, record in items
        if str(key).startswith(KEY_PREFIX)
        and not (isinstance(record, dict) and now - record.get("heartbeat", 0) < FORGET_AFTER_S)
    ]
