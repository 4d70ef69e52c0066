"""The PROMOTION event: emitted now (no longer reserved), its contents as README documents
them, and the webhook test endpoint's sample built by the same constructor."""

from __future__ import annotations

from datetime import UTC, datetime

from trustyard.events.model import EMITTED, RESERVED, EventType, promotion, sample

KEYS = {
    "namespace",
    "repository",
    "author",
    "sourceRepository",
    "sourceReference",
    "tag",
    "digest",
    "imageName",
    "policyId",
    "trigger",
    "promotedAt",
}


def test_promotion_is_emitted_not_reserved() -> None:
    assert EventType.PROMOTION in EMITTED
    assert EventType.PROMOTION not in RESERVED


def test_a_promotion_names_its_target_its_source_and_what_set_it_off() -> None:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    event = promotion(
        "acme/prod",
        "1.2-prod",
        "sha256:" + "a" * 64,
        "acme/qa",
        "1.2",
        "alice",
        policy_id=None,
        trigger="manual",
        at=at,
        facts={"promotion_depth": 0},
    )
    assert (event.type, event.repository, event.actor, event.created_at) == (
        EventType.PROMOTION,
        "acme/prod",
        "alice",
        at,
    )
    assert dict(event.contents) == {
        "namespace": "acme",
        "repository": "acme/prod",
        "author": "alice",
        "sourceRepository": "acme/qa",
        "sourceReference": "1.2",
        "tag": "1.2-prod",
        "digest": "sha256:" + "a" * 64,
        "imageName": "acme/prod:1.2-prod",
        "policyId": None,
        "trigger": "manual",
        "promotedAt": "2026-12-01T09:30:00Z",
    }
    assert dict(event.facts) == {"promotion_depth": 0}


def test_the_sample_has_a_real_promotions_contents() -> None:
    made = sample(EventType.PROMOTION, "acme/prod", "alice")
    assert set(made.contents) == KEYS | {"sample"}
    assert made.contents["sample"] is True
    assert made.contents["repository"] == "acme/prod"
