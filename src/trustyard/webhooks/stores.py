"""All SQL of webhooks. Functions take the caller's connection; none commits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, text, update

from trustyard.db.sql import keyset
from trustyard.db.tables import event_outbox, jobs, webhook_attempts, webhook_deliveries
from trustyard.db.tables import webhook_subscriptions as subs
from trustyard.events.model import Event, EventType
from trustyard.events.stores import event_of
from trustyard.kit.clock import utc_or_none
from trustyard.webhooks.interfaces import (
    Attempt,
    Delivery,
    DeliveryKind,
    DeliveryState,
    PayloadFormat,
    Scope,
    Subscription,
)

PENDING = DeliveryState.PENDING.value


def _when(moment: datetime | None) -> datetime:
    found = utc_or_none(moment)
    assert found is not None
    return found


def encode_types(types: Iterable[EventType]) -> str:
    return json.dumps(sorted(t.value for t in types))


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        public_id=row.public_id,
        scope=Scope(row.scope),
        target=row.target,
        url=row.url,
        format=PayloadFormat(row.format),
        event_types=frozenset(EventType(t) for t in json.loads(row.event_types)),
        secret=row.secret,
        ca_bundle=row.ca_bundle,
        tls_verify=bool(row.tls_verify),
        description=row.description,
        active=bool(row.active),
        inactive_reason=row.inactive_reason,
        inactive_since=utc_or_none(row.inactive_since),
        failing_since=utc_or_none(row.failing_since),
        last_success_at=utc_or_none(row.last_success_at),
        last_failure_at=utc_or_none(row.last_failure_at),
        created_by=row.created_by,
        created_at=_when(row.created_at),
        updated_at=_when(row.updated_at),
    )


_DELIVERY_COLUMNS = (
    webhook_deliveries.c.id.label("delivery_id"),
    webhook_deliveries.c.subscription_id,
    webhook_deliveries.c.kind,
    webhook_deliveries.c.redelivery_of,
    webhook_deliveries.c.state,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.created_at.label("delivery_created_at"),
    webhook_deliveries.c.delivered_at,
    webhook_deliveries.c.last_attempt_at,
    webhook_deliveries.c.last_status,
    webhook_deliveries.c.last_error,
    *event_outbox.c,
)
_DELIVERIES = webhook_deliveries.join(
    event_outbox, event_outbox.c.id == webhook_deliveries.c.event_id
)


def _delivery(row: Any, history: Sequence[Attempt] = ()) -> Delivery:
    return Delivery(
        id=row.delivery_id,
        subscription_id=row.subscription_id,
        event=event_of(row),
        kind=DeliveryKind(row.kind),
        redelivery_of=row.redelivery_of,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        created_at=_when(row.delivery_created_at),
        delivered_at=utc_or_none(row.delivered_at),
        last_attempt_at=utc_or_none(row.last_attempt_at),
        last_status=row.last_status,
        last_error=row.last_error,
        history=tuple(history),
    )


_WANTS_ONE_OF: dict[frozenset[EventType], Any] = {}


def _record_statement(delivered: bool) -> Any:
    values: dict[str, Any] = {
        "attempts": webhook_deliveries.c.attempts + 1,
        "last_attempt_at": bindparam("b_at"),
        "last_status": bindparam("b_status"),
        "last_error": bindparam("b_error"),
    }
    if delivered:
        values |= {"state": DeliveryState.DELIVERED.value, "delivered_at": bindparam("b_at")}
    return (
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == bindparam("b_id"))
        .values(**values)
    )


# An attempt's changes to its delivery (executemany), by whether it delivered.
_RECORD = {delivered: _record_statement(delivered) for delivered in (True, False)}


# The advisory-lock key space of webhook subscriptions: "ty" in the top 16 bits, the id below.
_SUBSCRIPTION_LOCKS = 0x7479 << 48


class WebhookStore:
    # --- subscriptions ---------------------------------------------------------------------
    def insert_subscription(self, conn: Connection, values: dict[str, Any]) -> int:
        result = conn.execute(insert(subs).values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def lock_subscription(self, conn: Connection, subscription_id: int) -> None:
        """A PostgreSQL advisory lock on the subscription until the transaction ends (nothing
        on SQLite, whose writers run one at a time). Whoever queues a delivery job and the job
        that gives up its dedupe key both take it first, so a delivery committed while the job
        was finishing is either seen by the job or gets a job of its own, never neither. An
        advisory lock, not the row's: delivery rows hold a key-share lock on the subscription
        through their foreign key, and upgrading past it could deadlock."""
        if conn.dialect.name == "postgresql":
            key = _SUBSCRIPTION_LOCKS | (subscription_id & 0xFFFFFFFFFFFF)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def subscription(self, conn: Connection, subscription_id: int) -> Subscription | None:
        row = conn.execute(select(subs).where(subs.c.id == subscription_id)).first()
        return _subscription(row) if row else None

    def by_public_id(self, conn: Connection, public_id: str) -> Subscription | None:
        row = conn.execute(select(subs).where(subs.c.public_id == public_id)).first()
        return _subscription(row) if row else None

    def list_subscriptions(
        self,
        conn: Connection,
        limit: int,
        after: int | None = None,
        scope: Scope | None = None,
        target: str | None = None,
    ) -> list[Subscription]:
        """In id order, after the subscription whose id is `after`."""
        query = keyset(select(subs), subs.c.id, after, limit)
        if scope is not None:
            query = query.where(subs.c.scope == scope.value)
        if target is not None:
            query = query.where(subs.c.target == target)
        return [_subscription(row) for row in conn.execute(query)]

    def update_subscription(self, conn: Connection, subscription_id: int, **values: Any) -> None:
        conn.execute(update(subs).where(subs.c.id == subscription_id).values(**values))

    def delete_subscription(self, conn: Connection, subscription_id: int) -> None:
        conn.execute(delete(subs).where(subs.c.id == subscription_id))

    def active_for(self, conn: Connection, events: Sequence[Event]) -> list[Subscription]:
        """Active subscriptions that may want some of `events` (`Subscription.wants` decides
        per event)."""
        repositories = sorted({e.repository for e in events if e.repository})
        namespaces = sorted({e.namespace for e in events if e.namespace})
        scoped = [subs.c.scope == Scope.REGISTRY.value]
        if repositories:
            scoped.append(
                and_(subs.c.scope == Scope.REPOSITORY.value, subs.c.target.in_(repositories))
            )
        if namespaces:
            scoped.append(
                and_(subs.c.scope == Scope.NAMESPACE.value, subs.c.target.in_(namespaces))
            )
        query = select(subs).where(subs.c.active.is_(True), or_(*scoped)).order_by(subs.c.id)
        return [_subscription(row) for row in conn.execute(query)]

    def any_wants_one_of(self, conn: Connection, event_types: frozenset[EventType]) -> bool:
        """Whether an active subscription asks for any of `event_types` (the outbox stores
        events only then: a registry-wide push subscription makes scans' SCAN_COMPLETED
        events cost nothing)."""
        query = _WANTS_ONE_OF.get(event_types)
        if query is None:
            query = (
                select(subs.c.id)
                .where(
                    subs.c.active.is_(True),
                    or_(
                        *(subs.c.event_types.contains(f'"{t.value}"') for t in sorted(event_types))
                    ),
                )
                .limit(1)
            )
            if len(_WANTS_ONE_OF) < 256:  # combinations of event types: few
                _WANTS_ONE_OF[event_types] = query
        return conn.scalar(query) is not None

    def any_wants(self, conn: Connection, event_type: EventType) -> bool:
        query = (
            select(subs.c.id)
            .where(subs.c.active.is_(True), subs.c.event_types.contains(f'"{event_type.value}"'))
            .limit(1)
        )
        return conn.scalar(query) is not None

    def with_pending(self, conn: Connection) -> list[int]:
        """Active subscriptions with deliveries waiting."""
        query = (
            select(webhook_deliveries.c.subscription_id)
            .join(subs, subs.c.id == webhook_deliveries.c.subscription_id)
            .where(webhook_deliveries.c.state == PENDING, subs.c.active.is_(True))
            .distinct()
        )
        return sorted(conn.scalars(query))

    # --- deliveries ------------------------------------------------------------------------
    def insert_deliveries(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(insert(webhook_deliveries), rows)

    def insert_delivery(self, conn: Connection, values: dict[str, Any]) -> int:
        result = conn.execute(insert(webhook_deliveries).values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def next_pending(self, conn: Connection, subscription_id: int) -> Delivery | None:
        found = self.pending(conn, subscription_id, 1)
        return found[0] if found else None

    def pending(self, conn: Connection, subscription_id: int, limit: int) -> list[Delivery]:
        """The subscription's oldest pending deliveries, oldest first (without history)."""
        query = (
            select(*_DELIVERY_COLUMNS)
            .select_from(_DELIVERIES)
            .where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.state == PENDING,
            )
            .order_by(webhook_deliveries.c.id)
            .limit(limit)
        )
        return [_delivery(row) for row in conn.execute(query)]

    def has_pending(self, conn: Connection, subscription_id: int) -> bool:
        query = (
            select(webhook_deliveries.c.id)
            .where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.state == PENDING,
            )
            .limit(1)
        )
        return conn.scalar(query) is not None

    def delivery(self, conn: Connection, subscription_id: int, delivery_id: int) -> Delivery | None:
        found = self._deliveries(
            conn,
            and_(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.id == delivery_id,
            ),
            1,
        )
        return found[0] if found else None

    def deliveries(
        self, conn: Connection, subscription_id: int, limit: int, before: int | None = None
    ) -> list[Delivery]:
        """Newest first, with their attempts."""
        where = webhook_deliveries.c.subscription_id == subscription_id
        if before is not None:
            where = and_(where, webhook_deliveries.c.id < before)
        return self._deliveries(conn, where, limit)

    def _deliveries(self, conn: Connection, where: Any, limit: int) -> list[Delivery]:
        query = (
            select(*_DELIVERY_COLUMNS)
            .select_from(_DELIVERIES)
            .where(where)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        rows = list(conn.execute(query))
        history: dict[int, list[Attempt]] = {row.delivery_id: [] for row in rows}
        if history:
            attempts = conn.execute(
                select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id.in_(list(history)))
                .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt)
            )
            for item in attempts:
                history[item.delivery_id].append(
                    Attempt(
                        item.attempt,
                        _when(item.at),
                        item.status_code,
                        item.latency_ms,
                        item.error,
                        item.response_excerpt,
                    )
                )
        return [_delivery(row, history[row.delivery_id]) for row in rows]

    def record_attempt(
        self, conn: Connection, delivery: Delivery, attempt: Attempt, delivered: bool
    ) -> None:
        self.record_attempts(conn, [(delivery, attempt, delivered)])

    def record_attempts(
        self, conn: Connection, done: Sequence[tuple[Delivery, Attempt, bool]]
    ) -> None:
        """Record attempts (delivery, attempt, whether it delivered) in one statement per
        kind of change: a batch of deliveries costs three statements, not three each."""
        if not done:
            return
        conn.execute(
            insert(webhook_attempts),
            [
                {
                    "delivery_id": delivery.id,
                    "attempt": attempt.attempt,
                    "at": attempt.at,
                    "status_code": attempt.status_code,
                    "latency_ms": attempt.latency_ms,
                    "error": attempt.error,
                    "response_excerpt": attempt.response_excerpt,
                }
                for delivery, attempt, _ in done
            ],
        )
        for delivered in (True, False):
            rows = [
                {
                    "b_id": delivery.id,
                    "b_at": attempt.at,
                    "b_status": attempt.status_code,
                    "b_error": attempt.error,
                }
                for delivery, attempt, ok in done
                if ok is delivered
            ]
            if rows:
                conn.execute(_RECORD[delivered], rows)

    def wake(self, conn: Connection, dedupe_key: str, now: datetime) -> None:
        """Make the queued job holding `dedupe_key` due now (a retry waiting for its backoff
        runs at once: the owner asked for a delivery)."""
        conn.execute(
            update(jobs)
            .where(
                jobs.c.dedupe_key == dedupe_key, jobs.c.state == "queued", jobs.c.run_after > now
            )
            .values(run_after=now)
        )
