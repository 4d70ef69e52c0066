"""Parsing the OSV fixture and matching one 300-component list against it, in memory (issue 11).

Reads every record of ../shared/vulndb (pypi/, go/, npm/: 6,968 records, about 15 MB) with
`parse_record`, builds the in-memory `Index`, then matches one list of N components (default
300) and prints the wall and CPU milliseconds of each step and the peak resident memory (ru_maxrss).

The list is made from the fixture and a fixed seed, so every run matches the same list: a
third of the components are packages the fixture has records for (PyPI, npm, Go, each at a
version taken from its records' events or explicit versions, so that many are affected), the
rest are names it has no record for, as most of an image's packages are. The first match of
a package compiles its records' ranges (parses their versions); the cold figure includes that,
the warm one (the median of --repeat runs over the same list) does not, as in a worker that
matched these packages before.

With --database, also as the registry does it: the three fixture folders imported into a new
SQLite database by the real importer (timed: the import benchmark, fsync on), then the same
list matched through `VulnerabilityService.index_for` (one query for the list's packages)
and `findings.match`, cold (a new record cache: every record read and parsed) and warm.

  .venv/bin/python bench/vuln_match.py
  .venv/bin/python bench/vuln_match.py --components 1000 --repeat 20
  .venv/bin/python bench/vuln_match.py --database
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trustyard.db import migrate
from trustyard.db.engine import make_engine, read_tx
from trustyard.vulnerabilities import findings
from trustyard.vulnerabilities.components import Target, Via
from trustyard.vulnerabilities.findings import packages
from trustyard.vulnerabilities.importer import Importer
from trustyard.vulnerabilities.index import Finding, Index
from trustyard.vulnerabilities.interfaces import ImageComponent
from trustyard.vulnerabilities.osv import Record, parse_record
from trustyard.vulnerabilities.service import VulnerabilityService

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from tests.support.images import shared_dir  # noqa: E402  (the folder the tests use)

VULNDB = shared_dir() / "vulndb"
ECOSYSTEMS = {"pypi": "PyPI", "go": "Go", "npm": "npm"}
T = TypeVar("T")


def components(records: list[Record], count: int, seed: int = 11) -> list[tuple[str, str, str]]:
    rnd = random.Random(seed)
    known: dict[tuple[str, str], list[str]] = {}
    for record in records:
        for entry in record.affected:
            if entry.package is None or entry.package.ecosystem not in ECOSYSTEMS.values():
                continue
            versions = known.setdefault((entry.package.ecosystem, entry.package.name), [])
            versions.extend(entry.versions[:5])
            versions.extend(e.version for r in entry.ranges for e in r.events if e.version != "0")
    pool = sorted((key, vs) for key, vs in known.items() if vs)
    chosen = rnd.sample(pool, count // 3)
    out = [(eco, name, rnd.choice(vs)) for (eco, name), vs in chosen]
    while len(out) < count:
        eco = rnd.choice(list(ECOSYSTEMS.values()))
        out.append(
            (eco, f"unknown-package-{len(out)}", f"1.{rnd.randrange(30)}.{rnd.randrange(9)}")
        )
    rnd.shuffle(out)
    return out


def timed(step: Callable[[], T]) -> tuple[T, float, float]:
    """Run `step`; answer its result, wall seconds and CPU seconds (the CPU figure holds on a
    machine shared with other work, the wall one does not)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--database", action="store_true", help="also import into SQLite and match from it"
    )
    args = parser.parse_args()

    paths = [p for folder in ECOSYSTEMS for p in sorted((VULNDB / folder).glob("*.json"))]
    blobs, read, read_cpu = timed(lambda: [p.read_bytes() for p in paths])
    records, parsed, parsed_cpu = timed(lambda: [parse_record(blob) for blob in blobs])
    index, indexed, indexed_cpu = timed(lambda: Index.of(records))
    print(f"records {len(records)} ({sum(map(len, blobs)) / 1e6:.1f} MB) in {len(paths)} files")
    print("step                 wall ms    CPU ms")
    print(f"read files         {read * 1000:9.1f} {read_cpu * 1000:9.1f}")
    print(
        f"parse records      {parsed * 1000:9.1f} {parsed_cpu * 1000:9.1f}"
        f"  ({parsed_cpu / len(records) * 1e6:.0f} us CPU/record)"
    )
    print(
        f"build index        {indexed * 1000:9.1f} {indexed_cpu * 1000:9.1f}"
        f"  ({index.packages()} packages)"
    )

    bom = components(records, args.components)

    def match() -> list[list[Finding]]:
        return [index.findings(eco, name, version) for eco, name, version in bom]

    found, cold, cold_cpu = timed(match)
    runs = [timed(match) for _ in range(args.repeat)]
    warm = statistics.median(r[1] for r in runs)
    warm_cpu = statistics.median(r[2] for r in runs)
    print(
        f"match {len(bom)}, cold   {cold * 1000:9.1f} {cold_cpu * 1000:9.1f}"
        "  (ranges compiled on first use)"
    )
    print(
        f"match {len(bom)}, warm   {warm * 1000:9.1f} {warm_cpu * 1000:9.1f}"
        f"  (median of {args.repeat})"
    )
    print(
        f"{sum(1 for f in found if f)} affected components, {sum(map(len, found))} findings; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    if args.database:
        from_database(bom, args.repeat, sum(map(len, found)))


def from_database(bom: list[tuple[str, str, str]], repeat: int, expected: int) -> None:
    """Import the fixture with the real importer into a new SQLite file, then match `bom`
    through the database as the registry does."""
    with tempfile.TemporaryDirectory(prefix="vuln-match-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'trustyard.db'}")
        try:
            migrate.upgrade(engine)
            importer = Importer(engine)

            def load() -> int:
                return sum(
                    importer.import_bundle(VULNDB / name, source=f"fixture-{name}").records
                    for name in ECOSYSTEMS
                )

            imported, wall, cpu = timed(load)
            print(f"import {imported} records into SQLite {wall * 1000:9.1f} {cpu * 1000:9.1f}")
            parts = [
                ImageComponent(
                    "linux/amd64",
                    eco,
                    name,
                    version,
                    "",
                    "",
                    Target(eco, name, version, Via.PACKAGE),
                )
                for eco, name, version in bom
            ]

            def match(service: VulnerabilityService) -> int:
                with read_tx(engine) as conn:
                    index = service.index_for(conn, packages(parts))
                return len(findings.match(index, parts))

            cold = [timed(lambda: match(VulnerabilityService())) for _ in range(repeat)]
            shared = VulnerabilityService()
            match(shared)
            warm = [timed(lambda: match(shared)) for _ in range(repeat)]
            for label, runs in (("cold", cold), ("warm", warm)):
                print(
                    f"match {len(bom)} from SQLite, {label} "
                    f"{statistics.median(r[1] for r in runs) * 1000:9.1f} "
                    f"{statistics.median(r[2] for r in runs) * 1000:9.1f}"
                    f"  (median of {repeat}; {label}: "
                    + ("a new record cache)" if label == "cold" else "records parsed before)")
                )
            assert cold[0][0] == expected, (cold[0][0], expected)  # the same findings
            print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
