"""The outbox's background work.

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

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, Engine, text

from trustyard.db.engine import write_tx
from trustyard.events.model import EventConsumer
from trustyard.events.stores import OutboxStore, detach_dedupe_key
from trustyard.jobs.housekeeping import BatchedPrune
from trustyard.jobs.interfaces import JobContext, JobInterrupted
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.kit.clock import Clock, utc_now

log = logging.getLogger(__name__)

DISPATCH_KIND = "events.dispatch"
PRUNE_KIND = "events.prune"
DISPATCH_SCHEDULE = ScheduleSpec("events.dispatch", "* * * * *", DISPATCH_KIND)
PRUNE_SCHEDULE = ScheduleSpec("events.prune", "41 3 * * *", PRUNE_KIND)
BATCH = 500
# pg_advisory_xact_lock key of the dispatcher ("trustyev" as an integer).
_DISPATCH_LOCK = int.from_bytes(b"trustyev", "big") >> 1


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
