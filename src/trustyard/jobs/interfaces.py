"""Records, Protocols and domain errors of the job system (transport-free)."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from trustyard.errors import Invalid, NotFound, StateConflict


class JobState(StrEnum):
    QUEUED = "queued"  # waiting for its run_after (a retry waits there too)
    RUNNING = "running"  # claimed by a worker under a lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the handler said it can never succeed (PermanentJobError): no retry
    DEAD = "dead"  # failed max_attempts times; parked with its last error
    CANCELLED = "cancelled"  # cancelled by an admin while queued


LIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.DEAD})


class JobError(Exception):
    """Base of the job system's errors. The refusals below (JobNotFound, JobStateConflict,
    InvalidJob) are also generic domain errors, which is how the edges answer them. The two
    signals a handler gives its runner (PermanentJobError, JobInterrupted) are not: they are
    control flow, never an answer, and no `except DomainError` may take them for a refusal."""


class PermanentJobError(JobError):
    """Raised by a handler when its job can never succeed (bad payload, object gone for
    good): the job is marked failed at once instead of being retried."""


class JobInterrupted(JobError):
    """Raised by a handler that stopped early because its worker is stopping
    (`JobContext.should_stop()`): the job is given back unfinished and runs again later."""


class JobNotFound(JobError, NotFound):
    def __init__(self, job_id: int) -> None:
        super().__init__("job", str(job_id), f"job {job_id} does not exist")
        self.job_id = job_id


class JobStateConflict(JobError, StateConflict):
    """The job is not in a state that allows the action (e.g. retrying a queued job)."""


class InvalidJob(JobError, Invalid):
    """A kind, payload or cron expression breaks a rule."""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: Mapping[str, Any]
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    run_after: datetime
    dedupe_key: str | None
    schedule: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claim of a job. outcome: running | succeeded | failed | lost | released."""

    attempt: int
    worker: str
    outcome: str
    error: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule as stored: `next_run_at` is the next period to claim."""

    name: str
    cron: str
    kind: str
    payload: Mapping[str, Any]
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: int | None


@dataclass(frozen=True, slots=True)
class Enqueued:
    id: int
    created: bool  # False: a live job with the same dedupe key exists, and this is its id


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker holds: finishing it needs the claim's token (a fence against a worker
    whose lease expired and whose job was claimed again)."""

    id: int
    kind: str
    payload: Mapping[str, Any]
    attempt: int
    max_attempts: int
    token: str


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler gets: the job and a way to notice that the worker is stopping."""

    id: int
    kind: str
    payload: Mapping[str, Any]
    attempt: int  # 1 on the first run
    max_attempts: int
    worker: str
    stopping: threading.Event = field(default_factory=threading.Event, compare=False)

    def should_stop(self) -> bool:
        """True once the worker shuts down: a long handler may then raise `JobInterrupted`
        to give its job back (it runs again later, from the start)."""
        return self.stopping.is_set()


class JobHandler(Protocol):
    """Runs one job of a kind. Handlers MUST be idempotent: a job runs at least once, and
    may run again after a crash, a lost lease or a clean stop that interrupted it (and after
    an admin's retry), so running it twice must leave the same result as running it once.

    Return normally on success. Raise `PermanentJobError` when the job can never succeed;
    any other exception is retried with exponential backoff until max_attempts, then the
    job is parked as dead with its last error. Handlers run on worker threads, outside any
    transaction: each opens its own (short) transactions.
    """

    def __call__(self, job: JobContext) -> None: ...


class Result(StrEnum):
    """How a claimed job's run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retried after a backoff, or dead after max_attempts
    PERMANENT = "permanent"  # failed for good (PermanentJobError)
    RELEASED = "released"  # given back unfinished (a clean stop): the attempt does not count


@dataclass(frozen=True, slots=True)
class Outcome:
    claim: Claim
    result: Result
    error: str | None = None


class JobQueue(Protocol):
    """What a worker needs from the queue; every method is its own transaction."""

    def claim(self, worker: str, kinds: Collection[str], limit: int) -> list[Claim]:
        """Take up to `limit` due jobs of `kinds` (none that another worker holds)."""
        ...

    def report(self, outcomes: Sequence[Outcome]) -> list[JobState | None]:
        """Record how jobs ended, all in one transaction: each job's new state (queued
        again after a backoff, succeeded, failed, dead), or None where the claim was lost
        (its lease expired and the job was given to another worker)."""
        ...

    def renew(self, tokens: Collection[str]) -> int:
        """Extend the leases of the running jobs held under `tokens`; returns how many."""
        ...

    def reap(self) -> int:
        """Queue again (or park as dead) running jobs whose lease expired."""
        ...
