"""All SQL of the event outbox: events stored, read in order, stamped dispatched and pruned
(`OutboxStore`), and `detach_dedupe_key`, which the dispatcher uses on its own job row.
Functions take the caller's connection; none commits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from trustyard.db.tables import event_outbox, jobs
from trustyard.events.model import Event, EventType
from trustyard.kit.clock import utc

_INSERT = insert(event_outbox)


def event_row(event: Event, dispatched_at: datetime | None = None) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "type": event.type.value,
        "repository": event.repository,
        "namespace": event.namespace,
        "actor": event.actor[:128] if event.actor else None,
        "contents": json.dumps(event.contents, separators=(",", ":")),
        "created_at": event.created_at,
        "dispatched_at": dispatched_at,
    }


def event_of(row: Any) -> Event:
    return Event(
        EventType(row.type),
        row.repository,
        row.actor,
        json.loads(row.contents),
        utc(row.created_at),
        row.event_id,
        row.id,
    )


class OutboxStore:
    """All SQL of the outbox. Functions take the caller's connection; none commits."""

    def insert(self, conn: Connection, events: Iterable[Event]) -> None:
        rows = [event_row(event) for event in events]
        if rows:
            conn.execute(_INSERT, rows)

    def insert_dispatched(self, conn: Connection, event: Event, now: datetime) -> int:
        """Store an event no consumer must see (a webhook test sample); returns its row id."""
        result = conn.execute(_INSERT, event_row(event, dispatched_at=now))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def undispatched(self, conn: Connection, limit: int) -> list[Event]:
        query = (
            select(event_outbox)
            .where(event_outbox.c.dispatched_at.is_(None))
            .order_by(event_outbox.c.id)
            .limit(limit)
        )
        return [event_of(row) for row in conn.execute(query)]

    def mark_dispatched(self, conn: Connection, seqs: Sequence[int], now: datetime) -> None:
        conn.execute(
            update(event_outbox)
            .where(event_outbox.c.id.in_(bindparam("ids", expanding=True)))
            .values(dispatched_at=now),
            {"ids": list(seqs)},
        )

    def get(self, conn: Connection, seq: int) -> Event | None:
        row = conn.execute(select(event_outbox).where(event_outbox.c.id == seq)).first()
        return event_of(row) if row else None

    def prune(self, conn: Connection, cutoff: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` events dispatched before `cutoff` (their deliveries go with
        them); returns how many."""
        ids = list(
            conn.scalars(
                select(event_outbox.c.id)
                .where(event_outbox.c.dispatched_at < cutoff)
                .order_by(event_outbox.c.id)
                .limit(limit)
            )
        )
        if ids:
            conn.execute(delete(event_outbox).where(event_outbox.c.id.in_(ids)))
        return len(ids)


def detach_dedupe_key(conn: Connection, job_id: int, key: str) -> bool:
    """Let the running job `job_id` give up its dedupe key: an enqueue with that key then
    creates a new job instead of returning this one. Returns whether it held the key."""
    result = conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.dedupe_key == key).values(dedupe_key=None)
    )
    return result.rowcount > 0
