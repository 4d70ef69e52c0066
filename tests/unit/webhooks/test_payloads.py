"""Delivery bodies in both formats and their headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from trustyard.events.model import Event, EventType, sample, tag_pushed
from trustyard.webhooks.interfaces import PayloadFormat
from trustyard.webhooks.payloads import render
from trustyard.webhooks.signing import signature

AT = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def event() -> Event:
    made = tag_pushed("acme/app/web", "v1", "sha256:" + "c" * 64, "application/json", "olga")
    return Event(made.type, made.repository, made.actor, made.contents, AT, "e" * 32)


def test_dtr_shape() -> None:
    body, headers = render(event(), PayloadFormat.DTR, "whsec_x", 41)
    document = json.loads(body)
    assert list(document) == ["type", "createdAt", "contents"]
    assert document["type"] == "TAG_PUSH"
    assert document["createdAt"] == "2030-01-02T03:04:05.678000Z"
    assert document["contents"] == {
        "namespace": "acme",
        "repository": "acme/app/web",
        "author": "olga",
        "tag": "v1",
        "digest": "sha256:" + "c" * 64,
        "mediaType": "application/json",
        "imageName": "acme/app/web:v1",
        "pushedAt": document["contents"]["pushedAt"],
    }
    assert headers == {
        "Content-Type": "application/json",
        "X-Trustyard-Event": "TAG_PUSH",
        "X-Trustyard-Event-Id": "e" * 32,
        "X-Trustyard-Delivery": "41",
        "X-Trustyard-Signature-256": signature("whsec_x", body),
    }


def test_cloudevents_shape() -> None:
    pushed = event()
    body, headers = render(
        pushed, PayloadFormat.CLOUDEVENTS, "whsec_x", 7, base_url="https://reg.example"
    )
    document = json.loads(body)
    assert document == {
        "specversion": "1.0",
        "id": "e" * 32,
        "source": "https://reg.example/v2/acme/app/web",
        "type": "trustyard.tag.push",
        "subject": "acme/app/web",
        "time": "2030-01-02T03:04:05.678000Z",
        "datacontenttype": "application/json",
        "data": dict(pushed.contents),
    }
    assert headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"


def test_every_attempt_renders_the_same_bytes() -> None:
    pushed = event()
    first, _ = render(pushed, PayloadFormat.DTR, "k" * 16, 1)
    again, _ = render(pushed, PayloadFormat.DTR, "k" * 16, 2)
    assert first == again


def test_registry_wide_events_have_no_subject() -> None:
    scanner = sample(EventType.SCANNER_UPDATE_COMPLETED, "acme/app", "admin")
    assert scanner.repository is None
    body, _ = render(scanner, PayloadFormat.CLOUDEVENTS, "k" * 16, 1)
    document = json.loads(body)
    assert "subject" not in document
    assert document["source"] == "/"
    assert document["type"] == "trustyard.scanner.update_completed"
