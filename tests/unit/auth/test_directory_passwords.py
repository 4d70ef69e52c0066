"""A directory (LDAP) account has no local password: setting one (API, `trustyard passwd`) is
refused with a message that says where the password lives, instead of storing a password that
no login would ever check."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from tests.unit.auth.conftest import CHEAP_HASHER
from trustyard.auth.accounts import AccountService
from trustyard.errors import Invalid


def test_a_directory_account_gets_no_local_password(conn: Connection) -> None:
    service = AccountService(hasher=CHEAP_HASHER)
    service.create_user(conn, "dora", None, source="ldap")
    with pytest.raises(Invalid, match="ldap directory; change the password there"):
        service.change_password(conn, "dora", "a password long enough")
    service.create_user(conn, "lena", "a password long enough")
    service.change_password(conn, "lena", "another password long enough")  # local: allowed
