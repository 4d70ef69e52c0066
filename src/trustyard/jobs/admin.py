"""What admins do with jobs (through /api/v1/jobs and `trustyard jobs`): look, retry, cancel.
Runs in the caller's transaction; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from trustyard.jobs.interfaces import (
    RETRYABLE_STATES,
    Attempt,
    Job,
    JobNotFound,
    JobState,
    JobStateConflict,
)
from trustyard.jobs.stores import JobStore
from trustyard.kit.clock import Clock, utc_now


@dataclass(frozen=True, slots=True)
class JobDetail:
    job: Job
    attempts: list[Attempt]


class JobAdmin:
    def __init__(self, store: JobStore | None = None, clock: Clock = utc_now) -> None:
        self.store = store or JobStore()
        self.clock = clock

    def list(
        self,
        conn: Connection,
        *,
        limit: int,
        before: int | None = None,
        states: Sequence[JobState] = (),
        kind: str | None = None,
    ) -> list[Job]:
        return self.store.search(conn, limit=limit, before=before, states=states, kind=kind)

    def get(self, conn: Connection, job_id: int) -> JobDetail:
        job = self.store.get(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return JobDetail(job, self.store.attempts(conn, job_id))

    def retry(self, conn: Connection, job_id: int) -> Job:
        """Queue a failed or dead job again, due now, with all its attempts ahead of it
        (its history and last error stay)."""
        current = self._current(conn, job_id)
        if current.state not in RETRYABLE_STATES:
            raise JobStateConflict(
                f"job {job_id} is {current.state}: only failed and dead jobs can be retried"
            )
        duplicate = self.store.live_duplicate(conn, job_id)
        if duplicate is not None:
            raise JobStateConflict(
                f"job {duplicate} with the same dedupe key is queued or running already"
            )
        values = {
            "state": JobState.QUEUED.value,
            "attempts": 0,
            "run_after": self.clock(),
            "finished_at": None,
        }
        try:
            with conn.begin_nested():  # a job enqueued meanwhile with the key: a conflict
                moved = self.store.transition(conn, job_id, RETRYABLE_STATES, values)
        except IntegrityError:
            moved = False
        if not moved:
            raise JobStateConflict(f"job {job_id} changed meanwhile; look again")
        return self._current(conn, job_id)

    def cancel(self, conn: Connection, job_id: int) -> Job:
        """Cancel a queued job (one that is running cannot be cancelled)."""
        current = self._current(conn, job_id)
        if current.state is not JobState.QUEUED:
            raise JobStateConflict(
                f"job {job_id} is {current.state}: only queued jobs can be cancelled"
            )
        values = {"state": JobState.CANCELLED.value, "finished_at": self.clock()}
        if not self.store.transition(conn, job_id, {JobState.QUEUED}, values):
            raise JobStateConflict(f"job {job_id} was claimed meanwhile; it runs now")
        return self._current(conn, job_id)

    def _current(self, conn: Connection, job_id: int) -> Job:
        job = self.store.get(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job
