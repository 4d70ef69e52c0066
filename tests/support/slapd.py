"""Throw-away OpenLDAP servers (Debian ``slapd``) for integration tests.

Each ``Slapd`` writes a ``slapd.conf`` into a temp folder (mdb backend, suffix
``dc=example,dc=org``, the core/cosine/inetOrgPerson schemas), runs ``slapd -d none``
as our own foreground child on a free loopback port, and seeds ``ou=people`` and
``ou=groups``. Entries are written with ``ldapadd``/``ldapmodify`` (ldap-utils), an
LDAP client independent of the ``ldap3`` library the code under test uses. The
system slapd service, if any, is neither used nor touched.

Access rules are a typical directory's: anyone may read entries (so anonymous
searches work), passwords can only be used to bind. With ``tls=True`` the server
also offers StartTLS on ``url`` and listens on ``ldaps_url``, with a self-signed
certificate for 127.0.0.1 (``ca_file``) made by ``openssl``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .lifecycle import StartStop
from .ports import LOOPBACK, free_port

SLAPD = Path("/usr/sbin/slapd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson")
BASE_DN = "dc=example,dc=org"
START_ATTEMPTS = 3
STOP_GRACE_S = 10.0
# An anonymous LDAPv3 BindRequest, message id 1: SEQUENCE { 1, [APPLICATION 0] { 3, "", [0] "" } }
_ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")
_BIND_RESPONSE_TAG = 0x61


def _rdn_value(value: str) -> str:
    """Escape an attribute value for use in a DN (RFC 4514)."""
    escaped = "".join("\\" + char if char in ',+"\\<>;=' else char for char in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _ldif(attribute: str, value: str) -> str:
    """One LDIF line; base64 when the value is not a plain "safe string" (RFC 2849)."""
    safe = value.isascii() and not any(char in value for char in "\0\r\n")
    if safe and value and (value[0] in " :<" or value[-1] == " "):
        safe = False
    if safe:
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode()).decode()}"


def ssha(password: str) -> str:
    """``{SSHA}`` userPassword value, as ``slappasswd`` makes it."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def answers_ldap(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """True when ``host:port`` answers an anonymous LDAP bind with a BindResponse."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_ANONYMOUS_BIND)
            reply = sock.recv(64)
    except OSError:
        return False
    return len(reply) > 5 and reply[0] == 0x30 and _BIND_RESPONSE_TAG in reply[2:6]


