"""RepositoryAccessService on a real database: which repositories each kind of principal sees in
a listing (the rules of /v2: roles, public, token scopes). Creating, changing and deleting them
is content's (tests/unit/content/test_repositories.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from tests.unit.auth.conftest import CHEAP_HASHER
from trustyard.auth.access import Authenticator
from trustyard.auth.accounts import AccountService
from trustyard.auth.permissions import Principal
from trustyard.auth.repositories import RepositoryAccessService
from trustyard.auth.scopes import TokenScope
from trustyard.content.repositories import RepositoryService

PASSWORD = "correct horse battery staple"


@pytest.fixture
def repositories() -> RepositoryService:
    return RepositoryService()


@pytest.fixture
def service(repositories: RepositoryService) -> RepositoryAccessService:
    return RepositoryAccessService(repositories=repositories)


def test_each_principal_sees_what_it_may_pull(
    service: RepositoryAccessService, repositories: RepositoryService, conn: Connection
) -> None:
    accounts = AccountService(hasher=CHEAP_HASHER)
    for user in ("olga", "rita", "mallory"):
        accounts.create_user(conn, user, PASSWORD)
    accounts.create_organization(conn, "acme", "olga")
    accounts.create_team(conn, "acme", "devs")
    accounts.add_member(conn, "acme", "devs", "rita")
    accounts.create_robot(conn, "acme", "ci")
    for name in ("acme/a", "acme/b", "acme/c", "olga/own", "rita/own", "mallory/own"):
        repositories.create(conn, name)
    repositories.create(conn, "acme/pub", "public")
    repositories.create(conn, "zeta/pub", "public")
    accounts.set_team_repository_grant(conn, "acme", "devs", "acme/b", "read-only")
    accounts.set_robot_grant(conn, "acme", "ci", "acme/c", "read-write")

    def seen(
        who: Principal,
        scope: TokenScope | None = None,
        *,
        limit: int = 100,
        after: str | None = None,
        namespace: str | None = None,
    ) -> list[str]:
        found = service.visible(conn, who, scope, limit=limit, after=after, namespace=namespace)
        return [repository.name for repository in found]

    public = ["acme/pub", "zeta/pub"]
    everything = sorted(
        ["acme/a", "acme/b", "acme/c", "olga/own", "rita/own", "mallory/own", *public]
    )
    admin = Principal.user("root", is_admin=True)
    assert seen(admin) == everything
    assert seen(Principal.anonymous()) == public
    olga = ["acme/a", "acme/b", "acme/c", "acme/pub", "olga/own", "zeta/pub"]
    assert seen(_load(conn, "olga")) == olga
    assert seen(_load(conn, "rita")) == ["acme/b", "acme/pub", "rita/own", "zeta/pub"]
    assert seen(_load(conn, "mallory")) == ["acme/pub", "mallory/own", "zeta/pub"]
    assert seen(Principal.robot("acme", "ci")) == ["acme/c", "acme/pub", "zeta/pub"]
    # a token scope narrows, public repositories included
    narrow = TokenScope.from_strings(["repository:acme/*:pull"])
    assert seen(_load(conn, "olga"), narrow) == ["acme/a", "acme/b", "acme/c", "acme/pub"]
    assert seen(admin, TokenScope.from_strings(["registry:catalog:*"])) == []
    # namespace, cursor and limit
    assert seen(_load(conn, "rita"), namespace="acme") == ["acme/b", "acme/pub"]
    assert seen(admin, after="acme/c", limit=2) == ["acme/pub", "mallory/own"]
    assert seen(Principal.anonymous(), after="acme/pub") == ["zeta/pub"]
    assert seen(admin, namespace="nobody") == []


def test_a_listing_looks_past_many_hidden_repositories(
    service: RepositoryAccessService, repositories: RepositoryService, conn: Connection
) -> None:
    """More hidden rows than one query reads (a team member without grants reads every row of
    the organization): the listing keeps reading until it has enough."""
    for index in range(450):
        repositories.create(conn, f"acme/hidden{index:03d}")
    repositories.create(conn, "acme/shown1", "public")
    repositories.create(conn, "acme/shown2", "public")
    member = Principal.user("rita", teams=frozenset({("acme", "devs")}))
    found = service.visible(conn, member, None, limit=2)
    assert [repository.name for repository in found] == ["acme/shown1", "acme/shown2"]
    found = service.visible(conn, member, None, limit=5, after="acme/hidden100")
    assert [repository.name for repository in found] == ["acme/shown1", "acme/shown2"]


def _load(conn: Connection, name: str) -> Principal:
    return Authenticator(hasher=CHEAP_HASHER).load_principal(conn, name)
