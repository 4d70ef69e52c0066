"""All SQL of the job system. Methods take the caller's connection; none commits.

Claiming is one statement on both databases: `UPDATE jobs ... WHERE id IN (SELECT ... LIMIT n
FOR UPDATE SKIP LOCKED) RETURNING ...`. PostgreSQL locks the chosen rows and skips rows that
another worker's claim holds; SQLite ignores `FOR UPDATE` and needs nothing more, because the
statement runs inside a write transaction (`BEGIN IMMEDIATE` behind `db.engine.WriteGate`), so
no other writer runs between its SELECT and its UPDATE. Every later change of a running job is
guarded by the claim's token, so a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from trustyard.db.sql import keyset
from trustyard.db.tables import job_attempts, job_schedules, jobs
from trustyard.jobs.interfaces import (
    LIVE_STATES,
    Attempt,
    Claim,
    Enqueued,
    InvalidJob,
    Job,
    JobState,
    Schedule,
)
from trustyard.kit.clock import utc, utc_or_none

MAX_PAYLOAD = 64 * 1024
_LIVE = jobs.c.state.in_([state.value for state in LIVE_STATES])
# The predicate of the partial index, as literal SQL: PostgreSQL matches an ON CONFLICT
# target to the index only when it can prove the predicates equal (bound values hide them).
_LIVE_INDEX = text("state IN ('queued', 'running')")
# The live job holding a dedupe key (built once: pushes ask it in their transaction).
_LIVE_BY_KEY = select(jobs.c.id).where(jobs.c.dedupe_key == bindparam("dedupe_key"), _LIVE)
_FINISHED = [
    state.value for state in JobState if state not in LIVE_STATES
]  # succeeded, failed, dead, cancelled


def encode_payload(payload: Mapping[str, Any]) -> str:
    if not isinstance(payload, Mapping):
        raise InvalidJob("a job's payload is a JSON object")
    try:
        text = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise InvalidJob(f"a job's payload must be JSON: {error}") from None
    if len(text) > MAX_PAYLOAD:
        raise InvalidJob(f"a job's payload is limited to {MAX_PAYLOAD} bytes of JSON")
    return text


def decode_payload(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _job(row: Row[Any]) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        payload=decode_payload(row.payload),
        state=JobState(row.state),
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        run_after=utc(row.run_after),
        dedupe_key=row.dedupe_key,
        schedule=row.schedule,
        lease_owner=row.lease_owner,
        lease_expires_at=utc_or_none(row.lease_expires_at),
        last_error=row.last_error,
        created_at=utc(row.created_at),
        started_at=utc_or_none(row.started_at),
        finished_at=utc_or_none(row.finished_at),
    )


@functools.cache
def _insert_statement(dialect_name: str) -> Any:
    """INSERT that does nothing when a live job has the same dedupe key (the partial unique
    index uq_jobs_live_dedupe_key); jobs without a key never conflict. Built once per dialect
    (pushes enqueue a job in their transaction: the statement's construction is not free)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return (
        dialect.insert(jobs)
        .on_conflict_do_nothing(index_elements=[jobs.c.dedupe_key], index_where=_LIVE_INDEX)
        .returning(jobs.c.id)
    )


