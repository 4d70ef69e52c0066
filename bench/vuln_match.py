"""Parsing the OSV fixture and matching one 300-component list against it, in memory (issue 11).

Reads every record of ../shared/vulndb (pypi/, go/, npm/: 6,968 records, about 15 MB) with
`parse_record`, builds the in-memory `Index`, then matches one list of N components (default
300) and prints the seconds of each step and the peak resident memory (ru_maxrss).

The list is made from the fixture and a fixed seed, so every run matches the same list: a
third of the components are packages the fixture has records for (PyPI, npm, Go, each at a
version taken from its records' events or explicit versions, so that many are affected), the
rest are names it has no record for, as most of an image's packages are. The first match of
a package compiles its records' ranges (parses their versions); the cold figure includes that,
the warm one (the median of --repeat runs over the same list) does not, as in a worker that
matched these packages before.

  .venv/bin/python bench/vuln_match.py
  .venv/bin/python bench/vuln_match.py --components 1000 --repeat 20
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from pathlib import Path

from trustyard.vulnerabilities.index import Index
from trustyard.vulnerabilities.osv import Record, parse_record

VULNDB = Path(__file__).resolve().parents[2] / "shared" / "vulndb"
ECOSYSTEMS = {"pypi": "PyPI", "go": "Go", "npm": "npm"}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    paths = [p for folder in ECOSYSTEMS for p in sorted((VULNDB / folder).glob("*.json"))]
    started = time.perf_counter()
    blobs = [p.read_bytes() for p in paths]
    read = time.perf_counter() - started
    started = time.perf_counter()
    records = [parse_record(blob) for blob in blobs]
    parsed = time.perf_counter() - started
    started = time.perf_counter()
    index = Index.of(records)
    indexed = time.perf_counter() - started
    print(f"records {len(records)} ({sum(map(len, blobs)) / 1e6:.1f} MB) in {len(paths)} files")
    print(f"read files      {read * 1000:8.1f} ms")
    print(f"parse records   {parsed * 1000:8.1f} ms  ({parsed / len(records) * 1e6:.0f} us/record)")
    print(f"build index     {indexed * 1000:8.1f} ms  ({index.packages()} packages)")

    bom = components(records, args.components)

    def match() -> tuple[float, int, int]:
        started = time.perf_counter()
        found = [index.findings(eco, name, version) for eco, name, version in bom]
        elapsed = time.perf_counter() - started
        return elapsed, sum(1 for f in found if f), sum(len(f) for f in found)

    cold, hit, total = match()
    warm = statistics.median(match()[0] for _ in range(args.repeat))
    print(
        f"match {len(bom)} components: cold {cold * 1000:.1f} ms, warm {warm * 1000:.1f} ms "
        f"(median of {args.repeat}); {hit} affected components, {total} findings"
    )
    print(f"peak RSS        {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MiB")


if __name__ == "__main__":
    main()
