"""Login against an LDAP directory, and the team changes its groups imply.

`LdapDirectory.authenticate` finds the user with a service account (or anonymously), proves the
password by binding as that user, then lists the user's groups. It answers None for "no such
user" and "wrong password" alike, and raises `LdapUnavailable` when the directory cannot be
asked (unreachable, too slow, or the service account is refused), so a caller never mistakes an
outage for bad credentials. `lookup` finds a user without their password (for the group sync
job). `plan_team_sync` turns the groups into team additions and removals.

No HTTP and no database here; passwords are never logged nor shown in a repr.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ldap3 import Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.core.results import (
    RESULT_BUSY,
    RESULT_INVALID_CREDENTIALS,
    RESULT_OTHER,
    RESULT_SIZE_LIMIT_EXCEEDED,
    RESULT_SUCCESS,
    RESULT_UNAVAILABLE,
)
from ldap3.utils.conv import escape_filter_chars

log = logging.getLogger(__name__)

# Bind results that mean "the directory could not decide", not "these credentials are wrong".
_OUTAGE_RESULTS = frozenset({RESULT_BUSY, RESULT_UNAVAILABLE, RESULT_OTHER})
_SEARCH_OK = frozenset({RESULT_SUCCESS, RESULT_SIZE_LIMIT_EXCEEDED})


class LdapUnavailable(Exception):
    """The directory could not be asked: unreachable, timed out, or refused the service bind."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LdapConfig:
    """Where the directory is and how users and their groups are found in it.

    `user_filter` may use `{username}`; `group_filter` may use `{dn}` (the user's DN) and
    `{username}`. Both values are escaped for LDAP filters before they are substituted.
    """

    url: str
    user_base_dn: str
    group_base_dn: str
    bind_dn: str | None = None  # None: search anonymously
    bind_password: str | None = field(default=None, repr=False)
    user_filter: str = "(uid={username})"
    username_attribute: str = "uid"
    email_attribute: str = "mail"
    display_name_attribute: str = "cn"
    group_filter: str = "(|(member={dn})(uniqueMember={dn}))"
    group_name_attribute: str = "cn"
    start_tls: bool = False
    ca_file: str | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"ldap", "ldaps"} or not parts.hostname:
            msg = f"LDAP URL must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]: {self.url!r}"
            raise ValueError(msg)
        if parts.scheme == "ldaps" and self.start_tls:
            msg = "start_tls applies to ldap:// URLs; ldaps:// is TLS from the start"
            raise ValueError(msg)
        if (self.bind_dn is None) != (self.bind_password is None) or self.bind_password == "":
            # A DN with an empty password is an "unauthenticated bind": it succeeds as anonymous.
            msg = "bind_dn and a non-empty bind_password go together (neither: anonymous search)"
            raise ValueError(msg)
        if not self.timeout > 0:
            msg = f"timeout must be positive: {self.timeout}"
            raise ValueError(msg)
        _check_template("user_filter", self.user_filter, username="x")
        _check_template("group_filter", self.group_filter, username="x", dn="x")

    @property
    def uses_tls(self) -> bool:
        return self.start_tls or self.url.startswith("ldaps:")


def _check_template(name: str, template: str, **values: str) -> None:
    try:
        template.format(**values)
    except (KeyError, IndexError, AttributeError, ValueError) as error:
        allowed = ", ".join("{" + key + "}" for key in values)
        msg = f"{name} may only use {allowed}: {template!r} ({error})"
        raise ValueError(msg) from None


@dataclass(frozen=True, slots=True)
class LdapIdentity:
    """A user the directory vouched for. `groups` holds each group's name and its DN."""

    dn: str
    username: str
    email: str | None
    display_name: str | None
    groups: frozenset[str]