@functools.cache
def _insert_many_statement(dialect_name: str) -> Any:
    """`_insert_statement` without RETURNING, for several jobs in one execution."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(jobs).on_conflict_do_nothing(
        index_elements=[jobs.c.dedupe_key], index_where=_LIVE_INDEX
    )


class JobStore:
    # -- producers -------------------------------------------------------------------------
    def insert_many(
        self,
        conn: Connection,
        kind: str,
        items: Sequence[tuple[str, str | None]],
        *,
        max_attempts: int,
        run_after: datetime,
        now: datetime,
    ) -> None:
        """Jobs of one kind, (payload, dedupe key) each, in one statement; a job whose key a
        live job (or an earlier item) holds is not added."""
        if not items:
            return
        rows = [
            {
                "kind": kind,
                "payload": payload,
                "state": JobState.QUEUED.value,
                "priority": 0,
                "attempts": 0,
                "max_attempts": max_attempts,
                "run_after": run_after,
                "dedupe_key": key,
                "schedule": None,
                "created_at": now,
            }
            for payload, key in items
        ]
        conn.execute(_insert_many_statement(conn.dialect.name), rows)

    def insert(
        self,
        conn: Connection,
        kind: str,
        payload: str,
        *,
        max_attempts: int,
        run_after: datetime,
        now: datetime,
        priority: int = 0,
        dedupe_key: str | None = None,
        schedule: str | None = None,
    ) -> Enqueued:
        values = {
            "kind": kind,
            "payload": payload,
            "state": JobState.QUEUED.value,
            "priority": priority,
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_after": run_after,
            "dedupe_key": dedupe_key,
            "schedule": schedule,
            "created_at": now,
        }
        statement = _insert_statement(conn.dialect.name)
        for _ in range(3):
            created = conn.execute(statement, values).scalar_one_or_none()
            if created is not None:
                return Enqueued(int(created), True)
            existing = self.live_id(conn, dedupe_key)
            if existing is not None:
                return Enqueued(existing, False)
            # The live job finished between the two statements: insert again.
        raise RuntimeError(f"could not enqueue {kind!r} with dedupe key {dedupe_key!r}")

    def live_id(self, conn: Connection, dedupe_key: str | None) -> int | None:
        """The queued or running job holding `dedupe_key`, if any (one indexed read)."""
        found = conn.scalar(_LIVE_BY_KEY, {"dedupe_key": dedupe_key})
        return None if found is None else int(found)

    # -- workers ---------------------------------------------------------------------------

    def claim(
        self,
        conn: Connection,
        *,
        worker: str,
        token: str,
        kinds: Collection[str],
        limit: int,
        now: datetime,
        lease_until: datetime,
    ) -> list[Claim]:
        if limit < 1 or not kinds:
            return []
        due = (
            select(jobs.c.id)
            .where(
                jobs.c.state == JobState.QUEUED.value,
                jobs.c.run_after <= now,
                jobs.c.kind.in_(sorted(kinds)),
            )
            .order_by(jobs.c.priority.desc(), jobs.c.run_after, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(due))
            .values(
                state=JobState.RUNNING.value,
                attempts=jobs.c.attempts + 1,
                lease_owner=worker,
                lease_token=token,
                lease_expires_at=lease_until,
                started_at=now,
                finished_at=None,
            )
            .returning(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts)
        ).all()
        claims = [
            Claim(
                row.id, row.kind, decode_payload(row.payload), row.attempts, row.max_attempts, token
            )
            for row in sorted(rows, key=lambda row: row.id)
        ]
        if claims:
            conn.execute(
                insert(job_attempts),
                [
                    {
                        "job_id": claim.id,
                        "attempt": claim.attempt,
                        "worker": worker,
                        "lease_token": token,
                        "outcome": "running",
                        "started_at": now,
                    }
                    for claim in claims
                ],
            )
        return claims

    def any_due(self, conn: Connection, kinds: Collection[str], now: datetime) -> bool:
        found = conn.scalar(
            select(jobs.c.id)
            .where(
                jobs.c.state == JobState.QUEUED.value,
                jobs.c.run_after <= now,
                jobs.c.kind.in_(sorted(kinds)),
            )
            .limit(1)
        )
        return found is not None

    def finish(
        self,
        conn: Connection,
        claim: Claim,
        state: JobState,
        *,
        now: datetime,
        error: str | None = None,
        outcome: str,
    ) -> bool:
        """End a claimed job in `state` (succeeded, failed, dead); False if the claim is lost."""
        values: dict[str, Any] = {"state": state.value, "finished_at": now, **_NO_LEASE}
        if error is not None:
            values["last_error"] = error
        done = conn.execute(update(jobs).where(*_held(claim)).values(**values)).rowcount == 1
        if done:
            self._end_attempt(conn, claim, outcome, error, now)
        return done

    def succeed_many(self, conn: Connection, claims: Sequence[Claim], now: datetime) -> set[int]:
        """Mark many claimed jobs succeeded in two statements; the ids whose claim held."""
        if not claims:
            return set()
        pairs = [(claim.id, claim.token) for claim in claims]
        done = set(
            conn.scalars(
                update(jobs)
                .where(
                    tuple_(jobs.c.id, jobs.c.lease_token).in_(pairs),
                    jobs.c.state == JobState.RUNNING.value,
                )
                .values(state=JobState.SUCCEEDED.value, finished_at=now, **_NO_LEASE)
                .returning(jobs.c.id)
            )
        )
        if done:
            conn.execute(
                update(job_attempts)
                .where(
                    tuple_(job_attempts.c.job_id, job_attempts.c.lease_token).in_(
                        [pair for pair in pairs if pair[0] in done]
                    )
                )
                .values(outcome="succeeded", finished_at=now)
            )
        return done

    def requeue(
        self,
        conn: Connection,
        claim: Claim,
        *,
        run_after: datetime,
        now: datetime,
        error: str | None,
        outcome: str,
        count_attempt: bool = True,
    ) -> bool:
        values: dict[str, Any] = {
            "state": JobState.QUEUED.value,
            "run_after": run_after,
            **_NO_LEASE,
        }
        if error is not None:
            values["last_error"] = error
        if not count_attempt:
            values["attempts"] = jobs.c.attempts - 1
        done = conn.execute(update(jobs).where(*_held(claim)).values(**values)).rowcount == 1
        if done:
            self._end_attempt(conn, claim, outcome, error, now)
        return done

    def renew(self, conn: Connection, tokens: Collection[str], lease_until: datetime) -> int:
        if not tokens:
            return 0
        result = conn.execute(
            update(jobs)
            .where(jobs.c.lease_token.in_(sorted(tokens)), jobs.c.state == JobState.RUNNING.value)
            .values(lease_expires_at=lease_until)
        )
        return int(result.rowcount)

    def expired(self, conn: Connection, now: datetime, limit: int = 100) -> list[Claim]:
        """Running jobs whose lease ran out, locked for the caller's transaction."""
        rows = conn.execute(
            select(jobs.c.id, jobs.c.kind, jobs.c.attempts, jobs.c.max_attempts, jobs.c.lease_token)
            .where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [
            Claim(row.id, row.kind, {}, row.attempts, row.max_attempts, row.lease_token)
            for row in rows
        ]

    def any_expired(self, conn: Connection, now: datetime) -> bool:
        found = conn.scalar(
            select(jobs.c.id)
            .where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < now)
            .limit(1)
        )
        return found is not None

    def _end_attempt(
        self, conn: Connection, claim: Claim, outcome: str, error: str | None, now: datetime
    ) -> None:
        conn.execute(
            update(job_attempts)
            .where(job_attempts.c.job_id == claim.id, job_attempts.c.lease_token == claim.token)
            .values(outcome=outcome, error=error, finished_at=now)
        )

    # -- reading and admin -----------------------------------------------------------------

    def get(self, conn: Connection, job_id: int) -> Job | None:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def attempts(self, conn: Connection, job_id: int) -> list[Attempt]:
        rows = conn.execute(
            select(job_attempts).where(job_attempts.c.job_id == job_id).order_by(job_attempts.c.id)
        ).all()
        return [
            Attempt(
                row.attempt,
                row.worker,
                row.outcome,
                row.error,
                utc(row.started_at),
                utc_or_none(row.finished_at),
            )
            for row in rows
        ]

    def search(
        self,
        conn: Connection,
        *,
        limit: int,
        before: int | None = None,
        states: Sequence[JobState] = (),
        kind: str | None = None,
    ) -> list[Job]:
        """Jobs newest first (by id), optionally before an id, in states, of a kind."""
        query = keyset(select(jobs), jobs.c.id, before, limit, descending=True)
        if states:
            query = query.where(jobs.c.state.in_([state.value for state in states]))
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        return [_job(row) for row in conn.execute(query)]

    def transition(
        self,
        conn: Connection,
        job_id: int,
        from_states: Collection[JobState],
        values: Mapping[str, Any],
    ) -> bool:
        """Change a job only if it is in one of `from_states` (checked by the UPDATE)."""
        result = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_([state.value for state in from_states]))
            .values(**values)
        )
        return result.rowcount == 1

    def live_duplicate(self, conn: Connection, job_id: int) -> int | None:
        """The id of another live job with this job's dedupe key, if any."""
        key = select(jobs.c.dedupe_key).where(jobs.c.id == job_id).scalar_subquery()
        found = conn.scalar(
            select(jobs.c.id).where(jobs.c.dedupe_key == key, jobs.c.id != job_id, _LIVE)
        )
        return None if found is None else int(found)

    def counts(self, conn: Connection) -> dict[JobState, int]:
        rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
        return {JobState(state): int(count) for state, count in rows}

    def prune(self, conn: Connection, finished_before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` finished jobs (and their attempts) older than the cutoff."""
        old = (
            select(jobs.c.id)
            .where(jobs.c.state.in_(_FINISHED), jobs.c.finished_at < finished_before)
            .order_by(jobs.c.id)
            .limit(limit)
        )
        ids = list(conn.scalars(old))
        if not ids:
            return 0
        conn.execute(delete(job_attempts).where(job_attempts.c.job_id.in_(ids)))
        return int(conn.execute(delete(jobs).where(jobs.c.id.in_(ids))).rowcount)


_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def _held(claim: Claim) -> tuple[Any, ...]:
    return (
        jobs.c.id == claim.id,
        jobs.c.lease_token == claim.token,
        jobs.c.state == JobState.RUNNING.value,
    )


# --- schedules -----------------------------------------------------------------------------


def _schedule(row: Row[Any]) -> Schedule:
    return Schedule(
        name=row.name,
        cron=row.cron,
        kind=row.kind,
        payload=decode_payload(row.payload),
        enabled=bool(row.enabled),
        next_run_at=utc(row.next_run_at),
        last_run_at=utc_or_none(row.last_run_at),
        last_job_id=row.last_job_id,
    )


class ScheduleStore:
    def get(self, conn: Connection, name: str) -> Schedule | None:
        row = conn.execute(select(job_schedules).where(job_schedules.c.name == name)).first()
        return None if row is None else _schedule(row)

    def all(self, conn: Connection) -> list[Schedule]:
        rows = conn.execute(select(job_schedules).order_by(job_schedules.c.name))
        return [_schedule(row) for row in rows]

    def insert_missing(
        self,
        conn: Connection,
        *,
        name: str,
        cron: str,
        kind: str,
        payload: str,
        next_run_at: datetime,
        now: datetime,
    ) -> bool:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(job_schedules)
            .values(
                name=name,
                cron=cron,
                kind=kind,
                payload=payload,
                enabled=True,
                next_run_at=next_run_at,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[job_schedules.c.name])
        )
        return conn.execute(statement).rowcount == 1

    def update(self, conn: Connection, name: str, values: Mapping[str, Any]) -> None:
        conn.execute(update(job_schedules).where(job_schedules.c.name == name).values(**values))

    def due(self, conn: Connection, now: datetime) -> list[Schedule]:
        rows = conn.execute(
            select(job_schedules)
            .where(job_schedules.c.enabled, job_schedules.c.next_run_at <= now)
            .order_by(job_schedules.c.next_run_at, job_schedules.c.name)
        )
        return [_schedule(row) for row in rows]

    def claim_period(
        self, conn: Connection, name: str, *, period: datetime, next_run_at: datetime, now: datetime
    ) -> bool:
        """Move the schedule past `period`; True for the one caller whose UPDATE still saw
        `period` as next_run_at (any other process finds it moved and changes nothing)."""
        result = conn.execute(
            update(job_schedules)
            .where(and_(job_schedules.c.name == name, job_schedules.c.next_run_at == period))
            .values(next_run_at=next_run_at, last_run_at=now, updated_at=now)
        )
        return result.rowcount == 1
