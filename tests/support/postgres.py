"""Throw-away PostgreSQL clusters for integration tests.

PostgreSQL refuses to run as root, so when the tests run as root every server
command runs as the ``postgres`` user (``runuser -u postgres --``) in a temp
folder owned by that user. The server listens on 127.0.0.1 only (plus a Unix
socket in the temp folder), trusts local connections, and runs with
``fsync=off``: fast, and never meant to survive a crash.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .lifecycle import StartStop
from .ports import LOOPBACK, free_port, kill_pid, pid_alive

PG_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
SUPERUSER = "postgres"
START_ATTEMPTS = 3
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_HBA = (
    "# throw-away test cluster: trust the Unix socket and loopback TCP\n"
    "local all all trust\n"
    f"host all all {LOOPBACK}/32 trust\n"
)
_SERVER_SETTINGS = (
    f"listen_addresses={LOOPBACK}",
    "max_connections=200",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
)


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    found = [
        path
        for path in PG_ROOT.glob("*/bin")
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    return max(found, key=_version_key, default=None)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bin_dir.parent.name.split(".") if part.isdigit())


def _run(argv: list[str], cwd: Path, timeout: float) -> None:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        msg = f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        raise RuntimeError(msg)


class PostgresCluster(StartStop):
    """A PostgreSQL cluster in a temp folder on a free loopback port.

    Use ``start()``/``stop()`` or ``with PostgresCluster() as pg: ...``; then
    ``pg.create_database("name")`` returns a SQLAlchemy URL for a new database.
    """

    def __init__(
        self,
        pg_bin: Path | None = None,
        base_dir: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._pg_bin = pg_bin
        self._base_dir = base_dir
        self._timeout = timeout
        self.port = 0
        self.workdir: Path | None = None
        self.start_seconds: float | None = None

    # -- public API ----------------------------------------------------------

    @property
    def host(self) -> str:
        """The loopback address the server listens on."""
        return LOOPBACK

    def start(self) -> None:
        """Create the cluster (initdb) and start the server; wait until it accepts."""
        if self.workdir is not None:
            msg = "cluster already started"
            raise RuntimeError(msg)
        began = time.monotonic()
        self.workdir = self._make_workdir()
        try:
            self._initdb()
            self._data_dir.joinpath("pg_hba.conf").write_text(_HBA, encoding="utf-8")
            self._start_server()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its folder. Idempotent."""
        if self.workdir is None:
            return
        try:
            self._stop_server()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its ``postgresql+psycopg://`` URL."""
        if not _DB_NAME.fullmatch(name):
            msg = f"database name must match {_DB_NAME.pattern}: {name!r}"
            raise ValueError(msg)
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` (trust auth: no password)."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for ``psycopg.connect`` (TCP on loopback)."""
        return make_conninfo(host=LOOPBACK, port=self.port, user=SUPERUSER, dbname=dbname)

    # -- internals -----------------------------------------------------------

    @property
    def _workdir(self) -> Path:
        if self.workdir is None:
            msg = "cluster not started"
            raise RuntimeError(msg)
        return self.workdir

    @property
    def _data_dir(self) -> Path:
        return self._workdir / "data"

    @property
    def _log_file(self) -> Path:
        return self._workdir / "postgres.log"

    def _bin(self, tool: str) -> str:
        if self._pg_bin is None:
            self._pg_bin = find_pg_bin()
        if self._pg_bin is None:
            msg = f"PostgreSQL not found under {PG_ROOT} (run scripts/install-system-deps.sh)"
            raise RuntimeError(msg)
        return str(self._pg_bin / tool)

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", OS_USER, "--", *argv]

    def _make_workdir(self) -> Path:
        workdir = Path(tempfile.mkdtemp(prefix="trustyard-pg-", dir=self._base_dir))
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OS_USER)
            os.chown(workdir, owner.pw_uid, owner.pw_gid)
        return workdir

    def _initdb(self) -> None:
        argv = [
            self._bin("initdb"),
            *("-D", str(self._data_dir), "-U", SUPERUSER, "-E", "UTF8"),
            *("--locale=C", "--auth=trust", "--no-sync", "--no-instructions"),
        ]
        _run(self._as_owner(argv), self._workdir, self._timeout)

    def _server_options(self) -> str:
        options = ["-p", str(self.port), "-k", str(self._workdir)]
        for setting in _SERVER_SETTINGS:
            options += ["-c", setting]
        return shlex.join(options)

    def _start_server(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._pg_ctl("start", "-l", str(self._log_file), "-o", self._server_options())
            except RuntimeError as error:
                self._kill_postmaster()
                if attempt == START_ATTEMPTS or not self._port_was_taken():
                    raise RuntimeError(f"{error}\n--- server log ---\n{self._log_tail()}") from None
            else:
                return

    def _pg_ctl(self, action: str, *options: str) -> None:
        argv = [self._bin("pg_ctl"), "-D", str(self._data_dir), "-w"]
        argv += ["-t", str(int(self._timeout)), *options, action]
        _run(self._as_owner(argv), self._workdir, self._timeout + 10)

    def _stop_server(self) -> None:
        if not (self._data_dir / "postmaster.pid").exists():
            return
        try:
            self._pg_ctl("stop", "-m", "immediate")
        finally:
            self._kill_postmaster()

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self._data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first_line) if first_line.strip().isdigit() else None

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl could not stop the server: SIGKILL its PID."""
        pid = self._postmaster_pid()
        if pid is not None and pid_alive(pid):
            kill_pid(pid)

    def _port_was_taken(self) -> bool:
        return "Address already in use" in self._log_tail()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self._log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
