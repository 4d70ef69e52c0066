"""Checks a command makes before it starts, each failing with one line that names the setting
and what to do (exit code 2) instead of a traceback from deep inside a library."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from trustyard.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_CODE = 2
PRIVATE_UMASK = 0o077  # the database holds password hashes, tokens and private manifests
SERVE_LOCK = "serve.lock"
DATA_DIR_SETTING = "--data-dir or TRUSTYARD_DATA_DIR"
DATABASE_SETTING = "--database-url or TRUSTYARD_DATABASE_URL"


class PreflightError(Exception):
    """A start-up or command problem the operator fixes: its text is the whole message."""


def private_files() -> None:
    """Files and folders this process creates (database, -wal, -shm, blobs, keys) are its
    owner's only."""
    os.umask(PRIVATE_UMASK)


def data_dir(settings: Settings, *, create: bool) -> list[str]:
    """The data folder, created 0700 when missing; refuse one that is a file or cannot be
    written. Returns warnings (a folder other users can read)."""
    database_url(settings)
    folder = settings.data_dir
    if folder.exists() and not folder.is_dir():
        raise PreflightError(
            f"the data folder {folder} is not a folder: choose another ({DATA_DIR_SETTING})"
        )
    if not folder.exists():
        if not create:
            return []
        try:
            folder.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise PreflightError(
                f"cannot create the data folder {folder}: {_reason(error)}; "
                f"choose another ({DATA_DIR_SETTING})"
            ) from None
    try:  # os.access is wrong for root and read-only mounts: try it
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PreflightError(
            f"cannot write in the data folder {folder}: {_reason(error)}; make it writable "
            f"or choose another ({DATA_DIR_SETTING})"
        ) from None
    return _tighten(settings)


def _tighten(settings: Settings) -> list[str]:
    """Make the SQLite files the server's only; warn of a folder others can look into."""
    from sqlalchemy.engine.url import make_url

    parsed = make_url(settings.effective_database_url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    ends = ("", "-wal", "-shm", ".writelock") if database and database != ":memory:" else ()
    for path in (Path(f"{database}{end}") for end in ends):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
    mode = stat.S_IMODE(settings.data_dir.stat().st_mode)
    if mode & 0o077:
        return [
            f"the data folder {settings.data_dir} is open to other users (mode {mode:o}): "
            f"`chmod 700 {settings.data_dir}` keeps them out of blobs and keys"
        ]
    return []


def _reason(error: OSError) -> str:
    return error.strerror.lower() if error.strerror else str(error)


def database(engine: Engine) -> None:
    """Connect once, so a wrong or unreachable database is one line, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect():
            pass
    except DBAPIError as error:
        first = str(error.orig or error).strip().splitlines()[0]
        shown = engine.url.render_as_string(hide_password=True)
        raise PreflightError(
            f"cannot connect to the database {shown}: {first}; check {DATABASE_SETTING}"
        ) from None


def database_url(settings: Settings) -> str:
    """The effective database URL, refused early when SQLAlchemy cannot use it."""
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    url = settings.effective_database_url
    try:
        make_url(url).get_dialect().import_dbapi()
    except NoSuchModuleError as error:  # an ArgumentError too: first
        raise PreflightError(
            f"the database URL names an unknown database or driver ({DATABASE_SETTING}): "
            f"{error}; use postgresql:// or sqlite://"
        ) from None
    except ArgumentError:
        raise PreflightError(
            f"the database URL is malformed ({DATABASE_SETTING}): expected e.g. "
            "postgresql://USER:PASSWORD@HOST:5432/NAME or sqlite:////PATH/trustyard.db"
        ) from None
    except ImportError as error:
        raise PreflightError(
            f"the database driver {error.name} is not installed ({DATABASE_SETTING}): "
            "use postgresql:// or sqlite://"
        ) from None
    return url


def existing_sqlite(settings: Settings) -> None:
    """Commands that read a registry's database refuse to create an empty one."""
    from sqlalchemy.engine.url import make_url

    parsed = make_url(database_url(settings))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    if not Path(parsed.database).is_file():
        raise PreflightError(
            f"no trustyard database at {parsed.database}: name the registry's data folder "
            f"({DATA_DIR_SETTING}; PostgreSQL: {DATABASE_SETTING}), or create one there: "
            "run `trustyard migrate` (or start `trustyard serve`)"
        )


def lock_data_dir(settings: Settings) -> int | None:
    """One `serve` per data folder on SQLite (PostgreSQL replicas may share blobs): hold a lock
    on DATA_DIR/serve.lock for the life of the process. Returns the lock's descriptor (None: not
    needed), to be kept open.

    A POSIX record lock (lockf), not flock: it belongs to this process alone, so granian's
    forked workers do not hold it, and it is gone the moment `serve` itself is (a restart
    right after a kill finds it free)."""
    from sqlalchemy.engine.url import make_url

    if make_url(settings.effective_database_url).get_backend_name() != "sqlite":
        return None
    path = settings.data_dir / SERVE_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise PreflightError(
            f"another trustyard (pid {holder}) serves this data folder ({settings.data_dir}): "
            f"stop it first, or give this one another folder ({DATA_DIR_SETTING})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def port_free(host: str, port: int) -> None:
    """Bind the address once without SO_REUSEPORT: granian listens with it, so a second
    server would otherwise start on a busy port and share its traffic."""
    if port == 0:
        return
    setting = "--port or TRUSTYARD_SERVER__PORT"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise PreflightError(
            f"cannot listen on {host}: {error.strerror} (--host or TRUSTYARD_SERVER__HOST)"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PreflightError(
                    f"port {port} is in use on {host}: stop what listens there or choose "
                    f"another port ({setting})"
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise PreflightError(
                    f"cannot listen on {host}: not an address of this machine "
                    "(--host or TRUSTYARD_SERVER__HOST)"
                ) from None
            raise PreflightError(
                f"cannot listen on {host}:{port}: {_reason(error)} ({setting})"
            ) from None
