"""Policy runs racing pushes and edits, on PostgreSQL (where writers really run side by side;
SQLite has one writer at a time): two pushes of one tag at once, and their evaluations run at
once, leave the target tag naming the image the source tag names in the end; a policy edited
while a run holds it waits for the run (which promotes under the revision it read), and a run
that starts during an edit waits for it and judges by the new rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, select, text

from tests.support.databases import migrated_engine
from tests.unit.policies.test_runs import TAG_1X, World
from trustyard.content.interfaces import Repository
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import promotions
from trustyard.policies.facts import FactsLoader
from trustyard.policies.interfaces import ImageFacts, Need
from trustyard.policies.runner import Evaluate, Ran, Verdict
from trustyard.policies.service import PolicyChange
from trustyard.policies.triggers import EVALUATE_KIND

WAIT = 30.0  # seconds before a test gives up on an event that should come
T = TypeVar("T")


@pytest.fixture(scope="module")
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, "postgres") as made:
        yield made


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run `calls` on threads released together; their results (an exception re-raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        barrier.wait(WAIT)
        try:
            results[index] = call()
        except BaseException as error:  # handed to the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_two_pushes_of_one_tag_at_once_promote_the_last(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, tmp_path / "blobs")
    source, target = world.repository("dev"), world.repository("qa")
    world.policy(source, target, [TAG_1X])
    for round_ in range(5):
        at_once(
            lambda r=round_: world.push(source, "1.0", f"first-{r}"),
            lambda r=round_: world.push(source, "1.0", f"second-{r}"),
        )
        jobs = world.take(EVALUATE_KIND)
        assert len(jobs) == 2  # one per image: neither push's job swallowed the other's
        verdicts = at_once(
            *(lambda job=job: world.runner.evaluate(Evaluate(**job[1]), job[0]) for job in jobs)
        )
        assert sorted(v.ran for v in verdicts) == sorted([Ran.MOVED, Ran.PROMOTED])
        assert world.names(target, "1.0") == world.names(source, "1.0")


class HeldLoader(FactsLoader):
    """The world's loader, stopping inside a run (the policy's row locked) until released."""

    def __init__(self, loader: FactsLoader) -> None:
        super().__init__(loader.images, loader.components, loader.counts)
        self.inside = threading.Event()
        self.release = threading.Event()

    def tag(
        self,
        conn: Connection,
        repository: Repository,
        tag: str,
        needs: frozenset[Need],
        now: datetime | None = None,
    ) -> ImageFacts | None:
        self.inside.set()
        assert self.release.wait(WAIT)
        return super().tag(conn, repository, tag, needs, now)


def waiting_for_a_lock(engine: Engine) -> None:
    """Return once another session of the database waits for a row lock."""
    deadline = time.monotonic() + WAIT
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(query):
                return
        time.sleep(0.01)
    raise AssertionError("nobody waited for the policy's row")


def test_an_edit_waits_for_a_run_which_promotes_under_its_revision(
    engine: Engine, tmp_path: Path
) -> None:
    world = World(engine, tmp_path / "blobs")
    held = HeldLoader(world.loader)
    world.runner.loader = held
    source, target = world.repository("dev"), world.repository("qa")
    policy = world.policy(source, target, [TAG_1X])
    digest = world.push(source, "1.0", "a")
    ((job_id, payload),) = world.take(EVALUATE_KIND)
    verdict: list[Verdict] = []
    run = threading.Thread(
        target=lambda: verdict.append(world.runner.evaluate(Evaluate(**payload), job_id))
    )
    run.start()
    assert held.inside.wait(WAIT)  # the run holds the policy's row
    refuse_all = [{"field": "tag", "operator": "eq", "values": ["never"]}]

    def edit() -> None:
        with write_tx(engine) as conn:
            world.policies.update(conn, source, policy.id, PolicyChange(rules=refuse_all))

    editing = threading.Thread(target=edit)
    editing.start()
    waiting_for_a_lock(engine)  # the edit waits for the run
    held.release.set()
    run.join(WAIT)
    editing.join(WAIT)
    assert [v.ran for v in verdict] == [Ran.PROMOTED]
    with read_tx(engine) as conn:
        row = conn.execute(select(promotions).where(promotions.c.policy_id == policy.id)).one()
    assert (row.manifest_digest, row.policy_revision) == (digest, 1)
    edited = world.record(policy)
    assert edited.revision == 2
    assert edited.last_promoted_at is not None
    assert world.names(target, "1.0") == digest


def test_a_run_during_an_edit_waits_and_judges_by_the_new_rules(
    engine: Engine, tmp_path: Path
) -> None:
    world = World(engine, tmp_path / "blobs")
    source, target = world.repository("dev"), world.repository("qa")
    policy = world.policy(source, target, [TAG_1X])
    world.push(source, "1.0", "a")
    ((job_id, payload),) = world.take(EVALUATE_KIND)
    refuse_all = [{"field": "tag", "operator": "eq", "values": ["never"]}]
    verdict: list[Verdict] = []
    with write_tx(engine) as conn:
        world.policies.update(conn, source, policy.id, PolicyChange(rules=refuse_all))
        run = threading.Thread(
            target=lambda: verdict.append(world.runner.evaluate(Evaluate(**payload), job_id))
        )
        run.start()
        waiting_for_a_lock(engine)  # the run waits for the edit to commit
    run.join(WAIT)
    assert [v.ran for v in verdict] == [Ran.FAILED]
    assert world.names(target, "1.0") is None
    assert world.record(policy).revision == 2
