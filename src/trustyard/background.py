"""Composition root of background work: the job queue, the handlers a worker runs by kind,
and the schedules it keeps. `trustyard worker` (and the worker `trustyard serve` starts)
build everything here, once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from trustyard.config import Settings
from trustyard.jobs import testkinds
from trustyard.jobs.backoff import RetryPolicy
from trustyard.jobs.housekeeping import PRUNE_KIND, PRUNE_SCHEDULE, PruneFinishedJobs
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.jobs.runner import Worker
from trustyard.jobs.scheduler import Scheduler, ScheduleSpec
from trustyard.metrics.recorder import Recorder
from trustyard.scanning.interfaces import Limits
from trustyard.wiring.common import make_driver, make_ldap
from trustyard.wiring.events import make_outbox, register_event_jobs


def make_queue(settings: Settings, engine: Engine) -> SqlJobQueue:
    jobs = settings.jobs
    return SqlJobQueue(
        engine,
        lease_seconds=jobs.lease_seconds,
        retry=RetryPolicy(jobs.retry_base_seconds, jobs.retry_max_seconds),
        max_attempts=jobs.max_attempts,
    )


def make_handlers(
    settings: Settings, engine: Engine, recorder: Recorder | None = None
) -> tuple[HandlerRegistry, list[ScheduleSpec]]:
    """Every job kind this process runs, and the schedules that enqueue them; webhook
    deliveries are counted in `recorder`, if any."""
    handlers = HandlerRegistry()
    schedules: list[ScheduleSpec] = []
    retention = timedelta(days=settings.jobs.retention_days)
    handlers.register(PRUNE_KIND, PruneFinishedJobs(engine, retention))
    schedules.append(PRUNE_SCHEDULE)
    queue = make_queue(settings, engine)
    observe = recorder.observe_webhook_delivery if recorder is not None else None
    register_event_jobs(handlers, schedules, settings, engine, queue, observe)
    if settings.auth.enabled:
        from trustyard.auth.jobs import (
            PRUNE_LOGIN_FAILURES_KIND,
            PRUNE_LOGIN_FAILURES_SCHEDULE,
            prune_login_failures,
        )

        handlers.register(PRUNE_LOGIN_FAILURES_KIND, prune_login_failures(engine))
        schedules.append(PRUNE_LOGIN_FAILURES_SCHEDULE)
    if settings.ldap.enabled and settings.ldap.sync_cron:
        from trustyard.auth.jobs import LDAP_SYNC_KIND, LdapSyncJob

        ldap = make_ldap(settings)
        assert ldap is not None
        handlers.register(LDAP_SYNC_KIND, LdapSyncJob(engine, ldap))
        schedules.append(ScheduleSpec("ldap.sync", settings.ldap.sync_cron, LDAP_SYNC_KIND))
    if settings.scanning.enabled:
        register_scanning(handlers, schedules, settings, engine, queue)
    if settings.jobs.test_kinds:
        testkinds.register(handlers, engine)
    return handlers, schedules


def scan_limits(settings: Settings) -> Limits:
    scanning = settings.scanning
    return Limits(
        max_layer_bytes=scanning.max_layer_bytes,
        max_ratio=scanning.max_ratio,
        ratio_floor_bytes=scanning.ratio_floor_bytes,
        max_entries=scanning.max_entries,
        max_path_bytes=scanning.max_path_bytes,
        max_path_depth=scanning.max_path_depth,
        max_nesting=scanning.max_nesting,
        max_file_bytes=scanning.max_file_bytes,
        max_metadata_bytes=scanning.max_metadata_bytes,
        max_rpmdb_bytes=scanning.max_rpmdb_bytes,
        max_layer_components=scanning.max_layer_components,
        max_image_components=scanning.max_image_components,
        max_bom_bytes=scanning.max_bom_bytes,
    )


def register_scanning(
    handlers: HandlerRegistry,
    schedules: list[ScheduleSpec],
    settings: Settings,
    engine: Engine,
    queue: SqlJobQueue,
) -> None:
    """The `scan.image` job (images scanned from the registry's own storage) and the daily
    pruning of superseded scans and of layer results no scanner version reads."""
    from trustyard.scanning.jobs import PRUNE_KIND, PRUNE_SCHEDULE, ScanImage, prune_scans
    from trustyard.scanning.service import SCAN_KIND

    handler = ScanImage(
        engine,
        make_driver(settings),
        make_outbox(queue),
        limits=scan_limits(settings),
        max_concurrent=settings.scanning.max_concurrent_scans,
        progress_seconds=settings.scanning.progress_seconds,
    )
    handlers.register(SCAN_KIND, handler)
    retention = timedelta(days=settings.scanning.retention_days)
    handlers.register(PRUNE_KIND, prune_scans(engine, retention))
    schedules.append(PRUNE_SCHEDULE)


def make_worker(
    settings: Settings, engine: Engine, concurrency: int, recorder: Recorder | None = None
) -> Worker:
    """A worker running every kind of `make_handlers`; job runs and webhook deliveries are
    counted in `recorder` (the embedded worker's, with metrics on), if any."""
    queue = make_queue(settings, engine)
    handlers, schedules = make_handlers(settings, engine, recorder)
    scheduler = Scheduler(engine, queue)
    scheduler.sync(schedules)
    jobs = settings.jobs
    return Worker(
        queue,
        handlers,
        concurrency=concurrency,
        poll_seconds=jobs.poll_seconds,
        lease_seconds=jobs.lease_seconds,
        grace_seconds=jobs.shutdown_grace_seconds,
        ticks=[scheduler.tick],
        tick_seconds=min(jobs.poll_seconds, 1.0),
        observe=recorder.observe_job_run if recorder is not None else None,
    )
