"""LDAP login against a real OpenLDAP server (slapd) that the tests start."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.slapd import Slapd
from trustyard.auth.ldap import LdapConfig, LdapDirectory, LdapIdentity, LdapUnavailable

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    with Slapd() as server:
        yield server


def config_for(server: Slapd, **changes: Any) -> LdapConfig:
    config = LdapConfig(
        url=server.url,
        user_base_dn=server.people_dn,
        group_base_dn=server.groups_dn,
        bind_dn=server.admin_dn,
        bind_password=server.admin_password,
    )
    return dataclasses.replace(config, **changes)


@pytest.fixture
def directory(slapd: Slapd) -> LdapDirectory:
    return LdapDirectory(config_for(slapd))


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def alice(slapd: Slapd) -> str:
    """A user of the test's own (uid returned), with PASSWORD."""
    uid = unique("alice")
    slapd.add_user(uid, PASSWORD, f"{uid}@example.org", "Alice Liddell")
    return uid


def test_correct_password_gives_identity_with_email_and_groups(
    slapd: Slapd, directory: LdapDirectory, alice: str
) -> None:
    devs, ops, other = unique("devs"), unique("ops"), unique("other")
    slapd.add_group(devs, [alice])  # groupOfNames: member
    slapd.add_group(ops, [alice], unique=True)  # groupOfUniqueNames: uniqueMember
    slapd.add_group(other, [])

    identity = directory.authenticate(alice, PASSWORD)

    assert identity == LdapIdentity(
        dn=f"uid={alice},ou=people,dc=example,dc=org",
        username=alice,
        email=f"{alice}@example.org",
        display_name="Alice Liddell",
        groups=frozenset(
            {
                devs,
                f"cn={devs},ou=groups,dc=example,dc=org",
                ops,
                f"cn={ops},ou=groups,dc=example,dc=org",
            }
        ),
    )


def test_login_name_is_matched_without_case_and_reported_as_stored(
    directory: LdapDirectory, alice: str
) -> None:
    identity = directory.authenticate(alice.upper(), PASSWORD)

    assert identity is not None
    assert identity.username == alice
    assert identity.groups == frozenset()


def test_wrong_password_is_refused(directory: LdapDirectory, alice: str) -> None:
    assert directory.authenticate(alice, PASSWORD + "x") is None
    assert directory.authenticate(alice, PASSWORD.upper()) is None


def test_unknown_user_is_refused(directory: LdapDirectory) -> None:
    assert directory.authenticate(unique("nobody"), PASSWORD) is None


def test_anonymous_search_finds_the_user(slapd: Slapd, alice: str) -> None:
    directory = LdapDirectory(config_for(slapd, bind_dn=None, bind_password=None))

    identity = directory.authenticate(alice, PASSWORD)

    assert identity is not None
    assert identity.dn == slapd.user_dn(alice)
    assert directory.authenticate(alice, "wrong") is None


@pytest.mark.parametrize(
    "username", ["*", ")(uid=*", "*)(|(uid=*", "alice*", "*alice*", "\\2a", "(uid=*)"]
)
def test_filter_metacharacters_in_the_username_match_no_one(slapd: Slapd, username: str) -> None:
    # Every password below is right for some user the wildcard would reach.
    slapd.add_user(unique("alice"), PASSWORD, "a@example.org", "A")
    directory = LdapDirectory(config_for(slapd))

    assert directory.authenticate(username, PASSWORD) is None


def test_a_user_whose_name_holds_metacharacters_can_log_in(
    slapd: Slapd, directory: LdapDirectory
) -> None:
    uid = unique("o'brien (ops)*,\\")
    group = unique("g(1)*")
    slapd.add_user(uid, PASSWORD, "ob@example.org", "Pat O'Brien")
    slapd.add_group(group, [uid])

    identity = directory.authenticate(uid, PASSWORD)

    assert identity is not None
    assert identity.username == uid
    assert group in identity.groups


def test_empty_password_is_refused_without_asking_the_directory(slapd: Slapd, alice: str) -> None:
    # An empty password is an anonymous bind, which many servers accept. The directory below is
    # unreachable, so any attempt to contact it would raise LdapUnavailable instead of None.
    with Slapd() as doomed:
        directory = LdapDirectory(config_for(doomed))
    assert directory.authenticate(alice, "") is None
    with pytest.raises(LdapUnavailable):
        directory.authenticate(alice, PASSWORD)


def test_stopped_directory_raises_unavailable(slapd: Slapd, alice: str) -> None:
    with Slapd() as other:
        other.add_user(alice, PASSWORD, "a@example.org", "A")
        directory = LdapDirectory(config_for(other))
        assert directory.authenticate(alice, PASSWORD) is not None

    with pytest.raises(LdapUnavailable, match="cannot reach"):
        directory.authenticate(alice, PASSWORD)


