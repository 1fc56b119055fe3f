"""Webhooks: signed deliveries when a run ends, retried, refused for private addresses."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import FakeEngine, Script
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"a test secret of thirty-two bytes!").decode()


class Receiver:
    """A local endpoint that records deliveries and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pictale"

    def wait_for(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + 10
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.deliveries

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def start(statuses: list[int] | None = None) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield start
    for r in made:
        r.close()


def hooked(serve, engine=None):
    return serve(engine, webhook_secret=SECRET, url_allowlist=["127.0.0.1"], webhook_backoff_s=0.01)


def test_a_finished_run_posts_a_signed_message(serve, receiver) -> None:
    served, hook = hooked(serve), receiver()
    result = served.client.post("/v1/narrate", json={"instruction": "A", "webhook": {"url": hook.url}}).json()
    ((headers, body),) = hook.wait_for(1)
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "run.done"
    assert payload["data"] == {"id": result["id"], "state": "done", "result": result}
    assert headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"Once", b"Twice"), headers)


def test_a_failing_endpoint_is_retried_with_the_same_message_id(serve, receiver) -> None:
    served, hook = hooked(serve), receiver([500, 503])
    served.client.post("/v1/narrate", json={"instruction": "A", "webhook": {"url": hook.url}})
    deliveries = hook.wait_for(3)
    assert len(deliveries) == 3
    assert len({headers["webhook-id"] for headers, _ in deliveries}) == 1
    for headers, body in deliveries:
        Webhook(SECRET).verify(body, headers)


def test_a_failed_run_is_reported_when_asked_and_done_runs_are_not(serve, receiver) -> None:
    served = hooked(serve, FakeEngine(writer=Script(["a"], fail_after=0)))
    hook = receiver()
    spec = {"url": hook.url, "events": ["run.failed"]}
    assert served.client.post("/v1/narrate", json={"instruction": "A", "webhook": spec}).status_code == 500
    ((headers, body),) = hook.wait_for(1)
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "run.failed" and payload["data"]["error"]["code"] == "internal"


def test_events_not_asked_for_are_not_sent(serve, receiver) -> None:
    served, hook = hooked(serve), receiver()
    served.client.post("/v1/narrate", json={"instruction": "A", "webhook": {"url": hook.url, "events": ["run.failed"]}})
    time.sleep(0.3)
    assert hook.deliveries == []


def test_a_background_run_reports_its_end(serve, receiver) -> None:
    served, hook = hooked(serve), receiver()
    started = served.client.post(
        "/v1/narrate", json={"instruction": "A", "background": True, "webhook": {"url": hook.url}}
    ).json()
    ((headers, body),) = hook.wait_for(1)
    assert Webhook(SECRET).verify(body, headers)["data"]["id"] == started["id"]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://localhost/hook",
        "file:///etc/passwd",
        "not a url",
        "http://host.invalid/hook",
    ],
)
def test_webhook_urls_to_private_or_odd_places_are_refused(serve, url) -> None:
    served = serve(webhook_secret=SECRET)
    response = served.client.post("/v1/narrate", json={"instruction": "A", "webhook": {"url": url}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed" and error["param"] == "webhook.url"
    assert served.engine.calls == []


def test_a_server_without_a_secret_refuses_webhooks(serve) -> None:
    response = serve().client.post("/v1/narrate", json={"instruction": "A", "webhook": {"url": "https://example.com/h"}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "webhook"


def test_bad_webhook_fields_are_invalid_requests(serve) -> None:
    served = serve(webhook_secret=SECRET)
    for spec, param in (({"events": ["run.done"]}, "webhook.url"), ({"url": "https://e.com", "events": ["x"]}, "webhook.events.0")):
        response = served.client.post("/v1/narrate", json={"instruction": "A", "webhook": spec})
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.json()


def test_the_message_body_is_compact_json_with_type_timestamp_and_data() -> None:
    from pictale_server.webhooks import message

    event, body = message("run_1", "cancelled", None, None)
    parsed = json.loads(body)
    assert event == "run.cancelled" and set(parsed) == {"type", "timestamp", "data"}
    assert parsed["data"] == {"id": "run_1", "state": "cancelled"}


def test_the_server_signs_the_contract_delivery_as_recorded() -> None:
    """tests/contract/webhook.json is what the SDK's verifyWebhook checks."""
    from datetime import UTC, datetime
    from pathlib import Path

    from pictale_server.webhooks import webhook_signer

    delivery = json.loads((Path(__file__).resolve().parents[2] / "tests" / "contract" / "webhook.json").read_text())
    headers = delivery["headers"]
    signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    signature = webhook_signer(delivery["secret"]).sign(headers["webhook-id"], signed_at, delivery["body"].encode())
    assert signature == headers["webhook-signature"]


def test_a_secret_that_is_not_whsec_base64_is_a_configuration_error() -> None:
    from pictale_server.webhooks import webhook_signer

    with pytest.raises(ValueError, match="whsec_"):
        webhook_signer("whsec_")
