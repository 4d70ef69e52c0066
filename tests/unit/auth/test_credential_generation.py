"""The credential generation moves whenever a remembered login may have stopped being valid
(workers drop remembered credentials when it does: issue 9, item 16), and stays put for the
writes every login makes (`last_used_at`, `last_login_at`), so logins keep their cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, select, update

from tests.unit.auth.conftest import CHEAP_HASHER
from trustyard.auth.accounts import AccountService
from trustyard.auth.stores import AccessStore
from trustyard.db.tables import access_tokens, credential_generation, users
from trustyard.kit.clock import utc_now as _now


def generation(conn: Connection) -> int:
    query = select(credential_generation.c.value).where(credential_generation.c.id == 1)
    return int(conn.scalar(query))


@pytest.fixture
def service(conn: Connection) -> AccountService:
    accounts = AccountService(hasher=CHEAP_HASHER)
    for name in ("olga", "bob"):
        accounts.create_user(conn, name, "a password long enough")
    accounts.create_organization(conn, "acme", "olga")
    accounts.create_robot(conn, "acme", "ci")
    accounts.create_token(conn, "bob", "laptop")
    return accounts


def bob_token(conn: Connection) -> str:
    query = select(access_tokens.c.public_id).where(access_tokens.c.name == "laptop")
    return str(conn.scalar(query))


Change = Callable[[Connection, AccountService], object]

CHANGES: dict[str, Change] = {
    "token revoked": lambda c, s: s.revoke_token(c, bob_token(c)),
    "token deleted": lambda c, s: c.execute(
        access_tokens.delete().where(access_tokens.c.public_id == bob_token(c))
    ),
    "token expires early": lambda c, s: c.execute(
        update(access_tokens)
        .where(access_tokens.c.public_id == bob_token(c))
        .values(expires_at=_now())
    ),
    "password changed": lambda c, s: s.change_password(c, "bob", "another password long enough"),
    "user deactivated": lambda c, s: s.deactivate_user(c, "bob"),
    "user deleted": lambda c, s: s.delete_user(c, "bob"),
    "robot deleted": lambda c, s: s.delete_robot(c, "acme", "ci"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_that_ends_a_login_moves_the_generation(
    conn: Connection, service: AccountService, change: str
) -> None:
    before = generation(conn)
    CHANGES[change](conn, service)
    assert generation(conn) > before


def test_logging_in_leaves_it_alone(conn: Connection, service: AccountService) -> None:
    store = AccessStore()
    before = generation(conn)
    token_id = conn.scalar(select(access_tokens.c.id).where(access_tokens.c.name == "laptop"))
    store.touch_token(conn, int(token_id))
    store.update_user(conn, "bob", last_login_at=_now())
    conn.execute(update(users).where(users.c.username == "bob").values(email="b@example.org"))
    service.create_token(conn, "olga", "another")
    assert generation(conn) == before
