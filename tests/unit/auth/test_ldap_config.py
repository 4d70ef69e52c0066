"""LdapConfig refuses settings that would silently weaken or break LDAP login."""

from __future__ import annotations

from typing import Any

import pytest

from trustyard.auth.ldap import LdapConfig, LdapDirectory


def make(url: str = "ldap://h", **fields: Any) -> LdapConfig:
    return LdapConfig(
        url=url,
        user_base_dn="ou=people,dc=example,dc=org",
        group_base_dn="ou=groups,dc=x",
        **fields,
    )


def test_defaults() -> None:
    config = make("ldap://ldap.example.org")

    assert config.bind_dn is None
    assert config.bind_password is None
    assert config.user_filter == "(uid={username})"
    assert config.group_filter == "(|(member={dn})(uniqueMember={dn}))"
    assert (config.username_attribute, config.email_attribute) == ("uid", "mail")
    assert (config.display_name_attribute, config.group_name_attribute) == ("cn", "cn")
    assert config.start_tls is False
    assert config.ca_file is None
    assert config.timeout == 5.0


@pytest.mark.parametrize(
    "url", ["http://ldap.example.org", "ldap.example.org", "ldap://", "ldapi:///run/slapd"]
)
def test_only_ldap_and_ldaps_urls(url: str) -> None:
    with pytest.raises(ValueError, match="LDAP URL"):
        make(url)


def test_start_tls_over_ldaps_is_refused() -> None:
    with pytest.raises(ValueError, match="start_tls"):
        make("ldaps://ldap.example.org", start_tls=True)


@pytest.mark.parametrize(
    ("bind_dn", "bind_password"),
    [("cn=svc,dc=x", None), ("cn=svc,dc=x", ""), (None, "secret")],
)
def test_service_dn_and_password_go_together(
    bind_dn: str | None, bind_password: str | None
) -> None:
    # A DN with an empty password is an unauthenticated bind: servers treat it as anonymous.
    with pytest.raises(ValueError, match="bind_password"):
        make(bind_dn=bind_dn, bind_password=bind_password)


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("user_filter", "(uid={user})"),
        ("user_filter", "(uid={0})"),
        ("group_filter", "(member={dn)"),
        ("group_filter", "(member={dn.x})"),
        ("group_filter", "(member={})"),
    ],
)
def test_filters_may_only_use_known_placeholders(field: str, template: str) -> None:
    with pytest.raises(ValueError, match=field):
        make(**{field: template})


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        make(timeout=timeout)


def test_repr_hides_the_service_password() -> None:
    config = make(bind_dn="cn=svc", bind_password="s3cr3t-pw")

    assert "s3cr3t-pw" not in repr(config)
    assert "cn=svc" in repr(config)


@pytest.mark.parametrize(("username", "password"), [("alice", ""), ("", "pw"), ("", "")])
def test_empty_credentials_are_refused_before_any_connection(username: str, password: str) -> None:
    # Port 1 on loopback: nothing listens there, so contacting it would raise LdapUnavailable.
    directory = LdapDirectory(make("ldap://127.0.0.1:1", timeout=1.0))

    assert directory.authenticate(username, password) is None
