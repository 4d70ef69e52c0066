"""Webhooks' background work.

- `WebhookConsumer` (called by the event dispatcher, in its transaction): one delivery per
  (event, matching active subscription), in event order, and the subscription's delivery job.
- `DeliverWebhooks` (kind `webhooks.deliver`, one live job per subscription: dedupe key
  `webhooks.deliver:<id>`): sends the subscription's pending deliveries oldest first, in
  batches (up to `DELIVERY_BATCH`, the attempts of a batch recorded in one write transaction,
  so a busy subscription costs one commit per batch, not per event). A failure ends its batch;
  it is recorded and the job fails, so the queue retries it with exponential backoff; the
  deliveries behind the failing one wait (order is kept). Before it finishes, the job gives up
  its dedupe key in a write transaction that also checks that nothing is pending (else it goes
  on), so a delivery added at any moment either is seen by this job or enqueues a new one.
  After a success that ends a run of failures it hands over to a fresh job, whose backoff
  starts small again. A subscription that has failed without a success for longer than
  `inactive_after` is marked inactive with the reason; its pending deliveries wait for its
  owner to turn it on again.
- `SweepWebhooks` (kind `webhooks.sweep`, every five minutes): enqueues the delivery job of
  every active subscription with pending deliveries (a no-op where one is live): a safety net.
- `pull_interest`: whether any active subscription wants pull events (see events.pulls).

Delivery is at least once: a worker killed between sending and recording sends again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from trustyard.db.engine import read_tx, write_tx
from trustyard.events.model import Event, EventType
from trustyard.events.stores import detach_dedupe_key
from trustyard.jobs.interfaces import JobContext, JobInterrupted, PermanentJobError
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.kit.clock import Clock, utc_now
from trustyard.webhooks.interfaces import (
    Attempt,
    Delivery,
    DeliveryKind,
    DeliveryState,
    SecretUnreadable,
    Subscription,
)
from trustyard.webhooks.payloads import render
from trustyard.webhooks.sender import Sender, SendResult
from trustyard.webhooks.signing import SecretBox
from trustyard.webhooks.stores import WebhookStore

log = logging.getLogger(__name__)

DELIVER_KIND = "webhooks.deliver"
SWEEP_KIND = "webhooks.sweep"
SWEEP_SCHEDULE = ScheduleSpec("webhooks.sweep", "*/5 * * * *", SWEEP_KIND)
# A delivery job is retried until its subscription goes inactive, not until a count runs out.
DELIVERY_JOB_ATTEMPTS = 100_000
# Deliveries sent before their attempts are recorded in one write transaction.
DELIVERY_BATCH = 50

# Called after each attempt with (outcome, seconds); outcome: success (2xx), http_error
# (another status), network_error (no answer), refused (the destination is not allowed).
Observer = Callable[[str, float], None]


class DeliveryFailed(Exception):
    """The head delivery failed: the job is retried after the queue's backoff."""


class _StillPending(Exception):
    pass


def deliver_key(subscription_id: int) -> str:
    return f"{DELIVER_KIND}:{subscription_id}"


def enqueue_delivery(queue: SqlJobQueue, conn: Connection, subscription_id: int) -> None:
    WebhookStore().lock_subscription(conn, subscription_id)  # see lock_subscription
    queue.enqueue(
        conn,
        DELIVER_KIND,
        {"subscription": subscription_id},
        dedupe_key=deliver_key(subscription_id),
        max_attempts=DELIVERY_JOB_ATTEMPTS,
    )


class WebhookConsumer:
    def __init__(self, queue: SqlJobQueue, store: WebhookStore | None = None) -> None:
        self.queue = queue
        self.store = store or WebhookStore()

    def consume(self, conn: Connection, events: Sequence[Event]) -> None:
        subscriptions = self.store.active_for(conn, events)
        if not subscriptions:
            return
        now = utc_now()
        rows: list[dict[str, Any]] = []
        touched: dict[int, None] = {}
        for event in events:
            for subscription in subscriptions:
                # A subscription receives what happens after it was made.
                if subscription.wants(event) and event.created_at >= subscription.created_at:
                    rows.append(
                        {
                            "subscription_id": subscription.id,
                            "event_id": event.seq,
                            "kind": DeliveryKind.EVENT.value,
                            "state": DeliveryState.PENDING.value,
                            "attempts": 0,
                            "created_at": now,
                        }
                    )
                    touched[subscription.id] = None
        self.store.insert_deliveries(conn, rows)
        for subscription_id in sorted(touched):  # locks in id order, as the sweep takes them
            enqueue_delivery(self.queue, conn, subscription_id)


