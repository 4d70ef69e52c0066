"""Records and domain errors of webhooks (transport-free). Missing objects raise the access
domain's `NotFound` and bad input its `Invalid`, so every edge maps them as it already does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from trustyard.errors import Invalid
from trustyard.events.model import Event, EventType


class Scope(StrEnum):
    REPOSITORY = "repository"  # one repository's events
    NAMESPACE = "namespace"  # the events of every repository of an organization or a user
    REGISTRY = "registry"  # everything, registry-wide events included (administrators)


class PayloadFormat(StrEnum):
    DTR = "dtr"  # {"type", "createdAt", "contents"}
    CLOUDEVENTS = "cloudevents"  # CloudEvents 1.0, structured JSON


class DeliveryKind(StrEnum):
    EVENT = "event"
    TEST = "test"  # a sample sent by POST .../test
    REDELIVERY = "redelivery"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"


class DestinationRefused(Invalid):
    """The URL is malformed, or its host resolves to an address webhooks may not reach."""


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted (the passphrase it was sealed with changed)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    public_id: str
    scope: Scope
    target: str  # repository or namespace name; "" for the registry
    url: str
    format: PayloadFormat
    event_types: frozenset[EventType]
    secret: str  # sealed (see webhooks.signing.SecretBox)
    ca_bundle: str | None
    tls_verify: bool
    description: str
    active: bool
    inactive_reason: str | None
    inactive_since: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    def wants(self, event: Event) -> bool:
        """Whether this subscription receives `event` (it must be active, too)."""
        if event.type not in self.event_types:
            return False
        if self.scope is Scope.REGISTRY:
            return True
        if event.repository is None:
            return False
        if self.scope is Scope.NAMESPACE:
            return event.namespace == self.target
        return event.repository == self.target


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    at: datetime
    status_code: int | None  # None: no answer (refused, timeout, TLS failure, SSRF refusal)
    latency_ms: int | None
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    subscription_id: int
    event: Event
    kind: DeliveryKind
    redelivery_of: int | None
    state: DeliveryState
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    history: tuple[Attempt, ...] = ()
