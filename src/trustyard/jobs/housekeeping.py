"""The job system's own upkeep: deleting finished jobs after the retention period."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from trustyard.db.engine import write_tx
from trustyard.jobs.interfaces import Clock, JobContext, JobInterrupted, utc_now
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.jobs.stores import JobStore

PRUNE_KIND = "jobs.prune"
PRUNE_SCHEDULE = ScheduleSpec("jobs.prune", "17 3 * * *", PRUNE_KIND)  # daily, 03:17 UTC


class PruneFinishedJobs:
    """Deletes jobs that finished (any way) more than `retention` ago, with their attempts,
    a thousand per transaction so that the SQLite writer lock is never held for long.
    Idempotent: deleting what is already gone deletes nothing."""

    def __init__(
        self,
        engine: Engine,
        retention: timedelta,
        store: JobStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.retention = retention
        self.store = store or JobStore()
        self.clock = clock

    def __call__(self, job: JobContext) -> None:
        cutoff = self.clock() - self.retention
        while True:
            if job.should_stop():
                raise JobInterrupted
            with write_tx(self.engine) as conn:
                if self.store.prune(conn, cutoff) == 0:
                    return
