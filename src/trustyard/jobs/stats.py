"""The state of the job queue at a glance, per kind, in one query (for /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, case, func, select

from trustyard.db.tables import jobs
from trustyard.jobs.interfaces import JobState
from trustyard.kit.clock import utc

WATCHED = (JobState.QUEUED, JobState.RUNNING, JobState.DEAD)


@dataclass(frozen=True, slots=True)
class KindStats:
    kind: str
    queued: int  # due or waiting for a retry's backoff
    running: int
    dead: int
    oldest_due_seconds: float  # how long the oldest due queued job has waited; 0: none due


def queue_stats(conn: Connection, now: datetime) -> list[KindStats]:
    """Per kind with queued, running or dead jobs: their counts, and how long the oldest
    queued job that is due has been waiting for a worker (a job waiting for its retry's
    backoff is not late)."""
    due_since = case(
        (
            (jobs.c.state == JobState.QUEUED.value) & (jobs.c.run_after <= now),
            jobs.c.run_after,
        ),
    )
    rows = conn.execute(
        select(
            jobs.c.kind,
            jobs.c.state,
            func.count(),
            func.min(due_since, type_=jobs.c.run_after.type),
        )
        .where(jobs.c.state.in_([state.value for state in WATCHED]))
        .group_by(jobs.c.kind, jobs.c.state)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    oldest: dict[str, datetime] = {}
    for kind, state, count, due in rows:
        counts.setdefault(kind, {})[state] = int(count)
        if due is not None:
            oldest[kind] = utc(due)
    return [
        KindStats(
            kind,
            by_state.get(JobState.QUEUED.value, 0),
            by_state.get(JobState.RUNNING.value, 0),
            by_state.get(JobState.DEAD.value, 0),
            max((now - oldest[kind]).total_seconds(), 0.0) if kind in oldest else 0.0,
        )
        for kind, by_state in sorted(counts.items())
    ]
