"""Workers (threads in this process) on both databases: outcomes of handlers, retries, clean
stops that finish or release, and heartbeats that keep a long job's lease."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from trustyard.db.engine import read_tx, write_tx
from trustyard.jobs.admin import JobAdmin
from trustyard.jobs.backoff import RetryPolicy
from trustyard.jobs.interfaces import (
    Job,
    JobContext,
    JobInterrupted,
    JobState,
    PermanentJobError,
)
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.registry import HandlerRegistry
from trustyard.jobs.runner import Worker

DEADLINE = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def make_queue(engine: Engine, lease: float = 30.0) -> SqlJobQueue:
    return SqlJobQueue(engine, lease_seconds=lease, retry=RetryPolicy(base=0, cap=0))


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(timeout=DEADLINE)
        assert not thread.is_alive()


def enqueue(engine: Engine, kind: str, max_attempts: int = 5) -> int:
    with write_tx(engine) as conn:
        return make_queue(engine).enqueue(conn, kind, {}, max_attempts=max_attempts).id


def job(engine: Engine, job_id: int) -> Job:
    with read_tx(engine) as conn:
        return JobAdmin().get(conn, job_id).job


def outcomes(engine: Engine, job_id: int) -> list[str]:
    with read_tx(engine) as conn:
        return [attempt.outcome for attempt in JobAdmin().get(conn, job_id).attempts]


def finished(engine: Engine, *job_ids: int) -> Callable[[], bool]:
    return lambda: all(job(engine, job_id).state not in {"queued", "running"} for job_id in job_ids)


def test_a_worker_runs_each_kind_and_records_how_it_ended(engine: Engine) -> None:
    calls: Counter[str] = Counter()

    def ok(job: JobContext) -> None:
        calls["ok"] += 1

    def flaky(job: JobContext) -> None:
        calls["flaky"] += 1
        if job.attempt < 3:
            raise ConnectionError(f"the registry is away ({job.attempt})")

    def bad(job: JobContext) -> None:
        calls["bad"] += 1
        raise PermanentJobError("the image is gone")

    def broken(job: JobContext) -> None:
        calls["broken"] += 1
        raise ValueError("always")

    handlers = HandlerRegistry()
    for kind, handler in (("t.ok", ok), ("t.flaky", flaky), ("t.bad", bad), ("t.broken", broken)):
        handlers.register(kind, handler)
    ids = {kind: enqueue(engine, kind) for kind in ("t.ok", "t.flaky", "t.bad")}
    ids["t.broken"] = enqueue(engine, "t.broken", max_attempts=2)
    stranger = enqueue(engine, "t.unknown")
    worker = Worker(make_queue(engine), handlers, concurrency=3, poll_seconds=0.05)
    with running(worker):
        wait_for(finished(engine, *ids.values()), "the jobs")
    assert {kind: job(engine, job_id).state for kind, job_id in ids.items()} == {
        "t.ok": JobState.SUCCEEDED,
        "t.flaky": JobState.SUCCEEDED,
        "t.bad": JobState.FAILED,
        "t.broken": JobState.DEAD,
    }
    assert calls == {"ok": 1, "flaky": 3, "bad": 1, "broken": 2}
    assert outcomes(engine, ids["t.flaky"]) == ["failed", "failed", "succeeded"]
    dead = job(engine, ids["t.broken"])
    assert dead.last_error is not None
    assert dead.last_error.startswith("ValueError: always\nTraceback")
    bad_error = job(engine, ids["t.bad"]).last_error
    assert bad_error is not None
    assert bad_error.startswith("PermanentJobError: the image is gone")
    assert job(engine, stranger).state is JobState.QUEUED  # no handler here: left alone


def test_a_clean_stop_finishes_quick_jobs_and_gives_back_the_others(engine: Engine) -> None:
    started = {name: threading.Event() for name in ("quick", "polite", "stubborn")}
    never = threading.Event()

    def quick(job: JobContext) -> None:  # ends soon after the stop
        started["quick"].set()
        job.stopping.wait()

    def polite(job: JobContext) -> None:  # notices the stop and gives up
        started["polite"].set()
        job.stopping.wait()
        raise JobInterrupted

    def stubborn(job: JobContext) -> None:  # ignores the stop: released after the grace
        started["stubborn"].set()
        never.wait(DEADLINE)

    handlers = HandlerRegistry()
    for name, handler in (("quick", quick), ("polite", polite), ("stubborn", stubborn)):
        handlers.register(f"t.{name}", handler)
    ids = {name: enqueue(engine, f"t.{name}") for name in started}
    worker = Worker(
        make_queue(engine), handlers, concurrency=3, poll_seconds=0.05, grace_seconds=0.5
    )
    try:
        with running(worker):
            for event in started.values():
                wait_for(event.is_set, "the jobs to start")
    finally:
        never.set()
    states = {name: job(engine, job_id) for name, job_id in ids.items()}
    assert states["quick"].state is JobState.SUCCEEDED
    for name in ("polite", "stubborn"):
        released = states[name]
        assert (released.state, released.attempts, released.lease_owner) == (
            JobState.QUEUED,
            0,
            None,
        )
        assert outcomes(engine, ids[name]) == ["released"]


def test_heartbeats_keep_a_long_job_with_its_worker(engine: Engine) -> None:
    """The job outlasts its lease several times over while a second worker keeps reaping
    expired leases: renewals keep it from being taken away and run twice."""
    runs: list[str] = []

    def slow(job: JobContext) -> None:
        runs.append(job.worker)
        time.sleep(4 * 1.5)

    handlers = HandlerRegistry()
    handlers.register("t.slow", slow)
    job_id = enqueue(engine, "t.slow")
    first = Worker(
        make_queue(engine, 1.5), handlers, poll_seconds=0.05, lease_seconds=1.5, name="a"
    )
    with running(first):
        wait_for(lambda: bool(runs), "the job to start")
        other = Worker(
            make_queue(engine, 1.5), handlers, poll_seconds=0.05, lease_seconds=1.5, name="b"
        )
        with running(other):
            wait_for(finished(engine, job_id), "the job")
    assert runs == ["a"]
    done = job(engine, job_id)
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 1)
