"""The delivery job against a real receiver on 127.0.0.1, with a clock the test moves: order,
retries that deliver once, the dedupe-key handover, and inactivity after too long a failure."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from tests.support.webhook_receiver import WebhookReceiver
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import jobs
from trustyard.events.jobs import DISPATCH_KIND, Dispatcher
from trustyard.events.model import EventType, tag_pushed
from trustyard.events.outbox import Outbox
from trustyard.jobs.interfaces import JobContext, PermanentJobError
from trustyard.jobs.queue import SqlJobQueue
from trustyard.webhooks.destinations import DestinationPolicy
from trustyard.webhooks.interfaces import Scope, Subscription
from trustyard.webhooks.jobs import (
    DELIVER_KIND,
    DeliverWebhooks,
    DeliveryFailed,
    WebhookConsumer,
    deliver_key,
)
from trustyard.webhooks.sender import Sender
from trustyard.webhooks.service import WebhookService
from trustyard.webhooks.signing import SecretBox

POLICY = DestinationPolicy(["127.0.0.1/32"])


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


class Setup:
    def __init__(self, engine: Engine, receiver: WebhookReceiver, batch: int = 50) -> None:
        self.engine = engine
        self.clock = Clock()
        self.queue = SqlJobQueue(engine)
        self.box = SecretBox("unit test passphrase")
        self.service = WebhookService(self.box, POLICY, self.queue, clock=self.clock)
        with write_tx(engine) as conn:
            created = self.service.create(
                conn,
                scope=Scope.NAMESPACE,
                target="acme",
                url=receiver.url("/unit"),
                event_types=[EventType.TAG_PUSH],
                actor="olga",
            )
        self.subscription: Subscription = created.subscription
        self.secret = created.secret
        self.handler = DeliverWebhooks(
            engine,
            self.queue,
            Sender(POLICY, timeout=5),
            self.box,
            inactive_after=timedelta(days=1),
            clock=self.clock,
            batch=batch,
        )

    def push(self, *tags: str) -> None:
        outbox = Outbox(self.queue)
        for tag in tags:
            with write_tx(self.engine) as conn:
                outbox.publish(conn, tag_pushed("acme/app", tag, "sha256:" + "d" * 64, "x", None))
        [claim] = self.queue.claim("t", [DISPATCH_KIND], 1)
        Dispatcher(self.engine, [WebhookConsumer(self.queue)])(
            JobContext(claim.id, claim.kind, claim.payload, 1, 1, "t")
        )
        assert self.queue.succeed(claim)

    def delivery_job(self) -> int:
        with read_tx(self.engine) as conn:
            found = conn.scalar(
                select(jobs.c.id).where(
                    jobs.c.dedupe_key == deliver_key(self.subscription.id),
                    jobs.c.state.in_(["queued", "running"]),
                )
            )
        assert found is not None
        return int(found)

    def run(self, job_id: int, attempt: int) -> None:
        payload = {"subscription": self.subscription.id}
        self.handler(JobContext(job_id, DELIVER_KIND, payload, attempt, 100, "t"))


def test_pending_deliveries_go_out_in_order_and_the_job_lets_go_of_its_key(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    setup = Setup(engine, receiver)
    setup.push("a", "b", "c")
    job = setup.delivery_job()
    setup.run(job, 1)
    got = receiver.delivered("/unit")
    assert [r.json()["contents"]["tag"] for r in got] == ["a", "b", "c"]
    assert all(r.signed_with(setup.secret) for r in got)
    # Finished with nothing pending: the key is free, so the next event gets a new job.
    setup.push("d")
    assert setup.delivery_job() != job


def test_a_failure_is_retried_by_the_queue_and_delivered_once(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    setup = Setup(engine, receiver)
    setup.push("a", "b")
    job = setup.delivery_job()
    receiver.fail_next(2)
    for attempt in (1, 2):
        with pytest.raises(DeliveryFailed, match="HTTP 500"):
            setup.run(job, attempt)
        assert setup.delivery_job() == job  # the same job keeps the key while it retries
    setup.run(job, 3)  # delivers "a", then hands over to a fresh job (small backoff again)
    assert [r.status for r in receiver.received("/unit")] == [500, 500, 200]
    fresh = setup.delivery_job()
    assert fresh != job
    setup.run(fresh, 1)
    assert [r.json()["contents"]["tag"] for r in receiver.delivered("/unit")] == ["a", "b"]
    with read_tx(engine) as conn:
        history = setup.service.deliveries(conn, setup.subscription, 10, None)
    assert [(d.event.contents["tag"], d.attempts) for d in history] == [("b", 1), ("a", 3)]
    assert [a.status_code for a in history[1].history] == [500, 500, 200]


def test_failing_longer_than_the_limit_marks_the_subscription_inactive(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    setup = Setup(engine, receiver)
    setup.push("a")
    job = setup.delivery_job()
    receiver.fail_next(100, status=502)
    with pytest.raises(DeliveryFailed):
        setup.run(job, 1)
    setup.clock.now += timedelta(hours=23)
    with pytest.raises(DeliveryFailed):
        setup.run(job, 2)
    setup.clock.now += timedelta(hours=2)  # 25 h of failures: more than a day
    with pytest.raises(PermanentJobError, match="HTTP 502"):
        setup.run(job, 3)
    with read_tx(engine) as conn:
        off = setup.service.get(conn, setup.subscription.public_id)
    assert off.active is False
    assert off.inactive_reason is not None
    assert "HTTP 502" in off.inactive_reason
    assert off.inactive_since == setup.clock.now
    setup.run(job, 4)  # an inactive subscription sends nothing
    assert len(receiver.received("/unit")) == 3


def test_batches_keep_the_order_and_a_failure_ends_its_batch(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    """Deliveries go out in batches whose attempts are recorded together: the order holds
    across batches, what was delivered before a failure in a batch stays delivered (never
    sent again), and the failure waits at the head for the retry."""
    setup = Setup(engine, receiver, batch=2)
    setup.push("a", "b", "c", "d", "e")
    job = setup.delivery_job()
    receiver.fail_next(1, after=2)  # "a" and "b" (the first batch) pass, "c" fails
    with pytest.raises(DeliveryFailed, match="HTTP 500"):
        setup.run(job, 1)
    assert [r.json()["contents"]["tag"] for r in receiver.received("/unit")] == ["a", "b", "c"]
    with read_tx(engine) as conn:
        history = setup.service.deliveries(conn, setup.subscription, 10, None)
        current = setup.service.get(conn, setup.subscription.public_id)
    assert [(d.event.contents["tag"], d.state.value, d.attempts) for d in history] == [
        ("e", "pending", 0),
        ("d", "pending", 0),
        ("c", "pending", 1),
        ("b", "delivered", 1),
        ("a", "delivered", 1),
    ]
    assert (current.last_success_at, current.failing_since) == (setup.clock.now,) * 2
    setup.clock.now += timedelta(minutes=1)
    setup.run(job, 2)  # "c" alone, then a fresh job
    fresh = setup.delivery_job()
    setup.run(fresh, 1)
    delivered = [r.json()["contents"]["tag"] for r in receiver.delivered("/unit")]
    assert delivered == ["a", "b", "c", "d", "e"]
    with read_tx(engine) as conn:
        current = setup.service.get(conn, setup.subscription.public_id)
    assert (current.failing_since, current.last_success_at) == (None, setup.clock.now)


def test_a_successful_batch_ends_a_run_of_failures(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    setup = Setup(engine, receiver, batch=3)
    setup.push("a", "b", "c", "d")
    job = setup.delivery_job()
    receiver.fail_next(1, after=1)  # "a" passes, "b" fails: both recorded in one batch
    with pytest.raises(DeliveryFailed):
        setup.run(job, 1)
    with read_tx(engine) as conn:
        current = setup.service.get(conn, setup.subscription.public_id)
        [attempt] = setup.service.deliveries(conn, setup.subscription, 10, None)[2].history
    assert attempt.status_code == 500
    assert current.failing_since == setup.clock.now
