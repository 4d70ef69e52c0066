"""What the token endpoint grants: requested scopes cut down to the DTR permission model."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from tests.unit.auth.conftest import CHEAP_HASHER, MakeRepository
from trustyard.auth.access import AccessPolicy, Authenticator
from trustyard.auth.accounts import AccountService
from trustyard.auth.permissions import Principal
from trustyard.auth.registry_tokens import RegistryTokens
from trustyard.auth.scopes import TokenScope
from trustyard.auth.signing import SigningKeys

PASSWORD = "correct horse battery staple"


@pytest.fixture
def tokens() -> RegistryTokens:
    return RegistryTokens(SigningKeys("test passphrase"), AccessPolicy(), "trustyard")


@pytest.fixture
def world(conn: Connection, make_repository: MakeRepository) -> AccountService:
    accounts = AccountService(hasher=CHEAP_HASHER)
    for name in ("olga", "reader", "alice"):
        accounts.create_user(conn, name, PASSWORD)
    accounts.create_organization(conn, "acme", "olga")
    make_repository("acme/app")
    make_repository("acme/public", "public")
    accounts.create_team(conn, "acme", "readers")
    accounts.add_member(conn, "acme", "readers", "reader")
    accounts.set_team_repository_grant(conn, "acme", "readers", "acme/app", "read-only")
    return accounts


def who(conn: Connection, name: str) -> Principal:
    return Authenticator(hasher=CHEAP_HASHER).load_principal(conn, name)


def actions(
    tokens: RegistryTokens,
    conn: Connection,
    principal: Principal,
    scope: str,
    token_scope: TokenScope | None = None,
) -> list[tuple[str, ...]]:
    return [grant.actions for grant in tokens.grant(conn, principal, scope, token_scope)]


@pytest.mark.usefixtures("world")
def test_a_read_only_member_gets_pull_but_not_push(
    conn: Connection, tokens: RegistryTokens
) -> None:
    assert actions(tokens, conn, who(conn, "reader"), "repository:acme/app:pull,push") == [
        ("pull",)
    ]


@pytest.mark.usefixtures("world")
def test_an_owner_gets_everything_asked_and_may_create_in_the_org(
    conn: Connection, tokens: RegistryTokens
) -> None:
    olga = who(conn, "olga")
    assert actions(tokens, conn, olga, "repository:acme/app:pull,push,delete") == [
        ("pull", "push", "delete")
    ]
    assert actions(tokens, conn, olga, "repository:acme/new:pull,push") == [("pull", "push")]


@pytest.mark.usefixtures("world")
def test_outsiders_and_anonymous_get_nothing_private_and_pull_of_public(
    conn: Connection, tokens: RegistryTokens
) -> None:
    for principal in (who(conn, "alice"), Principal.anonymous()):
        assert actions(tokens, conn, principal, "repository:acme/app:pull,push") == [()]
        assert actions(tokens, conn, principal, "repository:acme/public:pull,push") == [("pull",)]
        assert actions(tokens, conn, principal, "repository:acme/new:push") == [()]


@pytest.mark.usefixtures("world")
def test_a_personal_namespace_is_its_owners_to_create_in(
    conn: Connection, tokens: RegistryTokens
) -> None:
    assert actions(tokens, conn, who(conn, "alice"), "repository:alice/tool:push") == [("push",)]
    assert actions(tokens, conn, who(conn, "reader"), "repository:alice/tool:push") == [()]


@pytest.mark.usefixtures("world")
def test_a_token_scope_narrows_what_is_granted(conn: Connection, tokens: RegistryTokens) -> None:
    pull_only = TokenScope.from_strings(["repository:acme/*:pull"])
    olga = who(conn, "olga")
    assert actions(tokens, conn, olga, "repository:acme/app:pull,push", pull_only) == [("pull",)]
    assert actions(tokens, conn, olga, "repository:acme/new:push", pull_only) == [()]
    assert actions(tokens, conn, olga, "registry:catalog:*", pull_only) == [()]
    assert actions(tokens, conn, olga, "registry:catalog:*") == [("*",)]


@pytest.mark.usefixtures("world")
def test_the_issued_jwt_carries_the_granted_access_for_the_service(
    conn: Connection, tokens: RegistryTokens
) -> None:
    issued = tokens.issue(conn, who(conn, "reader"), "repository:acme/app:pull,push")
    assert issued.expires_in == 300
    verified = tokens.keys.current(conn).verify(issued.token, "trustyard")
    assert verified.subject == "reader"
    assert [(g.name, g.actions) for g in verified.access] == [("acme/app", ("pull",))]
