"""The event outbox: publishing in the caller's transaction, and the dispatcher job that hands
committed events to the consumers.

- `Outbox.publish(conn, *events)` inserts the events and enqueues the dispatch job (dedupe key
  `events.dispatch`) in the caller's transaction: both commit with the change or neither does,
  so an event committed just before a crash is dispatched after the restart, and a rolled-back
  change leaves no event.
- `Dispatcher` (job kind `events.dispatch`) first detaches its own dedupe key, so that an event
  committed while it runs enqueues a new dispatch job instead of being folded into this one
  (which may already have looked); then, in batches, it takes undispatched events in id order,
  hands them to every consumer and stamps them dispatched, all in one write transaction per
  batch. Dispatchers exclude each other (PostgreSQL: a transaction-level advisory lock; SQLite:
  one writer at a time), so consumers see events in outbox order. A schedule runs it every
  minute as well (a safety net), and `events.prune` deletes dispatched events after the
  retention period.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, text, update

from trustyard.db.engine import write_tx
from trustyard.db.tables import event_outbox, jobs
from trustyard.events import Event, EventConsumer, EventType, utc_now
from trustyard.jobs.housekeeping import BatchedPrune
from trustyard.jobs.interfaces import Clock, JobContext, JobInterrupted
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.scheduler import ScheduleSpec

log = logging.getLogger(__name__)

DISPATCH_KIND = "events.dispatch"
PRUNE_KIND = "events.prune"
DISPATCH_SCHEDULE = ScheduleSpec("events.dispatch", "* * * * *", DISPATCH_KIND)
PRUNE_SCHEDULE = ScheduleSpec("events.prune", "41 3 * * *", PRUNE_KIND)
BATCH = 500
# pg_advisory_xact_lock key of the dispatcher ("trustyev" as an integer).
_DISPATCH_LOCK = int.from_bytes(b"trustyev", "big") >> 1

_INSERT = insert(event_outbox)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        _utc(row.created_at),
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


class Outbox:
    """What writers use: `publish` in the transaction of the change.

    `wanted` (given by the composition root) says, in that same transaction, whether any
    consumer listens at all (today: an active webhook subscription exists). When none does,
    nothing is written: a subscription only ever receives events that happen after it is
    made, so skipping them is invisible, and a push then costs no outbox row, no dispatch job
    and no dispatcher run."""

    def __init__(
        self,
        queue: SqlJobQueue | None,
        store: OutboxStore | None = None,
        wanted: Callable[[Connection], bool] | None = None,
    ) -> None:
        self.queue = queue  # None: store only (nothing will dispatch: tests of the store)
        self.store = store or OutboxStore()
        self.wanted = wanted

    def publish(self, conn: Connection, *events: Event) -> None:
        if not events:
            return
        if self.wanted is not None and not self.wanted(conn):
            return
        self.store.insert(conn, events)
        if self.queue is not None:
            self.queue.enqueue(conn, DISPATCH_KIND, dedupe_key=DISPATCH_KIND)


def detach_dedupe_key(conn: Connection, job_id: int, key: str) -> bool:
    """Let the running job `job_id` give up its dedupe key: an enqueue with that key then
    creates a new job instead of returning this one. Returns whether it held the key."""
    result = conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.dedupe_key == key).values(dedupe_key=None)
    )
    return result.rowcount > 0


def lock_dispatch(conn: Connection) -> None:
    """Serialize dispatchers until the transaction ends (SQLite writers already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DISPATCH_LOCK})


class Dispatcher:
    """The `events.dispatch` job: hand every committed, undispatched event to the consumers.
    Idempotent: what is dispatched is stamped in the transaction that consumed it."""

    def __init__(
        self,
        engine: Engine,
        consumers: Sequence[EventConsumer],
        store: OutboxStore | None = None,
        *,
        batch: int = BATCH,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.consumers = tuple(consumers)
        self.store = store or OutboxStore()
        self.batch = batch
        self.clock = clock

    def __call__(self, job: JobContext) -> None:
        with write_tx(self.engine) as conn:
            detach_dedupe_key(conn, job.id, DISPATCH_KIND)
        while self.dispatch_batch() == self.batch:
            if job.should_stop():
                raise JobInterrupted

    def dispatch_batch(self) -> int:
        """Dispatch up to one batch; returns how many events it took."""
        with write_tx(self.engine) as conn:
            lock_dispatch(conn)
            events = self.store.undispatched(conn, self.batch)
            if not events:
                return 0
            for consumer in self.consumers:
                consumer.consume(conn, events)
            self.store.mark_dispatched(
                conn, [event.seq for event in events if event.seq is not None], self.clock()
            )
        log.debug("dispatched %d events", len(events))
        return len(events)


def PruneEvents(
    engine: Engine,
    retention: timedelta,
    store: OutboxStore | None = None,
    clock: Clock = utc_now,
) -> BatchedPrune:
    """The `events.prune` job: delete events dispatched longer than `retention` ago, a
    thousand per transaction."""
    return BatchedPrune(engine, retention, (store or OutboxStore()).prune, clock)
