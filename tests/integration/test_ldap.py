"""LDAP login against a real OpenLDAP server (slapd) that the tests start: the directory client
alone, then a real registry whose logins and teams follow the directory (on both databases)."""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Connection

from tests.integration.clients import ClientFailed, Clients, layout_top
from tests.support.images import test_images_dir
from tests.support.server import TrustyardServer
from tests.support.slapd import Slapd
from trustyard.auth.accounts import AccountService
from trustyard.auth.ldap import LdapConfig, LdapDirectory, LdapIdentity, LdapUnavailable
from trustyard.auth.login_throttle import account_key, pair_key
from trustyard.auth.stores import AccessStore
from trustyard.db.engine import make_engine, write_tx

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


def test_lookup_finds_a_user_by_name_without_a_password(slapd: Slapd, alice: str) -> None:
    # Users log in with their mail address here; the sync job looks them up by `uid`.
    directory = LdapDirectory(config_for(slapd, user_filter="(mail={username})"))

    by_mail = directory.authenticate(f"{alice}@example.org", PASSWORD)
    found = directory.lookup(alice)

    assert by_mail is not None
    assert found == by_mail
    assert directory.lookup(unique("nobody")) is None
    assert directory.lookup("*") is None
    assert directory.lookup("") is None


def test_lookup_only_finds_users_the_user_filter_admits(slapd: Slapd, alice: str) -> None:
    only_elsewhere = "(&(uid={username})(mail=*@elsewhere.example))"
    directory = LdapDirectory(config_for(slapd, user_filter=only_elsewhere))

    assert directory.lookup(alice) is None
    assert directory.authenticate(alice, PASSWORD) is None


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


# -- a registry with LDAP login: real `trustyard serve`, real slapd, both databases -------------

ADMIN_PASSWORD = "an admin password for ldap tests"


def ldap_environment(server: Slapd) -> dict[str, str]:
    return {
        "TRUSTYARD_LDAP__ENABLED": "true",
        "TRUSTYARD_LDAP__URL": server.url,
        "TRUSTYARD_LDAP__BIND_DN": server.admin_dn,
        "TRUSTYARD_LDAP__BIND_PASSWORD": server.admin_password,
        "TRUSTYARD_LDAP__USER_BASE_DN": server.people_dn,
        "TRUSTYARD_LDAP__GROUP_BASE_DN": server.groups_dn,
        "TRUSTYARD_LDAP__TIMEOUT": "2",  # a frozen directory fails logins after 2 s
    }


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer], slapd: Slapd) -> TrustyardServer:
    return start_server(
        "ldap",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        **ldap_environment(slapd),
    )


@contextmanager
def database(server: TrustyardServer) -> Iterator[Connection]:
    """A write transaction on the registry's own database (committed at the end)."""
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    try:
        with write_tx(engine) as conn:
            yield conn
    finally:
        engine.dispose()


@dataclass(frozen=True)
class World:
    """A directory user in a directory group; an organization whose team `devs` follows that
    group and may pull every repository of the organization."""

    server: TrustyardServer
    user: str
    group: str
    org: str


@pytest.fixture
def world(registry: TrustyardServer, slapd: Slapd) -> World:
    user, group, org = unique("dora"), unique("devs"), unique("org")
    slapd.add_user(user, PASSWORD, f"{user}@example.org", "Dora Explorer")
    slapd.add_group(group, [user])
    with database(registry) as conn:
        accounts = AccountService()
        accounts.create_organization(conn, org, "admin")
        accounts.create_team(conn, org, "devs")
        accounts.set_ldap_group(conn, org, "devs", group)
        accounts.set_team_organization_grant(conn, org, "devs", "read-only")
    return World(registry, user, group, org)


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def token_access(server: TrustyardServer, scope: str, user: str, secret: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/auth/token",
        params={"service": "trustyard", "scope": scope},
        headers=basic(user, secret),
    )


