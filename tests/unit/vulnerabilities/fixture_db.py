"""Where the offline OSV fixture lives: the shared lab folder's vulndb/ (found as every test
finds that folder: $TRUSTYARD_SHARED_DIR, ../shared beside the checkout, or the lab's
/work/shared; see its README.md). Read-only."""

from pathlib import Path

from tests.support.images import shared_dir

VULNDB = shared_dir() / "vulndb"
EXPECTED = VULNDB / "expected" / "expected-matches.json"
FOLDERS = ("pypi", "go", "npm")


def record_paths() -> list[Path]:
    paths = [p for folder in FOLDERS for p in sorted((VULNDB / folder).glob("*.json"))]
    assert paths, f"no OSV records under {VULNDB}: the fixture is missing"
    return paths