class LdapDirectory:
    """Authenticates users against one LDAP directory. Each call uses its own connections."""

    def __init__(self, config: LdapConfig) -> None:
        self.config = config

    def authenticate(self, username: str, password: str) -> LdapIdentity | None:
        """The user's identity if `password` is theirs; None for an unknown user or a wrong
        password; `LdapUnavailable` when the directory cannot answer."""
        if not username or not password:
            return None  # an empty password would be an anonymous bind, which "succeeds"
        return self._identify(username, password)

    def lookup(self, username: str) -> LdapIdentity | None:
        """The identity of the user whose `username_attribute` is `username` (not a login
        name: the user filter may match e.g. mail addresses), without their password, for the
        group sync job. The user filter still decides who counts, its `{username}` read as any
        value. None when no entry matches; `LdapUnavailable` as `authenticate`."""
        if not username:
            return None
        return self._identify(username, None)

    def _identify(self, username: str, password: str | None) -> LdapIdentity | None:
        """With a password: a login (the user filter finds `username`); without: `lookup`."""
        cfg = self.config
        server = self._server()
        with self._service_connection(server) as service:
            entry = self._find_user(service, username, by_name=password is None)
            if entry is None:
                return None
            dn = str(entry["dn"])
            if password is not None and not self._password_matches(server, dn, password):
                return None
            attrs: Mapping[str, Any] = entry.get("attributes") or {}
            # The name as the directory spells it (the search may have ignored case).
            stored_name = _pick(attrs, cfg.username_attribute, prefer=username) or username
            groups = self._groups_of(service, dn, stored_name)
        return LdapIdentity(
            dn=dn,
            username=stored_name,
            email=_pick(attrs, cfg.email_attribute),
            display_name=_pick(attrs, cfg.display_name_attribute),
            groups=groups,
        )

    # -- connections ---------------------------------------------------------

    def _server(self) -> Server:
        cfg = self.config
        tls = None
        if cfg.uses_tls:
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=cfg.ca_file,
                sni=urlsplit(cfg.url).hostname,
            )
        return Server(
            cfg.url,
            tls=tls,
            get_info="NO_INFO",
            connect_timeout=cfg.timeout,
            mode="IP_SYSTEM_DEFAULT",
        )

    def _connection(self, server: Server, user: str | None, password: str | None) -> Connection:
        """An open (and, if configured, TLS-protected) but not yet bound connection."""
        conn = Connection(
            server,
            user=user,
            password=password,
            auto_bind="NONE",
            auto_referrals=False,
            read_only=True,
            raise_exceptions=False,
            receive_timeout=math.ceil(self.config.timeout),  # ldap3 wants whole seconds
        )
        try:
            conn.open(read_server_info=False)
            if self.config.start_tls and not conn.start_tls(read_server_info=False):
                msg = f"StartTLS refused: {_describe(conn.result)}"
                raise LdapUnavailable(msg)
        except LDAPException as error:
            _close(conn)
            msg = f"cannot reach LDAP directory {self.config.url}: {error}"
            raise LdapUnavailable(msg) from None
        except BaseException:
            _close(conn)
            raise
        return conn

    @contextmanager
    def _service_connection(self, server: Server) -> Iterator[Connection]:
        cfg = self.config
        conn = self._connection(server, cfg.bind_dn, cfg.bind_password)
        try:
            if not _bind(conn):
                who = cfg.bind_dn or "anonymous"
                msg = f"LDAP service bind as {who} failed: {_describe(conn.result)}"
                raise LdapUnavailable(msg)
            yield conn
        finally:
            _close(conn)

    def _password_matches(self, server: Server, dn: str, password: str) -> bool:
        conn = self._connection(server, dn, password)
        try:
            if _bind(conn):
                return True
            code = _result_code(conn.result)
            if code in _OUTAGE_RESULTS:
                msg = f"LDAP directory could not check the password: {_describe(conn.result)}"
                raise LdapUnavailable(msg)
            if code != RESULT_INVALID_CREDENTIALS:
                log.warning("LDAP bind as %s refused: %s", dn, _describe(conn.result))
            return False
        finally:
            _close(conn)

    # -- searches ------------------------------------------------------------

    def _search(
        self, conn: Connection, base: str, search_filter: str, attributes: list[str], limit: int
    ) -> list[dict[str, Any]]:
        try:
            conn.search(
                base,
                search_filter,
                search_scope="SUBTREE",
                dereference_aliases="NEVER",
                attributes=attributes,
                size_limit=limit,
                time_limit=math.ceil(self.config.timeout),
            )
        except LDAPException as error:
            msg = f"LDAP search under {base} failed: {error}"
            raise LdapUnavailable(msg) from None
        if _result_code(conn.result) not in _SEARCH_OK:
            msg = f"LDAP search under {base} failed: {_describe(conn.result)}"
            raise LdapUnavailable(msg)
        return [item for item in conn.response or () if item.get("type") == "searchResEntry"]

    def _find_user(
        self, conn: Connection, username: str, *, by_name: bool = False
    ) -> dict[str, Any] | None:
        cfg = self.config
        escaped = escape_filter_chars(username)
        search_filter = cfg.user_filter.format(username=escaped)
        if by_name:
            admitted = cfg.user_filter.format(username="*")
            search_filter = f"(&({cfg.username_attribute}={escaped}){admitted})"
        attributes = [cfg.username_attribute, cfg.email_attribute, cfg.display_name_attribute]
        entries = self._search(conn, cfg.user_base_dn, search_filter, attributes, limit=2)
        if len(entries) > 1:
            log.warning("LDAP user filter %s matches several entries: login refused", search_filter)
            return None
        return entries[0] if entries else None

    def _groups_of(self, conn: Connection, dn: str, username: str) -> frozenset[str]:
        cfg = self.config
        search_filter = cfg.group_filter.format(
            dn=escape_filter_chars(dn), username=escape_filter_chars(username)
        )
        entries = self._search(
            conn, cfg.group_base_dn, search_filter, [cfg.group_name_attribute], limit=0
        )
        groups: set[str] = set()
        for entry in entries:
            groups.add(str(entry["dn"]))
            groups.update(_values(entry.get("attributes") or {}, cfg.group_name_attribute))
        return frozenset(groups)


