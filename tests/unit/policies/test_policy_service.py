"""policies/stores.py and policies/service.py on SQLite and PostgreSQL: a policy's life
(created, read, listed, changed with the next revision, deleted), what is refused at creation
(rules, expressions and templates that cannot be evaluated, a cycle of promotions of any
length, more policies than a repository may have), the compiled-condition cache, and the
locks: a policy's row (not its repositories'), and the graph's between two creations."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tests.support.databases import migrated_engine
from trustyard.config import PoliciesSettings
from trustyard.content.interfaces import Repository
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import promotion_policies
from trustyard.errors import StateConflict
from trustyard.policies.interfaces import (
    Need,
    PolicyInvalid,
    PolicyNotFound,
    PromotionCycle,
)
from trustyard.policies.service import PolicyChange, PolicyService
from trustyard.policies.stores import PolicyStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TAG_RULE = {"field": "tag", "operator": "ew", "values": ["stable"]}
VULN_RULE = {"field": "vulnerability.critical", "operator": "lte", "values": [0]}
_names = itertools.count(1)


def no_order(ecosystem: str, a: str, b: str) -> int | None:
    return None


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as made:
        yield made


def service(max_per_repository: int = 100) -> PolicyService:
    limits = PoliciesSettings(max_policies_per_repository=max_per_repository)
    return PolicyService(PolicyStore(), limits, no_order, clock=lambda: T0)


def repos(engine: Engine, *labels: str) -> dict[str, Repository]:
    """New repositories (unique names per test), by label."""
    run = next(_names)
    with write_tx(engine) as conn:
        return {label: RepositoryService().create(conn, f"team{run}/{label}") for label in labels}


def create(
    engine: Engine,
    policies: PolicyService,
    source: Repository,
    target: Repository,
    *,
    rules: list[dict[str, Any]] | None = None,
    expression: str | None = None,
    template: str = "%n",
    enabled: bool = True,
) -> Any:
    with write_tx(engine) as conn:
        return policies.create(
            conn,
            source,
            target,
            rules=rules if rules is not None or expression is not None else [TAG_RULE],
            expression=expression,
            tag_template=template,
            enabled=enabled,
            created_by="olga",
        )


# --- a policy's life ---------------------------------------------------------------------------
def test_a_created_policy_reads_back_with_its_names_needs_and_first_revision(
    engine: Engine,
) -> None:
    r = repos(engine, "dev", "qa")
    made = create(engine, service(), r["dev"], r["qa"], rules=[TAG_RULE, VULN_RULE])
    assert (made.source_repository, made.target_repository) == (r["dev"].name, r["qa"].name)
    assert (made.source_repository_id, made.target_repository_id) == (r["dev"].id, r["qa"].id)
    assert made.revision == 1
    assert made.enabled
    assert made.created_by == "olga"
    assert made.created_at == made.updated_at == T0
    assert made.last_promoted_at is None
    assert made.last_error is None
    assert made.needs == frozenset({Need.VULNERABILITIES})
    assert made.expression is None
    assert made.rules is not None
    # Stored canonical: the numeric value as a string.
    assert [dict(rule) for rule in made.rules][1]["values"] == ["0"]
    with read_tx(engine) as conn:
        assert service().get(conn, r["dev"], made.id) == made
        assert service().list(conn, r["dev"], limit=10) == [made]
        assert service().list(conn, r["qa"], limit=10) == []


def test_a_deleted_policys_id_is_never_given_again(engine: Engine) -> None:
    # History lines and job dedupe keys name policies by id: a new policy taking a deleted
    # one's id would inherit its history (SQLite reuses the highest rowid without
    # AUTOINCREMENT).
    r = repos(engine, "dev", "qa")
    create(engine, service(), r["dev"], r["qa"])
    newest = create(engine, service(), r["dev"], r["qa"])
    with write_tx(engine) as conn:
        service().delete(conn, r["dev"], newest.id)
    again = create(engine, service(), r["dev"], r["qa"])
    assert again.id > newest.id


def test_a_policy_is_found_only_under_its_own_source(engine: Engine) -> None:
    r = repos(engine, "dev", "qa")
    made = create(engine, service(), r["dev"], r["qa"])
    with read_tx(engine) as conn, pytest.raises(PolicyNotFound):
        service().get(conn, r["qa"], made.id)
    with write_tx(engine) as conn, pytest.raises(PolicyNotFound):
        service().delete(conn, r["qa"], made.id)
    with read_tx(engine) as conn, pytest.raises(PolicyNotFound):
        service().get(conn, r["dev"], 2_000_000_000)


def test_listing_pages_in_id_order(engine: Engine) -> None:
    r = repos(engine, "dev", "a", "b", "c")
    policies = service()
    made = [create(engine, policies, r["dev"], r[name]) for name in ("a", "b", "c")]
    with read_tx(engine) as conn:
        first = policies.list(conn, r["dev"], limit=2)
        rest = policies.list(conn, r["dev"], limit=2, after=first[-1].id)
    assert [p.id for p in first + rest] == [p.id for p in made]


def test_an_update_bumps_the_revision_and_keeps_what_it_does_not_name(engine: Engine) -> None:
    r = repos(engine, "dev", "qa", "prod")
    policies = service()
    made = create(engine, policies, r["dev"], r["qa"], template="%n-%h")
    with write_tx(engine) as conn:
        policies.store.record_run(conn, made.id, promoted_at=T0, error="the target is gone")
        changed = policies.update(conn, r["dev"], made.id, PolicyChange(target=r["prod"]))
    assert changed.revision == 2
    assert changed.target_repository == r["prod"].name
    assert changed.tag_template == "%n-%h"
    assert changed.rules == made.rules
    assert changed.last_error is None  # it was about the old policy
    assert changed.last_promoted_at == T0
    with write_tx(engine) as conn:
        swapped = policies.update(
            conn, r["dev"], made.id, PolicyChange(expression='tag == "v1"', enabled=False)
        )
    assert swapped.revision == 3
    assert (swapped.rules, swapped.expression) == (None, 'tag == "v1"')
    assert not swapped.enabled
    with write_tx(engine) as conn:
        back = policies.update(conn, r["dev"], made.id, PolicyChange(rules=[VULN_RULE]))
    assert back.expression is None
    assert back.needs == frozenset({Need.VULNERABILITIES})


def test_a_deleted_policy_is_gone(engine: Engine) -> None:
    r = repos(engine, "dev", "qa")
    policies = service()
    made = create(engine, policies, r["dev"], r["qa"])
    with write_tx(engine) as conn:
        assert policies.delete(conn, r["dev"], made.id) == made
    with read_tx(engine) as conn, pytest.raises(PolicyNotFound):
        policies.get(conn, r["dev"], made.id)


def test_a_deleted_repository_takes_its_policies_along(engine: Engine) -> None:
    r = repos(engine, "dev", "qa")
    made = create(engine, service(), r["dev"], r["qa"])
    with write_tx(engine) as conn:
        RepositoryService().delete(conn, r["qa"].name)
    with read_tx(engine) as conn:
        assert service().store.get(conn, made.id) is None


# --- refused at creation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "expression", "template", "where"),
    [
        ([{"field": "nosuchfield", "operator": "eq", "values": ["x"]}], None, "%n", "rules[0]"),
        ([TAG_RULE, {"field": "tag", "operator": "gt", "values": ["1"]}], None, "%n", "rules[1]"),
        ([{"field": "tag", "operator": "matches", "values": ["("]}], None, "%n", "rules[0]"),
        (None, "tag ==", "%n", "expression"),
        ([TAG_RULE], 'tag == "x"', "%n", ""),
        (None, None, "%n", ""),
        ([TAG_RULE], None, "%q", "tagTemplate"),
        ([TAG_RULE], None, "", "tagTemplate"),
        ([TAG_RULE], None, "a/b", "tagTemplate"),
    ],
)
def test_what_cannot_be_evaluated_is_refused_naming_where(
    engine: Engine,
    rules: list[dict[str, Any]] | None,
    expression: str | None,
    template: str,
    where: str,
) -> None:
    r = repos(engine, "dev", "qa")
    with write_tx(engine) as conn, pytest.raises(PolicyInvalid) as refused:
        service().create(
            conn,
            r["dev"],
            r["qa"],
            rules=rules,
            expression=expression,
            tag_template=template,
            created_by="olga",
        )
    assert refused.value.where.startswith(where), refused.value
    assert refused.value.reason
    with read_tx(engine) as conn:
        assert service().list(conn, r["dev"], limit=10) == []


def test_an_update_is_checked_like_a_creation(engine: Engine) -> None:
    r = repos(engine, "dev", "qa")
    policies = service()
    made = create(engine, policies, r["dev"], r["qa"])
    bad = [{"field": "tag", "operator": "lt", "values": ["1"]}]
    for change in (
        PolicyChange(rules=bad),
        PolicyChange(tag_template="%Q"),
        PolicyChange(rules=[TAG_RULE], expression="true"),
    ):
        with write_tx(engine) as conn, pytest.raises(PolicyInvalid):
            policies.update(conn, r["dev"], made.id, change)
    with read_tx(engine) as conn:
        assert policies.get(conn, r["dev"], made.id).revision == 1


def test_a_repository_holds_at_most_the_limit(engine: Engine) -> None:
    r = repos(engine, "dev", "a", "b", "c")
    policies = service(max_per_repository=2)
    create(engine, policies, r["dev"], r["a"])
    create(engine, policies, r["dev"], r["b"], enabled=False)
    with pytest.raises(StateConflict, match="has 2 promotion policies already"):
        create(engine, policies, r["dev"], r["c"])
    create(engine, policies, r["a"], r["c"])  # another source has its own count


# --- cycles ------------------------------------------------------------------------------------
def test_a_policy_into_its_own_repository_is_a_cycle(engine: Engine) -> None:
    r = repos(engine, "dev")
    with pytest.raises(PromotionCycle) as refused:
        create(engine, service(), r["dev"], r["dev"])
    assert refused.value.path == (r["dev"].name, r["dev"].name)
    assert refused.value.where == "targetRepository"


def test_a_policy_closing_a_loop_of_two_is_refused(engine: Engine) -> None:
    r = repos(engine, "a", "b")
    create(engine, service(), r["a"], r["b"])
    with pytest.raises(PromotionCycle) as refused:
        create(engine, service(), r["b"], r["a"])
    assert refused.value.path == (r["b"].name, r["a"].name, r["b"].name)
    assert f"{r['b'].name} -> {r['a'].name} -> {r['b'].name}" in str(refused.value)


def test_a_policy_closing_a_long_loop_is_refused_naming_the_shortest_one(engine: Engine) -> None:
    r = repos(engine, "a", "b", "c", "d", "e")
    policies = service()
    for source, target in (("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("b", "e")):
        create(engine, policies, r[source], r[target])
    with pytest.raises(PromotionCycle) as refused:
        create(engine, policies, r["e"], r["a"])
    assert refused.value.path == tuple(r[x].name for x in ("e", "a", "b", "e"))
    with pytest.raises(PromotionCycle) as refused:
        create(engine, policies, r["d"], r["b"])
    assert refused.value.path == tuple(r[x].name for x in ("d", "b", "c", "d"))


def test_branches_and_diamonds_are_no_cycles(engine: Engine) -> None:
    r = repos(engine, "a", "b", "c", "d")
    policies = service()
    for source, target in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")):
        create(engine, policies, r[source], r[target])


def test_a_disabled_policy_leads_nowhere_until_enabled(engine: Engine) -> None:
    r = repos(engine, "a", "b", "c")
    policies = service()
    create(engine, policies, r["a"], r["b"])
    create(engine, policies, r["b"], r["c"])
    back = create(engine, policies, r["c"], r["a"], enabled=False)  # no loop while disabled
    with write_tx(engine) as conn, pytest.raises(PromotionCycle) as refused:
        policies.update(conn, r["c"], back.id, PolicyChange(enabled=True))
    assert refused.value.path == tuple(r[x].name for x in ("c", "a", "b", "c"))


def test_a_new_target_is_checked_for_a_loop(engine: Engine) -> None:
    r = repos(engine, "a", "b", "c")
    policies = service()
    create(engine, policies, r["a"], r["b"])
    moved = create(engine, policies, r["b"], r["c"])
    with write_tx(engine) as conn, pytest.raises(PromotionCycle):
        policies.update(conn, r["b"], moved.id, PolicyChange(target=r["a"]))


# --- the compiled-condition cache --------------------------------------------------------------
def test_a_condition_is_compiled_once_per_revision(engine: Engine) -> None:
    r = repos(engine, "dev", "qa")
    policies = service()
    made = create(engine, policies, r["dev"], r["qa"])
    first = policies.compiled(made)
    assert policies.compiled(made) is first
    assert first.needs == made.needs
    with write_tx(engine) as conn:
        changed = policies.update(conn, r["dev"], made.id, PolicyChange(rules=[VULN_RULE]))
    assert policies.compiled(changed) is not first
    assert policies.compiled(changed).needs == frozenset({Need.VULNERABILITIES})


# --- locks (PostgreSQL; SQLite runs one writer at a time) --------------------------------------
def test_lock_holds_the_policys_row_not_its_repositories(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    r = repos(engine, "dev", "qa")
    made = create(engine, service(), r["dev"], r["qa"])
    with write_tx(engine) as holder:
        assert service().store.lock(holder, made.id) == made
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '50ms'"))
            # The repositories stay free (a push's tag rows lock them KEY SHARE)...
            names = other.execute(
                text("SELECT name FROM repositories WHERE id IN (:a, :b) FOR UPDATE NOWAIT"),
                {"a": r["dev"].id, "b": r["qa"].id},
            ).all()
            assert len(names) == 2
            other.rollback()
            # ...the policy's row is held.
            with pytest.raises(Exception, match="could not obtain lock"):
                other.execute(
                    select(promotion_policies.c.id)
                    .where(promotion_policies.c.id == made.id)
                    .with_for_update(nowait=True)
                )
            other.rollback()


def test_two_policies_closing_a_loop_at_once_cannot_both_pass(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    r = repos(engine, "a", "b")
    policies = service()
    outcome: list[BaseException | None] = []

    def close_the_loop() -> None:
        try:
            create(engine, policies, r["b"], r["a"])
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    with write_tx(engine) as first:
        policies.create(
            first, r["a"], r["b"], rules=[TAG_RULE], expression=None, tag_template="%n",
            created_by="olga",
        )  # fmt: skip
        second = threading.Thread(target=close_the_loop)
        second.start()
        # Until the second waits for the graph's lock (or, without one, has finished).
        with engine.connect() as watcher:
            waiting = text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            while second.is_alive() and not watcher.execute(waiting).scalar():
                watcher.rollback()
    second.join(timeout=60)
    [error] = outcome
    assert isinstance(error, PromotionCycle), error
