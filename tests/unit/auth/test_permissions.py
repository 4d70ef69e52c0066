"""The DTR permission model: who holds which role on a repository, and what each role allows."""

from __future__ import annotations

import pytest

from trustyard.auth.authorize import Action
from trustyard.auth.permissions import (
    NO_GRANTS,
    REQUIRED_ROLE,
    Grants,
    Principal,
    RepositoryFacts,
    Role,
    effective_role,
    may,
    may_create,
    may_list_catalog,
    visible,
)
from trustyard.auth.scopes import TokenScope
from trustyard.errors import Invalid

R, RW, A, NONE = Role.READ_ONLY, Role.READ_WRITE, Role.ADMIN, Role.NONE

GRANTS = Grants(
    team_repository={
        ("acme", "devs", "acme/app"): RW,
        ("acme", "auditors", "acme/vault"): R,
        ("acme", "devs", "globex/secret"): A,  # names another org's repository: ignored
        ("globex", "devs", "acme/app"): A,  # a globex team cannot hold rights in acme
    },
    team_organization={
        ("acme", "readers"): R,
        ("acme", "builders"): RW,
        ("acme", "ops"): A,
        ("globex", "ops"): A,
    },
    robot={
        ("acme", "ci", "acme/app"): RW,
        ("acme", "ci", "acme/tools/*"): R,
        ("acme", "ci", "globex/secret"): A,  # outside the robot's organization: ignored
        ("acme", "deployer", "*"): R,
    },
)

APP = RepositoryFacts("acme/app", "private")
VAULT = RepositoryFacts("acme/vault", "private")
TOOL = RepositoryFacts("acme/tools/lint", "private")
PUBLIC = RepositoryFacts("acme/website", "public")
SECRET = RepositoryFacts("globex/secret", "private")


def user(name: str = "bob", *teams: tuple[str, str], owns: str | None = None) -> Principal:
    return Principal.user(
        name, teams=frozenset(teams), owned_orgs=frozenset({owns} if owns else set())
    )


def test_role_api_names_round_trip() -> None:
    assert [r.api_name for r in (R, RW, A)] == ["read-only", "read-write", "admin"]
    assert [Role.parse(name) for name in ("read-only", "read-write", "admin")] == [R, RW, A]
    assert NONE < R < RW < A


@pytest.mark.parametrize("text", ["none", "", "Admin", "read_only", "readonly", "owner"])
def test_unknown_role_is_refused(text: str) -> None:
    with pytest.raises(Invalid, match="unknown role"):
        Role.parse(text)


@pytest.mark.parametrize(
    ("action", "allowed_from"),
    [
        (Action.PULL, R),
        (Action.PUSH, RW),
        (Action.DELETE, RW),
        (Action.SCAN, RW),
        (Action.ADMIN, A),
    ],
)
def test_each_role_allows_what_the_issue_table_says(action: Action, allowed_from: Role) -> None:
    assert REQUIRED_ROLE[action] is allowed_from
    for role in (R, RW, A):
        owner_team = Grants(team_organization={("acme", "t"): role})
        assert may(user("bob", ("acme", "t")), action, APP, owner_team) is (role >= allowed_from)
    assert may(Principal.anonymous(), action, APP, NO_GRANTS) is False


def test_anonymous_sees_public_repositories_read_only() -> None:
    anonymous = Principal.anonymous()
    assert effective_role(anonymous, PUBLIC, GRANTS) is R
    assert effective_role(anonymous, APP, GRANTS) is NONE
    assert may(anonymous, Action.PULL, PUBLIC, GRANTS)
    assert not may(anonymous, Action.PUSH, PUBLIC, GRANTS)
    assert not visible(anonymous, APP, GRANTS)


def test_system_admin_is_admin_everywhere() -> None:
    admin = Principal.user("root", is_admin=True)
    for repo in (APP, SECRET, PUBLIC, RepositoryFacts("nobody/x", "private")):
        assert effective_role(admin, repo, NO_GRANTS) is A


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("alice/app", A),
        ("alice/deep/nested/app", A),
        ("alice", A),  # a one-component name is its own namespace
        ("alicex/app", NONE),
        ("bob/alice", NONE),
        ("ali/ce", NONE),
    ],
)
def test_personal_namespace_belongs_to_its_user(name: str, role: Role) -> None:
    alice = user("alice")
    assert effective_role(alice, RepositoryFacts(name, "private"), NO_GRANTS) is role


