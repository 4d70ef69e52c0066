"""Cron schedules on both databases: one job per period, however many schedulers race."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from tests.unit.jobs.conftest import T0, FakeClock
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import jobs
from trustyard.jobs.interfaces import InvalidJob, JobState
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.scheduler import Scheduler, ScheduleSpec, check_cron, next_run
from trustyard.jobs.stores import ScheduleStore

EVERY_MINUTE = ScheduleSpec("reports.daily", "* * * * *", "reports.build", {"format": "csv"})


def make_scheduler(engine: Engine, clock: FakeClock) -> Scheduler:
    return Scheduler(engine, SqlJobQueue(engine, clock=clock), clock=clock)


def scheduled_jobs(engine: Engine) -> list[tuple[str | None, datetime, str]]:
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(jobs.c.schedule, jobs.c.run_after, jobs.c.kind).order_by(jobs.c.id)
        ).all()
    return [
        (schedule, run_after if run_after.tzinfo else run_after.replace(tzinfo=UTC), kind)
        for schedule, run_after, kind in rows
    ]


def next_run_at(engine: Engine, name: str) -> datetime:
    with read_tx(engine) as conn:
        stored = ScheduleStore().get(conn, name)
    assert stored is not None
    return stored.next_run_at


@pytest.mark.parametrize(
    ("expression", "normal"),
    [("*/5 * * * *", "*/5 * * * *"), ("  0 3  * * 1-5 ", "0 3 * * 1-5"), ("* * * * * */2", None)],
)
def test_five_or_six_field_expressions_are_cron(expression: str, normal: str | None) -> None:
    assert check_cron(expression) == (normal or expression)


@pytest.mark.parametrize(
    "expression", ["", "* * * *", "* * * * * * *", "61 * * * *", "every day", "* * * * * 99"]
)
def test_other_expressions_are_refused(expression: str) -> None:
    with pytest.raises(InvalidJob):
        check_cron(expression)


def test_the_sixth_field_is_seconds_and_times_are_utc() -> None:
    assert next_run("* * * * * */10", T0 + timedelta(seconds=3)) == T0 + timedelta(seconds=10)
    assert next_run("30 4 * * *", T0) == datetime(2030, 1, 2, 4, 30, tzinfo=UTC)
    assert next_run("* * * * *", T0) == T0 + timedelta(minutes=1)  # strictly after


def test_sync_stores_new_schedules_and_follows_changes(engine: Engine, clock: FakeClock) -> None:
    scheduler = make_scheduler(engine, clock)
    scheduler.sync([EVERY_MINUTE])
    [stored] = scheduler.schedules()
    assert (stored.name, stored.cron, stored.kind, dict(stored.payload)) == (
        "reports.daily",
        "* * * * *",
        "reports.build",
        {"format": "csv"},
    )
    assert stored.next_run_at == T0 + timedelta(minutes=1)
    clock.advance(30)
    scheduler.sync([EVERY_MINUTE])  # unchanged: keeps its period
    assert next_run_at(engine, "reports.daily") == T0 + timedelta(minutes=1)
    scheduler.sync([ScheduleSpec("reports.daily", "0 * * * *", "reports.build", {"format": "pdf"})])
    [changed] = scheduler.schedules()
    assert (changed.cron, dict(changed.payload)) == ("0 * * * *", {"format": "pdf"})
    assert changed.next_run_at == T0 + timedelta(hours=1)


def test_a_due_schedule_enqueues_one_job_for_its_period(engine: Engine, clock: FakeClock) -> None:
    scheduler = make_scheduler(engine, clock)
    scheduler.sync([EVERY_MINUTE])
    assert scheduler.tick() == []
    clock.advance(60)
    [job_id] = scheduler.tick()
    assert scheduler.tick() == []
    assert scheduled_jobs(engine) == [("reports.daily", T0 + timedelta(minutes=1), "reports.build")]
    [stored] = scheduler.schedules()
    assert stored.next_run_at == T0 + timedelta(minutes=2)
    assert (stored.last_run_at, stored.last_job_id) == (clock.now, job_id)


def test_missed_periods_are_run_once(engine: Engine, clock: FakeClock) -> None:
    scheduler = make_scheduler(engine, clock)
    scheduler.sync([EVERY_MINUTE])
    clock.advance(10 * 60 + 5)
    assert len(scheduler.tick()) == 1
    assert next_run_at(engine, "reports.daily") == T0 + timedelta(minutes=11)


def test_a_period_whose_previous_job_still_runs_adds_none(engine: Engine, clock: FakeClock) -> None:
    scheduler = make_scheduler(engine, clock)
    scheduler.sync([EVERY_MINUTE])
    clock.advance(60)
    [first] = scheduler.tick()
    clock.advance(60)
    assert scheduler.tick() == []  # first is still queued
    assert next_run_at(engine, "reports.daily") == T0 + timedelta(minutes=3)
    queue = SqlJobQueue(engine, clock=clock)
    [claim] = queue.claim("w1", {"reports.build"}, 1)
    assert claim.id == first
    queue.succeed(claim)
    clock.advance(60)
    assert len(scheduler.tick()) == 1


def test_racing_schedulers_enqueue_exactly_one_job_per_period(
    engine: Engine, clock: FakeClock
) -> None:
    """Eight schedulers (threads, each with its own objects) tick at the same instants;
    jobs finish between periods. Every period yields one job, no matter who wins it."""
    every_second = ScheduleSpec("tick", "* * * * * *", "reports.build")
    make_scheduler(engine, clock).sync([every_second])
    periods = 6
    schedulers = [make_scheduler(engine, clock) for _ in range(8)]
    won: list[int] = []
    lock = threading.Lock()
    failures: list[BaseException] = []
    for _ in range(periods):
        clock.advance(1)
        barrier = threading.Barrier(len(schedulers))

        def race(scheduler: Scheduler, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                enqueued = scheduler.tick()
                with lock:
                    won.extend(enqueued)
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        queue = SqlJobQueue(engine, clock=clock)
        for claim in queue.claim("w", {"reports.build"}, 10):
            queue.succeed(claim)
    assert failures == []
    found = scheduled_jobs(engine)
    assert len(won) == len(found) == periods
    assert [run_after for _, run_after, _ in found] == [
        T0 + timedelta(seconds=n) for n in range(1, periods + 1)
    ]


def test_a_stale_period_claims_nothing(engine: Engine, clock: FakeClock) -> None:
    scheduler = make_scheduler(engine, clock)
    scheduler.sync([EVERY_MINUTE])
    period = T0 + timedelta(minutes=1)
    store = ScheduleStore()
    with write_tx(engine) as conn:
        assert store.claim_period(
            conn, "reports.daily", period=period, next_run_at=period + timedelta(minutes=1), now=T0
        )
        assert not store.claim_period(
            conn, "reports.daily", period=period, next_run_at=period + timedelta(minutes=1), now=T0
        )


def test_scheduled_jobs_are_ordinary_jobs(engine: Engine, clock: FakeClock) -> None:
    scheduler = make_scheduler(engine, clock)
    scheduler.sync([EVERY_MINUTE])
    clock.advance(60)
    [job_id] = scheduler.tick()
    queue = SqlJobQueue(engine, clock=clock)
    [claim] = queue.claim("w1", {"reports.build"}, 5)
    assert (claim.id, dict(claim.payload)) == (job_id, {"format": "csv"})
    queue.succeed(claim)
    with read_tx(engine) as conn:
        assert conn.scalar(select(jobs.c.state).where(jobs.c.id == job_id)) == JobState.SUCCEEDED
