"""Remote registries as managed objects: their SQL (RemoteStore), their checks and their
sealed secret (RemoteService), and what the OCI client is given to reach one.

A remote's password (or robot/personal access token) is sealed at rest with a SecretBox of its
own derivation label (`secret_box`): a database dump reveals no credential, and a value sealed
for webhooks does not open as a remote's. A record never carries it (`has_secret`); only
`endpoint` opens it, for the client. Services take the caller's connection and never commit;
`test` talks to the remote and must be called outside any transaction.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from trustyard.config import MirroringSettings
from trustyard.db.tables import mirror_policies, remotes
from trustyard.errors import Conflict
from trustyard.kit.clock import Clock, utc, utc_now
from trustyard.mirroring.interfaces import (
    MirrorInvalid,
    RemoteInUse,
    RemoteNotKnown,
    RemoteRecord,
)
from trustyard.ociclient.interfaces import ClientLimits, RemoteEndpoint, RemoteError
from trustyard.webhooks.signing import SecretBox

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_URL = 2048
MAX_USERNAME = 255
MAX_PASSWORD = 4096
MAX_CA_BYTES = 64 * 1024
MAX_DESCRIPTION = 1024
MAX_CONCURRENCY = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The key derivation and associated data of mirroring's secrets (remote credentials and pull
# policies' webhook secrets): not webhooks' own.
BOX_INFO: Final = b"trustyard mirroring secrets v1"
BOX_AAD: Final = b"trustyard mirroring secret"


def secret_box(passphrase: str | Callable[[], str]) -> SecretBox:
    """The box mirroring seals its secrets with (the passphrase of webhooks' box, another
    derivation)."""
    return SecretBox(passphrase, info=BOX_INFO, aad=BOX_AAD)


def client_limits(settings: MirroringSettings) -> ClientLimits:
    """The client's bounds as the settings give them."""
    return ClientLimits(
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        max_attempts=settings.max_attempts,
        max_retry_after=settings.max_retry_after_seconds,
        chunk_bytes=settings.chunk_bytes,
    )


@dataclass(frozen=True, slots=True)
class RemoteTest:
    """What "test connection" found: ok, or the error's kind and its diagnosis."""

    ok: bool
    kind: str | None
    message: str


class Pinger(Protocol):
    """What "test connection" uses of the OCI client (RegistryClient)."""

    def ping(self) -> str: ...

    def close(self) -> None: ...


def registry_client(endpoint: RemoteEndpoint, limits: ClientLimits) -> Pinger:
    """The OCI client (trustyard.ociclient.client.RegistryClient) of `endpoint`."""
    module = importlib.import_module("trustyard.ociclient.client")
    client: Pinger = module.RegistryClient(endpoint, limits)
    return client


# --- checks ----------------------------------------------------------------------------------


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise MirrorInvalid(
            "name",
            "a remote's name is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter "
            "or digit",
        )
    return name


