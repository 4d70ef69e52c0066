"""The job queue on the metadata database: enqueue in the caller's transaction; claim,
finish, renew and reap each in a short transaction of their own."""

from __future__ import annotations

import random
import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from trustyard.db.engine import read_tx, write_tx
from trustyard.jobs.backoff import RetryPolicy
from trustyard.jobs.interfaces import (
    Claim,
    Enqueued,
    InvalidJob,
    JobState,
    Outcome,
    Result,
)
from trustyard.jobs.registry import check_kind
from trustyard.jobs.stores import JobStore, encode_payload
from trustyard.kit.clock import Clock, utc_now

MAX_ERROR = 4000


def clip_error(text: str) -> str:
    """Keep the end of a long error (a traceback's last frames and the message)."""
    return text if len(text) <= MAX_ERROR else "..." + text[-(MAX_ERROR - 3) :]


class SqlJobQueue:
    """The `JobQueue` of the workers, plus `enqueue` for producers."""

    def __init__(
        self,
        engine: Engine,
        store: JobStore | None = None,
        *,
        lease_seconds: float = 60.0,
        retry: RetryPolicy | None = None,
        max_attempts: int = 5,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.store = store or JobStore()
        self.lease = timedelta(seconds=lease_seconds)
        self.retry = retry or RetryPolicy()
        self.max_attempts = max_attempts
        self.clock = clock
        self.rng = rng
        self._idle = True  # the last claim found nothing: look (read only) before writing

    # -- producers -------------------------------------------------------------------------

    def enqueue(
        self,
        conn: Connection,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        dedupe_key: str | None = None,
        delay: float = 0.0,
        priority: int = 0,
        max_attempts: int | None = None,
        schedule: str | None = None,
        run_after: datetime | None = None,
    ) -> Enqueued:
        """Add a job in the caller's transaction (it exists once that commits). With a
        `dedupe_key`, a queued or running job with the same key makes this a no-op that
        returns that job's id."""
        attempts = self.max_attempts if max_attempts is None else max_attempts
        if attempts < 1:
            raise InvalidJob("max_attempts is at least 1")
        if dedupe_key is not None and not 0 < len(dedupe_key) <= 255:
            raise InvalidJob("a dedupe key has 1 to 255 characters")
        now = self.clock()
        return self.store.insert(
            conn,
            check_kind(kind),
            encode_payload(payload or {}),
            max_attempts=attempts,
            run_after=run_after or now + timedelta(seconds=max(0.0, delay)),
            now=now,
            priority=priority,
            dedupe_key=dedupe_key,
            schedule=schedule,
        )

    def enqueue_many(
        self,
        conn: Connection,
        kind: str,
        jobs: Sequence[tuple[Mapping[str, Any], str | None]],
    ) -> None:
        """Several jobs of one kind, (payload, dedupe key) each, in the caller's transaction
        and one statement (a push's reactions cost one round trip, whatever their number);
        a key a live job holds adds nothing, as with `enqueue`."""
        for _, key in jobs:
            if key is not None and not 0 < len(key) <= 255:
                raise InvalidJob("a dedupe key has 1 to 255 characters")
        now = self.clock()
        self.store.insert_many(
            conn,
            check_kind(kind),
            [(encode_payload(payload), key) for payload, key in jobs],
            max_attempts=self.max_attempts,
            run_after=now,
            now=now,
        )

    def signal(self, conn: Connection, kind: str, dedupe_key: str) -> Enqueued:
        """Make sure a job of `kind` holding `dedupe_key` is queued or running, in the
        caller's transaction: a wake-up for work stored elsewhere (the outbox's dispatcher),
        asked on every change while one usually waits already. Then it costs one indexed
        read; otherwise it enqueues like `enqueue`."""
        existing = self.store.live_id(conn, dedupe_key)
        if existing is not None:
            return Enqueued(existing, False)
        return self.enqueue(conn, kind, dedupe_key=dedupe_key)

    # -- workers ---------------------------------------------------------------------------

    def claim(self, worker: str, kinds: Collection[str], limit: int) -> list[Claim]:
        if limit < 1 or not kinds:
            return []
        now = self.clock()
        if self._idle and not self._any_due(kinds, now):
            return []  # an idle poll takes no write lock
        with write_tx(self.engine) as conn:
            claims = self.store.claim(
                conn,
                worker=worker,
                token=secrets.token_hex(16),
                kinds=kinds,
                limit=limit,
                now=now,
                lease_until=now + self.lease,
            )
        self._idle = not claims
        return claims

    def _any_due(self, kinds: Collection[str], now: datetime) -> bool:
        with read_tx(self.engine) as conn:
            return self.store.any_due(conn, kinds, now)

    def report(self, outcomes: Sequence[Outcome]) -> list[JobState | None]:
        if not outcomes:
            return []
        now = self.clock()
        wins = [outcome.claim for outcome in outcomes if outcome.result is Result.SUCCEEDED]
        with write_tx(self.engine) as conn:
            # Successes, the common case, in one pair of statements; the rest one by one.
            succeeded = self.store.succeed_many(conn, wins, now)
            return [
                (JobState.SUCCEEDED if outcome.claim.id in succeeded else None)
                if outcome.result is Result.SUCCEEDED
                else self._record(conn, outcome, now)
                for outcome in outcomes
            ]

    def _record(self, conn: Connection, outcome: Outcome, now: datetime) -> JobState | None:
        claim, store = outcome.claim, self.store
        error = None if outcome.error is None else clip_error(outcome.error)
        match outcome.result:
            case Result.SUCCEEDED:
                state = JobState.SUCCEEDED
                done = store.finish(conn, claim, state, now=now, outcome="succeeded")
            case Result.RELEASED:
                state = JobState.QUEUED
                done = store.requeue(
                    conn,
                    claim,
                    run_after=now,
                    now=now,
                    error=None,
                    outcome="released",
                    count_attempt=False,
                )
            case Result.PERMANENT:
                state = JobState.FAILED
                done = store.finish(conn, claim, state, now=now, error=error, outcome="failed")
            case Result.FAILED if claim.attempt >= claim.max_attempts:
                state = JobState.DEAD
                done = store.finish(conn, claim, state, now=now, error=error, outcome="failed")
            case Result.FAILED:
                state = JobState.QUEUED
                delay = self.retry.delay(claim.attempt, self.rng)
                done = store.requeue(
                    conn,
                    claim,
                    run_after=now + timedelta(seconds=delay),
                    now=now,
                    error=error,
                    outcome="failed",
                )
        return state if done else None

    # One-job shorthands of `report`.

    def succeed(self, claim: Claim) -> bool:
        return self.report([Outcome(claim, Result.SUCCEEDED)]) == [JobState.SUCCEEDED]

    def fail(self, claim: Claim, error: str, *, permanent: bool = False) -> JobState | None:
        result = Result.PERMANENT if permanent else Result.FAILED
        return self.report([Outcome(claim, result, error)])[0]

    def release(self, claims: Collection[Claim]) -> int:
        states = self.report([Outcome(claim, Result.RELEASED) for claim in claims])
        return sum(state is not None for state in states)

    def renew(self, tokens: Collection[str]) -> int:
        if not tokens:
            return 0
        with write_tx(self.engine) as conn:
            return self.store.renew(conn, tokens, self.clock() + self.lease)

    def reap(self) -> int:
        now = self.clock()
        with read_tx(self.engine) as conn:
            if not self.store.any_expired(conn, now):
                return 0
        reaped = 0
        with write_tx(self.engine) as conn:
            for claim in self.store.expired(conn, now):
                error = (
                    f"attempt {claim.attempt}: its worker stopped renewing the lease "
                    "(killed, or hung) and the lease expired"
                )
                if claim.attempt >= claim.max_attempts:
                    reaped += self.store.finish(
                        conn, claim, JobState.DEAD, now=now, error=error, outcome="lost"
                    )
                else:
                    reaped += self.store.requeue(
                        conn, claim, run_after=now, now=now, error=error, outcome="lost"
                    )
        return reaped
