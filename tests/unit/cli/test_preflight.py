"""The checks a command makes before it starts (cli/preflight.py): each refusal is one line
naming the setting to change, never a traceback."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustyard.cli import preflight
from trustyard.cli.preflight import PreflightError
from trustyard.config import Settings


def settings_for(data_dir: Path, database_url: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url)


# --- the data folder ---------------------------------------------------------------------------


def test_a_missing_data_folder_is_created_private(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "data"
    assert preflight.data_dir(settings_for(folder), create=False) == []
    assert not folder.exists()
    assert preflight.data_dir(settings_for(folder), create=True) == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_data_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.write_text("not a folder")
    with pytest.raises(PreflightError, match=r"is not a folder: .*TRUSTYARD_DATA_DIR"):
        preflight.data_dir(settings_for(folder), create=True)


def test_an_open_data_folder_is_a_warning_and_its_sqlite_files_are_made_private(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    database = folder / "trustyard.db"
    for name in ("trustyard.db", "trustyard.db-wal"):
        (folder / name).write_bytes(b"")
        (folder / name).chmod(0o644)
    [warning] = preflight.data_dir(settings_for(folder), create=True)
    assert "open to other users (mode 755)" in warning
    assert f"chmod 700 {folder}" in warning
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "trustyard.db-wal").stat().st_mode) == 0o600


# --- the database URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuchdb://user@host/name", "unknown database or driver"),
        ("not a url at all", "malformed"),
        ("mysql://user@host/name", "driver .* is not installed"),
    ],
)
def test_a_database_url_sqlalchemy_cannot_use_is_refused(
    tmp_path: Path, url: str, message: str
) -> None:
    with pytest.raises(PreflightError, match=f"{message}.*TRUSTYARD_DATABASE_URL"):
        preflight.database_url(settings_for(tmp_path, url))


def test_usable_urls_pass(tmp_path: Path) -> None:
    assert preflight.database_url(settings_for(tmp_path)).startswith("sqlite:///")
    url = "postgresql://user:secret@127.0.0.1:1/name"
    assert preflight.database_url(settings_for(tmp_path, url)).startswith("postgresql")


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    from trustyard.db.engine import make_engine

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    engine = make_engine(f"postgresql://user:secret@127.0.0.1:{port}/name")
    try:
        with pytest.raises(PreflightError) as refused:
            preflight.database(engine)
    finally:
        engine.dispose()
    message = str(refused.value)
    assert message.startswith("cannot connect to the database postgresql")
    assert "secret" not in message
    assert "\n" not in message
    assert message.endswith("check --database-url or TRUSTYARD_DATABASE_URL")


def test_a_command_that_reads_a_registry_refuses_to_create_its_database(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match=r"no trustyard database at .*`trustyard migrate`"):
        preflight.existing_sqlite(settings_for(tmp_path))
    (tmp_path / "trustyard.db").write_bytes(b"")
    preflight.existing_sqlite(settings_for(tmp_path))
    preflight.existing_sqlite(settings_for(tmp_path, "postgresql://u@127.0.0.1:1/n"))


# --- one serve per data folder -----------------------------------------------------------------

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX)
os.pwrite(fd, b"%d\\n" % os.getpid(), 0)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding DATA_DIR/serve.lock until its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / preflight.SERVE_LOCK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "locked\n"
    try:
        yield child
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()


def test_a_second_serve_of_a_data_folder_is_refused_naming_the_first(
    tmp_path: Path, held_lock: subprocess.Popen[str]
) -> None:
    with pytest.raises(PreflightError, match=f"another trustyard \\(pid {held_lock.pid}\\)"):
        preflight.lock_data_dir(settings_for(tmp_path))


def test_the_lock_names_this_process_and_is_not_needed_on_postgresql(tmp_path: Path) -> None:
    fd = preflight.lock_data_dir(settings_for(tmp_path))
    assert fd is not None
    try:
        assert (tmp_path / preflight.SERVE_LOCK).read_text() == f"{os.getpid()}\n"
    finally:
        os.close(fd)
    assert preflight.lock_data_dir(settings_for(tmp_path, "postgresql://u@h/n")) is None


# --- the port ----------------------------------------------------------------------------------


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PreflightError, match=f"port {port} is in use on 127.0.0.1"):
            preflight.port_free("127.0.0.1", port)
    preflight.port_free("127.0.0.1", 0)  # any free port: nothing to check


def test_an_address_that_is_not_this_machines_is_refused() -> None:
    with pytest.raises(PreflightError, match="not an address of this machine"):
        preflight.port_free("192.0.2.1", 5000)  # TEST-NET-1: never local
