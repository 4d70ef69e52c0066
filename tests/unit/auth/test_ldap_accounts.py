"""Directory users in the database: the account a directory login creates, its teams synced
from LDAP groups, and which logins the Authenticator sends to the directory."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from tests.unit.auth.conftest import CHEAP_HASHER
from trustyard.auth import audit
from trustyard.auth.access import Authenticator, DirectoryAnswer
from trustyard.auth.accounts import AccountService
from trustyard.auth.ldap import LdapConfig, LdapDirectory, LdapIdentity, LdapUnavailable
from trustyard.auth.ldap_accounts import SYNC_JOB, Actor, LdapAccounts

PASSWORD = "correct horse battery staple"
DEVS_DN = "cn=developers,ou=groups,dc=example,dc=org"


def unreachable_directory() -> LdapDirectory:
    # Nothing listens on port 1: any attempt to ask this directory raises LdapUnavailable.
    return LdapDirectory(
        LdapConfig(
            url="ldap://127.0.0.1:1",
            user_base_dn="ou=people,dc=example,dc=org",
            group_base_dn="ou=groups,dc=example,dc=org",
            timeout=1.0,
        )
    )


def identity(name: str = "alice", *groups: str, email: str | None = None) -> LdapIdentity:
    return LdapIdentity(
        dn=f"uid={name},ou=people,dc=example,dc=org",
        username=name,
        email=email if email is not None else f"{name.lower()}@example.org",
        display_name=f"{name.title()} Liddell",
        groups=frozenset(groups),
    )


@pytest.fixture
def accounts() -> AccountService:
    return AccountService(hasher=CHEAP_HASHER)


@pytest.fixture
def ldap(accounts: AccountService) -> LdapAccounts:
    return LdapAccounts(unreachable_directory(), accounts)


@pytest.fixture
def auth(ldap: LdapAccounts) -> Authenticator:
    return Authenticator(hasher=CHEAP_HASHER, ldap=ldap)


@pytest.fixture
def teams(accounts: AccountService, conn: Connection) -> None:
    """acme: devs (group "developers" by name), ops (a group DN), handmade (no group);
    globex: devs, fed by the same "developers" group."""
    accounts.create_user(conn, "root", PASSWORD, is_admin=True)
    for org in ("acme", "globex"):
        accounts.create_organization(conn, org, "root")
        accounts.create_team(conn, org, "devs")
        accounts.set_ldap_group(conn, org, "devs", "developers")
    accounts.create_team(conn, "acme", "ops")
    accounts.set_ldap_group(conn, "acme", "ops", "cn=operators,ou=groups,dc=example,dc=org")
    accounts.create_team(conn, "acme", "handmade")


ALICE = Actor("alice", "user", "192.0.2.7")


def memberships(accounts: AccountService, conn: Connection, user: str) -> set[str]:
    user_id = accounts.get_user(conn, user).id
    return {f"{org}/{team}" for org, team in accounts.store.memberships(conn, user_id)}


def test_first_login_creates_a_directory_account_without_local_password(
    ldap: LdapAccounts, accounts: AccountService, conn: Connection
) -> None:
    user = ldap.admit(conn, identity("Alice"), ALICE)

    assert user is not None
    assert user.username == "alice"  # the directory's name, in lower case
    assert (user.source, user.email, user.full_name) == (
        "ldap",
        "alice@example.org",
        "Alice Liddell",
    )
    assert (user.is_admin, user.is_active) == (False, True)
    found = accounts.store.password_hash(conn, "alice")
    assert found is not None
    assert found[1] is None
    created = audit.recent(conn, limit=1)[0]
    assert (created.actor, created.action, created.resource, created.address) == (
        "alice",
        "user.create",
        "alice",
        "192.0.2.7",
    )
    assert created.detail == {"via": "ldap", "source": "ldap"}


def test_later_logins_copy_email_and_name_from_the_directory(
    ldap: LdapAccounts, conn: Connection
) -> None:
    ldap.admit(conn, identity("alice"), ALICE)
    changed = LdapIdentity(
        dn="uid=alice,ou=people,dc=example,dc=org",
        username="alice",
        email="alice@wonderland.example",
        display_name=None,
        groups=frozenset(),
    )

    user = ldap.admit(conn, changed, ALICE)

    assert user is not None
    assert (user.email, user.full_name) == ("alice@wonderland.example", None)


def test_a_local_account_of_the_same_name_is_never_taken_over(
    ldap: LdapAccounts, accounts: AccountService, conn: Connection, teams: None
) -> None:
    accounts.create_user(conn, "bob", PASSWORD, email="bob@local.example")

    assert ldap.admit(conn, identity("bob", "developers"), ALICE) is None
    assert ldap.admit(conn, identity("ROOT", "developers"), ALICE) is None

    bob = accounts.get_user(conn, "bob")
    assert (bob.source, bob.email) == ("local", "bob@local.example")
    assert memberships(accounts, conn, "bob") == set()
    assert memberships(accounts, conn, "root") == set()


@pytest.mark.parametrize("name", ["acme", "o'brien", "a" * 65])
def test_names_that_cannot_be_a_user_here_are_refused(
    ldap: LdapAccounts, accounts: AccountService, conn: Connection, teams: None, name: str
) -> None:
    # "acme" is an organization; the others break the name rules.
    assert ldap.admit(conn, identity(name, "developers"), ALICE) is None
    assert accounts.store.user(conn, name.lower()) is None


def test_a_deactivated_directory_account_is_refused_and_keeps_its_teams(
    ldap: LdapAccounts, accounts: AccountService, conn: Connection, teams: None
) -> None:
    ldap.admit(conn, identity("alice", "developers"), ALICE)
    accounts.deactivate_user(conn, "alice")

    assert ldap.admit(conn, identity("alice"), ALICE) is None
    assert memberships(accounts, conn, "alice") == {"acme/devs", "globex/devs"}


def test_groups_decide_linked_teams_and_hand_managed_teams_stay(
    ldap: LdapAccounts, accounts: AccountService, conn: Connection, teams: None
) -> None:
    user = ldap.admit(conn, identity("alice", "developers", DEVS_DN), ALICE)
    assert user is not None
    accounts.add_member(conn, "acme", "handmade", "alice")
    assert memberships(accounts, conn, "alice") == {"acme/devs", "globex/devs", "acme/handmade"}

    # Left "developers", joined operators (the directory may spell the DN in another case).
    plan = ldap.sync_teams(conn, user, {"CN=Operators,OU=groups,DC=example,DC=org"}, ALICE)

    assert plan.add == {"acme/ops"}
    assert plan.remove == {"acme/devs", "globex/devs"}
    assert memberships(accounts, conn, "alice") == {"acme/ops", "acme/handmade"}
    events = audit.recent(conn, limit=3)
    assert [(e.action, e.resource, e.organization) for e in events] == [
        ("team.member.remove", "globex/devs", "globex"),
        ("team.member.remove", "acme/devs", "acme"),
        ("team.member.add", "acme/ops", "acme"),
    ]
    assert events[0].detail == {"via": "ldap", "member": "alice", "ldap_group": "developers"}


def test_a_team_whose_group_is_cleared_is_no_longer_synced(
    ldap: LdapAccounts, accounts: AccountService, conn: Connection, teams: None
) -> None:
    user = ldap.admit(conn, identity("alice", "developers"), ALICE)
    assert user is not None
    accounts.set_ldap_group(conn, "globex", "devs", None)

    ldap.sync_teams(conn, user, set(), SYNC_JOB)

    assert memberships(accounts, conn, "alice") == {"globex/devs"}
    assert audit.recent(conn, limit=1)[0].actor_kind == "system"


# --- which logins reach the directory --------------------------------------------------------


def test_the_directory_checks_unknown_names_and_directory_accounts_only(
    auth: Authenticator, accounts: AccountService, ldap: LdapAccounts, conn: Connection
) -> None:
    accounts.create_user(conn, "admin", PASSWORD, is_admin=True)
    ldap.admit(conn, identity("alice"), ALICE)

    assert auth.asks_directory(conn, "alice", PASSWORD)
    assert auth.asks_directory(conn, "newcomer", PASSWORD)
    assert not auth.asks_directory(conn, "admin", PASSWORD)
    assert not auth.asks_directory(conn, "alice", "ty_pat_abc_def")  # a token, not a password
    assert not auth.asks_directory(conn, "acme+ci", PASSWORD)  # robots log in with tokens
    assert not Authenticator(hasher=CHEAP_HASHER).asks_directory(conn, "newcomer", PASSWORD)


def test_local_accounts_log_in_while_the_directory_is_unreachable(
    auth: Authenticator, accounts: AccountService, conn: Connection
) -> None:
    accounts.create_user(conn, "admin", PASSWORD, is_admin=True)

    found = auth.login(conn, "admin", PASSWORD)

    assert found is not None
    assert found[0].name == "admin"
    assert auth.login(conn, "admin", "wrong password") is None


def test_login_with_the_directorys_answer(
    auth: Authenticator, accounts: AccountService, conn: Connection, teams: None
) -> None:
    found = auth.login(
        conn, "Alice", PASSWORD, answer=DirectoryAnswer(identity("alice", "developers"))
    )

    assert found is not None
    principal, scope = found
    assert scope is None
    assert principal.name == "alice"
    assert principal.teams == {("acme", "devs"), ("globex", "devs")}
    assert accounts.get_user(conn, "alice").last_login_at is not None
    assert auth.login(conn, "alice", "wrong", answer=DirectoryAnswer(None)) is None


def test_a_directory_login_without_an_answer_asks_the_directory(
    auth: Authenticator, ldap: LdapAccounts, conn: Connection
) -> None:
    ldap.admit(conn, identity("alice"), ALICE)

    with pytest.raises(LdapUnavailable):
        auth.login(conn, "alice", PASSWORD)
    with pytest.raises(LdapUnavailable):
        auth.ask_directory("newcomer", PASSWORD)


def test_without_ldap_a_directory_account_cannot_log_in_with_a_password(
    ldap: LdapAccounts, conn: Connection
) -> None:
    ldap.admit(conn, identity("alice"), ALICE)

    assert Authenticator(hasher=CHEAP_HASHER).login(conn, "alice", PASSWORD) is None