def check_url(url: object) -> str:
    """`url` as stored: scheme://host[:port] (lowercased scheme and host, no trailing
    slash), or MirrorInvalid saying what is wrong."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL or _CONTROL.search(url):
        raise MirrorInvalid("url", "a URL such as https://registry.example.com[:port]")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise MirrorInvalid("url", "not a valid URL (check the host and port)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise MirrorInvalid("url", "the scheme must be https:// (or http://)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise MirrorInvalid(
            "url", "credentials do not belong in the URL: give username and password"
        )
    host = parts.hostname
    if not host:
        raise MirrorInvalid("url", "the URL names no host")
    if parts.path not in ("", "/"):
        raise MirrorInvalid("url", "the URL has no path: the registry's API is at /v2/ of it")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise MirrorInvalid("url", "the URL has no query or fragment")
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown}" + (f":{port}" if port is not None else "")


def _check_text(where: str, value: object, most: int, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise MirrorInvalid(where, "a non-empty string")
    if len(value) > most:
        raise MirrorInvalid(where, f"longer than {most} characters")
    if _CONTROL.search(value):
        raise MirrorInvalid(where, "control characters are not allowed")
    return value


def check_ca_certificate(pem: object) -> str:
    """One or more PEM certificates (a CA bundle), parsed."""
    if not isinstance(pem, str) or not pem.strip():
        raise MirrorInvalid("caCertificate", "a PEM certificate (-----BEGIN CERTIFICATE-----)")
    if len(pem.encode()) > MAX_CA_BYTES:
        raise MirrorInvalid("caCertificate", f"longer than {MAX_CA_BYTES} bytes")
    try:
        found = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        found = []
    if not found:
        raise MirrorInvalid(
            "caCertificate", "not a PEM certificate (-----BEGIN CERTIFICATE----- ...)"
        )
    return pem


def check_max_concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise MirrorInvalid("maxConcurrency", f"a whole number from 1 to {MAX_CONCURRENCY}")
    return value


# --- SQL ---------------------------------------------------------------------------------------


def _record(row: Any) -> RemoteRecord:
    return RemoteRecord(
        id=row.id,
        name=row.name,
        url=row.url,
        username=row.username,
        has_secret=row.secret is not None,
        tls_verify=bool(row.tls_verify),
        ca_certificate=row.ca_certificate,
        max_concurrency=row.max_concurrency,
        description=row.description,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


class RemoteStore:
    """All SQL of `remotes`. The sealed secret leaves the store only through `sealed`."""

    def get(self, conn: Connection, name: str) -> RemoteRecord | None:
        row = conn.execute(select(remotes).where(remotes.c.name == name)).first()
        return _record(row) if row is not None else None

    def get_by_id(self, conn: Connection, remote_id: int) -> RemoteRecord | None:
        row = conn.execute(select(remotes).where(remotes.c.id == remote_id)).first()
        return _record(row) if row is not None else None

    def list(self, conn: Connection) -> list[RemoteRecord]:
        return [_record(row) for row in conn.execute(select(remotes).order_by(remotes.c.name))]

    def sealed(self, conn: Connection, remote_id: int) -> tuple[RemoteRecord, str | None] | None:
        """The record and its sealed secret (for `RemoteService.endpoint` only)."""
        row = conn.execute(select(remotes).where(remotes.c.id == remote_id)).first()
        return (_record(row), row.secret) if row is not None else None

    def insert(self, conn: Connection, values: dict[str, Any]) -> int:
        """The new remote's id; Conflict when its name was taken meanwhile."""
        try:
            with conn.begin_nested():
                result = conn.execute(insert(remotes).values(**values).returning(remotes.c.id))
                return int(result.scalar_one())
        except IntegrityError:
            raise Conflict("remote", str(values["name"])) from None

    def update(self, conn: Connection, remote_id: int, values: dict[str, Any]) -> None:
        """Store `values`; Conflict when a new name was taken meanwhile."""
        try:
            with conn.begin_nested():
                conn.execute(update(remotes).where(remotes.c.id == remote_id).values(**values))
        except IntegrityError:
            raise Conflict("remote", str(values.get("name", remote_id))) from None

    def delete(self, conn: Connection, remote_id: int) -> None:
        conn.execute(delete(remotes).where(remotes.c.id == remote_id))

    def lock(self, conn: Connection, name: str) -> RemoteRecord | None:
        """The remote, its row locked until the transaction ends (PostgreSQL)."""
        query = select(remotes).where(remotes.c.name == name).with_for_update()
        row = conn.execute(query).first()
        return _record(row) if row is not None else None

    def policies_naming(self, conn: Connection, remote_id: int) -> int:
        query = select(func.count()).where(mirror_policies.c.remote_id == remote_id)
        return int(conn.scalar(query) or 0)


