"""Running the request path's write transactions off the event loop.

`ThreadWriter` gives each unit of work a transaction of its own on a worker thread: right for
PostgreSQL, where writers run side by side.

`GroupWriter` is for SQLite, where one writer at a time is the rule and a transaction's cost
is mostly around its work: waiting for the write gate, the hand-over between processes and
threads (each needs the GIL of its own process), BEGIN and the fsync of COMMIT. One thread per
process takes every unit of work waiting at that moment and runs them in one transaction,
each under a SAVEPOINT of its own: a unit that fails is rolled back alone and its caller gets
its exception, the others commit together. Nobody hears of a result before the COMMIT that
makes it durable; if the COMMIT itself fails, every unit of the group gets that error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from trustyard.db.engine import is_sqlite, write_tx

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Connection], Any]
# Units of work in one transaction, at most: a group's latency stays that of a few pushes.
MAX_GROUP = 32


class Writer(Protocol):
    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction, off the event loop; its result once committed."""
        ...


class ThreadWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with write_tx(self.engine) as conn:
                return work(conn)

        return await asyncio.to_thread(run)


class GroupWriter:
    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self.engine = engine
        self.max_group = max_group
        self._waiting: queue.SimpleQueue[tuple[Work, concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.groups = 0  # transactions committed (for tests and curiosity)

    async def run(self, work: Callable[[Connection], T]) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._start()
        self._waiting.put((work, future))
        return await asyncio.wrap_future(future)

    def _start(self) -> None:
        # Started on first use, in the process that uses it (server workers are forked).
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="trustyard-group-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            group = [self._waiting.get()]
            while len(group) < self.max_group:
                try:
                    group.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(group)
            except BaseException as error:  # SystemExit from a unit of work, say
                # (Raised in this thread it would end only the thread, and every later caller
                # would wait for ever.) The group fails, its transaction rolled back; the
                # writer goes on.
                log.error("a group of %d writes was stopped: %r", len(group), error)
                failure = RuntimeError(f"the group writer's transaction was stopped: {error!r}")
                for _, future in group:
                    if not future.done():
                        future.set_exception(failure)

    def _commit(self, group: list[tuple[Work, concurrent.futures.Future[Any]]]) -> None:
        outcomes: list[tuple[concurrent.futures.Future[Any], bool, Any]] = []
        try:
            with write_tx(self.engine) as conn:
                for work, future in group:
                    if not future.set_running_or_notify_cancel():
                        continue  # its caller went away before it ran
                    try:
                        with conn.begin_nested():
                            outcomes.append((future, True, work(conn)))
                    except Exception as error:  # that unit alone is rolled back
                        outcomes.append((future, False, error))
        except Exception as error:  # BEGIN or COMMIT failed: nothing of the group holds
            log.warning("a group of %d writes failed to commit: %s", len(group), error)
            for _, future in group:
                if not future.done():  # (a unit whose caller went away is done: cancelled)
                    future.set_exception(error)
            return
        self.groups += 1
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def make_writer(engine: Engine) -> Writer:
    """Group commits where the database has one writer (SQLite on a file), a transaction per
    unit of work elsewhere."""
    if is_sqlite(engine) and engine.url.database not in (None, "", ":memory:"):
        return GroupWriter(engine)
    return ThreadWriter(engine)