def test_organization_owner_is_admin_of_its_repositories_only() -> None:
    owner = user("carol", owns="acme")
    assert effective_role(owner, APP, GRANTS) is A
    assert effective_role(owner, TOOL, GRANTS) is A
    assert effective_role(owner, SECRET, GRANTS) is NONE


def test_team_repository_grant_covers_that_repository_only() -> None:
    dev = user("dan", ("acme", "devs"))
    assert effective_role(dev, APP, GRANTS) is RW
    assert effective_role(dev, VAULT, GRANTS) is NONE
    assert effective_role(dev, RepositoryFacts("acme/app/sub", "private"), GRANTS) is NONE


def test_organization_wide_grant_covers_every_repository_of_the_organization() -> None:
    builder = user("eve", ("acme", "builders"))
    assert [effective_role(builder, r, GRANTS) for r in (APP, VAULT, TOOL)] == [RW, RW, RW]
    assert effective_role(builder, SECRET, GRANTS) is NONE


def test_grants_add_up_and_the_highest_wins() -> None:
    both = user("fay", ("acme", "readers"), ("acme", "devs"))
    assert effective_role(both, APP, GRANTS) is RW
    assert effective_role(both, VAULT, GRANTS) is R
    assert effective_role(user("gus", ("acme", "devs"), ("acme", "ops")), APP, GRANTS) is A
    # A public repository's read-only floor does not lower a grant, a grant raises the floor.
    assert effective_role(user("hal", ("acme", "builders")), PUBLIC, GRANTS) is RW
    assert effective_role(user("hal", ("acme", "readers")), PUBLIC, GRANTS) is R


def test_only_teams_of_the_repositorys_organization_count() -> None:
    globex_dev = user("ivy", ("globex", "devs"), ("globex", "ops"))
    assert effective_role(globex_dev, APP, GRANTS) is NONE  # ("globex","devs","acme/app") ignored
    acme_dev = user("jon", ("acme", "devs"))
    assert effective_role(acme_dev, SECRET, GRANTS) is NONE  # ("acme","devs","globex/...")
    assert effective_role(globex_dev, SECRET, GRANTS) is A  # globex ops: org-wide admin


def test_robot_holds_its_own_grants_by_name_and_pattern() -> None:
    ci = Principal.robot("acme", "ci")
    assert (ci.name, ci.robot_org, ci.robot_name) == ("acme+ci", "acme", "ci")
    assert effective_role(ci, APP, GRANTS) is RW
    assert effective_role(ci, TOOL, GRANTS) is R
    assert effective_role(ci, RepositoryFacts("acme/tools", "private"), GRANTS) is NONE
    assert effective_role(ci, VAULT, GRANTS) is NONE
    assert effective_role(ci, PUBLIC, GRANTS) is R
    assert effective_role(Principal.robot("acme", "deployer"), VAULT, GRANTS) is R


def test_robot_has_no_rights_outside_its_organization() -> None:
    ci = Principal.robot("acme", "ci")
    assert effective_role(ci, SECRET, GRANTS) is NONE  # even with a grant naming it
    assert effective_role(ci, RepositoryFacts("globex/site", "public"), GRANTS) is R
    namesake = Principal.robot("globex", "ci")
    assert effective_role(namesake, APP, GRANTS) is NONE
    assert effective_role(namesake, SECRET, GRANTS) is NONE


def test_robot_is_not_a_team_member_nor_admin() -> None:
    with pytest.raises(ValueError, match="inconsistent robot"):
        Principal("robot", "acme+ci", is_admin=True, robot_org="acme")
    with pytest.raises(ValueError, match="inconsistent robot"):
        Principal("robot", "acme+ci", teams=frozenset({("acme", "ops")}), robot_org="acme")
    with pytest.raises(ValueError, match="inconsistent robot"):
        Principal("robot", "globex+ci", robot_org="acme")
    with pytest.raises(ValueError, match="inconsistent robot"):
        Principal("robot", "acme+", robot_org="acme")


def test_anonymous_and_user_principals_are_consistent() -> None:
    with pytest.raises(ValueError, match="inconsistent anonymous"):
        Principal("anonymous", "bob")
    with pytest.raises(ValueError, match="inconsistent anonymous"):
        Principal("anonymous", "", is_admin=True)
    with pytest.raises(ValueError, match="inconsistent user"):
        Principal("user", "")
    with pytest.raises(ValueError, match="inconsistent user"):
        Principal("user", "bob", robot_org="acme")
    assert Principal.anonymous().robot_name is None


