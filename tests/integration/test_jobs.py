"""Real `trustyard worker` processes sharing one database (SQLite and PostgreSQL): every job
runs once, a killed worker's job is finished by another after its lease, a schedule fires once
per period with two processes up, a clean stop gives running jobs back, and the CLI."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.support.postgres import PostgresCluster
from tests.support.workers import WorkerProcess, sqlite_url, trustyard
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.tables import job_attempts, jobs
from trustyard.jobs.admin import JobAdmin, JobDetail
from trustyard.jobs.interfaces import JobState
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.scheduler import Scheduler, ScheduleSpec
from trustyard.jobs.testkinds import RECORD_KIND, ensure_table, test_job_runs

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DEADLINE = 300.0


@dataclass
class Database:
    data_dir: Path
    url: str | None  # None: SQLite in the data folder
    engine: Engine

    def cli(self, *args: str) -> tuple[int, str, str]:
        done = trustyard(self.data_dir, self.url, *args)
        return done.returncode, done.stdout, done.stderr

    def worker(self, label: str, concurrency: int = 4, **env: str) -> WorkerProcess:
        return WorkerProcess(
            self.data_dir, self.url, concurrency=concurrency, env=env, label=label
        ).start()

    def enqueue(self, count: int, payload: dict[str, object] | None = None) -> list[int]:
        queue = SqlJobQueue(self.engine)
        with write_tx(self.engine) as conn:
            return [queue.enqueue(conn, RECORD_KIND, payload or {}).id for _ in range(count)]

    def detail(self, job_id: int) -> JobDetail:
        with read_tx(self.engine) as conn:
            return JobAdmin().get(conn, job_id)

    def runs(self, job_id: int | None = None) -> list[tuple[int, int, int, bool]]:
        """(job id, attempt, pid, finished) of every recorded execution."""
        query = select(
            test_job_runs.c.job_id,
            test_job_runs.c.attempt,
            test_job_runs.c.pid,
            test_job_runs.c.finished_at,
        ).order_by(test_job_runs.c.id)
        if job_id is not None:
            query = query.where(test_job_runs.c.job_id == job_id)
        with read_tx(self.engine) as conn:
            return [(row[0], row[1], row[2], row[3] is not None) for row in conn.execute(query)]

    def count(self, state: JobState) -> int:
        with read_tx(self.engine) as conn:
            query = select(func.count()).where(
                jobs.c.kind == RECORD_KIND, jobs.c.state == state.value
            )
            return int(conn.scalar(query) or 0)


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    data_dir = tmp_path / "data"
    url: str | None = None
    if backend == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"w_{uuid.uuid4().hex[:12]}")
    done = trustyard(data_dir, url, "migrate")
    assert done.returncode == 0, done.stderr
    engine = make_engine(url or sqlite_url(data_dir))
    ensure_table(engine)
    try:
        yield Database(data_dir, url, engine)
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], what: str, processes: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(process.log()[-3000:] for process in processes)
            raise AssertionError(f"gave up waiting for {what}; worker logs:\n{logs}")
        time.sleep(0.1)


def test_two_workers_share_a_thousand_jobs_and_run_each_exactly_once(database: Database) -> None:
    first = database.worker("first")
    second = database.worker("second")
    try:
        created = database.enqueue(1000, {"sleep": 0.005})
        wait_for(lambda: database.count(JobState.SUCCEEDED) == 1000, "1000 jobs", [first, second])
        pids = {first.pid, second.pid}
        assert first.stop() == 0
        assert second.stop() == 0
    finally:
        first.kill()
        second.kill()
    runs = database.runs()
    executions = Counter(job_id for job_id, _, _, _ in runs)
    assert sorted(executions) == sorted(created)
    assert set(executions.values()) == {1}
    assert {pid for _, _, pid, _ in runs} == pids  # both took their share
    assert all(finished and attempt == 1 for _, attempt, _, finished in runs)
    with read_tx(database.engine) as conn:
        states = conn.execute(
            select(jobs.c.state, jobs.c.attempts, func.count())
            .where(jobs.c.kind == RECORD_KIND)
            .group_by(jobs.c.state, jobs.c.attempts)
        ).all()
        attempts = conn.execute(
            select(job_attempts.c.outcome, func.count())
            .join(jobs, jobs.c.id == job_attempts.c.job_id)
            .where(jobs.c.kind == RECORD_KIND)
            .group_by(job_attempts.c.outcome)
        ).all()
    assert [tuple(row) for row in states] == [("succeeded", 1, 1000)]
    assert [tuple(row) for row in attempts] == [("succeeded", 1000)]


def test_a_job_whose_worker_is_killed_is_finished_by_the_other_after_the_lease(
    database: Database,
) -> None:
    short_lease = {"TRUSTYARD_JOBS__LEASE_SECONDS": "2"}
    workers = [database.worker(name, 2, **short_lease) for name in ("one", "two")]
    try:
        [job_id] = database.enqueue(1, {"hang_on_attempt": 1})
        wait_for(lambda: bool(database.runs(job_id)), "the job to start", workers)
        [(_, _, victim_pid, _)] = database.runs(job_id)
        victim = next(worker for worker in workers if worker.pid == victim_pid)
        survivor = next(worker for worker in workers if worker is not victim)
        victim.kill()
        wait_for(
            lambda: database.detail(job_id).job.state is JobState.SUCCEEDED,
            "the survivor to finish the job",
            [survivor],
        )
        survivor_pid = survivor.pid
        assert survivor.stop() == 0
    finally:
        for worker in workers:
            worker.kill()
    assert database.runs(job_id) == [
        (job_id, 1, victim_pid, False),
        (job_id, 2, survivor_pid, True),
    ]
    detail = database.detail(job_id)
    assert detail.job.attempts == 2
    assert [attempt.outcome for attempt in detail.attempts] == ["lost", "succeeded"]
    assert detail.job.last_error is not None
    assert "lease expired" in detail.job.last_error


def test_a_schedule_fires_once_per_period_with_two_workers_up(database: Database) -> None:
    Scheduler(database.engine, SqlJobQueue(database.engine)).sync(
        [ScheduleSpec("test.every-second", "* * * * * *", RECORD_KIND)]
    )

    def scheduled() -> list[tuple[int, str, object]]:
        with read_tx(database.engine) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.state, jobs.c.run_after)
                .where(jobs.c.schedule == "test.every-second")
                .order_by(jobs.c.id)
            ).all()
        return [(row[0], row[1], row[2]) for row in rows]

    workers = [database.worker(name, 2) for name in ("one", "two")]
    try:
        wait_for(
            lambda: sum(state == "succeeded" for _, state, _ in scheduled()) >= 5,
            "five scheduled runs",
            workers,
        )
        for worker in workers:
            assert worker.stop() == 0
    finally:
        for worker in workers:
            worker.kill()
    found = scheduled()
    periods = [run_after for _, _, run_after in found]
    assert periods == sorted(set(periods))  # one job per period, in order
    assert all(getattr(period, "microsecond", None) == 0 for period in periods)
    executions = Counter(job_id for job_id, _, _, _ in database.runs())
    for job_id, state, _ in found:
        assert executions[job_id] == (1 if state == "succeeded" else 0), (job_id, state)


def test_a_clean_stop_gives_a_running_job_back(database: Database) -> None:
    worker = database.worker("solo", 1)
    try:
        [job_id] = database.enqueue(1, {"hang_on_attempt": 1})
        wait_for(lambda: bool(database.runs(job_id)), "the job to start", [worker])
        assert database.detail(job_id).job.state is JobState.RUNNING
        assert worker.stop() == 0
    finally:
        worker.kill()
    detail = database.detail(job_id)
    assert (detail.job.state, detail.job.attempts, detail.job.lease_owner) == (
        JobState.QUEUED,
        0,
        None,
    )
    assert [attempt.outcome for attempt in detail.attempts] == ["released"]
    # the next worker runs it from the start, as attempt 1 again (and gives it back again)
    again = database.worker("again", 1)
    try:
        wait_for(lambda: len(database.runs(job_id)) == 2, "the job to run again", [again])
        assert again.stop() == 0
    finally:
        again.kill()
    assert [(attempt, finished) for _, attempt, _, finished in database.runs(job_id)] == [
        (1, False),
        (1, False),
    ]
    assert [attempt.outcome for attempt in database.detail(job_id).attempts] == [
        "released",
        "released",
    ]


def test_the_jobs_commands_show_retry_and_cancel(database: Database) -> None:
    queue = SqlJobQueue(database.engine)
    with write_tx(database.engine) as conn:
        dead = queue.enqueue(conn, RECORD_KIND, {"n": 1}, max_attempts=1).id
        waiting = queue.enqueue(conn, RECORD_KIND, {"n": 2}, delay=3600).id
    [claim] = queue.claim("cli-test", {RECORD_KIND}, 1)
    assert claim.id == dead
    queue.fail(claim, "RuntimeError: no luck")

    status, out, _ = database.cli("jobs", "list", "--state", "dead", "--json")
    assert status == 0
    [listed] = json.loads(out)
    assert (listed["id"], listed["state"], listed["kind"], listed["payload"]) == (
        dead,
        "dead",
        RECORD_KIND,
        {"n": 1},
    )
    assert listed["last_error"] == "RuntimeError: no luck"

    status, out, _ = database.cli("jobs", "list", "--kind", RECORD_KIND)
    assert status == 0
    assert [line.split("\t")[:4] for line in out.splitlines()] == [
        ["id", "state", "kind", "attempts"],  # a header row names the columns
        [str(waiting), "queued", RECORD_KIND, "0/5"],
        [str(dead), "dead", RECORD_KIND, "1/1"],
    ]

    status, out, _ = database.cli("jobs", "show", str(dead))
    assert status == 0
    assert "state: dead" in out.splitlines()
    assert "attempt 1: failed on cli-test" in out
    assert out.rstrip().endswith("last error:\nRuntimeError: no luck")

    status, out, _ = database.cli("jobs", "retry", str(dead))
    assert (status, out) == (0, f"job {dead} ({RECORD_KIND}) is queued\n")
    status, _, err = database.cli("jobs", "retry", str(dead))
    assert status == 1
    assert "only failed and dead jobs can be retried" in err

    status, out, _ = database.cli("jobs", "cancel", str(waiting))
    assert (status, out) == (0, f"job {waiting} ({RECORD_KIND}) is cancelled\n")
    status, _, err = database.cli("jobs", "show", "999999")
    assert status == 1
    assert "job 999999 does not exist" in err


def test_a_worker_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    (tmp_path / "fresh").mkdir()
    done = trustyard(tmp_path / "fresh", None, "worker", env={"TRUSTYARD_JOBS__TEST_KINDS": "true"})
    assert done.returncode == 2
    assert "run `trustyard migrate`" in done.stderr