class Slapd(StartStop):
    """Context manager: ``with Slapd() as ldap: ldap.add_user(...); connect to ldap.url``."""

    def __init__(
        self, base_dir: Path | None = None, timeout: float = 30.0, *, tls: bool = False
    ) -> None:
        self._base_dir = base_dir
        self._timeout = timeout
        self._tls = tls
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.ldaps_port = 0
        self.workdir: Path | None = None
        self.start_seconds: float | None = None
        self.base_dn = BASE_DN
        self.admin_dn = f"cn=admin,{BASE_DN}"
        self.admin_password = secrets.token_urlsafe(12)
        self.people_dn = f"ou=people,{BASE_DN}"
        self.groups_dn = f"ou=groups,{BASE_DN}"

    # -- public API ----------------------------------------------------------

    @property
    def url(self) -> str:
        """``ldap://127.0.0.1:PORT``."""
        return f"ldap://{LOOPBACK}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """``ldaps://127.0.0.1:PORT`` (only with ``tls=True``)."""
        if not self._tls:
            msg = "slapd runs without TLS"
            raise RuntimeError(msg)
        return f"ldaps://{LOOPBACK}:{self.ldaps_port}"

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate, to trust as a CA (only with ``tls=True``)."""
        return self._workdir / "server.crt"

    @property
    def pid(self) -> int | None:
        """The slapd process (our child) while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Configure and start slapd; returns once it answers LDAP and holds the base entries."""
        if self.workdir is not None:
            msg = "slapd already started"
            raise RuntimeError(msg)
        began = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="trustyard-slapd-", dir=self._base_dir))
        try:
            (self.workdir / "data").mkdir()
            self._password_file.write_text(self.admin_password, encoding="utf-8")
            self._password_file.chmod(0o600)
            if self._tls:
                self._make_certificate()
            self._launch_with_retries()
            self._seed()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop slapd by PID (SIGTERM, SIGKILL after 10 s) and delete its folder. Idempotent."""
        try:
            self._terminate()
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def user_dn(self, uid: str) -> str:
        return f"uid={_rdn_value(uid)},{self.people_dn}"

    def group_dn(self, cn: str) -> str:
        return f"cn={_rdn_value(cn)},{self.groups_dn}"

    def add_user(self, uid: str, password: str, mail: str, cn: str) -> str:
        """Add an inetOrgPerson (password stored as ``{SSHA}``); return its DN."""
        dn = self.user_dn(uid)
        surname = cn.rsplit(" ", 1)[-1] or cn
        self.ldapadd(
            [
                _ldif("dn", dn),
                "objectClass: inetOrgPerson",
                _ldif("uid", uid),
                _ldif("cn", cn),
                _ldif("sn", surname),
                _ldif("mail", mail),
                _ldif("userPassword", ssha(password)),
            ]
        )
        return dn

    def add_group(self, cn: str, member_uids: Iterable[str], *, unique: bool = False) -> str:
        """Add a groupOfNames (``member``) or, with ``unique``, a groupOfUniqueNames
        (``uniqueMember``) of the given users; return its DN.

        Both classes require a member, so an empty group holds the admin DN instead.
        """
        dn = self.group_dn(cn)
        object_class, attribute = self._group_schema(unique)
        lines = [_ldif("dn", dn), f"objectClass: {object_class}", _ldif("cn", cn)]
        lines += [_ldif(attribute, member) for member in self._members(member_uids)]
        self.ldapadd(lines)
        return dn

    def set_group_members(
        self, cn: str, member_uids: Iterable[str], *, unique: bool = False
    ) -> None:
        """Replace the members of group ``cn`` (as created by ``add_group``)."""
        _, attribute = self._group_schema(unique)
        lines = [_ldif("dn", self.group_dn(cn)), "changetype: modify", f"replace: {attribute}"]
        lines += [_ldif(attribute, member) for member in self._members(member_uids)]
        self.ldapmodify([*lines, "-"])

    def ldapadd(self, lines: list[str]) -> None:
        """Add the entries of an LDIF text (given as lines) as the admin."""
        self._ldap_tool("ldapadd", lines)

    def ldapmodify(self, lines: list[str]) -> None:
        """Apply LDIF change records (given as lines) as the admin."""
        self._ldap_tool("ldapmodify", lines)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze slapd (SIGSTOP): connections are accepted by the kernel, nothing answers."""
        pid = self._running_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    # -- internals -----------------------------------------------------------

    @property
    def _workdir(self) -> Path:
        if self.workdir is None:
            msg = "slapd not started"
            raise RuntimeError(msg)
        return self.workdir

    @property
    def _password_file(self) -> Path:
        return self._workdir / "admin.password"

    @property
    def _log_file(self) -> Path:
        return self._workdir / "slapd.log"

    def _running_pid(self) -> int:
        if self._proc is None or self._proc.poll() is not None:
            msg = "slapd is not running"
            raise RuntimeError(msg)
        return self._proc.pid

    def _group_schema(self, unique: bool) -> tuple[str, str]:
        return ("groupOfUniqueNames", "uniqueMember") if unique else ("groupOfNames", "member")

    def _members(self, member_uids: Iterable[str]) -> list[str]:
        return [self.user_dn(uid) for uid in member_uids] or [self.admin_dn]

    def _config(self) -> str:
        workdir = self._workdir
        lines = [f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS]
        lines += self._tls_config()
        lines += [
            f"pidfile {workdir / 'slapd.pid'}",
            f"argsfile {workdir / 'slapd.args'}",
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
            "database mdb",
            "maxsize 16777216",
            f'suffix "{self.base_dn}"',
            f'rootdn "{self.admin_dn}"',
            f"rootpw {self.admin_password}",
            f"directory {workdir / 'data'}",
            "dbnosync",
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by * read",
        ]
        return "\n".join(lines) + "\n"

    def _tls_config(self) -> list[str]:
        if not self._tls:
            return []
        return [
            f"TLSCACertificateFile {self.ca_file}",
            f"TLSCertificateFile {self.ca_file}",
            f"TLSCertificateKeyFile {self._workdir / 'server.key'}",
        ]

    def _make_certificate(self) -> None:
        argv = [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "2", "-subj", "/CN=trustyard test slapd"),
            *("-addext", f"subjectAltName=IP:{LOOPBACK}"),
            *("-keyout", str(self._workdir / "server.key"), "-out", str(self.ca_file)),
        ]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=self._timeout, check=False
        )
        if result.returncode != 0:
            msg = f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
            raise RuntimeError(msg)

    def _launch_with_retries(self) -> None:
        if not SLAPD.is_file():
            msg = f"{SLAPD} not found (run scripts/install-system-deps.sh)"
            raise RuntimeError(msg)
        conf = self._workdir / "slapd.conf"
        conf.write_text(self._config(), encoding="utf-8")
        errors: list[str] = []
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            self.ldaps_port = free_port() if self._tls else 0
            error = self._launch(conf)
            if error is None:
                return
            errors.append(f"port {self.port}: {error}")
            if "Address already in use" not in error:
                break
        msg = "slapd did not start:\n" + "\n---\n".join(errors)
        raise RuntimeError(msg)

    def _launch(self, conf: Path) -> str | None:
        """Start slapd once; None when it answers, else what went wrong."""
        listen = f"{self.url}/" + (f" {self.ldaps_url}/" if self._tls else "")
        argv = [str(SLAPD), "-f", str(conf), "-h", listen, "-d", "none"]
        with self._log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self._timeout
        while not answers_ldap(self.port):
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                return f"slapd exited with {code}:\n{self._log_tail()}"
            if time.monotonic() >= deadline:
                self._terminate()
                return f"no LDAP answer within {self._timeout:.0f}s:\n{self._log_tail()}"
            time.sleep(0.02)
        return None

    def _seed(self) -> None:
        self.ldapadd(
            [
                _ldif("dn", self.base_dn),
                "objectClass: dcObject",
                "objectClass: organization",
                "dc: example",
                "o: Example",
                "",
                _ldif("dn", self.people_dn),
                "objectClass: organizationalUnit",
                "ou: people",
                "",
                _ldif("dn", self.groups_dn),
                "objectClass: organizationalUnit",
                "ou: groups",
            ]
        )

    def _ldap_tool(self, tool: str, lines: list[str]) -> None:
        argv = [tool, "-x", "-H", self.url, "-D", self.admin_dn, "-y", str(self._password_file)]
        result = subprocess.run(
            argv,
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=self._timeout,
            check=False,
        )
        if result.returncode != 0:
            msg = f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
            raise RuntimeError(msg)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a paused slapd cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_GRACE_S)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self._log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
