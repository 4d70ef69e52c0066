"""Shared pieces of the webhook suites: server settings, subscribing, reading deliveries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.oci_helpers import brief
from tests.support.webhook_receiver import WebhookReceiver

ADMIN_PASSWORD = "an admin password for webhook tests"
PASSWORD = "a webhook tester's long password"
EMITTED = (
    "REPO_CREATED",
    "REPO_UPDATED",
    "REPO_DELETED",
    "MANIFEST_PUSH",
    "MANIFEST_PULL",
    "MANIFEST_DELETE",
    "TAG_PUSH",
    "TAG_DELETE",
)
RESERVED = (
    "SCAN_COMPLETED",
    "SCAN_FAILED",
    "PROMOTION",
    "PUSH_MIRRORING",
    "POLL_MIRRORING",
    "SCANNER_UPDATE_COMPLETED",
    "VULNERABILITY_FOUND",
    "VULNERABILITY_RESOLVED",
)
# Accounts on, loopback allowed as a destination, and quick retries, polls and pull flushes.
FAST: dict[str, str] = {
    "TRUSTYARD_AUTH__ENABLED": "true",
    "TRUSTYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS": "127.0.0.1/32",
    "TRUSTYARD_WEBHOOKS__TIMEOUT_SECONDS": "10",
    "TRUSTYARD_JOBS__RETRY_BASE_SECONDS": "0.2",
    "TRUSTYARD_JOBS__RETRY_MAX_SECONDS": "1",
    "TRUSTYARD_JOBS__POLL_SECONDS": "0.1",
    "TRUSTYARD_JOBS__EMBEDDED_WORKERS": "2",
    "TRUSTYARD_EVENTS__PULL_CHECK_SECONDS": "0.2",
    "TRUSTYARD_EVENTS__PULL_FLUSH_SECONDS": "0.1",
}


def unique(prefix: str = "w") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def subscribe(
    client: httpx.Client, receiver: WebhookReceiver, path: str, events: list[str], **fields: Any
) -> dict[str, Any]:
    """Create a subscription delivering to `path` on the receiver; returns the answer (with
    the secret)."""
    answer = client.post(
        "/api/v1/webhooks", json={"url": receiver.url(path), "events": events, **fields}
    )
    assert answer.status_code == 201, brief(answer)
    created: dict[str, Any] = answer.json()
    assert created["secret"]
    return created


def deliveries(client: httpx.Client, webhook_id: str) -> list[dict[str, Any]]:
    """Every delivery of a subscription, oldest first."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"limit": "100", **({"after": after} if after else {})}
        page = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params=params)
        assert page.status_code == 200, brief(page)
        body = page.json()
        found += body["items"]
        after = body["next"]
        if after is None:
            return list(reversed(found))


def settled(client: httpx.Client, webhook_id: str, count: int) -> list[dict[str, Any]]:
    """The subscription's deliveries once there are `count` and none is pending (a receiver
    has an answer a moment before the server records it)."""

    def check() -> list[dict[str, Any]] | None:
        found = deliveries(client, webhook_id)
        done = len(found) == count and all(d["state"] == "delivered" for d in found)
        return found if done else None

    found: list[dict[str, Any]] = eventually(check, what=f"{count} deliveries recorded")
    return found


def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (and return it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        time.sleep(0.1)