def _bind(conn: Connection) -> bool:
    try:
        return bool(conn.bind(read_server_info=False))
    except LDAPException as error:
        msg = f"LDAP directory stopped answering: {error}"
        raise LdapUnavailable(msg) from None


def _close(conn: Connection) -> None:
    try:
        conn.unbind()
    except LDAPException as error:  # the answer is already known; a failed goodbye changes nothing
        log.debug("LDAP unbind failed: %s", error)


def _result_code(result: Any) -> int | None:
    if isinstance(result, dict) and isinstance(result.get("result"), int):
        return int(result["result"])
    return None


def _describe(result: Any) -> str:
    if not isinstance(result, dict):
        return "no answer"
    parts = [str(result.get("description") or result.get("result"))]
    if result.get("message"):
        parts.append(str(result["message"]))
    return ": ".join(parts)


def _values(attributes: Mapping[str, Any], name: str) -> list[str]:
    """An attribute's values as text (ldap3 gives a list, a single value, or bytes)."""
    raw = attributes.get(name)
    if raw is None:
        return []
    items = raw if isinstance(raw, list | tuple) else [raw]
    texts = (
        item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in items
    )
    return [text for text in texts if text]


def _pick(attributes: Mapping[str, Any], name: str, prefer: str | None = None) -> str | None:
    """One value of an attribute: the one equal to `prefer` (ignoring case) or the first."""
    values = _values(attributes, name)
    if prefer is not None:
        for value in values:
            if value.casefold() == prefer.casefold():
                return value
    return values[0] if values else None


# -- group -> team synchronisation ---------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamSyncPlan:
    """Teams ("org/team") to add the user to and to remove them from."""

    add: frozenset[str]
    remove: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def plan_team_sync(
    identity_groups: set[str] | frozenset[str],
    links: Iterable[tuple[str, str]],
    current_teams: set[str] | frozenset[str],
) -> TeamSyncPlan:
    """What to change so the user is in exactly the linked teams their groups grant.

    `links` pairs an LDAP group name or DN (compared exactly) with a team key; a team may be
    linked to several groups and a group to several teams. Teams that no link names are
    managed by hand and are never removed.
    """
    pairs = list(links)
    wanted = {team for group, team in pairs if group in identity_groups}
    managed = {team for _, team in pairs}
    return TeamSyncPlan(
        add=frozenset(wanted - current_teams),
        remove=frozenset((current_teams & managed) - wanted),
    )