# --- the service -------------------------------------------------------------------------------


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class RemoteService:
    def __init__(
        self,
        store: RemoteStore,
        box: SecretBox,
        settings: MirroringSettings,
        clock: Clock = utc_now,
        client_factory: Callable[[RemoteEndpoint, ClientLimits], Pinger] | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.settings = settings
        self.clock = clock
        self.client_factory = client_factory or registry_client
        self.limits = client_limits(settings)

    # --- changes -----------------------------------------------------------------------------
    def create(
        self,
        conn: Connection,
        *,
        name: str,
        url: str,
        username: str | None = None,
        password: str | None = None,
        tls_verify: bool = True,
        ca_certificate: str | None = None,
        max_concurrency: int | None = None,
        description: str = "",
        actor: str | None,
    ) -> RemoteRecord:
        """A new remote; Conflict when the name is taken, MirrorInvalid naming the field at
        fault."""
        values: dict[str, Any] = {
            "name": check_name(name),
            "url": check_url(url),
            "username": _username(username),
            "secret": self._seal(password),
            "tls_verify": _flag("tlsVerify", tls_verify),
            "ca_certificate": check_ca_certificate(ca_certificate)
            if ca_certificate is not None
            else None,
            "max_concurrency": check_max_concurrency(
                self.settings.max_concurrency if max_concurrency is None else max_concurrency
            ),
            "description": _check_text("description", description, MAX_DESCRIPTION, empty=True),
        }
        if self.store.get(conn, name) is not None:
            raise Conflict("remote", name)
        now = self.clock()
        remote_id = self.store.insert(
            conn, {**values, "created_by": actor, "created_at": now, "updated_at": now}
        )
        return self._read(conn, remote_id)

    def update(
        self,
        conn: Connection,
        name: str,
        *,
        actor: str | None,
        url: str | _Unset = UNSET,
        username: str | _Unset | None = UNSET,
        password: str | None = None,
        tls_verify: bool | _Unset = UNSET,
        ca_certificate: str | _Unset | None = UNSET,
        max_concurrency: int | _Unset | None = UNSET,
        description: str | _Unset = UNSET,
        new_name: str | _Unset = UNSET,
    ) -> RemoteRecord:
        """Change what is given (not given: kept). `password` None keeps the stored secret,
        "" clears it; `username`/`caCertificate` None clear them; `max_concurrency` None
        restores the default; `new_name` renames (policies follow: they name the id)."""
        current = self.store.lock(conn, name)
        if current is None:
            raise RemoteNotKnown(name)
        values: dict[str, Any] = {}
        if not isinstance(new_name, _Unset) and new_name != current.name:
            values["name"] = check_name(new_name)
            if self.store.get(conn, new_name) is not None:
                raise Conflict("remote", new_name)
        if not isinstance(url, _Unset):
            values["url"] = check_url(url)
        if not isinstance(username, _Unset):
            values["username"] = _username(username)
        if password is not None:
            values["secret"] = self._seal(password) if password != "" else None
        if not isinstance(tls_verify, _Unset):
            values["tls_verify"] = _flag("tlsVerify", tls_verify)
        if not isinstance(ca_certificate, _Unset):
            values["ca_certificate"] = (
                check_ca_certificate(ca_certificate) if ca_certificate is not None else None
            )
        if not isinstance(max_concurrency, _Unset):
            values["max_concurrency"] = check_max_concurrency(
                self.settings.max_concurrency if max_concurrency is None else max_concurrency
            )
        if not isinstance(description, _Unset):
            values["description"] = _check_text(
                "description", description, MAX_DESCRIPTION, empty=True
            )
        if values:
            self.store.update(conn, current.id, {**values, "updated_at": self.clock()})
        return self._read(conn, current.id)

    def delete(self, conn: Connection, name: str) -> RemoteRecord:
        """Delete the remote; RemoteInUse while policies name it."""
        current = self.store.lock(conn, name)
        if current is None:
            raise RemoteNotKnown(name)
        naming = self.store.policies_naming(conn, current.id)
        if naming:
            raise RemoteInUse(name, naming)
        try:
            with conn.begin_nested():
                self.store.delete(conn, current.id)
        except IntegrityError:  # a policy naming it was created meanwhile
            raise RemoteInUse(name, max(1, self.store.policies_naming(conn, current.id))) from None
        return current

    # --- reads -------------------------------------------------------------------------------
    def get(self, conn: Connection, name: str) -> RemoteRecord:
        found = self.store.get(conn, name)
        if found is None:
            raise RemoteNotKnown(name)
        return found

    def get_by_id(self, conn: Connection, remote_id: int) -> RemoteRecord:
        found = self.store.get_by_id(conn, remote_id)
        if found is None:
            raise RemoteNotKnown(remote_id)
        return found

    def list(self, conn: Connection) -> list[RemoteRecord]:
        return self.store.list(conn)

    def endpoint(self, conn: Connection, remote_id: int) -> RemoteEndpoint:
        """What the client needs to reach the remote, its secret opened (SecretUnreadable
        when the passphrase changed since it was sealed)."""
        found = self.store.sealed(conn, remote_id)
        if found is None:
            raise RemoteNotKnown(remote_id)
        record, sealed = found
        return RemoteEndpoint(
            url=record.url,
            username=record.username,
            password=self.box.open(sealed) if sealed is not None else None,
            tls_verify=record.tls_verify,
            ca_certificate=record.ca_certificate,
            max_concurrency=record.max_concurrency,
            key=str(record.id),
        )

    def test(self, endpoint: RemoteEndpoint) -> RemoteTest:
        """ "Test connection": reach /v2/ and go through the remote's auth flow (outside any
        transaction: this waits on the network)."""
        try:
            client = self.client_factory(endpoint, self.limits)
            try:
                return RemoteTest(ok=True, kind=None, message=client.ping())
            finally:
                client.close()
        except RemoteError as error:
            return RemoteTest(ok=False, kind=error.kind, message=error.message)

    # --- helpers -----------------------------------------------------------------------------
    def _seal(self, password: str | None) -> str | None:
        if password is None or password == "":
            return None
        return self.box.seal(_check_text("password", password, MAX_PASSWORD))

    def _read(self, conn: Connection, remote_id: int) -> RemoteRecord:
        found = self.store.get_by_id(conn, remote_id)
        assert found is not None  # written in this transaction
        return found


def _username(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return _check_text("username", value, MAX_USERNAME)


def _flag(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise MirrorInvalid(where, "true or false")
    return value
