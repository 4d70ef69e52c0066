"""Deleting a user must not hand their repositories to whoever takes the name next: it is
refused (the API answers 409) while their personal namespace still has repositories."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from tests.unit.auth.conftest import CHEAP_HASHER, MakeRepository
from trustyard.auth.accounts import AccountService, NamespaceNotEmpty
from trustyard.errors import NotFound


def test_a_user_with_repositories_is_not_deleted(
    conn: Connection, make_repository: MakeRepository
) -> None:
    service = AccountService(hasher=CHEAP_HASHER)
    service.create_user(conn, "alice", "a password long enough")
    service.create_user(conn, "alicea", "a password long enough")
    make_repository("alice/app")
    make_repository("alicea/app")  # another namespace that merely shares a prefix
    with pytest.raises(NamespaceNotEmpty, match="'alice' still has repositories"):
        service.delete_user(conn, "alice")
    assert service.get_user(conn, "alice").username == "alice"


def test_a_user_without_repositories_is_deleted(conn: Connection) -> None:
    service = AccountService(hasher=CHEAP_HASHER)
    service.create_user(conn, "bob", "a password long enough")
    service.delete_user(conn, "bob")
    with pytest.raises(NotFound):
        service.get_user(conn, "bob")
