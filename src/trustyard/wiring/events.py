"""Composition of events and webhooks: what a server process (server.py) and a job worker
(jobs.py) build from settings. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine

from trustyard.config import Settings
from trustyard.events.jobs import (
    DISPATCH_KIND,
    DISPATCH_SCHEDULE,
    PRUNE_KIND,
    PRUNE_SCHEDULE,
    Dispatcher,
    PruneEvents,
)
from trustyard.events.model import EventConsumer
from trustyard.events.outbox import Outbox
from trustyard.events.pulls import PullRecorder
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.webhooks.destinations import DestinationPolicy
from trustyard.webhooks.jobs import (
    DELIVER_KIND,
    SWEEP_KIND,
    SWEEP_SCHEDULE,
    DeliverWebhooks,
    Observer,
    SweepWebhooks,
    WebhookConsumer,
    pull_interest,
)
from trustyard.webhooks.sender import Sender
from trustyard.webhooks.service import WebhookService
from trustyard.webhooks.signing import SecretBox
from trustyard.webhooks.stores import WebhookStore
from trustyard.wiring.common import signing_passphrase


def make_secret_box(settings: Settings) -> SecretBox:
    """Webhook secrets are sealed under the token-signing passphrase (read when first used)."""

    return SecretBox(lambda: signing_passphrase(settings))


def make_policy(settings: Settings) -> DestinationPolicy:
    return DestinationPolicy(settings.webhooks.allowed_networks)


def make_webhook_service(settings: Settings, queue: SqlJobQueue) -> WebhookService:
    return WebhookService(make_secret_box(settings), make_policy(settings), queue)


def make_outbox(queue: SqlJobQueue, inline: Sequence[EventConsumer] = ()) -> Outbox:
    """The outbox writers publish to: `inline` consumers react in the publishing
    transaction (a server's scan on push); nothing is stored while no webhook listens."""
    return Outbox(queue, wanted=WebhookStore().any_wants_one_of, inline=inline)


def make_pull_recorder(settings: Settings, engine: Engine, outbox: Outbox) -> PullRecorder:
    return PullRecorder(
        engine,
        outbox,
        pull_interest(engine),
        check_seconds=settings.events.pull_check_seconds,
        flush_seconds=settings.events.pull_flush_seconds,
    )


def register_event_jobs(
    handlers: HandlerRegistry,
    schedules: list[ScheduleSpec],
    settings: Settings,
    engine: Engine,
    queue: SqlJobQueue,
    observe: Observer | None = None,
) -> None:
    """The dispatcher (and its safety-net schedule), event pruning, webhook deliveries and
    their sweep."""
    handlers.register(DISPATCH_KIND, Dispatcher(engine, [WebhookConsumer(queue)]))
    handlers.register(
        PRUNE_KIND, PruneEvents(engine, timedelta(days=settings.events.retention_days))
    )
    sender = Sender(make_policy(settings), timeout=settings.webhooks.timeout_seconds)
    handlers.register(
        DELIVER_KIND,
        DeliverWebhooks(
            engine,
            queue,
            sender,
            make_secret_box(settings),
            inactive_after=timedelta(days=settings.webhooks.inactive_after_days),
            base_url=(settings.server.public_url or "").rstrip("/"),
            observe=observe,
        ),
    )
    handlers.register(SWEEP_KIND, SweepWebhooks(engine, queue))
    schedules += [DISPATCH_SCHEDULE, PRUNE_SCHEDULE, SWEEP_SCHEDULE]
