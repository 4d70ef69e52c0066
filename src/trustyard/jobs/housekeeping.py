"""The job system's own upkeep: deleting finished jobs after the retention period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from trustyard.db.engine import write_tx
from trustyard.jobs.interfaces import JobContext, JobInterrupted
from trustyard.jobs.scheduler import ScheduleSpec
from trustyard.jobs.stores import JobStore
from trustyard.kit.clock import Clock, utc_now

PRUNE_KIND = "jobs.prune"
PRUNE_SCHEDULE = ScheduleSpec("jobs.prune", "17 3 * * *", PRUNE_KIND)  # daily, 03:17 UTC


class BatchedPrune:
    """A retention job: `prune(conn, cutoff)` deletes up to a batch of rows older than the
    cutoff and returns how many; this repeats it, one transaction per batch (so the SQLite
    writer lock is never held for long), until nothing is left or the worker stops.
    Idempotent: deleting what is already gone deletes nothing."""

    def __init__(
        self,
        engine: Engine,
        retention: timedelta,
        prune: Callable[[Connection, datetime], int],
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.retention = retention
        self.prune = prune
        self.clock = clock

    def __call__(self, job: JobContext) -> None:
        cutoff = self.clock() - self.retention
        while True:
            if job.should_stop():
                raise JobInterrupted
            with write_tx(self.engine) as conn:
                if self.prune(conn, cutoff) == 0:
                    return


def PruneFinishedJobs(
    engine: Engine, retention: timedelta, store: JobStore | None = None, clock: Clock = utc_now
) -> BatchedPrune:
    """Deletes jobs that finished (any way) more than `retention` ago, with their attempts."""
    return BatchedPrune(engine, retention, (store or JobStore()).prune, clock)