def test_repository_facts() -> None:
    assert RepositoryFacts("acme/tools/lint", "public").namespace == "acme"
    with pytest.raises(ValueError, match="public or private"):
        RepositoryFacts("acme/app", "internal")  # type: ignore[arg-type]


def test_grants_are_a_snapshot() -> None:
    source = {("acme", "devs", "acme/app"): RW}
    grants = Grants(team_repository=source)
    source[("acme", "devs", "acme/vault")] = A
    assert effective_role(user("dan", ("acme", "devs")), VAULT, grants) is NONE
    with pytest.raises(TypeError):
        grants.team_repository[("acme", "devs", "acme/vault")] = A  # type: ignore[index]


def test_a_token_scope_narrows_and_never_widens() -> None:
    alice = user("alice")
    mine = RepositoryFacts("alice/app", "private")
    pull_only = TokenScope.parse("repository:alice/*:pull")
    assert may(alice, Action.PULL, mine, NO_GRANTS, pull_only)
    assert not may(alice, Action.PUSH, mine, NO_GRANTS, pull_only)
    assert not may(alice, Action.ADMIN, mine, NO_GRANTS, pull_only)
    assert not may(alice, Action.PULL, RepositoryFacts("alice2/x", "public"), NO_GRANTS, pull_only)
    everything = TokenScope.parse("repository:*:* registry:catalog:*")
    assert may(alice, Action.ADMIN, mine, NO_GRANTS, everything)
    ci = Principal.robot("acme", "ci")
    assert not may(ci, Action.PUSH, VAULT, GRANTS, everything)
    assert not may(ci, Action.PULL, SECRET, GRANTS, everything)
    assert may(ci, Action.PUSH, APP, GRANTS, everything)
    assert not may(ci, Action.PUSH, APP, GRANTS, TokenScope(()))


def test_catalog_is_listable_unless_a_scope_leaves_it_out() -> None:
    assert may_list_catalog(Principal.anonymous())
    assert may(Principal.anonymous(), Action.CATALOG, APP, NO_GRANTS)
    assert not may_list_catalog(user(), TokenScope.parse("repository:*:pull"))
    assert may_list_catalog(user(), TokenScope.parse("registry:catalog:*"))


def test_visible_means_at_least_read_only() -> None:
    assert visible(user("kim", ("acme", "auditors")), VAULT, GRANTS)
    assert not visible(user("kim", ("acme", "auditors")), APP, GRANTS)
    assert not visible(user("lee", ("globex", "ops")), APP, GRANTS)
    assert visible(user("lee", ("globex", "ops")), PUBLIC, GRANTS)
    assert visible(Principal.anonymous(), PUBLIC, GRANTS)


def test_a_limited_token_sees_only_what_it_may_pull() -> None:
    carol = user("carol", owns="acme")
    only_app = TokenScope.parse("repository:acme/app:pull registry:catalog:*")
    assert visible(carol, APP, GRANTS, only_app)
    assert not visible(carol, VAULT, GRANTS, only_app)
    assert not visible(carol, PUBLIC, GRANTS, TokenScope.parse("repository:acme/app:push"))


@pytest.mark.parametrize(
    ("principal", "namespace", "kind", "allowed"),
    [
        (Principal.user("root", is_admin=True), "acme", "org", True),
        (Principal.user("root", is_admin=True), "alice", "user", True),
        (Principal.user("root", is_admin=True), "brand-new", None, True),
        (user("alice"), "alice", "user", True),
        (user("alice"), "bob", "user", False),
        (user("alice"), "alice", None, False),
        (user("alice"), "brand-new", None, False),
        (user("carol", owns="acme"), "acme", "org", True),
        (user("carol", owns="acme"), "globex", "org", False),
        (user("eve", ("acme", "builders")), "acme", "org", True),
        (user("gus", ("acme", "ops")), "acme", "org", True),
        (user("fay", ("acme", "readers")), "acme", "org", False),
        (user("dan", ("acme", "devs")), "acme", "org", False),  # a repository grant only
        (user("ivy", ("globex", "ops")), "acme", "org", False),
        (Principal.robot("acme", "ci"), "acme", "org", False),
        (Principal.anonymous(), "acme", "org", False),
    ],
)
def test_who_may_create_repositories(
    principal: Principal, namespace: str, kind: str | None, allowed: bool
) -> None:
    assert may_create(principal, namespace, kind, GRANTS) is allowed  # type: ignore[arg-type]