def granted(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    claims: dict[str, Any] = jwt.decode(answer.json()["token"], options={"verify_signature": False})
    return claims


def members(server: TrustyardServer, org: str, team: str) -> list[str]:
    with database(server) as conn:
        return AccountService().members(conn, org, team)


def test_directory_user_logs_in_on_v2_and_the_token_endpoint_and_gets_a_local_account(
    world: World,
) -> None:
    server, user = world.server, world.user

    assert httpx.get(f"{server.url}/v2/", headers=basic(user, PASSWORD)).status_code == 200
    claims = granted(token_access(server, f"repository:{world.org}/app:pull,push", user, PASSWORD))
    form = {"grant_type": "password", "service": "trustyard", "username": user}
    posted = httpx.post(f"{server.url}/auth/token", data=form | {"password": PASSWORD})

    assert claims["sub"] == user
    # The group's team may pull (read-only), not push.
    assert claims["access"] == [
        {"type": "repository", "name": f"{world.org}/app", "actions": ["pull"]}
    ]
    assert posted.status_code == 200, posted.text
    with database(server) as conn:
        local = AccountService().get_user(conn, user)
        stored = AccessStore().password_hash(conn, user)
    assert (local.source, local.email, local.full_name) == (
        "ldap",
        f"{user}@example.org",
        "Dora Explorer",
    )
    assert local.last_login_at is not None
    assert stored is not None
    assert stored[1] is None  # no local password: the directory decides
    assert members(server, world.org, "devs") == [user]


def test_wrong_directory_passwords_are_refused_and_count_towards_the_throttle(
    world: World,
) -> None:
    server, user = world.server, world.user

    refused = httpx.get(f"{server.url}/v2/", headers=basic(user, "not the password"))
    token = token_access(server, "repository:x/y:pull", user, "not the password either")
    for attempt in range(3):
        httpx.get(f"{server.url}/v2/", headers=basic(user, f"guess {attempt}"))

    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert token.status_code == 401
    with database(server) as conn:
        failure = AccessStore().login_failure(conn, pair_key(user, "127.0.0.1"))
        assert AccessStore().user(conn, user) is None  # a refused login creates nobody
    assert failure is not None
    failures, _, locked = failure
    assert failures == 5
    assert locked is not None  # the fifth failure in a row starts the back-off


def test_team_membership_follows_the_group_at_the_next_login(world: World, slapd: Slapd) -> None:
    server, user, org = world.server, world.user, world.org
    with database(server) as conn:
        accounts = AccountService()
        accounts.create_team(conn, org, "ops")  # follows the group's DN, spelt in upper case
        accounts.set_ldap_group(conn, org, "ops", slapd.group_dn(world.group).upper())
        accounts.create_team(conn, org, "handmade")  # managed by hand: LDAP never touches it
    assert httpx.get(f"{server.url}/v2/", headers=basic(user, PASSWORD)).status_code == 200
    with database(server) as conn:
        AccountService().add_member(conn, org, "handmade", user)
    assert members(server, org, "devs") == members(server, org, "ops") == [user]

    slapd.set_group_members(world.group, [])  # ldapmodify: the user leaves the group
    # The registry remembers a checked password for 30 s per process; a restart forgets it,
    # so the next request is a login that asks the directory again.
    server.restart()
    claims = granted(token_access(server, f"repository:{org}/app:pull", user, PASSWORD))

    assert claims["access"] == [{"type": "repository", "name": f"{org}/app", "actions": []}]
    assert members(server, org, "devs") == members(server, org, "ops") == []
    assert members(server, org, "handmade") == [user]

    slapd.set_group_members(world.group, [user])
    server.restart()
    granted(token_access(server, f"repository:{org}/app:pull", user, PASSWORD))

    assert members(server, org, "devs") == [user]


def test_skopeo_pulls_with_the_pull_permission_of_the_groups_team(
    world: World, slapd: Slapd, tmp_path: Path
) -> None:
    server = world.server
    clients = Clients(tmp_path / "clients", [server.host])
    outsider = unique("otto")
    slapd.add_user(outsider, PASSWORD, f"{outsider}@example.org", "Otto Outsider")
    layout = test_images_dir() / "go-binary"
    image = f"docker://{server.host}/{world.org}/app:1.0"
    clients.skopeo("copy", "--dest-creds", f"admin:{ADMIN_PASSWORD}", f"oci:{layout}:latest", image)

    pulled = tmp_path / "pulled"
    clients.skopeo("copy", "--src-creds", f"{world.user}:{PASSWORD}", image, f"oci:{pulled}:x")

    assert layout_top(pulled)["digest"] == layout_top(layout)["digest"]
    with pytest.raises(ClientFailed):  # read-only: no push
        clients.skopeo(
            "copy",
            "--dest-creds",
            f"{world.user}:{PASSWORD}",
            f"oci:{layout}:latest",
            f"docker://{server.host}/{world.org}/app:mine",
        )
    with pytest.raises(ClientFailed):  # a directory user outside the group sees nothing
        clients.skopeo(
            "copy", "--src-creds", f"{outsider}:{PASSWORD}", image, f"oci:{tmp_path / 'o'}:x"
        )
    with pytest.raises(ClientFailed):
        clients.skopeo(
            "copy", "--src-creds", f"{world.user}:wrong", image, f"oci:{tmp_path / 'w'}:x"
        )


def test_directory_outage_is_503_for_directory_users_while_local_admin_logs_in(
    world: World, slapd: Slapd
) -> None:
    server, user, local = world.server, world.user, unique("local")
    with database(server) as conn:
        AccountService().create_user(conn, user, None, source="ldap")  # logged in before
        AccountService().create_user(conn, local, PASSWORD)  # a local account, never logged in

    with slapd.paused():
        v2 = httpx.get(f"{server.url}/v2/", headers=basic(user, PASSWORD))
        token = token_access(server, "repository:x/y:pull", user, PASSWORD)
        newcomer = httpx.get(f"{server.url}/v2/", headers=basic(unique("newcomer"), PASSWORD))
        api = httpx.get(f"{server.url}/api/v1/me", headers=basic(user, PASSWORD))
        admin_v2 = httpx.get(f"{server.url}/v2/", headers=basic("admin", ADMIN_PASSWORD))
        admin_token = token_access(server, "repository:x/y:pull", "admin", ADMIN_PASSWORD)
        local_v2 = httpx.get(f"{server.url}/v2/", headers=basic(local, PASSWORD))

    assert v2.status_code == 503
    error = v2.json()["errors"][0]
    assert error["code"] == "UNAVAILABLE"
    assert "LDAP directory does not answer" in error["message"]
    assert token.status_code == 503
    assert token.json()["error"] == "temporarily_unavailable"
    assert newcomer.status_code == 503
    assert api.status_code == 503
    assert api.headers["content-type"] == "application/problem+json"
    assert admin_v2.status_code == 200
    assert granted(admin_token)["sub"] == "admin"
    assert local_v2.status_code == 200
    with database(server) as conn:  # an outage is no failed login
        assert AccessStore().login_failure(conn, account_key(user)) is None
        assert AccessStore().login_failure(conn, pair_key(user, "127.0.0.1")) is None
    assert httpx.get(f"{server.url}/v2/", headers=basic(user, PASSWORD)).status_code == 200


def test_a_checked_password_is_remembered_so_v2_requests_do_not_ask_the_directory(
    world: World, slapd: Slapd
) -> None:
    with httpx.Client(base_url=world.server.url) as http:  # one connection: one worker process
        assert http.get("/v2/", headers=basic(world.user, PASSWORD)).status_code == 200

        with slapd.paused():
            again = http.get("/v2/", headers=basic(world.user, PASSWORD))
            tags = http.get(f"/v2/{world.org}/app/tags/list", headers=basic(world.user, PASSWORD))
            other = http.get("/v2/", headers=basic(unique("nobody"), PASSWORD))

    assert again.status_code == 200
    assert tags.status_code == 404  # authorized (the team may pull), the repository is absent
    assert tags.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert other.status_code == 503  # the directory was frozen indeed


def test_offline_tokens_of_directory_users_need_the_directory(world: World, slapd: Slapd) -> None:
    # A refresh token checks the password again, past the remembered credentials.
    params = {"service": "trustyard", "offline_token": "true", "client_id": "tests"}
    with httpx.Client(base_url=world.server.url) as http:  # one connection: one worker process
        issued = http.get("/auth/token", params=params, headers=basic(world.user, PASSWORD))

        with slapd.paused():
            down = http.get("/auth/token", params=params, headers=basic(world.user, PASSWORD))

    assert issued.status_code == 200, issued.text
    assert issued.json()["refresh_token"]
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"


def test_refresh_tokens_of_directory_users_follow_the_directory(world: World, slapd: Slapd) -> None:
    """A refresh token never sees the password again: each exchange asks the directory whether
    its owner still exists and in which groups, so leaving a group (or the directory) counts."""
    server, user, org = world.server, world.user, world.org
    scope = f"repository:{org}/app:pull"
    offline = {"service": "trustyard", "offline_token": "true", "client_id": "tests"}
    issued = httpx.get(f"{server.url}/auth/token", params=offline, headers=basic(user, PASSWORD))
    assert issued.status_code == 200, issued.text
    refresh = issued.json()["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": "tests",
        "service": "trustyard",
        "scope": scope,
    }

    def exchange() -> httpx.Response:
        return httpx.post(f"{server.url}/auth/token", data=form)

    first = exchange()
    assert first.status_code == 200, first.text
    assert jwt.decode(first.json()["access_token"], options={"verify_signature": False})[
        "access"
    ] == [{"type": "repository", "name": f"{org}/app", "actions": ["pull"]}]

    slapd.set_group_members(world.group, [])  # she leaves the group: no more pull
    second = exchange()
    assert second.status_code == 200, second.text
    claims = jwt.decode(second.json()["access_token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": f"{org}/app", "actions": []}]
    assert members(server, org, "devs") == []

    with slapd.paused():
        down = exchange()
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"

    slapd.ldapmodify([f"dn: {slapd.user_dn(user)}", "changetype: delete"])
    gone = exchange()
    assert gone.status_code == 400
    assert gone.json()["error"] == "invalid_grant"


def test_ldap_sync_command_applies_group_changes_without_a_login(
    world: World, slapd: Slapd
) -> None:
    server, user, org = world.server, world.user, world.org
    assert httpx.get(f"{server.url}/v2/", headers=basic(user, PASSWORD)).status_code == 200
    release = unique("release")
    slapd.add_group(release, [user])
    with database(server) as conn:
        accounts = AccountService()
        accounts.create_team(conn, org, "release")
        accounts.set_ldap_group(conn, org, "release", release)
    slapd.set_group_members(world.group, [])

    synced = server.cli("ldap-sync")

    lines = synced.stdout.splitlines()
    assert f"joined\t{user}\t{org}/release" in lines
    assert f"left\t{user}\t{org}/devs" in lines
    assert lines[-1].startswith("synced ")
    assert members(server, org, "devs") == []
    assert members(server, org, "release") == [user]
    assert "\t" + user + "\t" not in server.cli("ldap-sync").stdout  # nothing left to do

    slapd.set_group_members(release, [])
    with slapd.paused():
        down = server.cli("ldap-sync", check=False)
    assert down.returncode == 1
    assert "LDAP sync failed, nothing changed" in down.stderr
    assert members(server, org, "release") == [user]


def test_serve_refuses_ldap_settings_the_directory_client_would_refuse(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTYARD_")}
    environment |= {
        "TRUSTYARD_LDAP__ENABLED": "true",
        "TRUSTYARD_LDAP__URL": "http://ldap.example.org",
        "TRUSTYARD_LDAP__USER_BASE_DN": "ou=people,dc=example,dc=org",
        "TRUSTYARD_LDAP__GROUP_BASE_DN": "ou=groups,dc=example,dc=org",
    }
    command = [sys.executable, "-m", "trustyard", "serve", "--data-dir", str(tmp_path / "d")]

    def serve() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=60, check=False
        )

    bad_url = serve()
    del environment["TRUSTYARD_LDAP__URL"]
    no_url = serve()

    assert bad_url.returncode == 2
    assert "invalid LDAP settings" in bad_url.stderr
    assert "LDAP URL must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]" in bad_url.stderr
    assert no_url.returncode != 0
    assert "set TRUSTYARD_LDAP__URL" in no_url.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_the_scheduled_sync_applies_group_changes_without_a_login(
    start_server: Callable[..., TrustyardServer], slapd: Slapd
) -> None:
    """With `ldap.sync_cron`, the server's worker runs the full sync on schedule: someone who
    left the group leaves the team without logging in again."""
    server = start_server(
        "ldap-cron",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_LDAP__SYNC_CRON="* * * * * */2",  # every 2 seconds (seconds come last)
        **ldap_environment(slapd),
    )
    user, group, org = unique("cron"), unique("crew"), unique("org")
    slapd.add_user(user, PASSWORD, f"{user}@example.org", "Cron User")
    slapd.add_group(group, [user])
    with database(server) as conn:
        accounts = AccountService()
        accounts.create_organization(conn, org, "admin")
        accounts.create_team(conn, org, "crew")
        accounts.set_ldap_group(conn, org, "crew", group)
    assert httpx.get(f"{server.url}/v2/", headers=basic(user, PASSWORD)).status_code == 200
    assert members(server, org, "crew") == [user]

    slapd.set_group_members(group, [])
    deadline = time.monotonic() + 120  # a bound for a hung worker, not a speed requirement
    while members(server, org, "crew") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert members(server, org, "crew") == []
