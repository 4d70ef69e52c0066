"""The shared test images as oci-archive and docker-archive tarballs (made with skopeo).

Cached in ``TRUSTYARD_SCAN_FIXTURES`` (default ``/var/cache/trustyard/scan-fixtures``)
under ``archives/``: ``oci-archive/NAME.tar`` (every platform of an index) and
``docker-archive/NAME.tar`` (one image: a docker archive has no index; for an index, the
linux/amd64 image). Written to a temporary name, then renamed: a half-made archive is never
reused.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.images import image_layout

ARCHIVE_KINDS = ("oci-archive", "docker-archive")
DEFAULT_FIXTURES = Path("/var/cache/trustyard/scan-fixtures")


def archives_dir() -> Path:
    root = Path(os.environ.get("TRUSTYARD_SCAN_FIXTURES", str(DEFAULT_FIXTURES)))
    folder = root / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def image_archive(name: str, kind: str, platform: str | None = None) -> Path:
    """The archive of test image ``name`` in format ``kind`` (built on first use); with
    ``platform`` (``os/arch[/variant]``), only that image of an index (``NAME-OS-ARCH.tar``)."""
    if kind not in ARCHIVE_KINDS:
        msg = f"unknown archive kind {kind!r}; known: {', '.join(ARCHIVE_KINDS)}"
        raise ValueError(msg)
    folder = archives_dir() / kind
    folder.mkdir(exist_ok=True)
    suffix = "-" + "-".join(platform.split("/")) if platform else ""
    target = folder / f"{name}{suffix}.tar"
    if target.is_file():
        return target
    layout = image_layout(name)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    command = ["skopeo"]
    if platform or kind == "docker-archive":
        parts = (platform or "linux/amd64").split("/")
        command += ["--override-os", parts[0], "--override-arch", parts[1]]
        if len(parts) > 2:
            command += ["--override-variant", parts[2]]
    if kind == "docker-archive":
        destination = f"docker-archive:{partial}:trustyard-test/{name}:latest"
    else:
        destination = f"oci-archive:{partial}:latest"
    command += ["copy", "--quiet"]
    if kind == "oci-archive" and not platform:
        command.append("--all")
    command += [f"oci:{layout}:latest", destination]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    partial.rename(target)
    return target
