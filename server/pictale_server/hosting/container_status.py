"""What the GPU containers tell the status endpoint, through a store they share.

Each container keeps one record under its own key (`container:<id>`): written when it starts,
on every change of its models' state and every `HEARTBEAT_S` in between, and deleted when it
stops. A record whose heartbeat is older than `STALE_AFTER_S` belongs to a container that
ended without saying so, and counts for nothing. Each record names its app (`ap-…`, kept across
redeploys), and only the deployment's own records count: a `modal serve` of the same file in the
same environment writes to the same store. `deployment_status` turns the deployment's records
and its restart budget (restart_budget.py) into the one word an uptime monitor needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pictale_server.hosting.restart_budget import budget_key, restarts_spent

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


@dataclass(frozen=True)
class Deployment:
    """Whose records the status endpoint reads, and the restart budget its containers spend."""

    app_id: str
    restart_limit: int
    restart_window_s: float


def container_record(
    state: ContainerState, *, app_id: str, now: float, since: float, failure: Failure | None = None
) -> dict[str, Any]:
    """One container's record: its app, its models' state, since when, the heartbeat, and why it failed."""
    record: dict[str, Any] = {"app": app_id, "state": state, "since": since, "heartbeat": now}
    if state == "failed" and failure is not None:
        record["failure"] = {"reason": failure.reason, "message": failure.message}
    return record


def is_live(record: Any, now: float) -> bool:
    # A heartbeat from the future (a container whose clock runs fast) is as stale as one from the
    # past: taken as fresh, a dead container's record would count for as long as its clock was ahead.
    return (
        isinstance(record, dict)
        and record.get("state") in _STATUS_OF
        and isinstance(record.get("heartbeat"), (int, float))
        and abs(now - record["heartbeat"]) <= STALE_AFTER_S
    )


def summarize(records: Iterable[Any], now: float, *, restarts_spent: bool = False) -> dict[str, Any]:
    """`{"status", "containers": {state: count}, "failure"?: {"reason"}}` from one deployment's
    container records. The answer is public: a failure's message (paths, sizes) stays in /health
    and the log.

    ready when any container is ready; else warming when any is loading (a replacement for a
    failed one included); else failed when a container stays up to report a failed load, or when
    `restarts_spent` (that container may have scaled down since); else cold (none running: the
    next request starts one).
    """
    live = [record for record in records if is_live(record, now)]
    counts = {status: 0 for status in ("warming", "ready", "failed")}
    for record in live:
        counts[_STATUS_OF[record["state"]]] += 1
    status: Status = next((s for s in ("ready", "warming", "failed") if counts[s]), "cold")
    if status == "cold" and restarts_spent:
        status = "failed"
    body: dict[str, Any] = {"status": status, "containers": counts}
    failed = [r for r in live if r["state"] == "failed"]
    if status == "failed" and failed:
        latest = max(failed, key=lambda r: r["heartbeat"])
        if isinstance(latest.get("failure"), dict):
            body["failure"] = {"reason": latest["failure"].get("reason")}
    return body


def deployment_status(items: Iterable[tuple[str, Any]], now: float, deployment: Deployment) -> dict[str, Any]:
    """The summary from every (key, value) of the store: the deployment's container records and
    its record of failed loads; other apps' entries count for nothing."""
    items = list(items)
    records = [
        value
        for key, value in items
        if str(key).startswith(KEY_PREFIX) and isinstance(value, dict) and value.get("app") == deployment.app_id
    ]
    failures = next((value for key, value in items if key == budget_key(deployment.app_id)), None)
    spent = restarts_spent(failures, now, limit=deployment.restart_limit, window_s=deployment.restart_window_s)
    return summarize(records, now, restarts_spent=spent)


def forgotten(items: Iterable[tuple[str, Any]], now: float) -> list[str]:
    """Keys of container records too old to matter (containers that died without deleting them)."""
    return [
        key
        for key, record in items
        if str(key).startswith(KEY_PREFIX)
        and not (
            isinstance(record, dict)
            and isinstance(record.get("heartbeat"), (int, float))
            and abs(now - record["heartbeat"]) < FORGET_AFTER_S
        )
    ]
