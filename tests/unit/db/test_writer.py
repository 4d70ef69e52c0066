"""db/writer.py: group commits on a real SQLite file. Units of work waiting together commit in
one transaction; one that fails is rolled back alone and only its caller hears of it; a
failed COMMIT fails every unit of its group and keeps none of them; a caller that went away
before its unit ran leaves no trace; results come only after the COMMIT."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
)

from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.writer import GroupWriter, ThreadWriter, make_writer

ROWS = Table(
    "writer_rows",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    ROWS.metadata.create_all(engine)
    yield engine
    engine.dispose()


def names(engine: Engine) -> list[str]:
    with read_tx(engine) as conn:
        return sorted(conn.scalars(select(ROWS.c.name)))


def add(name: str) -> Any:
    def work(conn: Connection) -> str:
        conn.execute(insert(ROWS).values(name=name))
        return name

    return work


class Hold:
    """A unit of work that keeps the writer busy until released, so that the units queued
    meanwhile wait together."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: Connection) -> str:
        self.entered.set()
        self.release.wait(10)
        return str(add(self.name)(conn))

    async def running(self, writer: GroupWriter) -> asyncio.Future[str]:
        """Start it and wait until the writer is inside it."""
        task = asyncio.ensure_future(writer.run(self))
        while not self.entered.is_set():
            await asyncio.sleep(0.001)
        return task


async def queued(writer: GroupWriter, count: int) -> None:
    while writer._waiting.qsize() < count:
        await asyncio.sleep(0.001)


def test_sqlite_on_a_file_gets_group_commits(engine: Engine, tmp_path: Path) -> None:
    assert isinstance(make_writer(engine), GroupWriter)
    memory = create_engine("sqlite://")
    try:
        assert isinstance(make_writer(memory), ThreadWriter)
    finally:
        memory.dispose()


def test_units_waiting_together_commit_in_one_transaction(engine: Engine) -> None:
    writer = GroupWriter(engine)
    first = Hold("first")

    async def scenario() -> list[str]:
        head = await first.running(writer)
        rest = [asyncio.ensure_future(writer.run(add(f"n{i}"))) for i in range(10)]
        await queued(writer, 10)
        first.release.set()
        return [await head, *[await task for task in rest]]

    assert asyncio.run(scenario()) == ["first", *[f"n{i}" for i in range(10)]]
    assert names(engine) == sorted(["first", *[f"n{i}" for i in range(10)]])
    assert writer.groups == 2


def test_a_failing_unit_is_rolled_back_alone(engine: Engine) -> None:
    writer = GroupWriter(engine)
    held = Hold("held")

    def half_then_fail(conn: Connection) -> None:
        conn.execute(insert(ROWS).values(name="half"))
        raise ValueError("this unit refuses")

    async def scenario() -> list[Any]:
        head = await held.running(writer)
        tasks = [
            asyncio.ensure_future(writer.run(add("before"))),
            asyncio.ensure_future(writer.run(half_then_fail)),
            asyncio.ensure_future(writer.run(add("held"))),  # a duplicate: IntegrityError
            asyncio.ensure_future(writer.run(add("after"))),
        ]
        await queued(writer, 4)
        held.release.set()
        await head
        return await asyncio.gather(*tasks, return_exceptions=True)

    before, failed, duplicate, after = asyncio.run(scenario())
    assert (before, after) == ("before", "after")
    assert isinstance(failed, ValueError)
    assert "UNIQUE" in str(duplicate)
    assert names(engine) == ["after", "before", "held"]
    assert writer.groups == 2


def test_a_failed_commit_keeps_nothing_and_tells_everyone(engine: Engine) -> None:
    writer = GroupWriter(engine)

    def refuse(conn: Any) -> None:
        raise RuntimeError("disk on fire")

    event.listen(engine, "commit", refuse)
    try:

        async def scenario() -> list[Any]:
            tasks = [writer.run(add(f"n{i}")) for i in range(3)]
            return await asyncio.gather(*tasks, return_exceptions=True)

        outcomes = asyncio.run(scenario())
    finally:
        event.remove(engine, "commit", refuse)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert names(engine) == []
    assert asyncio.run(writer.run(add("later"))) == "later"  # the writer goes on


def test_a_unit_whose_caller_left_before_it_ran_leaves_nothing(engine: Engine) -> None:
    writer = GroupWriter(engine)
    held = Hold("held")

    async def scenario() -> None:
        head = await held.running(writer)
        gone = asyncio.ensure_future(writer.run(add("gone")))
        await queued(writer, 1)
        gone.cancel()
        await asyncio.sleep(0)
        held.release.set()
        await head

    asyncio.run(scenario())
    assert asyncio.run(writer.run(add("next"))) == "next"
    assert names(engine) == ["held", "next"]


def test_a_result_comes_after_the_commit(engine: Engine) -> None:
    """What a caller hears of is already visible to any other connection."""
    writer = GroupWriter(engine)

    async def scenario() -> list[str]:
        await writer.run(add("seen"))
        return names(engine)

    assert asyncio.run(scenario()) == ["seen"]


def test_the_thread_writer_runs_a_transaction_per_unit(engine: Engine) -> None:
    writer = ThreadWriter(engine)
    assert asyncio.run(writer.run(add("one"))) == "one"

    def fail(conn: Connection) -> None:
        conn.execute(insert(ROWS).values(name="two"))
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        asyncio.run(writer.run(fail))
    assert names(engine) == ["one"]
    with write_tx(engine) as conn:  # the gate is free again
        conn.execute(insert(ROWS).values(name="three"))


def test_a_unit_that_raises_systemexit_fails_its_group_and_the_writer_goes_on(
    engine: Engine,
) -> None:
    """A BaseException (SystemExit from a unit of work) rolls its group back and every caller
    of the group hears of it, instead of the thread dying and callers waiting for ever; the
    writer goes on with the next unit."""
    writer = GroupWriter(engine)
    first = Hold("first")

    def stop(conn: Connection) -> None:
        raise SystemExit(3)

    async def scenario() -> list[BaseException | str]:
        head = await first.running(writer)
        rest = [
            asyncio.ensure_future(writer.run(add("second"))),
            asyncio.ensure_future(writer.run(stop)),
        ]
        await queued(writer, 2)
        first.release.set()
        await head
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
        return [*outcomes, await writer.run(add("after"))]

    second, stopped, after = asyncio.run(scenario())
    assert isinstance(second, RuntimeError)
    assert isinstance(stopped, RuntimeError)
    assert "SystemExit(3)" in str(stopped)
    assert after == "after"
    assert names(engine) == ["after", "first"]
