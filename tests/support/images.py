"""Shared test images (OCI layouts with ground truth) built by make-test-images.

The images live in a fixed cache folder (``TRUSTYARD_TEST_IMAGES``, default
``/var/cache/trustyard/test-images``) and are built on first use by
``scripts/build-test-images.sh``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

IMAGE_NAMES: tuple[str, ...] = (
    "debian-minbase",
    "python-app",
    "node-app",
    "go-binary",
    "multi-arch",
    "big-layer",
)
DEFAULT_IMAGES_DIR = Path("/var/cache/trustyard/test-images")
BUILD_TIMEOUT_S = 1800.0

_built: list[Path] = []


LAB_SHARED_DIR = Path("/work/shared")


def repo_root() -> Path:
    """The repository checkout (``<something>/main``)."""
    return Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared lab folder: ``$TRUSTYARD_SHARED_DIR``, else ``<repo>/../shared`` when it
    exists, else the lab's usual ``/work/shared``."""
    override = os.environ.get("TRUSTYARD_SHARED_DIR")
    if override:
        return Path(override)
    beside = repo_root().parent / "shared"
    return beside if beside.is_dir() else LAB_SHARED_DIR


def images_cache_dir() -> Path:
    """Where the test images are (or will be) cached; no build is triggered."""
    return Path(os.environ.get("TRUSTYARD_TEST_IMAGES", str(DEFAULT_IMAGES_DIR)))


def test_images_dir() -> Path:
    """Build the test images once per process (or reuse the cache); return the folder."""
    if not _built:
        _built.append(_run_build_script())
    return _built[0]


# Not a test, despite its name (pytest would collect it where it is imported).
test_images_dir.__test__ = False  # type: ignore[attr-defined]


def _run_build_script() -> Path:
    script = repo_root() / "scripts" / "build-test-images.sh"
    env = {**os.environ, "TRUSTYARD_TEST_IMAGES": str(images_cache_dir())}
    result = subprocess.run(
        ["bash", str(script)],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return Path(result.stdout.strip().splitlines()[-1])


def _check_name(name: str) -> None:
    if name not in IMAGE_NAMES:
        msg = f"unknown test image {name!r}; known: {', '.join(IMAGE_NAMES)}"
        raise ValueError(msg)


def image_layout(name: str) -> Path:
    """The OCI image layout folder of image ``name`` (one ref: ``latest``)."""
    _check_name(name)
    return test_images_dir() / name


def load_truth(name: str, platform: str | None = None) -> list[tuple[str, str, str]]:
    """Ground-truth packages of ``name`` as (ecosystem, name, version) rows.

    ``multi-arch`` rows carry a platform (``linux/amd64``...) in a 4th column:
    pass ``platform`` to keep only that platform's rows (default: all rows).
    """
    _check_name(name)
    path = test_images_dir() / f"{name}.packages.tsv"
    rows: list[tuple[str, str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        if platform is not None and fields[3:4] != [platform]:
            continue
        rows.append((fields[0], fields[1], fields[2]))
    return rows


def image_info(name: str) -> dict[str, Any]:
    """The build summary of ``name``: digest, mediaType, layers, sizes, build_seconds."""
    _check_name(name)
    path = test_images_dir() / f"{name}.info.json"
    info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return info
