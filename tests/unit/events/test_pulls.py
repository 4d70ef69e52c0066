"""Pull events: asked for at most once per check period, kept in memory, written in batches;
nothing is written while nobody wants them."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from trustyard.db.engine import read_tx
from trustyard.db.tables import event_outbox
from trustyard.events.model import Event, manifest_pulled
from trustyard.events.outbox import Outbox
from trustyard.events.pulls import PullRecorder
from trustyard.jobs.queue import SqlJobQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Interest:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.answer


def pull(tag: str = "v1") -> Event:
    return manifest_pulled("acme/app", tag, "sha256:" + "b" * 64, "application/json", None)


def count(engine: Engine) -> int:
    with read_tx(engine) as conn:
        return int(conn.scalar(select(func.count()).select_from(event_outbox)) or 0)


def test_interest_is_asked_once_per_check_period(engine: Engine) -> None:
    clock, interest = Clock(), Interest(False)
    recorder = PullRecorder(
        engine, Outbox(None), interest, check_seconds=5, flush_seconds=60, clock=clock
    )
    assert [recorder.wanted() for _ in range(100)] == [False] * 100
    assert interest.asked == 1
    interest.answer = True
    clock.now += 4.9
    assert recorder.wanted() is False  # remembered
    clock.now += 0.2
    assert recorder.wanted() is True
    assert interest.asked == 2


def test_a_failing_interest_check_keeps_the_last_answer(engine: Engine) -> None:
    clock = Clock()
    answers = iter([True])

    def flaky() -> bool:
        for answer in answers:
            return answer
        raise OperationalError("SELECT", {}, Exception("database is down"))

    recorder = PullRecorder(engine, Outbox(None), flaky, check_seconds=1, clock=clock)
    assert recorder.wanted() is True
    clock.now += 2
    assert recorder.wanted() is True


def test_buffered_pulls_are_written_in_one_flush_with_a_dispatch_job(engine: Engine) -> None:
    queue = SqlJobQueue(engine)
    recorder = PullRecorder(engine, Outbox(queue), Interest(True), flush_seconds=3600)
    for index in range(25):
        recorder.record(pull(f"t{index}"))
    assert count(engine) == 0  # nothing written by recording
    assert recorder.flush() == 25
    assert count(engine) == 25
    assert recorder.flush() == 0
    recorder.record(pull())
    recorder.close()  # a clean stop writes what is left
    assert count(engine) == 26
    assert queue.claim("w", ["events.dispatch"], 5) != []


def test_a_full_buffer_drops_the_oldest(engine: Engine) -> None:
    recorder = PullRecorder(engine, Outbox(None), Interest(True), capacity=3, flush_seconds=3600)
    for index in range(5):
        recorder.record(pull(f"t{index}"))
    assert recorder.dropped == 2
    assert recorder.flush() == 3
    with read_tx(engine) as conn:
        tags = list(conn.scalars(select(event_outbox.c.contents).order_by(event_outbox.c.id)))
    assert ['"tag":"t2"' in tags[0], '"tag":"t4"' in tags[2]] == [True, True]
    recorder.close()
