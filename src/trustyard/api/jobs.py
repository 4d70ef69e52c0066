"""/api/v1/jobs: background jobs for system administrators: list, look, retry, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from trustyard.api.audit import Trail
from trustyard.api.deps import Caller, Limit, Registry, require_admin
from trustyard.api.errors import problems
from trustyard.api.schemas import MAX_ROW_ID, Page
from trustyard.db.engine import read_tx, write_tx
from trustyard.jobs.admin import JobAdmin
from trustyard.jobs.interfaces import Attempt, Job, JobState

router = APIRouter(tags=["jobs"])
JobId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class JobOut(BaseModel):
    id: int
    kind: str
    state: JobState
    payload: dict[str, Any]
    priority: int
    attempts: int = Field(description="attempts made (a retry by an admin starts again at 0)")
    max_attempts: int
    run_after: datetime = Field(description="when it is (or was) due")
    dedupe_key: str | None
    schedule: str | None = Field(description="the cron schedule that enqueued it")
    lease_owner: str | None = Field(description="the worker running it")
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            payload=dict(job.payload),
            priority=job.priority,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_after=job.run_after,
            dedupe_key=job.dedupe_key,
            schedule=job.schedule,
            lease_owner=job.lease_owner,
            lease_expires_at=job.lease_expires_at,
            last_error=job.last_error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    outcome: str = Field(description="running | succeeded | failed | lost | released")
    error: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            attempt=attempt.attempt,
            worker=attempt.worker,
            outcome=attempt.outcome,
            error=attempt.error,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
        )


class JobDetailOut(JobOut):
    history: list[AttemptOut] = Field(description="every claim of the job, oldest first")


@router.get("/jobs")
def list_jobs(
    caller: Caller,
    accounts: Registry,
    limit: Limit = 100,
    after: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="the `next` of the previous page")
    ] = None,
    state: Annotated[list[JobState] | None, Query(description="only these states")] = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.-]+$")] = None,
) -> Page[JobOut]:
    """Jobs, newest first, filtered by state (repeatable) and kind."""
    require_admin(caller)
    with read_tx(accounts.engine) as conn:
        found = JobAdmin().list(conn, limit=limit + 1, before=after, states=state or (), kind=kind)
    items = [JobOut.of(job) for job in found[:limit]]
    return Page(items=items, next=str(items[-1].id) if len(found) > limit else None)


@router.get("/jobs/{job_id}", responses=problems(404))
def get_job(job_id: JobId, caller: Caller, accounts: Registry) -> JobDetailOut:
    """One job with its payload, last error and the history of its attempts."""
    require_admin(caller)
    with read_tx(accounts.engine) as conn:
        detail = JobAdmin().get(conn, job_id)
    history = [AttemptOut.of(attempt) for attempt in detail.attempts]
    return JobDetailOut(**JobOut.of(detail.job).model_dump(), history=history)


@router.post("/jobs/{job_id}/retry", responses=problems(404, 409))
def retry_job(job_id: JobId, caller: Caller, trail: Trail, accounts: Registry) -> JobOut:
    """Queue a failed or dead job again, due now, with all its attempts ahead of it."""
    require_admin(caller)
    with write_tx(accounts.engine) as conn:
        job = JobAdmin().retry(conn, job_id)
        trail.record(conn, "job.retry", "job", str(job_id), detail={"kind": job.kind})
    return JobOut.of(job)


@router.post("/jobs/{job_id}/cancel", responses=problems(404, 409))
def cancel_job(job_id: JobId, caller: Caller, trail: Trail, accounts: Registry) -> JobOut:
    """Cancel a queued job (a running one cannot be cancelled)."""
    require_admin(caller)
    with write_tx(accounts.engine) as conn:
        job = JobAdmin().cancel(conn, job_id)
        trail.record(conn, "job.cancel", "job", str(job_id), detail={"kind": job.kind})
    return JobOut.of(job)
