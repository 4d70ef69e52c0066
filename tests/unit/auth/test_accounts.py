"""AccountService on a real database: users, organizations, teams, robots, grants, tokens."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, delete, select, text

from tests.unit.auth.conftest import CHEAP_HASHER, MakeRepository
from trustyard.auth.accounts import (
    DEFAULT_TOKEN_SCOPES,
    AccountService,
    LastAdministrator,
    LastOwner,
    NamespaceTaken,
    OrganizationNotEmpty,
    StateConflict,
)
from trustyard.auth.passwords import WeakPassword, verify_password
from trustyard.auth.scopes import InvalidScope
from trustyard.auth.secrets import PASSWORD_ALPHABET, PASSWORD_LENGTH, parse_token
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import (
    access_tokens,
    organizations,
    repositories,
    robot_grants,
    team_repository_grants,
    teams,
    users,
)
from trustyard.errors import Conflict, Invalid, NotFound

PASSWORD = "correct horse battery staple"
LATER = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.fixture
def accounts() -> AccountService:
    return AccountService(hasher=CHEAP_HASHER)


def stored_hash(conn: Connection, username: str) -> str | None:
    return conn.scalar(select(users.c.password_hash).where(users.c.username == username))


# --- first start -------------------------------------------------------------------------------


def test_ensure_admin_generates_a_password_once_and_then_does_nothing(
    accounts: AccountService, db_engine: Engine
) -> None:
    # Committed, as `trustyard serve` does it; cleaned up below (the database is shared).
    with write_tx(db_engine) as conn:
        generated = accounts.ensure_admin(conn, None)
    try:
        assert generated is not None
        assert len(generated) == PASSWORD_LENGTH
        assert set(generated) <= set(PASSWORD_ALPHABET)
        with write_tx(db_engine) as conn:
            assert accounts.ensure_admin(conn, None) is None
            assert accounts.ensure_admin(conn, "another passphrase here") is None
        with read_tx(db_engine) as conn:
            admin = accounts.get_user(conn, "admin")
            assert admin.is_admin
            assert admin.is_active
            stored = stored_hash(conn, "admin")
            assert stored is not None
            assert verify_password(stored, generated, hasher=CHEAP_HASHER)
    finally:
        with write_tx(db_engine) as conn:
            conn.execute(users.delete())


def test_ensure_admin_uses_the_given_password_and_applies_the_policy(
    accounts: AccountService, conn: Connection
) -> None:
    with pytest.raises(WeakPassword):
        accounts.ensure_admin(conn, "short")
    assert accounts.ensure_admin(conn, PASSWORD) is None
    stored = stored_hash(conn, "admin")
    assert stored is not None
    assert verify_password(stored, PASSWORD, hasher=CHEAP_HASHER)
    assert accounts.get_user(conn, "admin").is_admin


# --- users -------------------------------------------------------------------------------------


def test_a_password_is_stored_only_as_an_argon2id_hash(
    accounts: AccountService, conn: Connection
) -> None:
    user = accounts.create_user(conn, "alice", PASSWORD, email="a@example.org")
    assert (user.username, user.email, user.is_admin, user.is_active) == (
        "alice",
        "a@example.org",
        False,
        True,
    )
    assert user.source == "local"
    assert user.created_at.tzinfo is not None
    stored = stored_hash(conn, "alice")
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_a_user_without_password_has_no_hash(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "carol", None, source="ldap")
    assert stored_hash(conn, "carol") is None
    assert accounts.get_user(conn, "carol").source == "ldap"


@pytest.mark.parametrize(
    "password", ["", "            ", "short pass", "aaaaaaaaaaaaaaaa", "alicealice12"]
)
def test_weak_passwords_are_refused(
    accounts: AccountService, conn: Connection, password: str
) -> None:
    if password == "alicealice12":
        with pytest.raises(WeakPassword, match="username"):
            accounts.create_user(conn, "alicealice12", password)
        return
    with pytest.raises(WeakPassword):
        accounts.create_user(conn, "alice", password)
    with pytest.raises(NotFound):
        accounts.get_user(conn, "alice")


@pytest.mark.parametrize(
    "name",
    ["", "Alice", "a..b", "-a", "a-", "a_", ".a", "acme+ci", "a/b", "a b", "é", "a" * 65],
)
def test_names_outside_the_grammar_are_refused(
    accounts: AccountService, conn: Connection, name: str
) -> None:
    accounts.create_user(conn, "owner", PASSWORD)
    with pytest.raises(Invalid, match="invalid user name"):
        accounts.create_user(conn, name, PASSWORD)
    with pytest.raises(Invalid, match="invalid organization name"):
        accounts.create_organization(conn, name, "owner")
    accounts.create_organization(conn, "acme", "owner")
    with pytest.raises(Invalid, match="invalid team name"):
        accounts.create_team(conn, "acme", name)
    with pytest.raises(Invalid, match="invalid robot name"):
        accounts.create_robot(conn, "acme", name)


@pytest.mark.parametrize("name", ["a", "a1", "a.b", "a_b-c9", "x" * 64, "0day"])
def test_names_inside_the_grammar_are_accepted(
    accounts: AccountService, conn: Connection, name: str
) -> None:
    assert accounts.create_user(conn, name, PASSWORD).username == name


def test_users_and_organizations_never_share_a_name(
    accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    with pytest.raises(Conflict) as user_taken:
        accounts.create_organization(conn, "alice", "alice")
    assert user_taken.value.kind == "user"
    with pytest.raises(Conflict) as org_taken:
        accounts.create_user(conn, "acme", PASSWORD)
    assert org_taken.value.kind == "organization"
    with pytest.raises(Conflict):
        accounts.create_user(conn, "alice", PASSWORD)
    with pytest.raises(Conflict):
        accounts.create_organization(conn, "acme", "alice")


def test_a_namespace_holding_repositories_is_adopted_only_by_an_administrators_organization(
    accounts: AccountService, conn: Connection, make_repository: MakeRepository
) -> None:
    """Repositories left without owner (an open registry, an older version): a user or an
    organization taking their namespace would read and administer them."""
    accounts.create_user(conn, "alice", PASSWORD)
    make_repository("legacy/app")
    with pytest.raises(NamespaceTaken, match="repositories already exist in namespace 'legacy'"):
        accounts.create_organization(conn, "legacy", "alice")
    with pytest.raises(NamespaceTaken):
        accounts.create_user(conn, "legacy", PASSWORD)
    make_repository("solo")  # a one-component name is its own namespace
    with pytest.raises(NamespaceTaken):
        accounts.create_organization(conn, "solo", "alice")
    assert accounts.create_organization(conn, "legacy", "alice", adopt=True).name == "legacy"
    assert accounts.owners(conn, "legacy") == ["alice"]


def test_creating_a_repository_claims_a_namespace_nobody_has(
    accounts: AccountService, conn: Connection, make_repository: MakeRepository
) -> None:
    accounts.create_user(conn, "admin2", PASSWORD, is_admin=True)
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    make_repository("team/app")
    assert accounts.claim_namespace(conn, "team/app", "admin2") is True
    assert accounts.owners(conn, "team") == ["admin2"]
    make_repository("team/other")
    assert accounts.claim_namespace(conn, "team/other", "admin2") is False  # already an org
    for taken in ("alice/app", "acme/app"):  # a user's or an organization's: nothing to claim
        make_repository(taken)
        assert accounts.claim_namespace(conn, taken, "admin2") is False
    assert accounts.owners(conn, "acme") == ["alice"]
    with pytest.raises(Conflict):
        accounts.create_organization(conn, "team", "alice")


def test_concurrent_creations_of_one_name_wait_for_each_other(
    accounts: AccountService, db_engine: Engine
) -> None:
    """PostgreSQL: a user and an organization of one name created at the same time (two
    transactions, each checking that the other table has no such name) cannot both succeed.
    SQLite admits one writer at a time and needs nothing more."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    with write_tx(db_engine) as conn:
        accounts.create_user(conn, "racer", PASSWORD)
    outcome: list[BaseException | str] = []

    def second() -> None:
        try:
            with write_tx(db_engine) as other:
                accounts.create_organization(other, "raced", "racer")
            outcome.append("created")
        except BaseException as error:  # reported to the test thread
            outcome.append(error)

    try:
        with write_tx(db_engine) as conn:
            accounts.create_user(conn, "raced", PASSWORD)
            thread = threading.Thread(target=second)
            thread.start()
            deadline = time.monotonic() + 30
            while thread.is_alive() and not _waits_for_a_lock(db_engine):
                assert time.monotonic() < deadline, "the second creation neither ran nor waited"
                time.sleep(0.01)
        thread.join(30)
        assert len(outcome) == 1
        assert isinstance(outcome[0], Conflict), outcome
        assert outcome[0].kind == "user"
    finally:
        with write_tx(db_engine) as conn:
            for name in ("raced", "racer"):
                conn.execute(delete(organizations).where(organizations.c.name == name))
                conn.execute(delete(users).where(users.c.username == name))


