"""webhooks/stores.py on SQLite and PostgreSQL: subscriptions listed in id order by pages
that keep their filters, which active subscriptions an event may concern, deliveries sent
oldest first and listed newest first with their attempts, what an attempt records, and the
per-subscription lock of PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import jobs
from trustyard.events.model import Event, EventType, repository_deleted, tag_pushed
from trustyard.events.stores import OutboxStore
from trustyard.jobs.queue import SqlJobQueue
from trustyard.webhooks.interfaces import Attempt, DeliveryKind, DeliveryState, Scope
from trustyard.webhooks.stores import WebhookStore, encode_types

STORE = WebhookStore()
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)
DIGEST = "sha256:" + "d" * 64


def add_subscription(
    conn: Connection,
    scope: Scope = Scope.REPOSITORY,
    target: str = "acme/app",
    *,
    types: tuple[EventType, ...] = (EventType.TAG_PUSH,),
    active: bool = True,
) -> int:
    values: dict[str, Any] = {
        "public_id": f"wh_{next(_ids):08d}",
        "scope": scope.value,
        "target": target,
        "url": "https://hooks.example/in",
        "format": "dtr",
        "event_types": encode_types(types),
        "secret": "sealed",
        "active": active,
        "created_by": "olga",
        "created_at": T0,
        "updated_at": T0,
    }
    return STORE.insert_subscription(conn, values)


def add_delivery(conn: Connection, subscription_id: int, event: Event | None = None) -> int:
    event = event or tag_pushed("acme/app", "v1", DIGEST, "x", "olga")
    seq = OutboxStore().insert_dispatched(conn, event, T0)
    values = {
        "subscription_id": subscription_id,
        "event_id": seq,
        "kind": DeliveryKind.EVENT.value,
        "state": DeliveryState.PENDING.value,
        "created_at": T0,
    }
    return STORE.insert_delivery(conn, values)


def attempt(number: int, status: int | None, error: str | None = None) -> Attempt:
    at = T0 + timedelta(minutes=number)
    return Attempt(number, at, status, 12, error, "ok" if status else None)


# --- subscriptions ------------------------------------------------------------------------


def test_a_subscription_reads_back_as_stored(engine: Engine) -> None:
    with write_tx(engine) as conn:
        sub_id = add_subscription(
            conn, Scope.NAMESPACE, "acme", types=(EventType.TAG_PUSH, EventType.REPO_DELETED)
        )
    with read_tx(engine) as conn:
        found = STORE.subscription(conn, sub_id)
        assert found is not None
        assert STORE.by_public_id(conn, found.public_id) == found
        assert STORE.subscription(conn, sub_id + 1000) is None
        assert STORE.by_public_id(conn, "wh_nosuch") is None
    assert (found.scope, found.target) == (Scope.NAMESPACE, "acme")
    assert found.event_types == {EventType.TAG_PUSH, EventType.REPO_DELETED}
    assert found.active
    assert found.tls_verify
    assert found.created_at == T0
    assert found.created_at.tzinfo is not None


def test_subscriptions_are_listed_in_id_order_by_pages_that_keep_their_filters(
    engine: Engine,
) -> None:
    with write_tx(engine) as conn:
        ids = [
            add_subscription(conn, Scope.REPOSITORY, "acme/app"),
            add_subscription(conn, Scope.NAMESPACE, "acme"),
            add_subscription(conn, Scope.REPOSITORY, "acme/app"),
            add_subscription(conn, Scope.REPOSITORY, "acme/db"),
            add_subscription(conn, Scope.REPOSITORY, "acme/app"),
        ]
    with read_tx(engine) as conn:

        def pages(**filters: Any) -> list[list[int]]:
            found, after = [], None
            while True:
                page = STORE.list_subscriptions(conn, 2, after, **filters)
                found.append([s.id for s in page])
                if len(page) < 2:
                    return found
                after = page[-1].id

        assert pages() == [ids[0:2], ids[2:4], ids[4:]]
        app = pages(scope=Scope.REPOSITORY, target="acme/app")
        assert app == [[ids[0], ids[2]], [ids[4]]]
        assert pages(scope=Scope.NAMESPACE) == [[ids[1]]]
        assert pages(target="acme/none") == [[]]


def test_an_event_concerns_the_active_subscriptions_of_its_repository_namespace_and_registry(
    engine: Engine,
) -> None:
    with write_tx(engine) as conn:
        registry = add_subscription(conn, Scope.REGISTRY, "")
        repository = add_subscription(conn, Scope.REPOSITORY, "acme/app")
        namespace = add_subscription(conn, Scope.NAMESPACE, "acme")
        add_subscription(conn, Scope.REPOSITORY, "acme/db")  # another repository
        add_subscription(conn, Scope.NAMESPACE, "globex")  # another namespace
        add_subscription(conn, Scope.REPOSITORY, "acme/app", active=False)
    pushed = tag_pushed("acme/app", "v1", DIGEST, "x", None)
    wide = Event(EventType.SCANNER_UPDATE_COMPLETED, None, None, {})
    with read_tx(engine) as conn:
        assert [s.id for s in STORE.active_for(conn, [pushed])] == [
            registry,
            repository,
            namespace,
        ]
        assert [s.id for s in STORE.active_for(conn, [wide])] == [registry]
        other = tag_pushed("globex/web", "v1", DIGEST, "x", None)
        assert len(STORE.active_for(conn, [pushed, other])) == 4


def test_any_wants_see_only_active_subscriptions_and_their_types(engine: Engine) -> None:
    every = frozenset(EventType)
    pushes = frozenset({EventType.TAG_PUSH, EventType.MANIFEST_PUSH})
    with read_tx(engine) as conn:
        assert not STORE.any_wants_one_of(conn, every)
    with write_tx(engine) as conn:
        add_subscription(conn, types=(EventType.REPO_DELETED,), active=False)
    with read_tx(engine) as conn:
        assert not STORE.any_wants_one_of(conn, every)
        assert not STORE.any_wants(conn, EventType.REPO_DELETED)
    with write_tx(engine) as conn:
        add_subscription(conn, types=(EventType.TAG_PUSH, EventType.TAG_DELETE))
    with read_tx(engine) as conn:
        assert STORE.any_wants(conn, EventType.TAG_PUSH)
        assert STORE.any_wants(conn, EventType.TAG_DELETE)
        assert not STORE.any_wants(conn, EventType.REPO_DELETED)
        assert not STORE.any_wants(conn, EventType.MANIFEST_PUSH)
        # The outbox stores a batch of events only when some active subscription asks for
        # one of their types: a scan's SCAN_COMPLETED under a push subscription is not stored.
        assert STORE.any_wants_one_of(conn, pushes)
        assert STORE.any_wants_one_of(conn, frozenset({EventType.TAG_DELETE}))
        assert not STORE.any_wants_one_of(conn, frozenset({EventType.SCAN_COMPLETED}))
        assert not STORE.any_wants_one_of(
            conn, frozenset({EventType.REPO_DELETED, EventType.MANIFEST_PUSH})
        )


def test_an_update_changes_only_its_subscription_and_a_delete_takes_its_deliveries(
    engine: Engine,
) -> None:
    with write_tx(engine) as conn:
        kept, gone = add_subscription(conn), add_subscription(conn)
        add_delivery(conn, kept)
        gone_delivery = add_delivery(conn, gone)
        STORE.update_subscription(conn, gone, active=False, inactive_reason="failing")
    with read_tx(engine) as conn:
        off = STORE.subscription(conn, gone)
        on = STORE.subscription(conn, kept)
    assert off is not None
    assert not off.active
    assert off.inactive_reason == "failing"
    assert on is not None
    assert on.active
    with write_tx(engine) as conn:
        STORE.delete_subscription(conn, gone)
    with read_tx(engine) as conn:
        assert STORE.subscription(conn, gone) is None
        assert STORE.delivery(conn, gone, gone_delivery) is None
        assert len(STORE.deliveries(conn, kept, 10)) == 1


# --- deliveries ---------------------------------------------------------------------------


def test_pending_deliveries_go_oldest_first_and_an_attempt_that_delivers_moves_on(
    engine: Engine,
) -> None:
    with write_tx(engine) as conn:
        sub, other = add_subscription(conn), add_subscription(conn)
        first, second = add_delivery(conn, sub), add_delivery(conn, sub)
        add_delivery(conn, other)
    with write_tx(engine) as conn:
        pending = STORE.next_pending(conn, sub)
        assert pending is not None
        assert pending.id == first
        assert pending.event.type is EventType.TAG_PUSH
        assert pending.event.contents["tag"] == "v1"
        STORE.record_attempt(conn, pending, attempt(1, 503, "HTTP 503"), delivered=False)
    with write_tx(engine) as conn:
        again = STORE.next_pending(conn, sub)  # a failed attempt keeps it first in line
        assert again is not None
        assert again.id == first
        assert again.attempts == 1
        STORE.record_attempt(conn, again, attempt(2, 200), delivered=True)
    with read_tx(engine) as conn:
        after = STORE.next_pending(conn, sub)
        assert after is not None
        assert after.id == second
        assert STORE.has_pending(conn, sub)
        done = STORE.delivery(conn, sub, first)
    assert done is not None
    assert done.state is DeliveryState.DELIVERED
    assert done.attempts == 2
    assert (done.last_status, done.last_error) == (200, None)
    assert done.delivered_at == done.last_attempt_at == T0 + timedelta(minutes=2)
    assert [(a.attempt, a.status_code, a.error) for a in done.history] == [
        (1, 503, "HTTP 503"),
        (2, 200, None),
    ]


def test_a_failed_attempt_leaves_the_delivery_pending_with_its_error(engine: Engine) -> None:
    with write_tx(engine) as conn:
        sub = add_subscription(conn)
        delivery_id = add_delivery(conn, sub)
        pending = STORE.next_pending(conn, sub)
        assert pending is not None
        STORE.record_attempt(conn, pending, attempt(1, None, "connection refused"), False)
    with read_tx(engine) as conn:
        found = STORE.delivery(conn, sub, delivery_id)
        assert STORE.has_pending(conn, sub)
    assert found is not None
    assert found.state is DeliveryState.PENDING
    assert found.delivered_at is None
    assert (found.attempts, found.last_status, found.last_error) == (
        1,
        None,
        "connection refused",
    )


def test_with_pending_names_active_subscriptions_with_deliveries_waiting(engine: Engine) -> None:
    with write_tx(engine) as conn:
        busy = add_subscription(conn)
        idle = add_subscription(conn)
        paused = add_subscription(conn, active=False)
        done = add_subscription(conn)
        for _ in range(3):
            add_delivery(conn, busy)
        add_delivery(conn, paused)
        add_delivery(conn, done)
        delivered = STORE.next_pending(conn, done)
        assert delivered is not None
        STORE.record_attempt(conn, delivered, attempt(1, 204), delivered=True)
    with read_tx(engine) as conn:
        assert STORE.with_pending(conn) == [busy]
        assert not STORE.has_pending(conn, idle)
        assert not STORE.has_pending(conn, done)
        assert STORE.next_pending(conn, idle) is None


def test_deliveries_are_listed_newest_first_by_pages_of_their_own_subscription(
    engine: Engine,
) -> None:
    with write_tx(engine) as conn:
        sub, other = add_subscription(conn), add_subscription(conn)
        mine = []
        for _ in range(5):
            mine.append(add_delivery(conn, sub))
            add_delivery(conn, other)
    newest_first = mine[::-1]
    with read_tx(engine) as conn:
        found, before = [], None
        while True:
            page = STORE.deliveries(conn, sub, 2, before)
            found.append([d.id for d in page])
            if len(page) < 2:
                break
            before = page[-1].id
        assert found == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
        assert STORE.delivery(conn, other, mine[0]) is None  # not the other's to see
        assert all(d.subscription_id == sub for d in STORE.deliveries(conn, sub, 10))


def test_a_delivery_carries_its_event_whatever_its_type(engine: Engine) -> None:
    deleted = repository_deleted("acme/app", "olga")
    with write_tx(engine) as conn:
        sub = add_subscription(conn, types=(EventType.REPO_DELETED,))
        delivery_id = add_delivery(conn, sub, deleted)
    with read_tx(engine) as conn:
        found = STORE.delivery(conn, sub, delivery_id)
    assert found is not None
    assert found.kind is DeliveryKind.EVENT
    assert found.redelivery_of is None
    assert (found.event.id, found.event.type) == (deleted.id, EventType.REPO_DELETED)
    assert found.event.repository == "acme/app"
    assert found.event.actor == "olga"
    assert found.history == ()


def test_wake_makes_only_a_waiting_queued_job_due_now(engine: Engine) -> None:
    queue = SqlJobQueue(engine)
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    with write_tx(engine) as conn:
        waiting = queue.enqueue(conn, "webhook.deliver", dedupe_key="w:1", run_after=later).id
        other = queue.enqueue(conn, "webhook.deliver", dedupe_key="w:2", run_after=later).id
        STORE.wake(conn, "w:1", now)
    with read_tx(engine) as conn:
        due = {row.id: row.run_after for row in conn.execute(select(jobs.c.id, jobs.c.run_after))}
    assert abs(_aware(due[waiting]) - now) < timedelta(seconds=1)
    assert abs(_aware(due[other]) - later) < timedelta(seconds=1)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the subscription lock (PostgreSQL) ---------------------------------------------------


def test_the_subscription_lock_holds_one_subscription_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        with write_tx(engine) as conn:
            STORE.lock_subscription(conn, 1)  # nothing to take on SQLite
        return
    with engine.connect() as holder, engine.connect() as other:
        holder.begin()
        STORE.lock_subscription(holder, 7)
        key = holder.execute(
            text(
                "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
                " WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
        ).scalar_one()
        other.begin()
        other.execute(text("SET LOCAL lock_timeout = '10s'"))  # a wrong key fails, not hangs
        taken = other.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
        assert taken.scalar_one() is False
        STORE.lock_subscription(other, 8)  # another subscription does not wait
        other.rollback()
        holder.rollback()
