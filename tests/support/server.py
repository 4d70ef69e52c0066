"""Run a real `trustyard serve` (granian, worker processes) for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.ports import LOOPBACK, free_port, wait_http


class TrustyardServer:
    """A trustyard process tree in its own process group, on a free loopback port."""

    def __init__(
        self,
        data_dir: Path | None = None,
        database_url: str | None = None,
        workers: int = 2,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="trustyard-test-"))
        self.database_url = database_url
        self.workers = workers
        self.extra_env = extra_env or {}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTYARD_")}
        # The registry-core suites test the open registry; suites about accounts turn them on.
        env["TRUSTYARD_AUTH__ENABLED"] = "false"
        # Scan on push is on by default in production; the suites that are not about scanning
        # push hundreds of images and would only spend the shared cores scanning them. The
        # scanning suites (and those that walk every route) turn it on.
        env["TRUSTYARD_SCANNING__ENABLED"] = "false"
        # Nothing in a test reaches outside this machine: no scheduled online update of the
        # vulnerability database (its suite serves bundles from loopback and turns it on).
        env["TRUSTYARD_VULNERABILITIES__UPDATE_CRON"] = ""
        # and an update asked for (POST /api/v1/vulndb/updates) fetches from a closed port of
        # loopback, never from osv.dev
        env["TRUSTYARD_VULNERABILITIES__UPDATE_BASE_URL"] = "http://127.0.0.1:9"
        if self.database_url:
            env["TRUSTYARD_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run another trustyard command against the same data folder and database."""
        command = [sys.executable, "-m", "trustyard", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, check=check, timeout=600
        )

    def start(self) -> TrustyardServer:
        self.port = free_port()
        command = [
            sys.executable, "-m", "trustyard", "serve",
            "--host", LOOPBACK, "--port", str(self.port),
            "--workers", str(self.workers), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            command, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            wait_http(f"{self.url}/healthz", timeout=60)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"trustyard did not start; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process tree at once: a crash, not a shutdown."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> TrustyardServer:
        self.stop()
        return self.start()
