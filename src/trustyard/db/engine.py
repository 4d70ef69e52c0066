"""Engine creation and the two transaction shapes the edges use (read and write)."""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine.url import make_url


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the lock at BEGIN, so two writers never deadlock upgrading a read lock.
    immediate = conn.get_execution_options().get("trustyard_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class WriteGate:
    """Lets one SQLite writer at a time in, across threads and processes.

    SQLite's busy handler polls a held write lock with sleeps of up to 100 ms; a blocking
    `flock` wakes the next writer the moment the lock is released instead. A threading lock
    comes first because flock does not exclude threads sharing one file descriptor.
    """

    def __init__(self, path: str) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


def make_engine(url: str, pool_size: int = 5) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 15},
            pool_size=pool_size,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        if parsed.database and parsed.database != ":memory:":
            _GATES[engine] = WriteGate(f"{parsed.database}.writelock")
        return engine
    return create_engine(parsed, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that commits on success and rolls back on any exception.

    Blocking while another writer holds SQLite: call it off the event loop on hot paths.
    """
    gate = _GATES.get(engine)
    with gate.hold() if gate is not None else _nothing(), engine.connect() as plain:
        conn = plain.execution_options(trustyard_write=True)
        with conn.begin():
            yield conn


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
