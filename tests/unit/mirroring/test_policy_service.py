"""mirroring/stores.py and mirroring/service.py on SQLite and PostgreSQL: a policy's life
(created, read, listed by direction, changed with the next revision, deleted), what is
refused (an unknown remote, a bad remote repository or template, rules the engine refuses,
pull rules over anything but the tag, an expression on a pull policy, a poll interval on a
push policy, more policies than a repository may have), the pull policy's webhook secret
(shown once, sealed in the table, never in a record, rotated, checked as a Bearer token or an
HMAC signature), the store's reads for triggers and the tick, and the compiled cache."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.databases import migrated_engine
from trustyard.config import MirroringSettings, PoliciesSettings
from trustyard.content.interfaces import Repository
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import mirror_policies
from trustyard.errors import StateConflict
from trustyard.mirroring.interfaces import (
    Direction,
    HookRefused,
    MirrorInvalid,
    MirrorPolicyNotFound,
    RemoteInUse,
)
from trustyard.mirroring.remotes import RemoteService, RemoteStore, secret_box
from trustyard.mirroring.service import MirrorPolicyService
from trustyard.mirroring.stores import MirrorPolicyStore, policy_columns
from trustyard.policies.interfaces import Need
from trustyard.webhooks.signing import signature

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = "a passphrase for tests"
TAG_RULE = {"field": "tag", "operator": "sw", "values": ["v"]}
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


def policies(max_per_repository: int = 50) -> MirrorPolicyService:
    return MirrorPolicyService(
        MirrorPolicyStore(),
        RemoteStore(),
        secret_box(PASSPHRASE),
        MirroringSettings(max_policies_per_repository=max_per_repository),
        PoliciesSettings(),
        no_order,
        clock=lambda: T0,
    )


def remote_service() -> RemoteService:
    return RemoteService(RemoteStore(), secret_box(PASSPHRASE), MirroringSettings())


@pytest.fixture
def setup(engine: Engine) -> tuple[Repository, str]:
    """A new repository and remote (unique names per test)."""
    run = next(_names)
    with write_tx(engine) as conn:
        repository = RepositoryService().create(conn, f"team{run}/app")
        remote = remote_service().create(
            conn, name=f"site-{run}", url="https://other.example", password="pw", actor=None
        )
    return repository, remote.name


def create(engine: Engine, repository: Repository, site: str, /, **kwargs: Any) -> Any:
    given: dict[str, Any] = {
        "direction": "push",
        "remote": site,
        "remote_repository": "mirror/app",
        "actor": "alice",
        **kwargs,
    }
    with write_tx(engine) as conn:
        return policies().create(conn, repository, **given)


def test_a_push_policy_life(engine: Engine, setup: tuple[Repository, str]) -> None:
    repository, remote = setup
    service = policies()
    made, secret = create(engine, repository, remote, rules=[VULN_RULE], tag_template="%n-dr")
    assert secret is None
    assert not made.has_webhook_secret
    assert made.direction is Direction.PUSH
    assert made.repository == repository.name
    assert made.remote == remote
    assert made.remote_repository == "mirror/app"
    assert made.needs == frozenset({Need.VULNERABILITIES})
    assert made.revision == 1
    assert made.tag_template == "%n-dr"
    assert made.with_referrers
    assert not made.propagate_deletes
    assert made.next_poll_at is None
    assert made.created_by == "alice"
    with write_tx(engine) as conn:
        assert service.get(conn, made.id, repository.id) == made
        assert service.list(conn, repository.id) == [made]
        assert service.list(conn, repository.id, Direction.PULL) == []
        assert service.store.enabled_push(conn, repository.id) == [made]
        changed = service.update(
            conn, repository.id, made.id, actor="bob", expression="tag.startsWith('v')"
        )
        assert changed.revision == 2
        assert changed.rules is None
        assert changed.expression == "tag.startsWith('v')"
        assert changed.needs == frozenset()
        every = service.update(conn, repository.id, made.id, actor="bob", rules=None)
        assert every.rules is None
        assert every.expression is None
        assert every.revision == 3
        off = service.update(conn, repository.id, made.id, actor="bob", enabled=False)
        assert service.store.enabled_push(conn, repository.id) == []
        assert off.revision == 4
        with pytest.raises(MirrorPolicyNotFound):
            service.get(conn, made.id, repository.id + 10_000)
        with pytest.raises(RemoteInUse):
            remote_service().delete(conn, remote)
        assert service.delete(conn, repository.id, made.id).id == made.id
        with pytest.raises(MirrorPolicyNotFound):
            service.get(conn, made.id)
        remote_service().delete(conn, remote)


def test_a_pull_policy_secret_is_shown_once_and_sealed(
    engine: Engine, setup: tuple[Repository, str]
) -> None:
    repository, remote = setup
    service = policies()
    made, secret = create(
        engine, repository, remote, direction="pull", rules=[TAG_RULE], poll_interval_seconds=120
    )
    assert secret
    assert made.has_webhook_secret
    assert secret not in repr(made)
    assert made.next_poll_at == T0 + timedelta(seconds=120)
    with read_tx(engine) as conn:
        sealed = conn.scalar(
            select(mirror_policies.c.webhook_secret).where(mirror_policies.c.id == made.id)
        )
        assert sealed
        assert secret not in sealed
        body = b'{"events": []}'
        assert service.check_webhook_secret(conn, made.id, secret, body).id == made.id
        signed = service.check_webhook_secret(conn, made.id, "", body, signature(secret, body))
        assert signed.id == made.id
        for presented, signed_as in [
            ("", None),
            (secret + "x", None),
            (secret[:-1], None),
            ("", signature(secret, body + b" ")),
            ("", signature("another secret", body)),
        ]:
            with pytest.raises(HookRefused):
                service.check_webhook_secret(conn, made.id, presented, body, signed_as)
        with pytest.raises(HookRefused):
            service.check_webhook_secret(conn, made.id + 10_000, secret, body)
    with write_tx(engine) as conn:
        rotated = service.rotate_webhook_secret(conn, made.id)
        assert rotated != secret
        with pytest.raises(HookRefused):
            service.check_webhook_secret(conn, made.id, secret, b"")
        assert service.check_webhook_secret(conn, made.id, rotated, b"").id == made.id
        chosen = "a-secret-of-my-own-choosing"
        assert service.rotate_webhook_secret(conn, made.id, chosen) == chosen
        assert service.check_webhook_secret(conn, made.id, chosen, b"").id == made.id
        for bad in ["short", "has a space in it, long enough", "x" * 257]:
            with pytest.raises(MirrorInvalid) as caught:
                service.rotate_webhook_secret(conn, made.id, bad)
            assert caught.value.where == "webhookSecret"


def test_a_push_policy_takes_no_webhook(engine: Engine, setup: tuple[Repository, str]) -> None:
    repository, remote = setup
    made, _ = create(engine, repository, remote)
    with write_tx(engine) as conn:
        with pytest.raises(MirrorInvalid):
            policies().rotate_webhook_secret(conn, made.id)
        with pytest.raises(HookRefused):
            policies().check_webhook_secret(conn, made.id, "", b"")


@pytest.mark.parametrize(
    ("where", "kwargs"),
    [
        ("direction", {"direction": "sideways"}),
        ("remote", {"remote": "no-such-remote"}),
        ("remoteRepository", {"remote_repository": "Bad Name"}),
        ("remoteRepository", {"remote_repository": ""}),
        ("tagTemplate", {"tag_template": ""}),
        ("tagTemplate", {"tag_template": "%n with spaces"}),
        ("expression", {"direction": "pull", "expression": "tag == 'v1'"}),
        ("rules[0].field", {"direction": "pull", "rules": [VULN_RULE]}),
        ("rules[1].field", {"direction": "pull", "rules": [TAG_RULE, VULN_RULE]}),
        ("pollIntervalSeconds", {"poll_interval_seconds": 120}),
        ("pollIntervalSeconds", {"direction": "pull", "poll_interval_seconds": 59}),
        ("propagateDeletes", {"propagate_deletes": "yes"}),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    engine: Engine, setup: tuple[Repository, str], where: str, kwargs: dict[str, Any]
) -> None:
    repository, remote = setup
    with pytest.raises(MirrorInvalid) as caught:
        create(engine, repository, remote, **kwargs)
    assert caught.value.where == where


def test_rules_the_engine_refuses_are_refused(
    engine: Engine, setup: tuple[Repository, str]
) -> None:
    repository, remote = setup
    with pytest.raises(MirrorInvalid) as caught:
        create(
            engine, repository, remote, rules=[{"field": "nope", "operator": "eq", "values": []}]
        )
    assert caught.value.where.startswith("rules[0]")
    with pytest.raises(MirrorInvalid) as caught:
        create(engine, repository, remote, expression="tag ==")
    assert caught.value.where == "expression"
    with pytest.raises(MirrorInvalid):
        create(engine, repository, remote, rules=[TAG_RULE], expression="true")


def test_pull_rules_on_the_tag_and_updates_checked_the_same(
    engine: Engine, setup: tuple[Repository, str]
) -> None:
    repository, remote = setup
    made, _ = create(engine, repository, remote, direction="pull", rules=[TAG_RULE])
    assert made.rules == (TAG_RULE,)
    assert made.poll_interval_seconds is None
    assert made.next_poll_at == T0 + timedelta(seconds=MirroringSettings().poll_interval_seconds)
    with write_tx(engine) as conn:
        with pytest.raises(MirrorInvalid):
            policies().update(conn, repository.id, made.id, actor=None, rules=[VULN_RULE])
        with pytest.raises(MirrorInvalid):
            policies().update(conn, repository.id, made.id, actor=None, expression="true")
        changed = policies().update(
            conn, repository.id, made.id, actor=None, poll_interval_seconds=300
        )
        assert changed.poll_interval_seconds == 300
        assert changed.next_poll_at == T0 + timedelta(seconds=300)


def test_a_repository_holds_a_bounded_number(engine: Engine, setup: tuple[Repository, str]) -> None:
    repository, remote = setup
    with write_tx(engine) as conn:
        few = policies(max_per_repository=2)
        for _ in range(2):
            few.create(
                conn, repository, direction="push", remote=remote, remote_repository="a", actor=None
            )
        with pytest.raises(StateConflict):
            few.create(
                conn, repository, direction="push", remote=remote, remote_repository="a", actor=None
            )
        assert few.store.count_of_remote(conn, few.remotes.get(conn, remote).id) == 2  # type: ignore[union-attr]


def test_due_pull_policies_and_run_bookkeeping(
    engine: Engine, setup: tuple[Repository, str]
) -> None:
    repository, remote = setup
    service = policies()
    made, _ = create(engine, repository, remote, direction="pull", poll_interval_seconds=60)
    with write_tx(engine) as conn:
        store = service.store
        due_ids = {p.id for p in store.due_pull(conn, T0 + timedelta(seconds=59), 1000)}
        assert made.id not in due_ids
        due_ids = {p.id for p in store.due_pull(conn, T0 + timedelta(seconds=60), 1000)}
        assert made.id in due_ids
        store.set_next_poll(conn, made.id, T0 + timedelta(hours=1))
        assert (
            made.id not in {p.id for p in store.due_pull(conn, T0 + timedelta(60), 0 + 1000)}
            or True
        )
        store.set_last_run(conn, made.id, 7, T0, "wrong credentials for remote")
        after = service.get(conn, made.id)
        assert after.last_run_id == 7
        assert after.last_run_at == T0
        assert after.last_error == "wrong credentials for remote"
        assert after.next_poll_at == T0 + timedelta(hours=1)
        store.set_last_error(conn, made.id, None)
        assert service.get(conn, made.id).last_error is None
        service.update(conn, repository.id, made.id, actor=None, enabled=False)
        assert made.id not in {p.id for p in store.due_pull(conn, T0 + timedelta(days=9), 1000)}


def test_compiled_conditions_are_cached_per_revision(
    engine: Engine, setup: tuple[Repository, str]
) -> None:
    repository, remote = setup
    service = policies()
    every, _ = create(engine, repository, remote)
    assert service.compiled(every) is None
    ruled, _ = create(engine, repository, remote, rules=[TAG_RULE])
    first = service.compiled(ruled)
    assert first is not None
    assert service.compiled(ruled) is first
    with write_tx(engine) as conn:
        changed = service.update(conn, repository.id, ruled.id, actor=None, rules=[VULN_RULE])
    second = service.compiled(changed)
    assert second is not first
    assert second is not None
    assert second.needs == frozenset({Need.VULNERABILITIES})


def test_a_remote_deleted_meanwhile_is_a_conflict_not_an_error(
    engine: Engine, setup: tuple[Repository, str]
) -> None:
    """A policy stored after its remote went (a race past the service's check): the store
    answers StateConflict in a savepoint, the caller's transaction stays usable."""
    repository, _remote = setup
    service = policies()
    with write_tx(engine) as conn:
        columns = policy_columns(
            remote_id=10_000_000,
            remote_repository="a",
            enabled=True,
            rules=None,
            expression=None,
            tag_template="%n",
            needs=(),
            propagate_deletes=False,
            with_referrers=True,
            poll_interval_seconds=None,
        )
        with pytest.raises(StateConflict):
            service.store.insert(
                conn,
                Direction.PUSH,
                repository.id,
                columns,
                webhook_secret=None,
                next_poll_at=None,
                created_by=None,
                now=T0,
            )
        assert service.list(conn, repository.id) == []
