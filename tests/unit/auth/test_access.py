"""Authentication, principals, and the access policy over real grants (login throttling:
test_login_throttle.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Connection, select

from tests.unit.auth.conftest import CHEAP_HASHER, MakeRepository
from trustyard.auth.access import AccessPolicy, Authenticator
from trustyard.auth.accounts import AccountService
from trustyard.auth.authorize import Action
from trustyard.auth.passwords import hash_password
from trustyard.auth.permissions import Principal, Role
from trustyard.auth.scopes import TokenScope
from trustyard.db.tables import users
from trustyard.errors import NotFound

PASSWORD = "correct horse battery staple"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
ACTIONS = (Action.PULL, Action.PUSH, Action.DELETE, Action.SCAN, Action.ADMIN)
# The DTR table of the issue: what each role may do.
DTR_TABLE = {
    "read-only": {Action.PULL},
    "read-write": {Action.PULL, Action.PUSH, Action.DELETE, Action.SCAN},
    "admin": set(ACTIONS),
}


@pytest.fixture
def accounts() -> AccountService:
    return AccountService(hasher=CHEAP_HASHER)


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(hasher=CHEAP_HASHER)


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy()


@pytest.fixture
def world(accounts: AccountService, conn: Connection, make_repository: MakeRepository) -> None:
    """acme (owner olga) with teams and a robot; globex (owner gus); alice; root the admin."""
    for name in ("root", "olga", "gus", "alice", "reader", "writer", "boss", "multi"):
        accounts.create_user(conn, name, PASSWORD, is_admin=name == "root")
    accounts.create_organization(conn, "acme", "olga")
    accounts.create_organization(conn, "globex", "gus")
    make_repository("acme/app")
    make_repository("acme/web")
    make_repository("acme/public", "public")
    make_repository("globex/app")
    make_repository("alice/tool")
    make_repository("alice/shared", "public")
    for team, member, role in (
        ("readers", "reader", "read-only"),
        ("writers", "writer", "read-write"),
        ("bosses", "boss", "admin"),
    ):
        accounts.create_team(conn, "acme", team)
        accounts.add_member(conn, "acme", team, member)
        accounts.set_team_repository_grant(conn, "acme", team, "acme/app", role)
    accounts.create_team(conn, "acme", "everyone")
    accounts.set_team_organization_grant(conn, "acme", "everyone", "read-only")
    accounts.add_member(conn, "acme", "everyone", "multi")
    accounts.add_member(conn, "acme", "readers", "multi")
    accounts.set_team_repository_grant(conn, "acme", "readers", "acme/web", "read-write")
    accounts.create_team(conn, "globex", "ops")
    accounts.set_team_organization_grant(conn, "globex", "ops", "admin")
    accounts.add_member(conn, "globex", "ops", "alice")
    accounts.create_robot(conn, "acme", "ci")
    accounts.set_robot_grant(conn, "acme", "ci", "acme/app", "read-write")
    accounts.set_robot_grant(conn, "acme", "ci", "acme/ci-*", "admin")
    accounts.create_robot(conn, "globex", "ci")
    accounts.set_robot_grant(conn, "globex", "ci", "globex/*", "admin")


def principal(auth: Authenticator, conn: Connection, name: str) -> Principal:
    return Principal.anonymous() if name == "" else auth.load_principal(conn, name)


# --- passwords ---------------------------------------------------------------------------------


def test_password_login_loads_the_principal_and_records_the_time(
    world: None, auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    assert accounts.get_user(conn, "multi").last_login_at is None
    found = auth.authenticate_password(conn, "multi", PASSWORD)
    assert found == Principal.user(
        "multi", teams=frozenset({("acme", "everyone"), ("acme", "readers")})
    )
    assert accounts.get_user(conn, "multi").last_login_at is not None
    assert auth.authenticate_password(conn, "olga", PASSWORD) == Principal.user(
        "olga", owned_orgs=frozenset({"acme"})
    )
    root = auth.authenticate_password(conn, "root", PASSWORD)
    assert root is not None
    assert root.is_admin


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong horse battery staple"),
        ("alice", ""),
        ("nobody", PASSWORD),
        ("acme", PASSWORD),  # an organization cannot log in
        ("acme+ci", PASSWORD),  # nor a robot with a password
        ("ALICE", PASSWORD),
    ],
)
def test_wrong_credentials_are_refused(
    world: None, auth: Authenticator, conn: Connection, username: str, password: str
) -> None:
    assert auth.authenticate_password(conn, username, password) is None
    assert auth.login(conn, username, password) is None


def test_inactive_and_passwordless_users_cannot_log_in(
    world: None, auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "ldapuser", None, source="ldap")
    assert auth.authenticate_password(conn, "ldapuser", "") is None
    _, text = accounts.create_token(conn, "alice", "t")
    accounts.deactivate_user(conn, "alice")
    assert auth.authenticate_password(conn, "alice", PASSWORD) is None
    assert auth.authenticate_token(conn, text) is None
    with pytest.raises(NotFound):
        auth.load_principal(conn, "alice")


def test_an_outdated_hash_is_replaced_after_a_successful_login(
    auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    older = PasswordHasher(time_cost=1, memory_cost=16, parallelism=1)
    accounts.create_user(conn, "alice", None)
    conn.execute(
        users.update()
        .where(users.c.username == "alice")
        .values(password_hash=hash_password(PASSWORD, hasher=older))
    )
    assert auth.authenticate_password(conn, "alice", "not the password") is None
    assert "m=16," in str(conn.scalar(select(users.c.password_hash)))
    assert auth.authenticate_password(conn, "alice", PASSWORD) is not None
    stored = str(conn.scalar(select(users.c.password_hash)))
    assert "m=8," in stored
    assert not CHEAP_HASHER.check_needs_rehash(stored)
    assert auth.authenticate_password(conn, "alice", PASSWORD) is not None


# --- tokens ------------------------------------------------------------------------------------


def test_a_token_authenticates_with_its_scope_and_is_touched(
    world: None, auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    token, text = accounts.create_token(conn, "olga", "laptop", ["repository:acme/app:pull"])
    found = auth.authenticate_token(conn, text)
    assert found is not None
    who, scope = found
    assert who == auth.load_principal(conn, "olga")
    assert scope == TokenScope.parse("repository:acme/app:pull")
    used = accounts.list_tokens(conn, "olga")[0].last_used_at
    assert used is not None
    assert used.tzinfo is not None
    assert token.last_used_at is None


def test_expired_revoked_and_tampered_tokens_are_refused(
    world: None, auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    expires = datetime.now(UTC) + timedelta(days=1)
    token, text = accounts.create_token(conn, "alice", "short", None, expires)
    assert auth.authenticate_token(conn, text, at=expires - timedelta(seconds=1)) is not None
    assert auth.authenticate_token(conn, text, at=expires) is None
    _, other = accounts.create_token(conn, "alice", "other")
    secret_start = len("ty_pat_") + 13
    flipped = "A" if other[secret_start] != "A" else "B"
    tampered = other[:secret_start] + flipped + other[secret_start + 1 :]
    assert auth.authenticate_token(conn, tampered) is None
    assert auth.authenticate_token(conn, "ty_rbt_" + other[len("ty_pat_") :]) is None
    assert auth.authenticate_token(conn, "ty_pat_aaaaaaaaaaaa_" + "A" * 43) is None
    assert auth.authenticate_token(conn, PASSWORD) is None
    assert auth.authenticate_token(conn, other) is not None
    accounts.revoke_token(conn, token.public_id)
    assert auth.authenticate_token(conn, text, at=expires - timedelta(seconds=1)) is None


def test_login_accepts_a_password_or_the_owners_token(
    world: None, auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    _, pat = accounts.create_token(conn, "alice", "pat", ["repository:alice/*:pull"])
    _, rbt = accounts.create_token(conn, "acme+ci", "rbt", ["repository:acme/*:pull,push"])
    by_password = auth.login(conn, "alice", PASSWORD)
    assert by_password == (auth.load_principal(conn, "alice"), None)
    by_token = auth.login(conn, "alice", pat)
    assert by_token == (
        auth.load_principal(conn, "alice"),
        TokenScope.parse("repository:alice/*:pull"),
    )
    assert auth.login(conn, "gus", pat) is None  # someone else's token
    robot = auth.login(conn, "acme+ci", rbt)
    assert robot is not None
    assert robot[0] == Principal.robot("acme", "ci")
    assert auth.login(conn, "globex+ci", rbt) is None
    with pytest.raises(NotFound):
        auth.load_principal(conn, "acme+nobody")


# --- the access policy -------------------------------------------------------------------------


@pytest.mark.parametrize(("member", "role"), [("reader", "read-only"), ("writer", "read-write")])
@pytest.mark.parametrize("action", ACTIONS)
def test_dtr_permission_table(
    world: None,
    auth: Authenticator,
    policy: AccessPolicy,
    conn: Connection,
    member: str,
    role: str,
    action: Action,
) -> None:
    who = auth.load_principal(conn, member)
    assert policy.role(conn, who, "acme/app") is Role.parse(role)
    assert policy.may(conn, who, action, "acme/app") is (action in DTR_TABLE[role])


@pytest.mark.parametrize("action", ACTIONS)
def test_dtr_permission_table_admin(
    world: None, auth: Authenticator, policy: AccessPolicy, conn: Connection, action: Action
) -> None:
    who = auth.load_principal(conn, "boss")
    assert policy.role(conn, who, "acme/app") is Role.ADMIN
    assert policy.may(conn, who, action, "acme/app")
    assert policy.role(conn, who, "acme/web") is Role.NONE  # a grant is per repository


# Expected role of each principal (by name; "" anonymous) on each repository.
ROLES = {
    # name:      acme/app acme/web acme/public acme/new globex/app alice/tool alice/shared
    "": ("", "", "R", "", "", "", "R"),
    "root": ("A", "A", "A", "A", "A", "A", "A"),
    "olga": ("A", "A", "A", "A", "", "", "R"),
    "alice": ("", "", "R", "", "A", "A", "A"),
    "multi": ("R", "RW", "R", "R", "", "", "R"),
    "gus": ("", "", "R", "", "A", "", "R"),
    "acme+ci": ("RW", "", "R", "", "", "", "R"),
    "globex+ci": ("", "", "R", "", "A", "", "R"),
}
REPOS: tuple[str, ...] = ("acme/app", "acme/web", "acme/public", "acme/new", "globex/app")
REPOS += ("alice/tool", "alice/shared")
SHORT = {"": Role.NONE, "R": Role.READ_ONLY, "RW": Role.READ_WRITE, "A": Role.ADMIN}


@pytest.mark.parametrize("name", sorted(ROLES))
def test_roles_from_every_rule(
    world: None, auth: Authenticator, policy: AccessPolicy, conn: Connection, name: str
) -> None:
    who = principal(auth, conn, name)
    got = {repo: policy.role(conn, who, repo) for repo in REPOS}
    assert got == {repo: SHORT[role] for repo, role in zip(REPOS, ROLES[name], strict=True)}


def test_robot_patterns_and_organization_wide_grants_reach_new_repositories(
    world: None,
    auth: Authenticator,
    policy: AccessPolicy,
    conn: Connection,
    make_repository: MakeRepository,
) -> None:
    robot = auth.load_principal(conn, "acme+ci")
    assert policy.role(conn, robot, "acme/ci-cache") is Role.ADMIN  # not created yet
    make_repository("acme/ci-cache")
    assert policy.may(conn, robot, Action.ADMIN, "acme/ci-cache")
    assert not policy.may(conn, robot, Action.PULL, "acme/cix")
    multi = auth.load_principal(conn, "multi")
    assert policy.may(conn, multi, Action.PULL, "acme/ci-cache")
    assert not policy.may(conn, multi, Action.PUSH, "acme/ci-cache")


def test_a_token_scope_only_narrows(
    world: None, auth: Authenticator, policy: AccessPolicy, conn: Connection
) -> None:
    olga = auth.load_principal(conn, "olga")
    pull_only = TokenScope.parse("repository:acme/app:pull")
    assert policy.may(conn, olga, Action.PULL, "acme/app", pull_only)
    assert not policy.may(conn, olga, Action.PUSH, "acme/app", pull_only)
    assert not policy.may(conn, olga, Action.PULL, "acme/web", pull_only)
    assert not policy.may(conn, olga, Action.CATALOG, "", pull_only)
    assert policy.may(conn, olga, Action.CATALOG, "")
    everything = TokenScope.parse("repository:*:* registry:catalog:*")
    reader = auth.load_principal(conn, "reader")
    assert not policy.may(conn, reader, Action.PUSH, "acme/app", everything)
    assert policy.may(conn, reader, Action.CATALOG, "", everything)
    assert not policy.may(conn, olga, Action.PULL, "globex/app", everything)


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("", set()),
        ("root", {"alice/x", "acme/x", "globex/x", "newspace/x", "olga/x", "multi/x"}),
        ("alice", {"alice/x", "globex/x"}),  # globex team "ops" holds an org-wide admin grant
        ("olga", {"olga/x", "acme/x"}),
        ("multi", {"multi/x"}),  # an org-wide read-only grant does not let one create
        ("acme+ci", set()),
    ],
)
def test_who_may_create_a_repository(
    world: None,
    auth: Authenticator,
    policy: AccessPolicy,
    conn: Connection,
    name: str,
    allowed: set[str],
) -> None:
    who = principal(auth, conn, name)
    candidates = ("alice/x", "acme/x", "globex/x", "newspace/x", "olga/x", "multi/x")
    assert {repo for repo in candidates if policy.may_create(conn, who, repo)} == allowed


def test_a_read_write_organization_grant_lets_members_create(
    world: None,
    accounts: AccountService,
    auth: Authenticator,
    policy: AccessPolicy,
    conn: Connection,
) -> None:
    accounts.set_team_organization_grant(conn, "acme", "everyone", "read-write")
    assert policy.may_create(conn, auth.load_principal(conn, "multi"), "acme/x")
