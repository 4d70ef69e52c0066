"""Jobs per second through the queue, on SQLite and on PostgreSQL.

For each backend and each worker layout: migrate a new database, start W `trustyard worker`
processes (C jobs at once each, the test job kinds on), enqueue N `test.noop` jobs in one
transaction, and time until every one has succeeded. Each job costs a claim (batched up to the
free slots) and a completion, each its own committed transaction, plus the attempt history.

SQLite runs as trustyard runs it (WAL, synchronous=FULL); PostgreSQL is a throw-away cluster
with fsync and synchronous_commit on by default (`--pg-fast` turns them off, as the tests do).

Example (from the repository root):
  /tmp/probe/bin/python bench/jobs.py                       # 5,000 jobs, layouts 1x1 1x4 2x4
  /tmp/probe/bin/python bench/jobs.py --jobs 2000 --layout 4x4 --backend postgres

Every process it started is stopped by PID on exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.workers import WorkerProcess, sqlite_url, trustyard  # noqa: E402
from trustyard.db.engine import make_engine, read_tx, write_tx  # noqa: E402
from trustyard.db.tables import jobs  # noqa: E402
from trustyard.jobs.testkinds import NOOP_KIND  # noqa: E402

BENCH_ENV = {"TRUSTYARD_JOBS__POLL_SECONDS": "0.05"}


class DurablePostgres(PostgresCluster):
    """The test cluster with fsync and synchronous commits on (a fair match for SQLite)."""

    def _server_options(self) -> str:
        options = super()._server_options()
        for fast in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
            options = options.replace(f"-c {fast}", "")
        return options


@dataclass
class Result:
    backend: str
    layout: str
    jobs: int
    enqueue_per_second: float
    drain_seconds: float

    cpu_seconds: float  # of the worker processes, while draining

    @property
    def per_second(self) -> float:
        return self.jobs / self.drain_seconds

    @property
    def cpu_ms_per_job(self) -> float:
        return 1000 * self.cpu_seconds / self.jobs


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(backend: str, url: str | None, workdir: Path, count: int, layout: str) -> Result:
    processes, concurrency = (int(part) for part in layout.split("x"))
    data_dir = workdir / f"{backend}-{layout}-{uuid.uuid4().hex[:6]}" / "data"
    done = trustyard(data_dir, url, "migrate")
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    engine = make_engine(url or sqlite_url(data_dir))
    workers: list[WorkerProcess] = []
    try:
        for index in range(processes):
            worker = WorkerProcess(
                data_dir, url, concurrency=concurrency, env=BENCH_ENV, label=f"w{index}"
            )
            workers.append(worker.start())
        stamp = datetime.now(UTC)
        rows = [
            {
                "kind": NOOP_KIND,
                "payload": "{}",
                "state": "queued",
                "priority": 0,
                "attempts": 0,
                "max_attempts": 5,
                "run_after": stamp,
                "created_at": stamp,
            }
            for _ in range(count)
        ]
        cpu_before = sum(cpu_seconds(worker.pid) for worker in workers)
        began = time.perf_counter()
        with write_tx(engine) as conn:
            conn.execute(insert(jobs), rows)
        enqueued = time.perf_counter()
        while True:
            with read_tx(engine) as conn:
                left = conn.scalar(
                    select(func.count()).where(
                        jobs.c.kind == NOOP_KIND, jobs.c.state.in_(["queued", "running"])
                    )
                )
            if not left:
                break
            time.sleep(0.02)
        drained = time.perf_counter()
        cpu = sum(cpu_seconds(worker.pid) for worker in workers) - cpu_before
        with read_tx(engine) as conn:
            succeeded = conn.scalar(
                select(func.count()).where(jobs.c.kind == NOOP_KIND, jobs.c.state == "succeeded")
            )
        if succeeded != count:
            raise RuntimeError(f"{succeeded} of {count} jobs succeeded")
        return Result(backend, layout, count, count / (enqueued - began), drained - enqueued, cpu)
    finally:
        for worker in workers:
            try:
                worker.stop()
            finally:
                worker.kill()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument(
        "--layout",
        action="append",
        help="PROCESSESxCONCURRENCY, repeatable (default: 1x1 1x4 2x4)",
    )
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--pg-fast", action="store_true", help="PostgreSQL without fsync")
    args = parser.parse_args()
    layouts = args.layout or ["1x1", "1x4", "2x4"]
    backends = args.backend or ["sqlite", "postgres"]
    workdir = Path(tempfile.mkdtemp(prefix="trustyard-bench-jobs-"))
    cluster: PostgresCluster | None = None
    results: list[Result] = []
    try:
        for backend in backends:
            for layout in layouts:
                url = None
                if backend == "postgres":
                    if cluster is None:
                        cluster = PostgresCluster() if args.pg_fast else DurablePostgres()
                        cluster.start()
                    url = cluster.create_database(f"bench_{uuid.uuid4().hex[:10]}")
                result = run_one(backend, url, workdir, args.jobs, layout)
                results.append(result)
                print(f"{backend:8} {layout:>5}: {result.per_second:8.0f} jobs/s", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    pg = "PostgreSQL, fsync off" if args.pg_fast else "PostgreSQL, fsync on"
    print(f"\n{args.jobs} test.noop jobs per run (SQLite: WAL, synchronous=FULL; {pg})\n")
    print(
        "| backend | workers x slots | enqueue (jobs/s, one tx) | drain (s) | jobs/s "
        "| worker CPU per job (ms) |"
    )
    print("|---|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result.backend} | {result.layout} | {result.enqueue_per_second:,.0f} "
            f"| {result.drain_seconds:.2f} | {result.per_second:,.0f} "
            f"| {result.cpu_ms_per_job:.2f} |"
        )


if __name__ == "__main__":
    main()
