"""Job kinds for trustyard's own tests and benchmarks, registered only when the setting
`jobs.test_kinds` is on (never in production).

- `test.noop` does nothing (queue throughput).
- `test.record` writes a row per execution into `test_job_runs` (a table of its own, outside
  the migrations, created when the kinds are enabled), so tests can count how often each job
  ran and where. Payload knobs: `sleep` (seconds), `fail_times` (fail its first n runs,
  counted across admin retries too), `permanent` (fail for good), `hang_on_attempt` (block
  on that attempt until the worker stops: a job to kill a worker in the middle of).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from trustyard.db.engine import write_tx
from trustyard.jobs.interfaces import JobContext, JobInterrupted, PermanentJobError
from trustyard.jobs.registry import HandlerRegistry

NOOP_KIND = "test.noop"
RECORD_KIND = "test.record"

test_metadata = MetaData()
test_job_runs = Table(
    "test_job_runs",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(128), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)


def ensure_table(engine: Engine) -> None:
    """Create test_job_runs unless it exists; never return without it.

    Several processes race to it. In a write transaction (SQLite: the write gate, then BEGIN
    IMMEDIATE) the check and the creation wait for other writers; a deferred transaction that
    has read the schema would fail at once while another process writes. On PostgreSQL two
    concurrent creations still collide: the loser finds the winner's table on its next try.
    """
    for attempt in range(1, 4):
        try:
            with write_tx(engine) as conn:
                test_metadata.create_all(conn, checkfirst=True)
        except DBAPIError:
            if attempt == 3:
                raise
            if inspect(engine).has_table(test_job_runs.name):
                return
        else:
            return


def noop(job: JobContext) -> None:
    return None


class RecordRun:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, job: JobContext) -> None:
        with write_tx(self.engine) as conn:
            run_id = conn.execute(
                insert(test_job_runs).values(
                    job_id=job.id,
                    attempt=job.attempt,
                    worker=job.worker,
                    pid=os.getpid(),
                    started_at=datetime.now(UTC),
                )
            ).inserted_primary_key
            runs = conn.scalar(select(func.count()).where(test_job_runs.c.job_id == job.id))
        payload = job.payload
        if payload.get("hang_on_attempt") == job.attempt:
            job.stopping.wait()
            raise JobInterrupted
        time.sleep(float(payload.get("sleep", 0)))
        if payload.get("permanent"):
            raise PermanentJobError("planned permanent failure")
        if (runs or 0) <= int(payload.get("fail_times", 0)):
            raise RuntimeError(f"planned failure of run {runs} (attempt {job.attempt})")
        assert run_id is not None
        with write_tx(self.engine) as conn:
            conn.execute(
                update(test_job_runs)
                .where(test_job_runs.c.id == run_id[0])
                .values(finished_at=datetime.now(UTC))
            )


def register(handlers: HandlerRegistry, engine: Engine) -> None:
    ensure_table(engine)
    handlers.register(NOOP_KIND, noop)
    handlers.register(RECORD_KIND, RecordRun(engine))
