"""Webhook subscriptions: create, change, delete, test, redeliver, and read the delivery history.

Every method takes the caller's connection and never commits. Who may manage a subscription
is decided by the edge (a subscription belongs to its scope: the repository's administrators,
the namespace's owners, or the system administrators manage it). Deliveries are enqueued in
the caller's transaction, so they exist exactly when the change commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from trustyard.errors import Invalid, NotFound
from trustyard.events.model import EventType, sample
from trustyard.events.stores import OutboxStore
from trustyard.jobs.queue import SqlJobQueue
from trustyard.kit.clock import Clock, utc_now
from trustyard.webhooks.destinations import DestinationPolicy, parse_url
from trustyard.webhooks.interfaces import (
    Delivery,
    DeliveryKind,
    DeliveryState,
    PayloadFormat,
    Scope,
    Subscription,
)
from trustyard.webhooks.jobs import deliver_key, enqueue_delivery
from trustyard.webhooks.sender import tls_context
from trustyard.webhooks.signing import SecretBox, generate_secret
from trustyard.webhooks.stores import WebhookStore, encode_types

MIN_SECRET = 16
MAX_SECRET = 256
MAX_CA_BUNDLE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Created:
    subscription: Subscription
    secret: str  # shown once


def _check_types(types: Collection[EventType]) -> frozenset[EventType]:
    if not types:
        raise Invalid("a webhook subscribes to at least one event type")
    return frozenset(types)


def _check_secret(secret: str) -> str:
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or not secret.isprintable():
        raise Invalid(f"a webhook secret has {MIN_SECRET} to {MAX_SECRET} printable characters")
    return secret


def _check_ca_bundle(ca_bundle: str | None) -> str | None:
    if not ca_bundle:
        return None
    if len(ca_bundle) > MAX_CA_BUNDLE:
        raise Invalid("ca_bundle is at most 64 KiB of PEM")
    tls_context(ca_bundle, True)  # Invalid unless it holds a certificate
    return ca_bundle


class WebhookService:
    def __init__(
        self,
        box: SecretBox,
        policy: DestinationPolicy,
        queue: SqlJobQueue,
        store: WebhookStore | None = None,
        outbox: OutboxStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.box = box
        self.policy = policy
        self.queue = queue
        self.store = store or WebhookStore()
        self.outbox = outbox or OutboxStore()
        self.clock = clock

    # --- subscriptions -------------------------------------------------------------------
    def check_destination(self, url: str) -> None:
        """The SSRF check of a new URL (it resolves the host name). Call it before opening the
        transaction that stores the URL: a slow DNS answer must not hold the writer lock.
        `create` and `update` only check the URL's form."""
        self.policy.check(url)

    def create(
        self,
        conn: Connection,
        *,
        scope: Scope,
        target: str,
        url: str,
        event_types: Collection[EventType],
        actor: str,
        fmt: PayloadFormat = PayloadFormat.DTR,
        secret: str | None = None,
        ca_bundle: str | None = None,
        tls_verify: bool = True,
        description: str = "",
    ) -> Created:
        """A new, active subscription (its URL checked by `check_destination` first)."""
        types = _check_types(event_types)
        parse_url(url)
        plain = _check_secret(secret) if secret is not None else generate_secret()
        now = self.clock()
        public_id = "wh_" + secrets.token_hex(8)
        self.store.insert_subscription(
            conn,
            {
                "public_id": public_id,
                "scope": scope.value,
                "target": target if scope is not Scope.REGISTRY else "",
                "url": url,
                "format": fmt.value,
                "event_types": encode_types(types),
                "secret": self.box.seal(plain),
                "ca_bundle": _check_ca_bundle(ca_bundle),
                "tls_verify": tls_verify,
                "description": description,
                "active": True,
                "created_by": actor,
                "created_at": now,
                "updated_at": now,
            },
        )
        return Created(self.get(conn, public_id), plain)

    def get(self, conn: Connection, public_id: str) -> Subscription:
        found = self.store.by_public_id(conn, public_id) if public_id.isascii() else None
        if found is None:
            raise NotFound("webhook", public_id[:64])
        return found

    def page(self, conn: Connection, limit: int, after: int | None = None) -> list[Subscription]:
        return self.store.list_subscriptions(conn, limit, after)

    def update(
        self,
        conn: Connection,
        subscription: Subscription,
        *,
        url: str | None = None,
        event_types: Collection[EventType] | None = None,
        fmt: PayloadFormat | None = None,
        ca_bundle: str | None = None,
        tls_verify: bool | None = None,
        description: str | None = None,
        active: bool | None = None,
        secret: str | None = None,
        rotate_secret: bool = False,
    ) -> tuple[Subscription, str | None]:
        """Change what is given; `ca_bundle=""` removes the bundle. Turning an inactive
        subscription on clears the reason and sends what waits. A new secret (given, or
        generated by `rotate_secret`) is returned, to be shown once."""
        now = self.clock()
        values: dict[str, Any] = {}
        if url is not None and url != subscription.url:
            parse_url(url)  # and `check_destination` before the transaction
            values["url"] = url
        if event_types is not None:
            values["event_types"] = encode_types(_check_types(event_types))
        if fmt is not None:
            values["format"] = fmt.value
        if ca_bundle is not None:
            values["ca_bundle"] = _check_ca_bundle(ca_bundle)
        if tls_verify is not None:
            values["tls_verify"] = tls_verify
        if description is not None:
            values["description"] = description
        new_secret = None
        if secret is not None or rotate_secret:
            new_secret = _check_secret(secret) if secret is not None else generate_secret()
            values["secret"] = self.box.seal(new_secret)
        resume = active is True and not subscription.active
        if active is not None and active != subscription.active:
            values["active"] = active
            if active:
                values |= {"inactive_reason": None, "inactive_since": None, "failing_since": None}
            else:
                values |= {"inactive_reason": "turned off by its owner", "inactive_since": now}
        if values:
            self.store.update_subscription(conn, subscription.id, updated_at=now, **values)
        if resume and self.store.has_pending(conn, subscription.id):
            self._kick(conn, subscription.id)
        return self.get(conn, subscription.public_id), new_secret

    def delete(self, conn: Connection, subscription: Subscription) -> None:
        """Delete it with its deliveries and their history."""
        self.store.delete_subscription(conn, subscription.id)

    # --- deliveries ----------------------------------------------------------------------
    def test(
        self,
        conn: Connection,
        subscription: Subscription,
        event_type: EventType | None,
        actor: str | None,
    ) -> Delivery:
        """Queue a sample event of `event_type` (default: the first the subscription wants)
        behind the subscription's pending deliveries."""
        chosen = event_type or min(subscription.event_types, key=list(EventType).index)
        about = subscription.target if subscription.scope is Scope.REPOSITORY else None
        if about is None:
            namespace = subscription.target or "library"
            about = f"{namespace}/sample"
        now = self.clock()
        seq = self.outbox.insert_dispatched(conn, sample(chosen, about, actor), now)
        return self._add(conn, subscription, seq, DeliveryKind.TEST, None)

    def deliveries(
        self, conn: Connection, subscription: Subscription, limit: int, before: int | None
    ) -> list[Delivery]:
        return self.store.deliveries(conn, subscription.id, limit, before)

    def redeliver(self, conn: Connection, subscription: Subscription, delivery_id: int) -> Delivery:
        """Queue the event of a past delivery again, as a new delivery (same event id)."""
        original = self.store.delivery(conn, subscription.id, delivery_id)
        if original is None:
            raise NotFound("delivery", str(delivery_id))
        assert original.event.seq is not None
        return self._add(
            conn, subscription, original.event.seq, DeliveryKind.REDELIVERY, original.id
        )

    def _add(
        self,
        conn: Connection,
        subscription: Subscription,
        event_seq: int,
        kind: DeliveryKind,
        redelivery_of: int | None,
    ) -> Delivery:
        delivery_id = self.store.insert_delivery(
            conn,
            {
                "subscription_id": subscription.id,
                "event_id": event_seq,
                "kind": kind.value,
                "redelivery_of": redelivery_of,
                "state": DeliveryState.PENDING.value,
                "attempts": 0,
                "created_at": self.clock(),
            },
        )
        if subscription.active:
            self._kick(conn, subscription.id)
        added = self.store.delivery(conn, subscription.id, delivery_id)
        assert added is not None
        return added

    def _kick(self, conn: Connection, subscription_id: int) -> None:
        """Make sure a delivery job runs for the subscription now (a retry waiting for its
        backoff is brought forward: its owner asked for a delivery)."""
        enqueue_delivery(self.queue, conn, subscription_id)
        self.store.wake(conn, deliver_key(subscription_id), self.clock())
