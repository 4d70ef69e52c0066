"""The bodies and headers of deliveries, in the subscription's format.

- `dtr` (Docker Trusted Registry's shape), `application/json`:
  `{"type": "TAG_PUSH", "createdAt": "2026-...Z", "contents": {...}}`
- `cloudevents` (CloudEvents 1.0, structured mode), `application/cloudevents+json`:
  `{"specversion": "1.0", "id": ..., "source": ..., "type": "trustyard.tag.push",
  "subject": "acme/app", "time": ..., "datacontenttype": "application/json", "data": {...}}`

The same event renders to the same bytes at every attempt; `id` (CloudEvents) and the
`X-Trustyard-Event-Id` header stay the same on retries and redeliveries, so receivers can
drop duplicates (delivery is at least once).
"""

from __future__ import annotations

import json
from typing import Any

from trustyard.events.model import Event, timestamp
from trustyard.webhooks.interfaces import PayloadFormat
from trustyard.webhooks.signing import SIGNATURE_HEADER, signature

CLOUDEVENTS_TYPE_PREFIX = "trustyard."
JSON = "application/json"
CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"


def cloudevents_type(event: Event) -> str:
    return CLOUDEVENTS_TYPE_PREFIX + event.type.dotted


def document(event: Event, fmt: PayloadFormat, base_url: str = "") -> dict[str, Any]:
    if fmt is PayloadFormat.DTR:
        return {
            "type": event.type.value,
            "createdAt": timestamp(event.created_at),
            "contents": dict(event.contents),
        }
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": f"{base_url}/v2/{event.repository}" if event.repository else f"{base_url}/",
        "type": cloudevents_type(event),
        "time": timestamp(event.created_at),
        "datacontenttype": JSON,
        "data": dict(event.contents),
    }
    if event.repository:
        body["subject"] = event.repository
    return body


def render(
    event: Event, fmt: PayloadFormat, secret: str, delivery_id: int, base_url: str = ""
) -> tuple[bytes, dict[str, str]]:
    """The body and the headers of one delivery of `event`."""
    body = json.dumps(
        document(event, fmt, base_url), separators=(",", ":"), ensure_ascii=False
    ).encode()
    headers = {
        "Content-Type": JSON if fmt is PayloadFormat.DTR else CLOUDEVENTS_JSON,
        "X-Trustyard-Event": event.type.value,
        "X-Trustyard-Event-Id": event.id,
        "X-Trustyard-Delivery": str(delivery_id),
        SIGNATURE_HEADER: signature(secret, body),
    }
    return body, headers
