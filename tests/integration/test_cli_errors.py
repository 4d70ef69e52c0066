"""What an operator sees when a start or a command cannot go on: one line naming the setting and
what to do, exit code 2, no traceback; and one `serve` per port and per SQLite data folder."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.ports import LOOPBACK, free_port
from tests.support.server import TrustyardServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("cli-errors")]

TIMEOUT = 120


def trustyard(
    *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTYARD_")}
    clean.update({"TRUSTYARD_AUTH__ENABLED": "false", "COLUMNS": "80", **(env or {})})
    return subprocess.run(
        [*prefix, sys.executable, "-m", "trustyard", *args],
        env=clean,
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit code 2 and a single line on stderr holding every `expected` text."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server("cli-errors")


# --- one serve per port and per data folder ------------------------------------------------


def test_a_second_serve_on_a_busy_port_refuses_to_start(
    registry: TrustyardServer, tmp_path: Path
) -> None:
    done = trustyard(
        "serve", "--host", LOOPBACK, "--port", str(registry.port),
        "--data-dir", str(tmp_path / "other"),
    )  # fmt: skip
    one_line_error(done, f"port {registry.port} is in use", "--port")
    assert not (tmp_path / "other").exists()  # refused before anything was created


def test_a_port_held_by_another_program_is_refused_too(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind((LOOPBACK, 0))
        other.listen()
        port = other.getsockname()[1]
        done = trustyard(
            "serve", "--host", LOOPBACK, "--port", str(port), "--data-dir", str(tmp_path / "d")
        )
    one_line_error(done, f"port {port} is in use")


def test_one_serve_per_sqlite_data_folder_while_other_commands_still_run(
    registry: TrustyardServer, backend: str
) -> None:
    assert registry.process is not None
    second = TrustyardServer(registry.data_dir, registry.database_url)
    second.log_path = registry.data_dir.parent / "second-serve.log"
    if backend == "sqlite":
        done = trustyard(
            "serve", "--host", LOOPBACK, "--port", str(free_port()),
            "--data-dir", str(registry.data_dir),
        )  # fmt: skip
        one_line_error(
            done, f"another trustyard (pid {registry.process.pid}) serves this data folder"
        )
    else:  # replicas on PostgreSQL share the blob folder
        second.start()
        second.stop()
    # commands that are not `serve` run beside it
    for command in (("migrate",), ("jobs", "list"), ("fsck",)):
        done = registry.cli(*command, check=False)
        assert done.returncode == 0, (command, done.stdout + done.stderr)


# --- one clear line instead of a traceback -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "the database URL is malformed"),
        ("oracle://someone@127.0.0.1/db", "the database driver"),
        ("nosuchdb://x@127.0.0.1/db", "unknown database or driver"),
    ],
)
def test_an_unusable_database_url_is_one_line(url: str, expected: str, tmp_path: Path) -> None:
    done = trustyard("migrate", "--data-dir", str(tmp_path), env={"TRUSTYARD_DATABASE_URL": url})
    one_line_error(done, expected, "TRUSTYARD_DATABASE_URL")


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://someone:hunter2secret@{LOOPBACK}:{free_port()}/trustyard"
    for command in (("serve", "--port", str(free_port())), ("migrate",), ("jobs", "list")):
        done = trustyard(*command, "--data-dir", str(tmp_path), env={"TRUSTYARD_DATABASE_URL": url})
        line = one_line_error(done, "cannot connect to the database", "TRUSTYARD_DATABASE_URL")
        assert "hunter2secret" not in line


def test_postgres_scheme_is_accepted_as_postgresql(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("needs PostgreSQL")
    from tests.conftest import make_database_url

    url = make_database_url(backend, request)
    assert url is not None
    for scheme in ("postgres", "postgresql"):
        plain = scheme + "://" + url.partition("://")[2]
        done = trustyard(
            "migrate", "--data-dir", str(tmp_path), env={"TRUSTYARD_DATABASE_URL": plain}
        )
        assert done.returncode == 0, done.stderr


def test_a_data_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a folder")
    for command in (("serve", "--port", str(free_port())), ("migrate",), ("passwd",)):
        done = trustyard(*command, "--data-dir", str(a_file))
        one_line_error(done, f"the data folder {a_file} is not a folder", "--data-dir")


def test_a_read_only_data_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    probe = subprocess.run(
        ["unshare", "-m", "mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)],
        check=False,
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("needs unshare and mount (a read-only file system; root can write anywhere)")
    inner = f'mount -t tmpfs -o ro tmpfs {folder} && exec "$@"'
    for command in (("serve", "--port", str(free_port())), ("migrate",)):
        done = trustyard(
            *command, "--data-dir", str(folder), prefix=("unshare", "-m", "sh", "-c", inner, "-")
        )
        one_line_error(done, f"cannot write in the data folder {folder}", "read-only file system")


def test_a_command_where_no_registry_lives_is_one_line(tmp_path: Path) -> None:
    for command in (("jobs", "list"), ("jobs", "show", "1"), ("fsck",), ("worker",)):
        done = trustyard(*command, "--data-dir", str(tmp_path / "nothing-here"))
        one_line_error(done, "no trustyard database at", "--data-dir")
    assert not (tmp_path / "nothing-here").exists()  # nor did it create an empty one


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    done = trustyard(
        "migrate", "--data-dir", str(tmp_path), env={"TRUSTYARD_SERVER__PORT": "five thousand"}
    )
    one_line_error(done, "invalid settings", "server.port")


# --- the data folder is private --------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_the_database_are_the_servers_only(
    start_server: Callable[..., TrustyardServer], backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the SQLite files are the point")
    server = start_server("private-files", TRUSTYARD_AUTH__ENABLED="true")
    data = server.data_dir
    assert mode(data) == 0o700
    files = [data / name for name in ("trustyard.db", "trustyard.db-wal", "trustyard.db-shm")]
    files.append(data / "signing.passphrase")
    assert {path.name: oct(mode(path)) for path in files} == {
        path.name: oct(0o600) for path in files
    }
    assert "warning" not in server.log()


def test_an_existing_open_data_folder_is_warned_of_and_its_database_tightened(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "trustyard.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    done = trustyard("migrate", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert f"warning: the data folder {data} is open to other users (mode 755)" in done.stderr
    assert f"chmod 700 {data}" in done.stderr
    assert mode(database) == 0o600


# --- help and version ------------------------------------------------------------------------


def test_version_and_help_with_defaults_plain_types_and_whole_sentences() -> None:
    from importlib.metadata import version

    done = trustyard("--version")
    assert (done.returncode, done.stdout) == (0, f"trustyard {version('trustyard')}\n")

    serve = " ".join(trustyard("serve", "--help").stdout.split())
    assert serve.startswith("Usage: trustyard serve [OPTIONS]"), serve
    for shown in ("--port PORT", "[default: 5000]", "[default: 127.0.0.1]", "[default: ./data]"):
        assert shown in serve, serve
    for command in (
        (),
        ("serve",),
        ("passwd",),
        ("worker",),
        ("scan",),
        ("jobs", "list"),
        ("jobs", "show"),
    ):
        text = trustyard(*command, "--help").stdout
        assert not re.search(r"<[a-z][^>]*>", text), text  # words, not <int range>, <str>
        assert all(len(line) <= 80 for line in text.splitlines()), text
    # a docstring's own line breaks are not kept: the paragraph is filled to the width
    passwd = trustyard("passwd", "--help").stdout
    flat = " ".join(passwd.split())
    assert "unless read from stdin) and lift any login lock on it" in flat
    paragraph = passwd.split("\n\n")[1].splitlines()
    assert all(len(line) > 60 for line in paragraph[:-1]), passwd
