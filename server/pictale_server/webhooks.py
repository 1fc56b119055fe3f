"""Webhooks: a run that ends tells the URL its request named, signed per Standard Webhooks.

`webhook: {url, events?}` on describe, narrate or pipeline. When the run ends, the server
POSTs `{"type", "timestamp", "data": {"id", "state", "result" | "error"}}` to the URL with
`webhook-id` (the same on every retry of one message), `webhook-timestamp` and
`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the server's
`PICTALE_WEBHOOK_SECRET`), signed by the Standard Webhooks reference library; the SDK's
`pictale/webhooks` verifies them. A delivery that fails (no connection, a non-2xx answer) is
retried with exponential backoff (tenacity), at most `WEBHOOK_ATTEMPTS` times.

Webhook URLs go through the image fetcher's rules (images/fetch.py): checked when the request
arrives (`url_not_allowed` names `webhook.url`), and again for each attempt, connecting only
to the address that was checked, never following a redirect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pictale_server.errors import ApiError
from pictale_server.images import ImagePolicy
from pictale_server.images.fetch import USER_AGENT, PinnedAddressTransport, check_destination
from pictale_server.images.resolve import Resolver, system_resolver

logger = logging.getLogger("pictale.server")

WEBHOOK_ATTEMPTS = 6
EVENT_FOR_STATE = {"done": "run.done", "error": "run.failed", "cancelled": "run.cancelled"}
DEFAULT_EVENTS = ("run.done", "run.failed")
TIMEOUT_S = 10.0


class DeliveryFailed(Exception):
    """One attempt did not reach a 2xx answer."""


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    events: tuple[str, ...]


def webhook_signer(secret: str) -> Webhook:
    """The server's signer; a secret that is not Standard Webhooks' `whsec_` + base64 is a
    configuration error at start, not at the first delivery."""
    try:
        return Webhook(secret)
    except Exception as error:  # noqa: BLE001 - binascii, empty secret
        raise ValueError("PICTALE_WEBHOOK_SECRET must be whsec_ followed by base64") from error


async def check_target(url: str, policy: ImagePolicy, resolver: Resolver = system_resolver) -> None:
    """Refuse a webhook URL as an image URL would be refused (400, param webhook.url)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ApiError("url_not_allowed", "The webhook URL is not a valid http(s) URL.", param="webhook.url") from None
    try:
        await check_destination(parsed, policy, resolver, "webhook.url")
    except ApiError as error:
        if error.code == "image_fetch_failed":  # the host does not resolve
            raise ApiError("url_not_allowed", error.message.replace("image host", "webhook host"), param="webhook.url") from None
        raise


def message(run_id: str, state: str, result: dict | None, error: dict | None) -> tuple[str, bytes]:
    """(event type, body) of the message for a run that ended in `state`."""
    data: dict = {"id": run_id, "state": state}
    if result is not None:
        data["result"] = result
    if error is not None:
        data["error"] = error
    body = {"type": EVENT_FOR_STATE[state], "timestamp": datetime.now(UTC).isoformat(), "data": data}
    return body["type"], json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def deliver(
    target: WebhookTarget,
    run_id: str,
    event: str,
    body: bytes,
    signer: Webhook,
    policy: ImagePolicy,
    *,
    resolver: Resolver = system_resolver,
    backoff_s: float = 5.0,
) -> bool:
    """POST one message until a 2xx answer or `WEBHOOK_ATTEMPTS` failures; whether it arrived."""
    message_id = f"msg_{run_id.removeprefix('run_')}_{event.removeprefix('run.')}"
    client = httpx.AsyncClient(
        transport=PinnedAddressTransport(policy, resolver, "webhook.url"),
        follow_redirects=False,
        trust_env=False,
        timeout=TIMEOUT_S,
    )

    async def attempt() -> None:
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(message_id, now, body),
        }
        try:
            response = await client.post(target.url, content=body, headers=headers)
        except (httpx.HTTPError, ApiError) as error:
            raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
        if not response.is_success:
            raise DeliveryFailed(f"HTTP {response.status_code}")

    try:
        async with client:
            async for attempt_state in AsyncRetrying(
                stop=stop_after_attempt(WEBHOOK_ATTEMPTS),
                wait=wait_exponential(multiplier=backoff_s, max=backoff_s * 120),
                retry=retry_if_exception_type(DeliveryFailed),
                reraise=True,
            ):
                with attempt_state:
                    await attempt()
    except DeliveryFailed as error:
        logger.warning("webhook %s for %s not delivered after %d attempts: %s", event, run_id, WEBHOOK_ATTEMPTS, error)
        return False
    logger.info("webhook %s for %s delivered", event, run_id)
    return True


class WebhookSender:
    """The app's webhooks: one delivery task per ended run that asked for one."""

    def __init__(
        self, secret: str, policy: ImagePolicy, *, backoff_s: float = 5.0, resolver: Resolver = system_resolver
    ) -> None:
        self._signer = webhook_signer(secret)
        self.policy = policy
        self._backoff_s = backoff_s
        self._resolver = resolver
        self._tasks: set[asyncio.Task] = set()

    async def check(self, url: str) -> None:
        await check_target(url, self.policy, self._resolver)

    def run_ended(self, target: WebhookTarget, run_id: str, state: str, result: dict | None, error: dict | None) -> None:
        if EVENT_FOR_STATE.get(state) not in target.events:
            return
        event, body = message(run_id, state, result, error)
        task = asyncio.get_running_loop().create_task(
            deliver(target, run_id, event, body, self._signer, self.policy,
                    resolver=self._resolver, backoff_s=self._backoff_s),
            name=f"webhook {run_id}",
        )
        self._tasks.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)


def events_or_default(events: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(events) if events else DEFAULT_EVENTS


__all__ = ["WebhookSender", "WebhookTarget", "check_target", "deliver", "events_or_default", "message"]
