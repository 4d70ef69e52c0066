"""Cron schedules that enqueue one job per period cluster-wide.

Every worker process ticks the scheduler. A due schedule's period is claimed by one UPDATE
that moves next_run_at guarded by its old value, in the same transaction as the job it
enqueues: the process whose UPDATE matched enqueues the job; any other finds the row moved
(PostgreSQL re-checks the WHERE after the winner commits; SQLite runs writers one at a time)
and does nothing. No clocks are compared between processes. Periods missed while no worker
ran are coalesced into one run. Cron expressions are read in UTC: five fields, or six with
seconds last (`*/10 * * * * *`: every ten seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from croniter import croniter
from sqlalchemy import Engine

from trustyard.db.engine import read_tx, write_tx
from trustyard.jobs.interfaces import InvalidJob, Schedule
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import check_kind
from trustyard.jobs.stores import ScheduleStore, encode_payload
from trustyard.kit.clock import Clock, utc_now

log = logging.getLogger(__name__)


def check_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(" ".join(fields)):
        raise InvalidJob(
            f"{expression!r} is not a cron expression (five fields, or six with seconds last)"
        )
    return " ".join(fields)


def next_run(expression: str, after: datetime) -> datetime:
    """The first time the expression matches strictly after `after` (UTC)."""
    following: datetime = croniter(expression, after).get_next(datetime)
    return following


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule declared by code (the composition root); stored on `sync`."""

    name: str
    cron: str
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        queue: SqlJobQueue,
        store: ScheduleStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.store = store or ScheduleStore()
        self.clock = clock

    def sync(self, specs: Iterable[ScheduleSpec]) -> None:
        """Store the declared schedules: add missing ones, and bring changed ones in line
        (a changed cron expression restarts from the next match). Others are left alone."""
        for spec in specs:
            cron = check_cron(spec.cron)
            kind = check_kind(spec.kind)
            payload = encode_payload(spec.payload)
            now = self.clock()
            with write_tx(self.engine) as conn:
                added = self.store.insert_missing(
                    conn,
                    name=spec.name,
                    cron=cron,
                    kind=kind,
                    payload=payload,
                    next_run_at=next_run(cron, now),
                    now=now,
                )
                if added:
                    continue
                stored = self.store.get(conn, spec.name)
                if stored is None:
                    continue
                changes: dict[str, Any] = {}
                if stored.cron != cron:
                    changes.update(cron=cron, next_run_at=next_run(cron, now))
                if stored.kind != kind or encode_payload(stored.payload) != payload:
                    changes.update(kind=kind, payload=payload)
                if changes:
                    self.store.update(conn, spec.name, {**changes, "updated_at": now})

    def schedules(self) -> list[Schedule]:
        with read_tx(self.engine) as conn:
            return self.store.all(conn)

    def tick(self) -> list[int]:
        """Claim every due period; returns the ids of the jobs this call enqueued."""
        now = self.clock()
        with read_tx(self.engine) as conn:
            due = self.store.due(conn, now)
        enqueued: list[int] = []
        for schedule in due:
            job = self._fire(schedule, now)
            if job is not None:
                enqueued.append(job)
        return enqueued

    def _fire(self, schedule: Schedule, now: datetime) -> int | None:
        try:
            following = next_run(schedule.cron, max(now, schedule.next_run_at))
        except (ValueError, KeyError) as error:
            log.error("schedule %s: bad cron %r: %s", schedule.name, schedule.cron, error)
            return None
        with write_tx(self.engine) as conn:
            won = self.store.claim_period(
                conn,
                schedule.name,
                period=schedule.next_run_at,
                next_run_at=following,
                now=now,
            )
            if not won:
                return None
            job = self.queue.enqueue(
                conn,
                schedule.kind,
                schedule.payload,
                # One live job per schedule: a period whose previous run has not finished
                # yet adds nothing.
                dedupe_key=f"schedule:{schedule.name}",
                schedule=schedule.name,
                run_after=schedule.next_run_at,
            )
            if not job.created:
                log.info("schedule %s: previous job %d still live", schedule.name, job.id)
                return None
            self.store.update(conn, schedule.name, {"last_job_id": job.id})
            return job.id