def _waits_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
    return bool(waiting)


def test_update_and_list_users(accounts: AccountService, conn: Connection) -> None:
    for name in ("dave", "bob", "carol", "alice"):
        accounts.create_user(conn, name, PASSWORD, full_name=name.title())
    updated = accounts.update_user(conn, "bob", email="b@example.org", full_name="")
    assert (updated.email, updated.full_name) == ("b@example.org", None)
    assert accounts.update_user(conn, "bob", is_admin=True).is_admin
    names = [u.username for u in accounts.list_users(conn, limit=2)]
    assert names == ["alice", "bob"]
    assert [u.username for u in accounts.list_users(conn, limit=5, after="bob")] == [
        "carol",
        "dave",
    ]
    with pytest.raises(NotFound):
        accounts.update_user(conn, "nobody", email="x@example.org")


def test_the_last_active_administrator_stays(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "root", PASSWORD, is_admin=True)
    accounts.create_user(conn, "spare", PASSWORD, is_admin=True)
    accounts.deactivate_user(conn, "spare")  # an inactive admin does not count
    with pytest.raises(LastAdministrator):
        accounts.delete_user(conn, "root")
    with pytest.raises(LastAdministrator):
        accounts.deactivate_user(conn, "root")
    with pytest.raises(LastAdministrator):
        accounts.update_user(conn, "root", is_admin=False)
    assert accounts.get_user(conn, "root").is_admin
    accounts.update_user(conn, "spare", is_active=True)
    accounts.update_user(conn, "root", is_admin=False)  # now "spare" remains
    with pytest.raises(LastAdministrator):
        accounts.delete_user(conn, "spare")
    accounts.delete_user(conn, "root")
    with pytest.raises(NotFound):
        accounts.get_user(conn, "root")