class DeliverWebhooks:
    def __init__(
        self,
        engine: Engine,
        queue: SqlJobQueue,
        sender: Sender,
        box: SecretBox,
        *,
        inactive_after: timedelta,
        base_url: str = "",
        store: WebhookStore | None = None,
        observe: Observer | None = None,
        clock: Clock = utc_now,
        batch: int = DELIVERY_BATCH,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.batch = batch
        self.sender = sender
        self.box = box
        self.inactive_after = inactive_after
        self.base_url = base_url
        self.store = store or WebhookStore()
        self.observe = observe
        self.clock = clock

    def __call__(self, job: JobContext) -> None:
        try:
            subscription_id = int(job.payload["subscription"])
        except (KeyError, TypeError, ValueError):
            raise PermanentJobError("payload needs a subscription id") from None
        had_failed = job.attempt > 1
        while True:
            if job.should_stop():
                raise JobInterrupted
            # After failures, one delivery at a time: the first success hands over.
            limit = 1 if had_failed else self.batch
            with read_tx(self.engine) as conn:
                subscription = self.store.subscription(conn, subscription_id)
                batch = (
                    self.store.pending(conn, subscription_id, limit)
                    if subscription is not None and subscription.active
                    else []
                )
            if subscription is None or not subscription.active:
                return  # deleted, or inactive: its deliveries wait for it to be turned on
            if not batch:
                if self._finish(job.id, subscription_id):
                    return
                continue
            if self._send(job, subscription, batch, had_failed) and had_failed:
                return  # a fresh job took over (see _send)

    def _finish(self, job_id: int, subscription_id: int) -> bool:
        """Give up the dedupe key unless something is pending (then keep it, go on)."""
        try:
            with write_tx(self.engine) as conn:
                self.store.lock_subscription(conn, subscription_id)
                detach_dedupe_key(conn, job_id, deliver_key(subscription_id))
                if self.store.has_pending(conn, subscription_id):
                    raise _StillPending
        except _StillPending:
            return False
        return True

    def _send(
        self,
        job: JobContext,
        subscription: Subscription,
        batch: Sequence[Delivery],
        had_failed: bool,
    ) -> bool:
        """Send deliveries in order until one fails (or the job is asked to stop), then
        record every attempt in one write transaction; True when the first was delivered.
        A worker killed before that transaction sends the batch again (at least once)."""
        done: list[tuple[Delivery, Attempt, bool]] = []
        results: list[SendResult] = []
        for delivery in batch:
            if done and job.should_stop():
                break
            result = self._send_one(subscription, delivery)
            attempt = Attempt(
                delivery.attempts + 1,
                self.clock(),
                result.status,
                result.latency_ms,
                result.error,
                result.excerpt,
            )
            done.append((delivery, attempt, result.ok))
            results.append(result)
            if not result.ok:
                break
        last, now = results[-1], done[-1][1].at
        succeeded = [attempt.at for _, attempt, ok in done if ok]
        reason = None
        with write_tx(self.engine) as conn:
            self.store.record_attempts(conn, done)
            current = self.store.subscription(conn, subscription.id)
            if current is None:
                return bool(succeeded)
            if last.ok:
                self.store.update_subscription(
                    conn, subscription.id, failing_since=None, last_success_at=now
                )
                if had_failed:
                    # The lock before the job row: enqueue_delivery takes it too (no deadlock).
                    self.store.lock_subscription(conn, subscription.id)
                    detach_dedupe_key(conn, job.id, deliver_key(subscription.id))
                    enqueue_delivery(self.queue, conn, subscription.id)
            else:
                # A success earlier in the batch ended any run of failures.
                since = now if succeeded else (current.failing_since or now)
                changes: dict[str, Any] = {"failing_since": since, "last_failure_at": now}
                if succeeded:
                    changes["last_success_at"] = succeeded[-1]
                if current.active and now - since >= self.inactive_after:
                    reason = (
                        f"deliveries failed without a success since {since.isoformat()} "
                        f"(longer than {self.inactive_after}); last: {last.describe()}"
                    )
                    changes |= {"active": False, "inactive_reason": reason, "inactive_since": now}
                self.store.update_subscription(conn, subscription.id, **changes)
        for result in results:
            self._observe(result)
        if last.ok:
            return True
        if reason is not None:
            log.warning("webhook %s marked inactive: %s", subscription.public_id, reason)
            raise PermanentJobError(reason)
        raise DeliveryFailed(
            f"delivery {done[-1][0].id} of webhook {subscription.public_id}: {last.describe()}"
        )

    def _send_one(self, subscription: Subscription, delivery: Delivery) -> SendResult:
        try:
            secret = self.box.open(subscription.secret)
        except SecretUnreadable as error:
            return SendResult(None, 0, str(error), None)
        body, headers = render(
            delivery.event, subscription.format, secret, delivery.id, self.base_url
        )
        return self.sender.send(
            subscription.url,
            body,
            headers,
            ca_bundle=subscription.ca_bundle,
            tls_verify=subscription.tls_verify,
        )

    def _observe(self, result: SendResult) -> None:
        if self.observe is None:
            return
        if result.ok:
            outcome = "success"
        elif result.status is not None:
            outcome = "http_error"
        elif result.refused:
            outcome = "refused"
        else:
            outcome = "network_error"
        try:
            self.observe(outcome, result.latency_ms / 1000)
        except Exception:
            log.debug("webhook metrics observer failed", exc_info=True)


class SweepWebhooks:
    def __init__(self, engine: Engine, queue: SqlJobQueue, store: WebhookStore | None = None):
        self.engine = engine
        self.queue = queue
        self.store = store or WebhookStore()

    def __call__(self, job: JobContext) -> None:
        with write_tx(self.engine) as conn:
            for subscription_id in sorted(self.store.with_pending(conn)):
                enqueue_delivery(self.queue, conn, subscription_id)


def pull_interest(engine: Engine, store: WebhookStore | None = None) -> Callable[[], bool]:
    """Whether any active subscription wants MANIFEST_PULL events (one small query)."""
    found = store or WebhookStore()

    def wanted() -> bool:
        with read_tx(engine) as conn:
            return found.any_wants(conn, EventType.MANIFEST_PULL)

    return wanted
