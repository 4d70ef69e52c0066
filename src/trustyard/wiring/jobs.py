"""Background work as the settings describe it: the job queue, the handlers a worker runs by
kind, and the schedules it keeps. `trustyard worker` (and the worker `trustyard serve` starts)
builds its worker here, once: one queue per process, shared by every handler."""

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
from trustyard.wiring.common import make_ldap
from trustyard.wiring.events import register_event_jobs
from trustyard.wiring.policies import register_policies
from trustyard.wiring.scanning import make_scan_service, register_scanning
from trustyard.wiring.vulnerabilities import register_vulnerabilities


def make_queue(settings: Settings, engine: Engine) -> SqlJobQueue:
    jobs = settings.jobs
    return SqlJobQueue(
        engine,
        lease_seconds=jobs.lease_seconds,
        retry=RetryPolicy(jobs.retry_base_seconds, jobs.retry_max_seconds),
        max_attempts=jobs.max_attempts,
    )


def make_handlers(
    settings: Settings, engine: Engine, queue: SqlJobQueue, recorder: Recorder | None = None
) -> tuple[HandlerRegistry, list[ScheduleSpec]]:
    """Every job kind this process runs, enqueuing through `queue`, and the schedules that
    enqueue them; webhook deliveries are counted in `recorder`, if any."""
    handlers = HandlerRegistry()
    schedules: list[ScheduleSpec] = []
    retention = timedelta(days=settings.jobs.retention_days)
    handlers.register(PRUNE_KIND, PruneFinishedJobs(engine, retention))
    schedules.append(PRUNE_SCHEDULE)
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
    register_vulnerabilities(handlers, schedules, settings, engine, queue)
    register_policies(handlers, settings, engine, queue, make_scan_service(settings, queue))
    if settings.jobs.test_kinds:
        testkinds.register(handlers, engine)
    return handlers, schedules


def make_worker(
    settings: Settings, engine: Engine, concurrency: int, recorder: Recorder | None = None
) -> Worker:
    """A worker running every kind of `make_handlers`; job runs and webhook deliveries are
    counted in `recorder` (the embedded worker's, with metrics on), if any."""
    queue = make_queue(settings, engine)
    handlers, schedules = make_handlers(settings, engine, queue, recorder)
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
