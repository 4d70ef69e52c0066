"""The CNCF "distribution" reference registry (Debian docker-registry) for tests.

Wraps ``shared/tools/start-reference-registry``: no auth, no TLS, deletes
enabled, filesystem storage in a temp folder, a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .images import shared_dir
from .lifecycle import StartStop
from .ports import LOOPBACK, free_port, port_in_use, stop_pid

START_ATTEMPTS = 3
STOP_GRACE_S = 10.0


def start_script() -> Path:
    """``start-reference-registry`` in the shared tools folder."""
    return shared_dir() / "tools" / "start-reference-registry"


def _run_script(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """Run ``argv`` in its own process group; on timeout SIGKILL that whole group."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return -1, out, f"timed out after {timeout:.0f}s; {err}"
    return proc.returncode, out, err


def _parse_vars(output: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in output.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


class ReferenceRegistry(StartStop):
    """Context manager: ``with ReferenceRegistry() as reg: push to reg.host``."""

    def __init__(self, base_dir: Path | None = None, timeout: float = 300.0) -> None:
        self._base_dir = base_dir
        self._timeout = timeout
        self.port = 0
        self.pid: int | None = None
        self.workdir: Path | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as used in image references."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        """The registry's filesystem storage root."""
        return self._workdir / "storage"

    @property
    def log_file(self) -> Path:
        """The registry's log."""
        return self._workdir / "registry.log"

    def start(self) -> None:
        """Start the registry; returns once ``GET /v2/`` answers 200."""
        if self.workdir is not None:
            msg = "registry already started"
            raise RuntimeError(msg)
        self.workdir = Path(tempfile.mkdtemp(prefix="trustyard-refreg-", dir=self._base_dir))
        try:
            self.pid = self._launch_with_retries()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry by PID (SIGTERM, SIGKILL after 10 s); delete its folder."""
        try:
            if self.pid is not None:
                stop_pid(self.pid, STOP_GRACE_S)
                self.pid = None
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    @property
    def _workdir(self) -> Path:
        if self.workdir is None:
            msg = "registry not started"
            raise RuntimeError(msg)
        return self.workdir

    def _launch_with_retries(self) -> int:
        errors: list[str] = []
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            if port_in_use(self.port):
                errors.append(f"port {self.port}: taken")
                continue
            pid, error = self._launch()
            if pid is not None:
                return pid
            errors.append(error)
        msg = "start-reference-registry failed:\n" + "\n---\n".join(errors)
        raise RuntimeError(msg)

    def _launch(self) -> tuple[int | None, str]:
        """Run the start script once; return (PID, "") or (None, error)."""
        argv = [str(start_script()), str(self.port), str(self.storage), str(self.log_file)]
        code, out, err = _run_script(argv, self._timeout)
        pid = _parse_vars(out).get("PID", "")
        if code != 0 or not pid.isdigit():
            return None, f"port {self.port}: exit {code}: {err.strip()}"
        return int(pid), ""
