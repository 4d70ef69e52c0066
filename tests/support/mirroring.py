"""Two trustyard registries with accounts that mirror to and from each other, for the
mirroring suites and bench/mirror.py: each site is a real `trustyard serve` (its embedded
worker runs the mirroring jobs) driven through the /api/v1 mirroring routes as the admin;
images go in and out with skopeo. Runs are awaited by polling their status with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .server import TrustyardServer

T = TypeVar("T")
ADMIN_PASSWORD = "an admin password for mirroring tests"
RUN_DEADLINE_S = 300.0
POLL_S = 0.1
FINISHED = ("succeeded", "failed", "partial", "cancelled")

# A mirroring site's settings: accounts on, quick jobs (a killed worker's job is re-claimed
# after a short lease), small chunks so a big layer is many PATCHes, quick remote timeouts.
SITE_ENV = {
    "TRUSTYARD_AUTH__ENABLED": "true",
    "TRUSTYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "TRUSTYARD_JOBS__POLL_SECONDS": "0.1",
    "TRUSTYARD_JOBS__RETRY_BASE_SECONDS": "0.1",
    "TRUSTYARD_JOBS__RETRY_MAX_SECONDS": "0.5",
    "TRUSTYARD_JOBS__LEASE_SECONDS": "5",
    "TRUSTYARD_MIRRORING__POLL_CHECK_SECONDS": "1",
    "TRUSTYARD_MIRRORING__CONNECT_TIMEOUT_SECONDS": "2",
    "TRUSTYARD_MIRRORING__READ_TIMEOUT_SECONDS": "3",
    "TRUSTYARD_MIRRORING__MAX_ATTEMPTS": "2",
    "TRUSTYARD_MIRRORING__MAX_RETRY_AFTER_SECONDS": "1",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Site:
    """One registry of a mirroring pair, with an admin API client."""

    server: TrustyardServer
    password: str = ADMIN_PASSWORD
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(
            base_url=f"{self.server.url}/api/v1",
            auth=httpx.BasicAuth("admin", self.password),
            timeout=60,
        )

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.api.close()

    # -- content, through skopeo ------------------------------------------------------------

    def skopeo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return skopeo(*args, check=check)

    def push_layout(self, layout: Path, repository: str, tag: str, *, all_: bool = True) -> None:
        target = f"docker://{self.host}/{repository}:{tag}"
        copy(f"oci:{layout}:latest", target, all_=all_, password=self.password)

    def raw_manifest(self, repository: str, reference: str) -> bytes | None:
        """The stored manifest bytes (None when the tag or digest is absent)."""
        answer = httpx.get(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            auth=httpx.BasicAuth("admin", self.password),
            headers={"Accept": ACCEPT},
            timeout=60,
            follow_redirects=True,
        )
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.content

    def digest(self, repository: str, reference: str) -> str | None:
        body = self.raw_manifest(repository, reference)
        return None if body is None else sha256(body)

    def tags(self, repository: str) -> list[str]:
        answer = httpx.get(
            f"{self.url}/v2/{repository}/tags/list",
            auth=httpx.BasicAuth("admin", self.password),
            timeout=60,
        )
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return sorted(answer.json().get("tags") or [])

    def delete_tag(self, repository: str, tag: str) -> None:
        answer = httpx.delete(
            f"{self.url}/v2/{repository}/manifests/{tag}",
            auth=httpx.BasicAuth("admin", self.password),
            timeout=60,
        )
        assert answer.status_code == 202, answer.text

    # -- remotes and policies ---------------------------------------------------------------

    def add_remote(self, name: str, url: str, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "url": url, "tlsVerify": False, **extra}
        answer = self.api.post("/remotes", json=body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def ensure_repository(self, repository: str) -> None:
        answer = self.api.post("/repositories", json={"name": repository})
        assert answer.status_code in (201, 409), answer.text

    def add_policy(self, repository: str, **body: Any) -> dict[str, Any]:
        self.ensure_repository(repository)
        answer = self.api.post(f"/repositories/{repository}/mirror-policies", json=body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def policy(self, repository: str, policy_id: int) -> dict[str, Any]:
        answer = self.api.get(f"/repositories/{repository}/mirror-policies/{policy_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def run_now(self, repository: str, policy_id: int, *, retry_failed_only: bool = False) -> int:
        answer = self.api.post(
            f"/repositories/{repository}/mirror-policies/{policy_id}/run",
            json={"retryFailedOnly": retry_failed_only},
        )
        assert answer.status_code == 202, answer.text
        return int(answer.json()["runId"])

    def runs(self, repository: str, policy_id: int) -> list[dict[str, Any]]:
        answer = self.api.get(f"/repositories/{repository}/mirror-policies/{policy_id}/runs")
        assert answer.status_code == 200, answer.text
        return page_items(answer.json())

    def run(self, repository: str, policy_id: int, run_id: int) -> dict[str, Any]:
        answer = self.api.get(
            f"/repositories/{repository}/mirror-policies/{policy_id}/runs/{run_id}"
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def items(self, repository: str, policy_id: int, status: str | None = None) -> list[Any]:
        params = {"status": status} if status else {}
        answer = self.api.get(
            f"/repositories/{repository}/mirror-policies/{policy_id}/items", params=params
        )
        assert answer.status_code == 200, answer.text
        return page_items(answer.json())

    def await_run(
        self, repository: str, policy_id: int, run_id: int, deadline_s: float = RUN_DEADLINE_S
    ) -> dict[str, Any]:
        """Poll the run until it is finished; its last state."""
        return wait_for(
            lambda: finished(self.run(repository, policy_id, run_id)),
            deadline_s,
            f"run {run_id} of policy {policy_id} on {self.host}",
        )

    def await_settled(
        self, repository: str, policy_id: int, deadline_s: float = RUN_DEADLINE_S
    ) -> list[dict[str, Any]]:
        """Wait until the policy has at least one run and none queued or running; its runs."""

        def settled() -> list[dict[str, Any]] | None:
            runs = self.runs(repository, policy_id)
            if runs and all(r["status"] in FINISHED for r in runs):
                return runs
            return None

        return wait_for(settled, deadline_s, f"the runs of policy {policy_id} on {self.host}")

    def await_jobs_idle(
        self, kind: str = "mirror.sync", deadline_s: float = RUN_DEADLINE_S
    ) -> None:
        """Wait until no job of this kind is queued or running (the queue drained)."""

        def idle() -> bool | None:
            answer = self.api.get("/jobs", params={"state": ["queued", "running"], "kind": kind})
            assert answer.status_code == 200, answer.text
            return True if not page_items(answer.json()) else None

        wait_for(idle, deadline_s, f"the {kind} jobs of {self.host}")


ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def page_items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    for key in ("items", "runs", "results", "data", "jobs"):
        if isinstance(body.get(key), list):
            return list(body[key])
    return []


def finished(run: dict[str, Any]) -> dict[str, Any] | None:
    return run if run.get("status") in FINISHED else None


def wait_for(probe: Callable[[], T | None], deadline_s: float, what: str) -> T:
    """Poll `probe` until it answers something other than None; fail at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {deadline_s:.0f} s for {what}")
        time.sleep(POLL_S)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)}: {result.stderr.strip()}")
    return result


def copy(
    source: str, destination: str, *, all_: bool = True, password: str = ADMIN_PASSWORD
) -> None:
    creds = f"admin:{password}"
    args = ["copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
    if source.startswith("docker://"):
        args += ["--src-creds", creds]
    if destination.startswith("docker://"):
        args += ["--dest-creds", creds]
    if all_:
        args.append("--all")
    skopeo(*args, source, destination)


def raw_in_layout(layout: Path) -> bytes:
    """The manifest bytes the `latest` ref of an OCI layout names."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    algorithm, hexdigest = digest.split(":")
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def start_site(start: Callable[..., TrustyardServer], label: str, **env: str) -> Site:
    """A site; its admin password is TRUSTYARD_ADMIN_PASSWORD when `env` gives one."""
    merged = {**SITE_ENV, **env}
    return Site(start(label, **merged), password=merged["TRUSTYARD_ADMIN_PASSWORD"])
