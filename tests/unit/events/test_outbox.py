"""The outbox on SQLite and PostgreSQL: an event exists exactly when the change that published
it commits (with its dispatch job), and the dispatcher hands each committed event to every
consumer once, in outbox order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, func, select

from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import event_outbox, jobs
from trustyard.events.jobs import DISPATCH_KIND, Dispatcher, PruneEvents
from trustyard.events.model import Event, EventType, tag_pushed
from trustyard.events.outbox import Outbox
from trustyard.events.stores import OutboxStore
from trustyard.jobs.interfaces import Claim, JobContext, JobState
from trustyard.jobs.queue import SqlJobQueue


class Collecting:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def consume(self, conn: Connection, events: Sequence[Event]) -> None:
        self.seen += events


class Failing:
    def consume(self, conn: Connection, events: Sequence[Event]) -> None:
        raise RuntimeError("the consumer broke")


def push(tag: str) -> Event:
    return tag_pushed("acme/app", tag, "sha256:" + "a" * 64, "application/json", "olga")


def context(claim: Claim) -> JobContext:
    return JobContext(claim.id, claim.kind, claim.payload, claim.attempt, claim.max_attempts, "t")


def live_dispatch_jobs(engine: Engine) -> list[tuple[int, str | None]]:
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(jobs.c.id, jobs.c.dedupe_key).where(
                jobs.c.kind == DISPATCH_KIND, jobs.c.state.in_(["queued", "running"])
            )
        )
        return [(row.id, row.dedupe_key) for row in rows]


def stored(engine: Engine) -> list[tuple[str, bool]]:
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(event_outbox.c.event_id, event_outbox.c.dispatched_at).order_by(
                event_outbox.c.id
            )
        )
        return [(row.event_id, row.dispatched_at is not None) for row in rows]


def test_an_event_commits_with_its_change_and_one_dispatch_job(engine: Engine) -> None:
    outbox = Outbox(SqlJobQueue(engine))
    first, second, third = push("a"), push("b"), push("c")
    with write_tx(engine) as conn:
        outbox.publish(conn, first, second)
    with write_tx(engine) as conn:
        outbox.publish(conn, third)
    assert stored(engine) == [(first.id, False), (second.id, False), (third.id, False)]
    [(_, key)] = live_dispatch_jobs(engine)  # the second publish found the queued job
    assert key == DISPATCH_KIND
    with read_tx(engine) as conn:
        event = OutboxStore().undispatched(conn, 10)[0]
    assert (event.id, event.type, event.repository, event.actor) == (
        first.id,
        EventType.TAG_PUSH,
        "acme/app",
        "olga",
    )
    assert event.contents == first.contents
    assert event.created_at == first.created_at
    assert event.namespace == "acme"


def test_a_rolled_back_change_leaves_no_event_and_no_job(engine: Engine) -> None:
    outbox = Outbox(SqlJobQueue(engine))

    def change() -> None:
        with write_tx(engine) as conn:
            outbox.publish(conn, push("doomed"))
            raise RuntimeError("validation failed")

    with pytest.raises(RuntimeError, match="validation failed"):
        change()
    assert stored(engine) == []
    assert live_dispatch_jobs(engine) == []


def test_the_dispatcher_hands_each_event_once_in_order(engine: Engine) -> None:
    queue = SqlJobQueue(engine)
    outbox = Outbox(queue)
    events = [push(f"t{index}") for index in range(7)]
    for event in events:
        with write_tx(engine) as conn:
            outbox.publish(conn, event)
    first, second = Collecting(), Collecting()
    dispatcher = Dispatcher(engine, [first, second], batch=3)
    [claim] = queue.claim("w", [DISPATCH_KIND], 1)
    dispatcher(context(claim))
    assert [e.id for e in first.seen] == [e.id for e in events]
    assert [e.id for e in second.seen] == [e.id for e in events]
    assert [e.seq for e in first.seen] == sorted(e.seq for e in first.seen if e.seq)
    assert all(done for _, done in stored(engine))
    dispatcher(context(claim))  # again: nothing new
    assert len(first.seen) == len(events)


def test_a_running_dispatcher_lets_new_events_enqueue_a_new_job(engine: Engine) -> None:
    """The dispatcher gives up its dedupe key first: an event committed while it still runs
    (after it looked) gets a dispatch job of its own instead of being folded into this one."""
    queue = SqlJobQueue(engine)
    outbox = Outbox(queue)
    with write_tx(engine) as conn:
        outbox.publish(conn, push("before"))
    [claim] = queue.claim("w", [DISPATCH_KIND], 1)
    consumer = Collecting()
    Dispatcher(engine, [consumer])(context(claim))
    late = push("late")
    with write_tx(engine) as conn:  # the first job is still running (not reported yet)
        outbox.publish(conn, late)
    live = dict(live_dispatch_jobs(engine))
    assert live[claim.id] is None
    [new_job] = [job_id for job_id, key in live.items() if key == DISPATCH_KIND]
    assert new_job != claim.id
    assert queue.succeed(claim)
    [next_claim] = queue.claim("w", [DISPATCH_KIND], 1)
    assert next_claim.id == new_job
    Dispatcher(engine, [consumer])(context(next_claim))
    assert [e.id for e in consumer.seen][-1] == late.id


def test_a_failing_consumer_leaves_the_events_for_the_next_run(engine: Engine) -> None:
    queue = SqlJobQueue(engine)
    with write_tx(engine) as conn:
        Outbox(queue).publish(conn, push("kept"))
    [claim] = queue.claim("w", [DISPATCH_KIND], 1)
    collecting = Collecting()
    with pytest.raises(RuntimeError, match="the consumer broke"):
        Dispatcher(engine, [collecting, Failing()])(context(claim))
    assert stored(engine)[0][1] is False
    assert queue.fail(claim, "broke") is JobState.QUEUED
    Dispatcher(engine, [collecting])(context(claim))
    assert stored(engine)[0][1] is True


def test_pruning_deletes_only_old_dispatched_events(engine: Engine) -> None:
    store = OutboxStore()
    now = datetime.now(UTC)
    old, recent, waiting = push("old"), push("recent"), push("waiting")
    with write_tx(engine) as conn:
        store.insert_dispatched(conn, old, now - timedelta(days=20))
        store.insert_dispatched(conn, recent, now - timedelta(days=1))
        store.insert(conn, [waiting])
    job = JobContext(1, "events.prune", {}, 1, 1, "t")
    PruneEvents(engine, timedelta(days=14), store, clock=lambda: now)(job)
    with read_tx(engine) as conn:
        left = set(conn.scalars(select(event_outbox.c.event_id)))
        count = conn.scalar(select(func.count()).select_from(event_outbox))
    assert left == {recent.id, waiting.id}
    assert count == 2
