"""Run real `trustyard worker` processes against a database, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Quick queue timings for tests (and the test job kinds, which production never runs).
FAST_JOBS = {
    "TRUSTYARD_JOBS__TEST_KINDS": "true",
    "TRUSTYARD_JOBS__POLL_SECONDS": "0.1",
    "TRUSTYARD_JOBS__RETRY_BASE_SECONDS": "0.1",
    "TRUSTYARD_JOBS__RETRY_MAX_SECONDS": "0.5",
    "TRUSTYARD_JOBS__SHUTDOWN_GRACE_SECONDS": "2",
}


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'trustyard.db'}"


def trustyard_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTYARD_")}
    env.update(extra or {})
    return env


def trustyard(
    data_dir: Path, database_url: str | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a trustyard command on this data folder and database."""
    command = [sys.executable, "-m", "trustyard", *args, "--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    return subprocess.run(
        command,
        env=trustyard_env(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


class WorkerProcess:
    """`trustyard worker` in its own process group; `start` returns once it says ready."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str | None,
        *,
        concurrency: int = 4,
        env: dict[str, str] | None = None,
        label: str = "worker",
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.concurrency = concurrency
        self.extra_env = {**FAST_JOBS, **(env or {})}
        self.log_path = data_dir.parent / f"{data_dir.name}-{label}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        command = [
            sys.executable, "-m", "trustyard", "worker", "-c", str(self.concurrency),
            "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        if self.database_url:
            command += ["--database-url", self.database_url]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            command,
            env=trustyard_env(self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while " ready: " not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"trustyard worker did not start; log:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a clean stop); the exit status."""
        if self.process is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.process = None
        return status

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to give anything back."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
