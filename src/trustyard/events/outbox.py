"""Publishing events: `Outbox.publish(conn, *events)` is the one way anything reacts to what
happened. In the caller's transaction it hands the events to the in-transaction consumers,
then inserts them and enqueues the dispatch job (dedupe key `events.dispatch`): all of it
commits with the change or none of it does, so an event committed just before a crash is
dispatched after the restart, and a rolled-back change leaves no event and no reaction.
`events.jobs` hands stored events to the dispatched consumers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from trustyard.events.jobs import DISPATCH_KIND
from trustyard.events.model import Event, EventConsumer, EventType
from trustyard.events.stores import OutboxStore
from trustyard.jobs.queue import SqlJobQueue


class Outbox:
    """What writers use: `publish` in the transaction of the change.

    `wanted` (given by the composition root) says, in that same transaction, whether any
    consumer listens for any of the events' types (today: an active webhook subscription asks
    for one). When none does, nothing is written: a subscription only ever receives events
    that happen after it is made, so skipping them is invisible, and a push (or a scan's
    SCAN_COMPLETED under a push-only subscription) then costs no outbox row, no dispatch job
    and no dispatcher run.

    `inline` consumers (also given by the root) see every published event, stored or not, in
    the publishing transaction, with the events' `facts`."""

    def __init__(
        self,
        queue: SqlJobQueue | None,
        store: OutboxStore | None = None,
        wanted: Callable[[Connection, frozenset[EventType]], bool] | None = None,
        inline: Sequence[EventConsumer] = (),
    ) -> None:
        self.queue = queue  # None: store only (nothing will dispatch: tests of the store)
        self.store = store or OutboxStore()
        self.wanted = wanted
        self.inline = tuple(inline)

    def publish(self, conn: Connection, *events: Event) -> None:
        if not events:
            return
        for consumer in self.inline:
            consumer.consume(conn, events)
        if self.wanted is not None and not self.wanted(conn, frozenset(e.type for e in events)):
            return
        self.store.insert(conn, events)
        if self.queue is not None:
            self.queue.signal(conn, DISPATCH_KIND, DISPATCH_KIND)