def test_change_password(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    with pytest.raises(WeakPassword):
        accounts.change_password(conn, "alice", "tiny")
    accounts.change_password(conn, "alice", "a brand new passphrase")
    stored = stored_hash(conn, "alice")
    assert stored is not None
    assert verify_password(stored, "a brand new passphrase", hasher=CHEAP_HASHER)
    assert not verify_password(stored, PASSWORD, hasher=CHEAP_HASHER)
    with pytest.raises(NotFound):
        accounts.change_password(conn, "nobody", "a brand new passphrase")


# --- organizations and teams -------------------------------------------------------------------


def test_an_organization_keeps_at_least_one_owner(
    accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_user(conn, "bob", PASSWORD)
    with pytest.raises(NotFound):
        accounts.create_organization(conn, "acme", "nobody")
    with pytest.raises(NotFound):
        accounts.get_organization(conn, "acme")
    accounts.create_organization(conn, "acme", "alice", "the acme org")
    assert accounts.get_organization(conn, "acme").description == "the acme org"
    assert accounts.owners(conn, "acme") == ["alice"]
    with pytest.raises(LastOwner):
        accounts.remove_owner(conn, "acme", "alice")
    with pytest.raises(LastOwner):
        accounts.delete_user(conn, "alice")
    with pytest.raises(NotFound):
        accounts.remove_owner(conn, "acme", "bob")
    accounts.add_owner(conn, "acme", "bob")
    accounts.add_owner(conn, "acme", "bob")  # idempotent
    assert accounts.owners(conn, "acme") == ["alice", "bob"]
    accounts.remove_owner(conn, "acme", "alice")
    assert accounts.owners(conn, "acme") == ["bob"]
    accounts.add_owner(conn, "acme", "alice")
    accounts.delete_user(conn, "bob")  # alice still owns acme
    assert accounts.owners(conn, "acme") == ["alice"]
    assert [o.name for o in accounts.list_organizations(conn)] == ["acme"]


def test_teams_members_and_ldap_group(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_user(conn, "bob", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    with pytest.raises(NotFound):
        accounts.create_team(conn, "globex", "devs")
    team = accounts.create_team(conn, "acme", "devs", "developers")
    assert (team.organization, team.name, team.description, team.ldap_group) == (
        "acme",
        "devs",
        "developers",
        None,
    )
    with pytest.raises(Conflict):
        accounts.create_team(conn, "acme", "devs")
    accounts.create_team(conn, "acme", "ops")
    assert [t.name for t in accounts.list_teams(conn, "acme")] == ["devs", "ops"]
    accounts.add_member(conn, "acme", "devs", "bob")
    accounts.add_member(conn, "acme", "devs", "alice")
    accounts.add_member(conn, "acme", "devs", "bob")  # idempotent
    assert accounts.members(conn, "acme", "devs") == ["alice", "bob"]
    accounts.remove_member(conn, "acme", "devs", "alice")
    assert accounts.members(conn, "acme", "devs") == ["bob"]
    with pytest.raises(NotFound):
        accounts.remove_member(conn, "acme", "devs", "alice")
    with pytest.raises(NotFound):
        accounts.add_member(conn, "acme", "devs", "nobody")
    group = "cn=devs,ou=groups,dc=example,dc=org"
    assert accounts.set_ldap_group(conn, "acme", "devs", group).ldap_group == group
    assert accounts.set_ldap_group(conn, "acme", "devs", None).ldap_group is None
    with pytest.raises(Invalid):
        accounts.set_ldap_group(conn, "acme", "devs", "  ")
    accounts.delete_team(conn, "acme", "devs")
    with pytest.raises(NotFound):
        accounts.get_team(conn, "acme", "devs")


def test_grants_are_validated(
    accounts: AccountService, conn: Connection, make_repository: MakeRepository
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_organization(conn, "globex", "alice")
    accounts.create_team(conn, "acme", "devs")
    accounts.create_robot(conn, "acme", "ci")
    repo_id = make_repository("acme/app")
    make_repository("globex/app")
    with pytest.raises(Invalid, match="unknown role"):
        accounts.set_team_repository_grant(conn, "acme", "devs", "acme/app", "owner")
    with pytest.raises(Invalid, match="not a repository of"):
        accounts.set_team_repository_grant(conn, "acme", "devs", "globex/app", "admin")
    with pytest.raises(NotFound):
        accounts.set_team_repository_grant(conn, "acme", "devs", "acme/missing", "admin")
    with pytest.raises(Invalid, match="unknown role"):
        accounts.set_team_organization_grant(conn, "acme", "devs", "write")
    for pattern in ("globex/*", "*", "acmex/*", "acme/Bad", "acme//x"):
        with pytest.raises(Invalid):
            accounts.set_robot_grant(conn, "acme", "ci", pattern, "read-only")
    with pytest.raises(NotFound):
        accounts.set_robot_grant(conn, "acme", "nobody", "acme/*", "read-only")

    accounts.set_team_repository_grant(conn, "acme", "devs", "acme/app", "read-write")
    accounts.set_team_repository_grant(conn, "acme", "devs", "acme/app", "admin")  # replaces
    rows = conn.execute(select(team_repository_grants)).all()
    assert [(r.repository_id, r.role) for r in rows] == [(repo_id, "admin")]
    accounts.set_team_repository_grant(conn, "acme", "devs", "acme/app", None)
    assert conn.execute(select(team_repository_grants)).all() == []
    accounts.set_robot_grant(conn, "acme", "ci", "acme/ci-*", "read-write")
    rows = conn.execute(select(robot_grants)).all()
    assert [(r.repository_pattern, r.role) for r in rows] == [("acme/ci-*", "read-write")]


def test_robots(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    robot = accounts.create_robot(conn, "acme", "ci", "builds")
    assert (robot.username, robot.description) == ("acme+ci", "builds")
    with pytest.raises(Conflict):
        accounts.create_robot(conn, "acme", "ci")
    with pytest.raises(NotFound):
        accounts.create_robot(conn, "globex", "ci")
    accounts.create_robot(conn, "acme", "backup")
    assert [r.name for r in accounts.list_robots(conn, "acme")] == ["backup", "ci"]
    assert accounts.get_robot(conn, "acme", "ci") == robot


# --- tokens ------------------------------------------------------------------------------------


def test_a_personal_token_is_shown_once_and_stored_hashed(
    accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    token, text = accounts.create_token(conn, "alice", "laptop")
    assert text.startswith(f"ty_pat_{token.public_id}_")
    assert (token.kind, token.name, token.owner) == ("pat", "laptop", "alice")
    assert token.scopes == DEFAULT_TOKEN_SCOPES
    assert (token.expires_at, token.revoked_at, token.last_used_at) == (None, None, None)
    row = conn.execute(select(access_tokens)).one()
    parsed = parse_token(text)
    assert parsed is not None
    secret = parsed.secret
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(row)
    assert accounts.list_tokens(conn, "alice") == [token]


def test_token_scopes_are_validated_and_stored_canonically(
    accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    token, _ = accounts.create_token(
        conn, "alice", "ci", ["repository:alice/*:push,pull", "registry:catalog:*"], LATER
    )
    assert token.scopes == ("repository:alice/*:pull,push", "registry:catalog:*")
    assert token.expires_at == LATER
    with pytest.raises(InvalidScope):
        accounts.create_token(conn, "alice", "bad", ["repository:alice/app:write"])
    with pytest.raises(InvalidScope):
        accounts.create_token(conn, "alice", "bad", ["repository:host:5000/app:pull"])
    with pytest.raises(Invalid, match="at least one scope"):
        accounts.create_token(conn, "alice", "none", [])
    with pytest.raises(Invalid, match="future"):
        accounts.create_token(conn, "alice", "old", None, datetime.now(UTC) - timedelta(1))
    with pytest.raises(Invalid, match="time zone"):
        accounts.create_token(conn, "alice", "naive", None, datetime(2099, 1, 1))
    with pytest.raises(Invalid, match="token name"):
        accounts.create_token(conn, "alice", " ")
    with pytest.raises(NotFound):
        accounts.create_token(conn, "nobody", "x")
    assert len(accounts.list_tokens(conn, "alice")) == 1


def test_robot_tokens_and_revocation(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_robot(conn, "acme", "ci")
    token, text = accounts.create_token(conn, "acme+ci", "pipeline", ["repository:acme/*:pull"])
    assert text.startswith("ty_rbt_")
    assert (token.kind, token.owner) == ("rbt", "acme+ci")
    with pytest.raises(NotFound):
        accounts.create_token(conn, "acme+nobody", "x")
    assert accounts.list_tokens(conn, "acme+ci") == [token]
    assert accounts.list_tokens(conn, "alice") == []
    with pytest.raises(NotFound):
        accounts.revoke_token(conn, token.public_id, owner="alice")
    with pytest.raises(NotFound):
        accounts.revoke_token(conn, "aaaaaaaaaaaa")
    revoked = accounts.revoke_token(conn, token.public_id, owner="acme+ci")
    assert revoked.revoked_at is not None
    assert accounts.revoke_token(conn, token.public_id).revoked_at == revoked.revoked_at
    assert accounts.list_tokens(conn, "acme+ci") == [revoked]


# --- changing and deleting -----------------------------------------------------------------------


def test_state_conflicts_are_a_kind_of_invalid_change() -> None:
    for error in (LastAdministrator, LastOwner, OrganizationNotEmpty):
        assert issubclass(error, StateConflict)
        assert issubclass(error, Invalid)


def test_update_team_changes_only_what_is_given(accounts: AccountService, conn: Connection) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_team(conn, "acme", "devs", "developers")
    group = "cn=devs,ou=groups,dc=example,dc=org"
    team = accounts.update_team(conn, "acme", "devs", ldap_group=group)
    assert (team.description, team.ldap_group) == ("developers", group)
    team = accounts.update_team(conn, "acme", "devs", description="")
    assert (team.description, team.ldap_group) == ("", group)
    team = accounts.update_team(conn, "acme", "devs", clear_ldap_group=True)
    assert (team.description, team.ldap_group) == ("", None)
    assert accounts.update_team(conn, "acme", "devs") == team
    with pytest.raises(Invalid):
        accounts.update_team(conn, "acme", "devs", ldap_group="")
    with pytest.raises(Invalid, match="at most 512"):
        accounts.update_team(conn, "acme", "devs", ldap_group="cn=" + "x" * 510)
    with pytest.raises(ValueError, match="not both"):
        accounts.update_team(conn, "acme", "devs", ldap_group=group, clear_ldap_group=True)
    with pytest.raises(NotFound):
        accounts.update_team(conn, "acme", "nobody", description="x")
    assert accounts.get_team(conn, "acme", "devs") == team


def test_deleting_a_robot_takes_its_grants_and_tokens(
    accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_robot(conn, "acme", "ci")
    accounts.create_robot(conn, "acme", "cd")
    accounts.set_robot_grant(conn, "acme", "ci", "acme/*", "read-write")
    accounts.set_robot_grant(conn, "acme", "cd", "acme/*", "read-only")
    token, _ = accounts.create_token(conn, "acme+ci", "pipeline")
    kept, _ = accounts.create_token(conn, "acme+cd", "deploy")
    accounts.delete_robot(conn, "acme", "ci")
    with pytest.raises(NotFound):
        accounts.get_robot(conn, "acme", "ci")
    with pytest.raises(NotFound):
        accounts.get_token(conn, token.public_id)
    with pytest.raises(NotFound):
        accounts.delete_robot(conn, "acme", "ci")
    assert [r.robot_id for r in conn.execute(select(robot_grants))] == [
        accounts.get_robot(conn, "acme", "cd").id
    ]
    assert accounts.get_token(conn, kept.public_id) == kept
    # a robot of the same name starts from nothing
    accounts.create_robot(conn, "acme", "ci")
    assert accounts.list_tokens(conn, "acme+ci") == []


def test_grant_setters_say_whether_a_grant_was_there(
    accounts: AccountService, conn: Connection, make_repository: MakeRepository
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_team(conn, "acme", "devs")
    accounts.create_robot(conn, "acme", "ci")
    make_repository("acme/app")
    repository = accounts.set_team_repository_grant
    assert repository(conn, "acme", "devs", "acme/app", None) is False
    assert repository(conn, "acme", "devs", "acme/app", "read-only") is False
    assert repository(conn, "acme", "devs", "acme/app", "admin") is True
    assert repository(conn, "acme", "devs", "acme/app", None) is True
    organization = accounts.set_team_organization_grant
    assert organization(conn, "acme", "devs", "read-only") is False
    assert organization(conn, "acme", "devs", None) is True
    assert organization(conn, "acme", "devs", None) is False
    robot = accounts.set_robot_grant
    assert robot(conn, "acme", "ci", "acme/*", "read-only") is False
    assert robot(conn, "acme", "ci", "acme/*", None) is True
    assert robot(conn, "acme", "ci", "acme/*", None) is False


def test_only_an_organization_without_repositories_is_deleted(
    accounts: AccountService, conn: Connection, make_repository: MakeRepository
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_organization(conn, "acmeco", "alice")
    accounts.create_team(conn, "acme", "devs")
    accounts.add_member(conn, "acme", "devs", "alice")
    accounts.create_robot(conn, "acme", "ci")
    token, _ = accounts.create_token(conn, "acme+ci", "pipeline")
    make_repository("acme/app")
    make_repository("acmeco/app")  # another namespace that merely starts alike
    with pytest.raises(OrganizationNotEmpty, match="still has repositories"):
        accounts.delete_organization(conn, "acme")
    conn.execute(repositories.delete().where(repositories.c.name == "acme/app"))
    accounts.delete_organization(conn, "acme")
    with pytest.raises(NotFound):
        accounts.get_organization(conn, "acme")
    with pytest.raises(NotFound):
        accounts.delete_organization(conn, "acme")
    with pytest.raises(NotFound):
        accounts.get_token(conn, token.public_id)
    assert conn.execute(select(teams)).all() == []
    assert accounts.owners(conn, "acmeco") == ["alice"]
    # the name is free for a user now
    accounts.create_user(conn, "acme", PASSWORD)


def test_lookups_of_impossible_names_are_not_found_without_a_query(
    accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "alice", PASSWORD)
    accounts.create_organization(conn, "acme", "alice")
    accounts.create_team(conn, "acme", "devs")
    accounts.create_robot(conn, "acme", "ci")
    # a NUL byte would make PostgreSQL fail the query: these never reach the database
    for name in ("a\x00b", "Alice", "x" * 65, ""):
        with pytest.raises(NotFound):
            accounts.get_user(conn, name)
        with pytest.raises(NotFound):
            accounts.get_organization(conn, name)
        with pytest.raises(NotFound):
            accounts.get_team(conn, "acme", name)
        with pytest.raises(NotFound):
            accounts.get_robot(conn, "acme", name)
    for public_id in ("a\x00aaaaaaaaaa", "AAAAAAAAAAAA", "aaaa", "a" * 13):
        with pytest.raises(NotFound):
            accounts.get_token(conn, public_id)
        with pytest.raises(NotFound):
            accounts.revoke_token(conn, public_id)
    with pytest.raises(NotFound):
        accounts.set_team_repository_grant(conn, "acme", "devs", "acme/\x00", "read-only")


# --- lists of an organization, a page at a time ------------------------------------------------

# Byte order, which a database's locale may not follow: '-' < '.' < digits < '_' < letters.
ORDERED = ["a-b", "a.b", "a0", "a_b", "ab", "b"]


def _pages(read: Callable[[str | None], list[str]], limit: int) -> list[list[str]]:
    """Every page, each read with `limit + 1` after the previous page's last item."""
    pages, after = [], None
    while True:
        found = read(after)
        assert len(found) <= limit + 1
        pages.append(found[:limit])
        if len(found) <= limit:
            return pages
        after = found[limit - 1]


def test_the_lists_of_an_organization_page_in_sql_in_byte_order(
    accounts: AccountService, conn: Connection, make_repository: MakeRepository
) -> None:
    for name in reversed(ORDERED):
        accounts.create_user(conn, name, PASSWORD)
    accounts.create_organization(conn, "acme", "b")
    accounts.create_team(conn, "acme", "devs")
    for name in reversed(ORDERED):
        accounts.create_team(conn, "acme", f"t{name}")
        accounts.create_robot(conn, "acme", f"r{name}")
        accounts.add_owner(conn, "acme", name)
        accounts.add_member(conn, "acme", "devs", name)
        make_repository(f"acme/{name}")
        accounts.set_team_repository_grant(conn, "acme", "devs", f"acme/{name}", "read-only")
    teams = ["devs", *(f"t{name}" for name in ORDERED)]
    expected = {
        "owners": ORDERED,
        "members": ORDERED,
        "teams": sorted(teams, key=str.encode),
        "robots": [f"r{name}" for name in ORDERED],
        "grants": [f"acme/{name}" for name in ORDERED],
    }
    lists: dict[str, Callable[[int | None, str | None], list[str]]] = {
        "owners": lambda limit, after: accounts.owners(conn, "acme", limit=limit, after=after),
        "members": lambda limit, after: accounts.members(
            conn, "acme", "devs", limit=limit, after=after
        ),
        "teams": lambda limit, after: [
            t.name for t in accounts.list_teams(conn, "acme", limit=limit, after=after)
        ],
        "robots": lambda limit, after: [
            r.name for r in accounts.list_robots(conn, "acme", limit=limit, after=after)
        ],
        "grants": lambda limit, after: [
            repository
            for repository, _ in accounts.repository_grants(
                conn, "acme", "devs", limit=limit, after=after
            )
        ],
    }
    for kind, read in lists.items():
        assert read(None, None) == expected[kind], kind  # all of them, in byte order
        for limit in (1, 2, 4, 6, 7):
            pages = _pages(lambda after, read=read, limit=limit: read(limit + 1, after), limit)
            assert [item for page in pages for item in page] == expected[kind], (kind, limit)
            assert all(len(page) == limit for page in pages[:-1]), (kind, limit)
        assert read(10, expected[kind][-1]) == [], kind
        assert read(10, "a.") == [n for n in expected[kind] if n.encode() > b"a."], kind
    with pytest.raises(NotFound):
        accounts.members(conn, "acme", "nobody", limit=1)
    with pytest.raises(NotFound):
        accounts.repository_grants(conn, "acme", "nobody", limit=1)
    with pytest.raises(NotFound):
        accounts.owners(conn, "globex", limit=1)
