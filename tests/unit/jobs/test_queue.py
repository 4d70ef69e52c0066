"""The job queue on both databases: claiming, retries with backoff, dead and failed jobs,
lease expiry and renewal, releases, dedupe keys, and the admin actions."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from tests.unit.jobs.conftest import T0, FakeClock
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import job_attempts, jobs
from trustyard.events.stores import detach_dedupe_key
from trustyard.jobs.admin import JobAdmin
from trustyard.jobs.backoff import RetryPolicy
from trustyard.jobs.interfaces import (
    Claim,
    Enqueued,
    InvalidJob,
    Job,
    JobNotFound,
    JobState,
    JobStateConflict,
    Outcome,
    Result,
)
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.stores import JobStore

KINDS = {"mail.send", "scan.image"}
LEASE = 60.0


class FixedRandom(random.Random):
    def random(self) -> float:
        return 0.5


def make_queue(engine: Engine, clock: FakeClock, max_attempts: int = 3) -> SqlJobQueue:
    return SqlJobQueue(
        engine,
        lease_seconds=LEASE,
        retry=RetryPolicy(base=10, cap=25),
        max_attempts=max_attempts,
        clock=clock,
        rng=FixedRandom(),
    )


@pytest.fixture
def queue(engine: Engine, clock: FakeClock) -> SqlJobQueue:
    return make_queue(engine, clock)


def enqueue(queue: SqlJobQueue, kind: str = "mail.send", **options: object) -> int:
    payload = options.pop("payload", {"to": "olga"})
    with write_tx(queue.engine) as conn:
        return queue.enqueue(conn, kind, payload, **options).id  # type: ignore[arg-type]


def job(queue: SqlJobQueue, job_id: int) -> Job:
    with read_tx(queue.engine) as conn:
        found = JobStore().get(conn, job_id)
    assert found is not None
    return found


def outcomes(queue: SqlJobQueue, job_id: int) -> list[tuple[int, str, str]]:
    with read_tx(queue.engine) as conn:
        return [
            (attempt.attempt, attempt.worker, attempt.outcome)
            for attempt in JobStore().attempts(conn, job_id)
        ]


def claim_one(queue: SqlJobQueue, worker: str = "w1") -> Claim:
    claims = queue.claim(worker, KINDS, 1)
    assert len(claims) == 1
    return claims[0]


# --- enqueue and claim ---------------------------------------------------------------------


def test_a_claimed_job_is_running_under_a_lease(queue: SqlJobQueue) -> None:
    job_id = enqueue(queue, payload={"to": "olga", "n": [1, 2]})
    claim = claim_one(queue, "w1")
    assert (claim.id, claim.kind, dict(claim.payload)) == (
        job_id,
        "mail.send",
        {"to": "olga", "n": [1, 2]},
    )
    assert (claim.attempt, claim.max_attempts) == (1, 3)
    running = job(queue, job_id)
    assert running.state is JobState.RUNNING
    assert running.lease_owner == "w1"
    assert running.lease_expires_at == T0 + timedelta(seconds=LEASE)
    assert running.started_at == T0
    assert outcomes(queue, job_id) == [(1, "w1", "running")]


def test_a_running_job_is_not_claimed_again(queue: SqlJobQueue) -> None:
    enqueue(queue)
    claim_one(queue, "w1")
    assert queue.claim("w2", KINDS, 5) == []


def test_claims_take_due_jobs_of_known_kinds_by_priority_then_age(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    old = enqueue(queue)
    clock.advance(1)
    urgent = enqueue(queue, priority=5)
    later = enqueue(queue, delay=30)
    unknown = enqueue(queue, kind="mirror.pull")
    young = enqueue(queue, kind="scan.image")
    claimed = queue.claim("w1", KINDS, 2)
    assert {claim.id for claim in claimed} == {urgent, old}
    assert [claim.id for claim in queue.claim("w1", KINDS, 10)] == [young]
    assert queue.claim("w1", KINDS, 10) == []
    clock.advance(30)
    assert [claim.id for claim in queue.claim("w1", KINDS, 10)] == [later]
    assert job(queue, unknown).state is JobState.QUEUED


def test_concurrent_claimers_take_each_job_exactly_once(engine: Engine, clock: FakeClock) -> None:
    producer = make_queue(engine, clock)
    with write_tx(engine) as conn:
        created = {producer.enqueue(conn, "mail.send", {"n": n}).id for n in range(300)}
    taken: list[int] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def claimer(name: str) -> None:
        mine = make_queue(engine, clock)  # each worker its own queue object, one engine pool
        try:
            while claims := mine.claim(name, KINDS, 3):
                with lock:
                    taken.extend(claim.id for claim in claims)
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(taken) == sorted(created)
    with read_tx(engine) as conn:
        assert conn.scalar(select(func.count()).select_from(job_attempts)) == 300


# --- outcomes --------------------------------------------------------------------------------


def test_success_ends_the_job_and_its_attempt(queue: SqlJobQueue, clock: FakeClock) -> None:
    job_id = enqueue(queue)
    claim = claim_one(queue)
    clock.advance(2)
    assert queue.succeed(claim) is True
    done = job(queue, job_id)
    assert done.state is JobState.SUCCEEDED
    assert done.finished_at == T0 + timedelta(seconds=2)
    assert (done.lease_owner, done.lease_expires_at, done.last_error) == (None, None, None)
    assert outcomes(queue, job_id) == [(1, "w1", "succeeded")]
    assert queue.succeed(claim) is False  # a second report changes nothing


def test_a_failure_is_retried_after_an_exponential_backoff_then_the_job_is_dead(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    job_id = enqueue(queue)
    # attempt 1 fails: wait 3/4 of 10 s (FixedRandom); attempt 2: 3/4 of 20 s
    for attempt, delay in ((1, 7.5), (2, 15.0)):
        claim = claim_one(queue)
        assert claim.attempt == attempt
        assert queue.fail(claim, f"boom {attempt}") is JobState.QUEUED
        waiting = job(queue, job_id)
        assert waiting.state is JobState.QUEUED
        assert waiting.run_after == clock.now + timedelta(seconds=delay)
        assert waiting.last_error == f"boom {attempt}"
        clock.advance(delay - 0.5)
        assert queue.claim("w1", KINDS, 1) == []  # not due yet
        clock.advance(0.5)
    claim = claim_one(queue)
    assert claim.attempt == 3
    assert queue.fail(claim, "boom 3") is JobState.DEAD
    dead = job(queue, job_id)
    assert (dead.state, dead.attempts, dead.last_error) == (JobState.DEAD, 3, "boom 3")
    assert dead.finished_at == clock.now
    assert outcomes(queue, job_id) == [
        (1, "w1", "failed"),
        (2, "w1", "failed"),
        (3, "w1", "failed"),
    ]
    clock.advance(3600)
    assert queue.claim("w1", KINDS, 1) == []


def test_the_backoff_never_exceeds_its_cap(queue: SqlJobQueue, clock: FakeClock) -> None:
    job_id = enqueue(queue, max_attempts=10)
    for _ in range(5):
        claim = claim_one(queue)
        queue.fail(claim, "boom")
        assert job(queue, job_id).run_after <= clock.now + timedelta(seconds=25)
        clock.advance(25)


def test_a_permanent_failure_is_not_retried(queue: SqlJobQueue) -> None:
    job_id = enqueue(queue)
    claim = claim_one(queue)
    assert queue.fail(claim, "no such image", permanent=True) is JobState.FAILED
    failed = job(queue, job_id)
    assert (failed.state, failed.attempts, failed.last_error) == (
        JobState.FAILED,
        1,
        "no such image",
    )


def test_a_long_error_keeps_its_end(queue: SqlJobQueue) -> None:
    job_id = enqueue(queue)
    queue.fail(claim_one(queue), "x" * 10_000 + "the cause")
    error = job(queue, job_id).last_error
    assert error is not None
    assert len(error) == 4000
    assert error.startswith("...")
    assert error.endswith("the cause")


# --- leases --------------------------------------------------------------------------------


def test_an_expired_lease_gives_the_job_to_another_worker_and_fences_the_first(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    job_id = enqueue(queue)
    first = claim_one(queue, "w1")
    clock.advance(LEASE - 1)
    assert queue.reap() == 0
    clock.advance(2)
    assert queue.reap() == 1
    again = job(queue, job_id)
    assert again.state is JobState.QUEUED
    assert again.run_after == clock.now
    assert again.last_error is not None
    assert "lease expired" in again.last_error
    second = claim_one(queue, "w2")
    assert second.attempt == 2
    assert queue.succeed(first) is False  # the lost worker wakes up: nothing changes
    assert queue.fail(first, "late") is None
    assert job(queue, job_id).state is JobState.RUNNING
    assert queue.succeed(second) is True
    assert outcomes(queue, job_id) == [(1, "w1", "lost"), (2, "w2", "succeeded")]


def test_renewed_leases_do_not_expire(queue: SqlJobQueue, clock: FakeClock) -> None:
    job_id = enqueue(queue)
    claim = claim_one(queue)
    for _ in range(3):
        clock.advance(LEASE - 1)
        assert queue.renew({claim.token}) == 1
        assert queue.reap() == 0
    assert job(queue, job_id).lease_expires_at == clock.now + timedelta(seconds=LEASE)
    assert queue.succeed(claim) is True
    assert queue.renew({claim.token}) == 0


def test_a_job_whose_workers_keep_dying_is_dead_after_max_attempts(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    job_id = enqueue(queue)
    for _ in range(3):
        claim_one(queue)
        clock.advance(LEASE + 1)
        assert queue.reap() == 1
    dead = job(queue, job_id)
    assert (dead.state, dead.attempts) == (JobState.DEAD, 3)
    assert [outcome for _, _, outcome in outcomes(queue, job_id)] == ["lost"] * 3


def test_a_released_job_is_queued_again_without_counting_the_attempt(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    job_id = enqueue(queue)
    claim = claim_one(queue, "w1")
    clock.advance(5)
    assert queue.release([claim]) == 1
    released = job(queue, job_id)
    assert (released.state, released.attempts, released.run_after) == (
        JobState.QUEUED,
        0,
        clock.now,
    )
    assert released.lease_owner is None
    assert claim_one(queue, "w2").attempt == 1
    assert outcomes(queue, job_id) == [(1, "w1", "released"), (1, "w2", "running")]


# --- dedupe keys ---------------------------------------------------------------------------


def test_enqueuing_live_work_twice_is_harmless(queue: SqlJobQueue) -> None:
    with write_tx(queue.engine) as conn:
        first = queue.enqueue(conn, "scan.image", {"digest": "a"}, dedupe_key="scan:a")
        again = queue.enqueue(conn, "scan.image", {"digest": "a"}, dedupe_key="scan:a")
        other = queue.enqueue(conn, "scan.image", {"digest": "b"}, dedupe_key="scan:b")
    assert first.created is True
    assert (again.id, again.created) == (first.id, False)
    assert other.created is True
    assert other.id != first.id
    claim = claim_one(queue)
    assert claim.id == first.id
    with write_tx(queue.engine) as conn:  # running counts as live too
        assert queue.enqueue(conn, "scan.image", {}, dedupe_key="scan:a") == again
    queue.succeed(claim)
    with write_tx(queue.engine) as conn:  # finished work may be asked for again
        later = queue.enqueue(conn, "scan.image", {"digest": "a"}, dedupe_key="scan:a")
    assert later.created is True
    assert later.id not in {first.id, other.id}


def test_several_jobs_enqueued_at_once_keep_their_dedupe_keys(queue: SqlJobQueue) -> None:
    """What a push into a repository with policies queues in one statement: a key a live
    job holds (or an earlier item of the batch) adds nothing; the others become jobs."""
    with write_tx(queue.engine) as conn:
        live = queue.enqueue(conn, "scan.image", {"digest": "a"}, dedupe_key="scan:a")
        queue.enqueue_many(
            conn,
            "scan.image",
            [
                ({"digest": "a"}, "scan:a"),
                ({"digest": "b"}, "scan:b"),
                ({"digest": "b", "again": True}, "scan:b"),
                ({"digest": "c"}, None),
            ],
        )
        queue.enqueue_many(conn, "scan.image", [])
    taken = [queue.claim("w1", KINDS, 10)]
    payloads = sorted(json.dumps(claim.payload, sort_keys=True) for claim in taken[0])
    assert payloads == [
        '{"digest": "a"}',
        '{"digest": "b"}',
        '{"digest": "c"}',
    ]
    assert live.id in {claim.id for claim in taken[0]}


def test_a_signal_finds_the_waiting_job_or_queues_one(queue: SqlJobQueue) -> None:
    """What the outbox asks on every change: a live job with the key is enough (queued or
    running), a finished one is not, and a running job that gave its key up gets company."""
    with write_tx(queue.engine) as conn:
        first = queue.signal(conn, "mail.send", "mail:wake")
        again = queue.signal(conn, "mail.send", "mail:wake")
    assert first.created is True
    assert (again.id, again.created) == (first.id, False)
    assert job(queue, first.id).payload == {}
    claim = claim_one(queue)
    with write_tx(queue.engine) as conn:  # running, still holding the key
        assert queue.signal(conn, "mail.send", "mail:wake") == again
        detach_dedupe_key(conn, claim.id, "mail:wake")
        company = queue.signal(conn, "mail.send", "mail:wake")
    assert company.created is True
    assert company.id != first.id
    queue.succeed(claim)
    with write_tx(queue.engine) as conn:
        assert queue.signal(conn, "mail.send", "mail:wake") == Enqueued(company.id, False)


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("Mail.Send", {}),
        ("mail send", {}),
        ("", {}),
        ("a" * 65, {}),
        ("mail.send", {"when": object()}),
        ("mail.send", {"big": "x" * 70_000}),
    ],
)
def test_bad_kinds_and_payloads_are_refused(
    queue: SqlJobQueue, kind: str, payload: dict[str, object]
) -> None:
    with write_tx(queue.engine) as conn, pytest.raises(InvalidJob):
        queue.enqueue(conn, kind, payload)


# --- admin ---------------------------------------------------------------------------------


def test_an_admin_retries_a_dead_job_with_all_its_attempts_ahead(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    job_id = enqueue(queue, max_attempts=1)
    queue.fail(claim_one(queue), "boom")
    clock.advance(100)
    with write_tx(queue.engine) as conn:
        retried = JobAdmin(clock=clock).retry(conn, job_id)
    assert (retried.state, retried.attempts, retried.run_after) == (
        JobState.QUEUED,
        0,
        clock.now,
    )
    assert retried.finished_at is None
    assert retried.last_error == "boom"  # kept until a new failure replaces it
    assert queue.succeed(claim_one(queue)) is True
    with read_tx(queue.engine) as conn:
        detail = JobAdmin().get(conn, job_id)
    assert [(a.attempt, a.outcome, a.error) for a in detail.attempts] == [
        (1, "failed", "boom"),
        (1, "succeeded", None),
    ]


def test_only_failed_and_dead_jobs_are_retried(queue: SqlJobQueue) -> None:
    queued = enqueue(queue)
    with write_tx(queue.engine) as conn, pytest.raises(JobStateConflict, match="is queued"):
        JobAdmin().retry(conn, queued)
    with write_tx(queue.engine) as conn, pytest.raises(JobNotFound):
        JobAdmin().retry(conn, queued + 1000)


def test_a_retry_that_would_duplicate_live_work_is_refused(queue: SqlJobQueue) -> None:
    dead = enqueue(queue, dedupe_key="k", max_attempts=1)
    queue.fail(claim_one(queue), "boom")
    live = enqueue(queue, dedupe_key="k")
    with write_tx(queue.engine) as conn, pytest.raises(JobStateConflict, match=f"job {live}"):
        JobAdmin().retry(conn, dead)
    assert job(queue, dead).state is JobState.DEAD


def test_an_admin_cancels_a_queued_job_and_no_worker_runs_it(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    job_id = enqueue(queue)
    with write_tx(queue.engine) as conn:
        cancelled = JobAdmin(clock=clock).cancel(conn, job_id)
    assert (cancelled.state, cancelled.finished_at) == (JobState.CANCELLED, clock.now)
    assert queue.claim("w1", KINDS, 1) == []
    running = enqueue(queue)
    claim_one(queue)
    with write_tx(queue.engine) as conn, pytest.raises(JobStateConflict, match="is running"):
        JobAdmin().cancel(conn, running)


def test_listing_filters_by_state_and_kind_newest_first(queue: SqlJobQueue) -> None:
    mail = [enqueue(queue) for _ in range(3)]
    scan = enqueue(queue, kind="scan.image")
    queue.claim("w1", {"scan.image"}, 1)
    admin = JobAdmin()
    with read_tx(queue.engine) as conn:
        assert [j.id for j in admin.list(conn, limit=10)] == [scan, *reversed(mail)]
        assert [j.id for j in admin.list(conn, limit=10, kind="mail.send")] == mail[::-1]
        assert [j.id for j in admin.list(conn, limit=10, states=[JobState.RUNNING])] == [scan]
        assert [j.id for j in admin.list(conn, limit=2, before=mail[2])] == [mail[1], mail[0]]


def test_prune_deletes_old_finished_jobs_only(queue: SqlJobQueue, clock: FakeClock) -> None:
    old_done = enqueue(queue)
    queue.succeed(claim_one(queue))
    old_dead = enqueue(queue, max_attempts=1)
    queue.fail(claim_one(queue), "boom")
    waiting = enqueue(queue, delay=10**6)
    clock.advance(86400)
    recent = enqueue(queue)
    queue.succeed(claim_one(queue))
    with write_tx(queue.engine) as conn:
        assert JobStore().prune(conn, clock.now - timedelta(hours=1)) == 2
    with read_tx(queue.engine) as conn:
        left = set(conn.scalars(select(jobs.c.id)))
        attempts_left = set(conn.scalars(select(job_attempts.c.job_id)))
    assert left == {waiting, recent}
    assert old_done not in attempts_left
    assert old_dead not in attempts_left


def test_a_batch_of_outcomes_is_recorded_in_one_go_and_lost_claims_change_nothing(
    queue: SqlJobQueue, clock: FakeClock
) -> None:
    ids = [enqueue(queue) for _ in range(4)]
    claims = queue.claim("w1", KINDS, 4)
    assert sorted(claim.id for claim in claims) == ids
    stale = claims[0]
    clock.advance(LEASE + 1)
    assert queue.reap() == 4
    retaken = {claim.id: claim for claim in queue.claim("w2", KINDS, 4)}
    fresh = [retaken[claim.id] for claim in claims[1:]]
    states = queue.report(
        [
            Outcome(stale, Result.SUCCEEDED),  # w1 lost it: w2 holds it now
            Outcome(fresh[0], Result.SUCCEEDED),
            Outcome(fresh[1], Result.FAILED, "boom"),
            Outcome(fresh[2], Result.SUCCEEDED),
        ]
    )
    assert states == [None, JobState.SUCCEEDED, JobState.QUEUED, JobState.SUCCEEDED]
    assert [job(queue, job_id).state for job_id in ids] == [
        JobState.RUNNING,
        JobState.SUCCEEDED,
        JobState.QUEUED,
        JobState.SUCCEEDED,
    ]
    assert outcomes(queue, fresh[0].id) == [(1, "w1", "lost"), (2, "w2", "succeeded")]
    assert outcomes(queue, stale.id) == [(1, "w1", "lost"), (2, "w2", "running")]
