"""Run the real container clients (skopeo, buildah, podman) with per-test state.

Every test gets a ``Clients`` object rooted in its own temp folder: a registries.conf that marks
the test registries as insecure (plain HTTP), a containers-storage tree for podman and buildah,
a containers.conf that keeps podman's runtime files there too, and a private blob-info cache.

The blob-info cache is the one thing the tools cannot be told to put elsewhere: as root they
always use ``/var/lib/containers/cache``. Each command therefore runs in a private mount
namespace (``unshare --mount``) in which the test's own cache folder is bind-mounted over that
path, so tests neither share what the cache remembers nor leave anything behind. Where mount
namespaces are not available the commands run without that isolation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMAND_TIMEOUT_S = 600.0
SYSTEM_BLOB_INFO_CACHE = Path("/var/lib/containers/cache")
ALL_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_BIND_AND_EXEC = 'mount --bind "$0" "$1" && shift && exec "$@"'


class ClientFailed(AssertionError):
    """A client exited non-zero; the message carries its command line and output."""


@functools.cache
def private_cache_supported() -> bool:
    """Whether this process may bind-mount in a private mount namespace (root, no seccomp ban)."""
    if shutil.which("unshare") is None or not SYSTEM_BLOB_INFO_CACHE.is_dir():
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", _BIND_AND_EXEC, "/tmp", "/mnt", "true"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return probe.returncode == 0


@dataclass
class Clients:
    """skopeo, buildah and podman with all their state under ``root``."""

    root: Path
    insecure_hosts: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for sub in ("storage", "run", "tmp", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.write_registries_conf()
        (self.root / "storage.conf").write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{self.root / "storage"}"\n'
            f'runroot = "{self.root / "run"}"\n',
            encoding="utf-8",
        )
        (self.root / "containers.conf").write_text(
            "[engine]\n"
            'events_logger = "none"\n'
            'cgroup_manager = "cgroupfs"\n'
            f'tmp_dir = "{self.root / "tmp"}"\n',
            encoding="utf-8",
        )

    @property
    def registries_conf(self) -> Path:
        return self.root / "registries.conf"

    def write_registries_conf(self) -> None:
        entries = [
            f'[[registry]]\nlocation = "{host}"\ninsecure = true\n' for host in self.insecure_hosts
        ]
        self.registries_conf.write_text("\n".join(entries), encoding="utf-8")

    def add_insecure(self, host: str) -> None:
        self.insecure_hosts.append(host)
        self.write_registries_conf()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
                "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
                "CONTAINERS_CONF": str(self.root / "containers.conf"),
                "TMPDIR": str(self.root / "tmp"),
            }
        )
        env.update(self.extra_env)
        return env

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a client with the test's state; raise ClientFailed (with its output) on failure."""
        command = list(argv)
        if private_cache_supported():
            cache = [str(self.root / "cache"), str(SYSTEM_BLOB_INFO_CACHE)]
            command = ["unshare", "--mount", "--", "sh", "-c", _BIND_AND_EXEC, *cache, *command]
        result = subprocess.run(
            command,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT_S,
            cwd=self.root,
        )
        if check and result.returncode != 0:
            raise ClientFailed(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def skopeo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF; its hidden global flag does the job.
        return self.run(
            "skopeo", "--registries-conf", str(self.registries_conf), *args, check=check
        )

    def buildah(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("buildah", *args)

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args)

    def push_layout(self, layout: Path, dest: str, *, all_images: bool = False) -> None:
        """``skopeo copy`` the layout's ``latest`` to ``docker://dest``."""
        flags = ["--all"] if all_images else []
        self.skopeo(
            "copy",
            "--quiet",
            *flags,
            "--dest-tls-verify=false",
            f"oci:{layout}:latest",
            f"docker://{dest}",
        )

    def pull_layout(self, src: str, layout: Path, *, all_images: bool = False) -> None:
        """``skopeo copy`` ``docker://src`` into a new OCI layout (ref ``latest``)."""
        layout.parent.mkdir(parents=True, exist_ok=True)
        flags = ["--all"] if all_images else []
        self.skopeo(
            "copy",
            "--quiet",
            *flags,
            "--src-tls-verify=false",
            f"docker://{src}",
            f"oci:{layout}:latest",
        )

    def digestfile(self, name: str) -> Path:
        return self.root / f"{name}.digest"


# --- OCI layouts ------------------------------------------------------------------------------


def layout_top(layout: Path) -> dict[str, Any]:
    """The single descriptor of an OCI layout's index.json (what ``latest`` points at)."""
    index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    manifests: list[dict[str, Any]] = index["manifests"]
    assert len(manifests) == 1, f"{layout} holds {len(manifests)} references, expected one"
    return manifests[0]


def layout_blobs(layout: Path) -> dict[str, int]:
    """Every blob of an OCI layout: digest -> size."""
    found: dict[str, int] = {}
    for algorithm_dir in sorted((layout / "blobs").iterdir()):
        for blob in algorithm_dir.iterdir():
            found[f"{algorithm_dir.name}:{blob.name}"] = blob.stat().st_size
    return found


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def layout_blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hex_part = digest.partition(":")
    return layout / "blobs" / algorithm / hex_part


# --- skopeo --debug logs ----------------------------------------------------------------------

_MESSAGE = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
_REQUEST = re.compile(r"(GET|HEAD|POST|PUT|PATCH|DELETE) (http\S+)$")


def debug_messages(debug_log: str) -> list[str]:
    """The ``msg`` of every line of a ``skopeo --debug`` log, in order."""
    return _MESSAGE.findall(debug_log)


def logged_requests(debug_log: str) -> list[tuple[str, str]]:
    """(method, URL) of every HTTP request a ``skopeo --debug`` run reports."""
    found = (_REQUEST.match(message) for message in debug_messages(debug_log))
    return [(match.group(1), match.group(2)) for match in found if match is not None]