def test_unresponsive_directory_raises_unavailable(slapd: Slapd, alice: str) -> None:
    directory = LdapDirectory(config_for(slapd, timeout=1.0))

    with slapd.paused(), pytest.raises(LdapUnavailable):
        directory.authenticate(alice, PASSWORD)

    assert directory.authenticate(alice, PASSWORD) is not None


def test_wrong_service_password_raises_unavailable(slapd: Slapd, alice: str) -> None:
    directory = LdapDirectory(config_for(slapd, bind_password="not-the-service-password"))

    with pytest.raises(LdapUnavailable, match="service bind"):
        directory.authenticate(alice, PASSWORD)


def test_misconfigured_user_base_raises_unavailable(slapd: Slapd, alice: str) -> None:
    directory = LdapDirectory(config_for(slapd, user_base_dn="ou=nowhere,dc=example,dc=org"))

    with pytest.raises(LdapUnavailable, match="noSuchObject"):
        directory.authenticate(alice, PASSWORD)


def test_ambiguous_user_filter_refuses_login(slapd: Slapd) -> None:
    shared_mail = f"{unique('shared')}@example.org"
    slapd.add_user(unique("twin"), PASSWORD, shared_mail, "Twin One")
    slapd.add_user(unique("twin"), PASSWORD, shared_mail, "Twin Two")
    directory = LdapDirectory(config_for(slapd, user_filter="(mail={username})"))

    assert directory.authenticate(shared_mail, PASSWORD) is None


def test_group_membership_change_shows_at_next_login(
    slapd: Slapd, directory: LdapDirectory, alice: str
) -> None:
    group = unique("release")
    slapd.add_group(group, [])
    before = directory.authenticate(alice, PASSWORD)

    slapd.set_group_members(group, [alice])
    joined = directory.authenticate(alice, PASSWORD)

    slapd.set_group_members(group, [])
    left = directory.authenticate(alice, PASSWORD)

    assert before is not None
    assert joined is not None
    assert left is not None
    assert group not in before.groups
    assert group in joined.groups
    assert slapd.group_dn(group) in joined.groups
    assert group not in left.groups


def test_group_filter_can_use_the_login_name(slapd: Slapd, alice: str) -> None:
    # Directories without member DNs (e.g. posixGroup's memberUid) find groups by login name.
    team = f"{alice}-team"
    slapd.add_group(team, [])
    directory = LdapDirectory(config_for(slapd, group_filter="(cn={username}-team)"))

    identity = directory.authenticate(alice, PASSWORD)

    assert identity is not None
    assert identity.groups == {team, slapd.group_dn(team)}


def test_passwords_never_reach_the_logs_or_errors(
    slapd: Slapd, alice: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service_password = "service-secret-5e1f"
    bad_service = LdapDirectory(config_for(slapd, bind_password=service_password))
    user_password = "user-secret-9c2a"

    with pytest.raises(LdapUnavailable) as raised:
        bad_service.authenticate(alice, user_password)
    LdapDirectory(config_for(slapd)).authenticate(alice, user_password)

    for secret in (service_password, user_password, slapd.admin_password):
        assert secret not in caplog.text
        assert secret not in str(raised.value)
        assert secret not in repr(bad_service.config)


# -- TLS: StartTLS on ldap:// and TLS from the start on ldaps:// ----------------


@pytest.fixture(scope="module")
def tls_slapd() -> Iterator[Slapd]:
    with Slapd(tls=True) as server:
        server.add_user("tina", PASSWORD, "tina@example.org", "Tina TLS")
        yield server


def tls_config(server: Slapd, mode: str, host: str = "127.0.0.1", **changes: Any) -> LdapConfig:
    url = server.url if mode == "starttls" else server.ldaps_url
    settings: dict[str, Any] = {
        "url": url.replace("127.0.0.1", host),
        "start_tls": mode == "starttls",
        "ca_file": str(server.ca_file),
    }
    return config_for(server, **(settings | changes))


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_tls_login_with_the_directorys_ca(tls_slapd: Slapd, mode: str) -> None:
    directory = LdapDirectory(tls_config(tls_slapd, mode))

    identity = directory.authenticate("tina", PASSWORD)

    assert identity is not None
    assert identity.email == "tina@example.org"
    assert directory.authenticate("tina", "wrong") is None


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_tls_certificate_not_trusted_raises_unavailable(tls_slapd: Slapd, mode: str) -> None:
    # Without ca_file only the system's CAs are trusted; they never signed this certificate.
    directory = LdapDirectory(tls_config(tls_slapd, mode, ca_file=None))

    with pytest.raises(LdapUnavailable, match="certificate verify failed"):
        directory.authenticate("tina", PASSWORD)


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
def test_tls_certificate_for_another_name_raises_unavailable(tls_slapd: Slapd, mode: str) -> None:
    # The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    directory = LdapDirectory(tls_config(tls_slapd, mode, host="localhost"))

    with pytest.raises(LdapUnavailable, match="doesn't match"):
        directory.authenticate("tina", PASSWORD)
