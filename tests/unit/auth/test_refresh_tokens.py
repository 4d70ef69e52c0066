"""Refresh tokens: made only for a login that checks out, stored hashed, exchanged for what the
owner may do now, and dead once revoked, expired, or cut off from the login that made them."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, select, update

from tests.unit.auth.conftest import CHEAP_HASHER
from trustyard.auth.access import Authenticator
from trustyard.auth.accounts import DEFAULT_TOKEN_SCOPES, AccountService
from trustyard.auth.authorize import Action
from trustyard.auth.refresh_tokens import (
    InvalidGrant,
    RefreshTokens,
    is_valid_client_id,
    new_refresh_text,
    parse_refresh_text,
    password_stamp,
    refused_event,
)
from trustyard.auth.scopes import TokenScope
from trustyard.auth.secrets import parse_token
from trustyard.db.tables import access_tokens, users

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse battery staple"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
TTL = timedelta(days=30)


@pytest.fixture
def accounts(conn: Connection) -> AccountService:
    service = AccountService(hasher=CHEAP_HASHER)
    for name in ("olga", "alice"):
        service.create_user(conn, name, PASSWORD)
    service.create_organization(conn, "acme", "olga")
    service.create_robot(conn, "acme", "ci")
    service.set_robot_grant(conn, "acme", "ci", "acme/*", "read-write")
    return service


@pytest.fixture
def refresh() -> RefreshTokens:
    return RefreshTokens(Authenticator(hasher=CHEAP_HASHER), TTL)


def make(refresh: RefreshTokens, conn: Connection, user: str, secret: str = PASSWORD) -> str:
    offline = refresh.issue(conn, user, secret, "docker", now=T0)
    assert offline is not None
    return offline.refresh.text


def refused(
    refresh: RefreshTokens, conn: Connection, text: str, at: datetime = T0, client: str = "docker"
) -> str:
    with pytest.raises(InvalidGrant) as caught:
        refresh.exchange(conn, text, client_id=client, now=at)
    return caught.value.reason


@pytest.mark.usefixtures("accounts")
def test_a_password_login_gets_a_refresh_token_stored_only_as_a_hash(
    conn: Connection, refresh: RefreshTokens
) -> None:
    offline = refresh.issue(conn, "olga", PASSWORD, "docker", now=T0)
    assert offline is not None
    token = offline.refresh
    assert (offline.principal.name, offline.scope) == ("olga", None)
    assert (token.owner, token.obtained_with) == ("olga", "password")
    assert token.expires_at == T0 + TTL
    parsed = parse_refresh_text(token.text)
    assert parsed is not None
    assert parsed[0] == token.public_id
    row = conn.execute(
        select(access_tokens).where(access_tokens.c.public_id == token.public_id)
    ).one()
    assert row.kind == "rft"
    assert row.name == "refresh token (docker)"
    assert row.secret_hash == hashlib.sha256(parsed[1].encode()).hexdigest()
    assert token.text not in {str(value) for value in row}
    assert token.text not in repr(token)
    assert token.text not in repr(offline)


@pytest.mark.usefixtures("accounts")
def test_wrong_credentials_get_no_refresh_token(conn: Connection, refresh: RefreshTokens) -> None:
    before = conn.execute(select(access_tokens.c.id)).all()
    assert refresh.issue(conn, "olga", "not the password", "docker", now=T0) is None
    assert refresh.issue(conn, "nobody", PASSWORD, "docker", now=T0) is None
    assert conn.execute(select(access_tokens.c.id)).all() == before


def test_the_exchange_answers_the_owner_as_they_are_now(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    text = make(refresh, conn, "alice")
    first = refresh.exchange(conn, text, client_id="docker", now=T0 + timedelta(days=1))
    assert first.principal.name == "alice"
    assert first.principal.owned_orgs == frozenset()
    assert first.scope == TokenScope.from_strings(DEFAULT_TOKEN_SCOPES)
    accounts.add_owner(conn, "acme", "alice")
    later = refresh.exchange(conn, text, client_id="docker", now=T0 + timedelta(days=2))
    assert later.principal.owned_orgs == frozenset({"acme"})
    used = conn.execute(
        select(access_tokens.c.last_used_at).where(access_tokens.c.public_id == later.public_id)
    ).scalar_one()
    assert used.replace(tzinfo=UTC) == T0 + timedelta(days=2)


@pytest.mark.usefixtures("accounts")
def test_a_refresh_token_dies_when_it_expires(conn: Connection, refresh: RefreshTokens) -> None:
    text = make(refresh, conn, "olga")
    refresh.exchange(conn, text, client_id="docker", now=T0 + TTL - timedelta(seconds=1))
    assert refused(refresh, conn, text, T0 + TTL) == "expired refresh token"


def test_a_revoked_refresh_token_is_refused(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    text = make(refresh, conn, "olga")
    listed = {token.public_id: token for token in accounts.list_tokens(conn, "olga")}
    public_id = refresh.exchange(conn, text, client_id="docker", now=T0).public_id
    assert listed[public_id].kind == "rft"
    accounts.revoke_token(conn, public_id, owner="olga")
    assert refused(refresh, conn, text) == "revoked refresh token"


def test_a_password_change_ends_the_refresh_tokens_it_made(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    text = make(refresh, conn, "olga")
    accounts.change_password(conn, "olga", NEW_PASSWORD)
    assert refused(refresh, conn, text) == "the password it was obtained with has changed"
    fresh = make(refresh, conn, "olga", NEW_PASSWORD)
    assert refresh.exchange(conn, fresh, client_id="docker", now=T0).principal.name == "olga"


def test_deactivating_or_deleting_the_owner_ends_their_refresh_tokens(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    olga, alice = make(refresh, conn, "olga"), make(refresh, conn, "alice")
    accounts.deactivate_user(conn, "olga")
    assert refused(refresh, conn, olga) == "revoked refresh token"  # for good
    accounts.delete_user(conn, "alice")
    assert refused(refresh, conn, alice) == "unknown refresh token"


def test_a_refresh_token_from_an_access_token_keeps_its_scope_and_dies_with_it(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    pat, pat_text = accounts.create_token(
        conn, "olga", "ci pulls", ["repository:acme/*:pull"], expires_at=T0 + timedelta(days=3)
    )
    offline = refresh.issue(conn, "olga", pat_text, "containerd", now=T0)
    assert offline is not None
    assert offline.refresh.obtained_with == "token"
    assert offline.refresh.expires_at == T0 + timedelta(days=3)  # never outlives its parent
    exchanged = refresh.exchange(conn, offline.refresh.text, client_id="containerd", now=T0)
    assert exchanged.scope == TokenScope.from_strings(["repository:acme/*:pull"])
    assert exchanged.scope.allows(Action.PULL, "acme/app")
    assert not exchanged.scope.allows(Action.PUSH, "acme/app")
    # A password change leaves tokens alone: only the parent's fate counts.
    accounts.change_password(conn, "olga", NEW_PASSWORD)
    refresh.exchange(conn, offline.refresh.text, client_id="containerd", now=T0)
    accounts.revoke_token(conn, pat.public_id)
    assert (
        refused(refresh, conn, offline.refresh.text, client="containerd")
        == "the token it was obtained with is revoked or expired"
    )


def test_a_robot_token_login_gets_a_robot_refresh_token(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    _, robot_text = accounts.create_token(conn, "acme+ci", "deploy", ["repository:acme/*:*"])
    text = make(refresh, conn, "acme+ci", robot_text)
    exchanged = refresh.exchange(conn, text, client_id="docker", now=T0)
    assert exchanged.principal.kind == "robot"
    assert exchanged.principal.robot_org == "acme"
    listed = accounts.list_tokens(conn, "acme+ci")
    assert [token.kind for token in listed] == ["rbt", "rft"]
    # A robot's token logs in as the robot only.
    assert refresh.issue(conn, "olga", robot_text, "docker", now=T0) is None


@pytest.mark.usefixtures("accounts")
def test_refresh_tokens_and_access_tokens_are_not_interchangeable(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    text = make(refresh, conn, "olga")
    assert Authenticator(hasher=CHEAP_HASHER).login(conn, "olga", text) is None
    _, pat_text = accounts.create_token(conn, "olga", "laptop")
    assert refused(refresh, conn, pat_text) == "malformed refresh token"
    # A PAT's public id under the refresh prefix is not a refresh token either.
    parsed = parse_token(pat_text)
    assert parsed is not None
    disguised = f"ty_rft_{parsed.public_id}_{parsed.secret}"
    assert refused(refresh, conn, disguised) == "unknown refresh token"


@pytest.mark.usefixtures("accounts")
def test_a_wrong_secret_is_refused_and_named_in_the_audit_event_without_the_secret(
    conn: Connection, refresh: RefreshTokens
) -> None:
    text = make(refresh, conn, "olga")
    public_id, secret = parse_refresh_text(text) or ("", "")
    other = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    assert other != secret
    with pytest.raises(InvalidGrant) as caught:
        refresh.exchange(conn, f"ty_rft_{public_id}_{other}", client_id="docker", now=T0)
    assert caught.value.reason == "wrong refresh token secret"
    event = refused_event(caught.value, "docker", "10.0.0.1", T0)
    assert (event.actor, event.actor_kind, event.action) == (
        "olga",
        "user",
        "refresh_token.exchange",
    )
    assert (event.resource_kind, event.resource, event.outcome) == ("token", public_id, "failed")
    assert secret not in repr(event)
    assert other not in repr(event)


@pytest.mark.usefixtures("accounts")
def test_the_password_fingerprint_follows_the_stored_hash(conn: Connection) -> None:
    stored = conn.execute(select(users.c.password_hash).where(users.c.username == "olga")).scalar()
    assert password_stamp(stored) == hashlib.sha256(str(stored).encode()).hexdigest()
    assert password_stamp(None) == password_stamp("") != password_stamp(stored)


@pytest.mark.usefixtures("accounts")
def test_an_account_without_a_local_password_keeps_its_refresh_token_until_one_is_set(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    """Directory users have no local hash: setting one counts as a password change."""
    text = make(refresh, conn, "olga")
    conn.execute(update(users).where(users.c.username == "olga").values(password_hash=None))
    assert refused(refresh, conn, text) == "the password it was obtained with has changed"


def test_a_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RefreshTokens(ttl=timedelta(0))


def test_new_texts_parse_back_and_differ() -> None:
    texts: set[str] = set()
    for _ in range(50):
        text, public_id, secret_hash = new_refresh_text()
        parsed = parse_refresh_text(text)
        assert parsed is not None
        assert parsed[0] == public_id
        assert hashlib.sha256(parsed[1].encode()).hexdigest() == secret_hash
        assert parse_token(text) is None  # never taken for an access token
        texts.add(text)
    assert len(texts) == 50


@given(st.text(max_size=80))
def test_anything_else_is_not_a_refresh_token(text: str) -> None:
    if text.startswith("ty_rft_"):
        return
    assert parse_refresh_text(text) is None


@given(st.text(max_size=80))
def test_client_ids_are_short_printable_ascii(client_id: str) -> None:
    expected = 1 <= len(client_id) <= 64 and all(" " <= c <= "~" for c in client_id)
    assert is_valid_client_id(client_id) is expected


def test_a_reactivated_user_gets_none_of_their_old_refresh_tokens_back(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    text = make(refresh, conn, "olga")
    accounts.deactivate_user(conn, "olga")
    accounts.update_user(conn, "olga", is_active=True)
    assert refused(refresh, conn, text) == "revoked refresh token"
    fresh = make(refresh, conn, "olga")  # a new login gets a new one
    assert refresh.exchange(conn, fresh, client_id="docker", now=T0).principal.name == "olga"


def test_a_refresh_token_is_bound_to_the_client_it_was_issued_to(
    conn: Connection, refresh: RefreshTokens, accounts: AccountService
) -> None:
    text = make(refresh, conn, "olga")  # issued to "docker"
    for other in ("containerd", "docker ", None):
        with pytest.raises(InvalidGrant) as caught:
            refresh.exchange(conn, text, client_id=other, now=T0)
        assert caught.value.reason == "the refresh token was issued to another client"
    assert refresh.exchange(conn, text, client_id="docker", now=T0).principal.name == "olga"
    row = conn.execute(select(access_tokens.c.client_id).where(access_tokens.c.kind == "rft"))
    assert row.scalar_one() == "docker"
