"""LdapConfig refuses settings that would silently weaken or break LDAP login."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from trustyard.auth.ldap import LdapConfig, LdapDirectory
from trustyard.config import Settings
from trustyard.wiring.common import ldap_config


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


# --- the `ldap` settings section (TRUSTYARD_LDAP__*) and the LdapConfig built from it ------


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No TRUSTYARD_* variable of the caller leaks in."""
    for name in list(os.environ):
        if name.startswith("TRUSTYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


SERVICE_PASSWORD = "service-secret-77d1"
ENABLED = {
    "TRUSTYARD_LDAP__ENABLED": "true",
    "TRUSTYARD_LDAP__URL": "ldaps://ldap.example.org:636",
    "TRUSTYARD_LDAP__USER_BASE_DN": "ou=people,dc=example,dc=org",
    "TRUSTYARD_LDAP__GROUP_BASE_DN": "ou=groups,dc=example,dc=org",
    "TRUSTYARD_LDAP__BIND_DN": "cn=registry,dc=example,dc=org",
    "TRUSTYARD_LDAP__BIND_PASSWORD": SERVICE_PASSWORD,
}


def test_ldap_is_off_by_default_and_its_defaults_are_the_clients(
    environment: pytest.MonkeyPatch,
) -> None:
    settings = Settings()

    assert settings.ldap.enabled is False
    defaults = make()
    for name in (
        "user_filter",
        "username_attribute",
        "email_attribute",
        "display_name_attribute",
        "group_filter",
        "group_name_attribute",
        "start_tls",
        "timeout",
    ):
        assert getattr(settings.ldap, name) == getattr(defaults, name), name


def test_environment_variables_configure_the_directory(environment: pytest.MonkeyPatch) -> None:
    for name, value in ENABLED.items():
        environment.setenv(name, value)
    environment.setenv("TRUSTYARD_LDAP__USER_FILTER", "(mail={username})")
    environment.setenv("TRUSTYARD_LDAP__TIMEOUT", "2.5")

    settings = Settings()
    config = ldap_config(settings.ldap)

    assert config == LdapConfig(
        url="ldaps://ldap.example.org:636",
        user_base_dn="ou=people,dc=example,dc=org",
        group_base_dn="ou=groups,dc=example,dc=org",
        bind_dn="cn=registry,dc=example,dc=org",
        bind_password=SERVICE_PASSWORD,
        user_filter="(mail={username})",
        timeout=2.5,
    )
    # Worker processes rebuild the same tree from the flattened variables.
    assert settings.to_environment()["TRUSTYARD_LDAP__BIND_PASSWORD"] == SERVICE_PASSWORD
    for name, value in settings.to_environment().items():
        environment.setenv(name, value)
    assert ldap_config(Settings().ldap) == config


@pytest.mark.parametrize("missing", ["URL", "USER_BASE_DN", "GROUP_BASE_DN"])
def test_enabled_ldap_needs_where_the_directory_and_its_users_are(
    environment: pytest.MonkeyPatch, missing: str
) -> None:
    for name, value in ENABLED.items():
        environment.setenv(name, value)
    environment.delenv(f"TRUSTYARD_LDAP__{missing}")

    with pytest.raises(ValidationError, match=f"set TRUSTYARD_LDAP__{missing}") as raised:
        Settings()

    assert SERVICE_PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    ("bind_dn", "bind_password"), [("cn=svc,dc=x", None), ("cn=svc,dc=x", ""), (None, "pw-9f")]
)
def test_service_account_settings_go_together(
    environment: pytest.MonkeyPatch, bind_dn: str | None, bind_password: str | None
) -> None:
    for name, value in ENABLED.items():
        environment.setenv(name, value)
    environment.delenv("TRUSTYARD_LDAP__BIND_DN")
    environment.delenv("TRUSTYARD_LDAP__BIND_PASSWORD")
    if bind_dn is not None:
        environment.setenv("TRUSTYARD_LDAP__BIND_DN", bind_dn)
    if bind_password is not None:
        environment.setenv("TRUSTYARD_LDAP__BIND_PASSWORD", bind_password)

    with pytest.raises(ValidationError, match=r"ldap\.bind_dn") as raised:
        Settings()

    if bind_password:
        assert bind_password not in str(raised.value)


def test_anonymous_search_needs_no_service_account(environment: pytest.MonkeyPatch) -> None:
    for name, value in ENABLED.items():
        if "BIND" not in name:
            environment.setenv(name, value)

    config = ldap_config(Settings().ldap)

    assert (config.bind_dn, config.bind_password) == (None, None)


def test_misspelt_settings_and_missing_ca_files_are_refused(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=r"ldap\.bind_passwd"):
        Settings(ldap={"bind_passwd": "x"})
    with pytest.raises(ValidationError, match="is not a file"):
        Settings(ldap={"ca_file": str(tmp_path / "missing.pem")})
    with pytest.raises(ValidationError, match=r"ldap\.timeout"):
        Settings(ldap={"timeout": 0})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "http://ldap.example.org"}, "LDAP URL"),
        ({"start_tls": True}, "start_tls"),
        ({"user_filter": "(uid={user})"}, "user_filter"),
    ],
)
def test_values_the_directory_client_refuses_are_errors_at_start(
    environment: pytest.MonkeyPatch, changes: dict[str, object], message: str
) -> None:
    for name, value in ENABLED.items():
        environment.setenv(name, value)

    settings = Settings(ldap=Settings().ldap.model_dump() | changes)

    with pytest.raises(ValueError, match=message):
        ldap_config(settings.ldap)
