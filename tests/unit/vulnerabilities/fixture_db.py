"""Where the offline OSV fixture lives: ../shared/vulndb beside the checkout (see its
README.md). Read-only."""

from pathlib import Path

VULNDB = Path(__file__).resolve().parents[4] / "shared" / "vulndb"
EXPECTED = VULNDB / "expected" / "expected-matches.json"
FOLDERS = ("pypi", "go", "npm")


def record_paths() -> list[Path]:
    paths = [p for folder in FOLDERS for p in sorted((VULNDB / folder).glob("*.json"))]
    assert paths, f"no OSV records under {VULNDB}: the fixture is missing"
    return paths
