"""The token-signing key in the database: created once, shared, encrypted, rotated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Connection, select

from trustyard.auth.jwt_tokens import InvalidToken, SigningKeyError
from trustyard.auth.scopes import ScopeGrant
from trustyard.auth.signing import SigningKeys
from trustyard.db.tables import signing_keys

GRANT = [ScopeGrant("repository", "acme/app", ("pull",))]


def test_first_use_creates_one_key_and_later_uses_reuse_it(conn: Connection) -> None:
    keys = SigningKeys("s3cret passphrase")
    first = keys.current(conn)
    assert keys.current(conn).kid == first.kid
    assert len(conn.execute(select(signing_keys)).all()) == 1


def test_another_replica_with_the_same_passphrase_verifies_the_tokens(conn: Connection) -> None:
    token = (
        SigningKeys("s3cret passphrase")
        .current(conn)
        .issue("alice", "trustyard", GRANT, timedelta(minutes=5))
    )
    replica = SigningKeys("s3cret passphrase")
    verified = replica.current(conn).verify(token, "trustyard")
    assert verified.subject == "alice"
    assert [grant.actions for grant in verified.access] == [("pull",)]


def test_the_private_key_is_stored_encrypted(conn: Connection) -> None:
    SigningKeys("s3cret passphrase").current(conn)
    stored = conn.execute(select(signing_keys.c.private_key)).scalar_one()
    assert "ENCRYPTED PRIVATE KEY" in stored
    with pytest.raises(SigningKeyError):
        SigningKeys("another passphrase").current(conn)


def test_replicas_racing_on_first_start_converge_on_the_oldest_key(conn: Connection) -> None:
    a, b = SigningKeys("pass phrase one"), SigningKeys("pass phrase one")
    a._create(conn)  # both replicas found no key and created one
    b._create(conn)
    assert a.current(conn).kid == b.current(conn).kid


def test_rotation_signs_with_a_new_key_and_old_tokens_still_verify(conn: Connection) -> None:
    keys = SigningKeys("s3cret passphrase")
    old = keys.current(conn)
    token = old.issue("alice", "trustyard", GRANT, timedelta(minutes=5))
    new = keys.rotate(conn)
    assert new.kid != old.kid
    assert keys.current(conn).kid == new.kid
    with pytest.raises(InvalidToken):
        new.verify(token, "trustyard")
    previous = SigningKeys("s3cret passphrase").for_kid(conn, old.kid)
    assert previous is not None
    assert previous.verify(token, "trustyard").subject == "alice"
    assert SigningKeys("s3cret passphrase").for_kid(conn, "NOPE:NOPE") is None


def test_an_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="passphrase"):
        SigningKeys("")
