"""test.record's table is there before its first job runs, whoever else writes at that moment.

Seen once as "no such table: test_job_runs" in a worker of `trustyard serve`: the worker created
the table in a deferred SQLite transaction that had read the schema, so another process holding
the write lock made it fail at once ("database is locked"; SQLite does not wait for a lock a
reader would need to upgrade), three times, and ensure_table returned without the table."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import inspect

from trustyard.db.engine import make_engine
from trustyard.jobs.testkinds import ensure_table, test_job_runs


def waiting_for_flock(path: Path) -> bool:
    """Whether some process is blocked on an flock of `path` (a `->` line in /proc/locks)."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        blocked = "->" in fields and fields[fields.index("->") + 1] == "FLOCK"
        if blocked and int(fields[-3].rsplit(":", 1)[1]) == inode:
            return True
    return False


def test_ensure_table_waits_for_another_writer_and_never_returns_without_the_table(
    tmp_path: Path,
) -> None:
    database = tmp_path / "meta.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect():
            pass  # the database exists, in WAL mode
        # Another process writing: it holds trustyard's write gate and SQLite's write lock.
        gate = os.open(f"{database}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(gate, fcntl.LOCK_EX)
        writer = sqlite3.connect(database, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("CREATE TABLE other_writes (x INTEGER)")
        failure: list[BaseException] = []

        def create() -> None:
            try:
                ensure_table(engine)
            except BaseException as error:
                failure.append(error)

        creator = threading.Thread(target=create)
        creator.start()
        while creator.is_alive() and not waiting_for_flock(Path(f"{database}.writelock")):
            time.sleep(0.01)  # until it waits for the writer, or gave up
        writer.execute("COMMIT")
        writer.close()
        fcntl.flock(gate, fcntl.LOCK_UN)
        os.close(gate)
        creator.join()
        assert failure == []
        assert inspect(engine).has_table(test_job_runs.name)
    finally:
        engine.dispose()
