"""Re-matching stored images after an update of the vulnerability database (issue 11).

Setup (not measured): a SQLite database (or --database-url) with the OSV fixture of
../shared/vulndb imported as three sources (pypi, go, npm) *minus one advisory of each of a
share of its packages* (--share, default 10 %), and N stored, matched images (--images,
default 1,000) of about M components each (--components, default 300), made from a fixed seed:
a third of each image's components are fixture packages at versions taken from their records
(so many are affected), the rest are names no record knows, as most of an image's packages
are; images share packages as images built on common bases do.

Measured, each in a fresh process so that its peak resident memory (ru_maxrss) is its own:
1. `update`: the full fixture imported again, source by source, through the importer with the
   re-match hook (as `trustyard vulndb import` does): each switch queues its vulns.rematch job
   with the packages that changed (the ones that gained their advisory back).
2. `rematch`: every queued vulns.rematch job run by its handler (Rematcher: the stored
   components of those packages only, one index lookup per 50 images, the difference
   written, VULNERABILITY_FOUND per changed image and SCANNER_UPDATE_COMPLETED stored in the
   outbox as if a webhook listened). No layer exists anywhere.

  .venv/bin/python bench/vuln_rematch.py
  .venv/bin/python bench/vuln_rematch.py --images 200 --share 0.05
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from tests.support.images import shared_dir  # noqa: E402  (the folder the tests use)

VULNDB = shared_dir() / "vulndb"
FOLDERS = {"pypi": ("PyPI", "pypi"), "go": ("Go", "golang"), "npm": ("npm", "npm")}
LAYERS = [f"sha256:{i:064x}" for i in range(1, 40)]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_for(url: str) -> Any:
    from trustyard.db.engine import make_engine

    return make_engine(url)


# --- setup ----------------------------------------------------------------------------------
def setup(work: Path, url: str, images: int, components: int, share: float, seed: int) -> None:
    from trustyard.content.interfaces import ManifestRecord
    from trustyard.content.stores import ContentStore
    from trustyard.db import migrate
    from trustyard.db.engine import write_tx
    from trustyard.scanning.stores import ScanStore
    from trustyard.vulnerabilities.images import ImageMatcher, ImageStore
    from trustyard.vulnerabilities.importer import Importer
    from trustyard.vulnerabilities.service import VulnerabilityService

    rnd = random.Random(seed)
    engine = engine_for(url)
    migrate.upgrade(engine)
    known: dict[tuple[str, str], set[str]] = {}  # (folder, name) -> versions in its records
    latest: dict[tuple[str, str], tuple[str, Path]] = {}  # its newest record (modified, path)
    for folder in FOLDERS:
        for path in sorted((VULNDB / folder).glob("*.json")):
            record = json.loads(path.read_bytes())
            if record.get("withdrawn"):
                continue
            for affected in record.get("affected", []):
                name = affected.get("package", {}).get("name")
                if not name:
                    continue
                versions = known.setdefault((folder, name), set())
                versions.update(affected.get("versions", [])[:5])
                for r in affected.get("ranges", []):
                    versions.update(v for e in r.get("events", []) for v in e.values() if v != "0")
                modified = record.get("modified", "")
                if (folder, name) not in latest or latest[(folder, name)][0] < modified:
                    latest[(folder, name)] = (modified, path)
    packages = sorted(k for k, v in known.items() if v)
    touched = rnd.sample(packages, max(1, int(len(packages) * share)))
    held_back = {latest[key][1] for key in touched}
    for folder in FOLDERS:
        target = work / "older" / folder
        target.mkdir(parents=True)
        for path in (VULNDB / folder).glob("*.json"):
            if path not in held_back:
                shutil.copy(path, target / path.name)
    started = time.perf_counter()
    importer = Importer(engine)
    for folder in FOLDERS:
        importer.import_bundle(work / "older" / folder, source=folder)
    print(
        f"setup: fixture imported less {len(held_back)} advisories of {len(touched)} of "
        f"{len(packages)} packages ({time.perf_counter() - started:.1f} s)"
    )

    # Images: a third fixture packages, the rest unknown names, from shared pools.
    unknown = [f"lib-{i:05d}" for i in range(components * 20)]
    content, scans = ContentStore(), ScanStore()
    matcher = ImageMatcher(ImageStore(scans), VulnerabilityService())
    started = time.perf_counter()
    batch: list[int] = []
    for number in range(images):
        chosen = rnd.sample(packages, components // 3)
        items = [
            (folder, name, rnd.choice(sorted(known[(folder, name)]))) for folder, name in chosen
        ]
        items += [
            (rnd.choice(list(FOLDERS)), name, f"1.{rnd.randrange(30)}.{rnd.randrange(9)}")
            for name in rnd.sample(unknown, components - len(items))
        ]
        bom = {
            "manifest_digest": f"sha256:{number:064x}",
            "platform": "linux/amd64",
            "distro": None,
            "layers": [],
            "components": [
                {
                    "ecosystem": FOLDERS[folder][1],
                    "name": name,
                    "version": version,
                    "purl": f"pkg:{FOLDERS[folder][1]}/{name}@{version}",
                    "locations": [f"/app/{name}"],
                    "detector": "bench",
                    "layer": rnd.choice(LAYERS),
                    "diff_id": "sha256:0",
                }
                for folder, name, version in items
            ],
        }
        payload = json.dumps({"schemaVersion": 2, "n": number}).encode()
        with write_tx(engine) as conn:
            repository = content.ensure_repository(conn, f"bench/app{number % 100}")
            record = ManifestRecord(
                bom["manifest_digest"],  # type: ignore[arg-type]
                "application/vnd.oci.image.manifest.v1+json",  # type: ignore[arg-type]
                payload,
            )
            content.insert_manifest(conn, repository, record, None, None, [])
            scan_id = scans.create_scan(
                conn,
                repository,
                bom["manifest_digest"],
                job_id=None,
                trigger="push",
                force=False,
                requested_by=None,
            )
            scan = scans.get(conn, scan_id)
            assert scan is not None
            scans.succeed(conn, scan, [bom], [])
        batch.append(scan_id)
        if len(batch) == 50 or number == images - 1:
            with write_tx(engine) as conn:
                for each in batch:
                    matcher.match_scan(conn, each)
            batch = []
    print(
        f"setup: {images} images of {components} components stored and matched "
        f"({time.perf_counter() - started:.1f} s)"
    )
    engine.dispose()


# --- measured phases ------------------------------------------------------------------------
def update(url: str) -> None:
    from trustyard.jobs.queue import SqlJobQueue
    from trustyard.vulnerabilities.importer import Importer
    from trustyard.vulnerabilities.rematch import enqueue_rematch

    engine = engine_for(url)
    queue = SqlJobQueue(engine)
    importer = Importer(
        engine, on_switch=lambda conn, source, found: enqueue_rematch(queue, conn, source, found)
    )
    started = time.perf_counter()
    changed = 0
    for folder in FOLDERS:
        changed += len(importer.import_bundle(VULNDB / folder, source=folder).changed_packages)
    print(
        f"update: {changed} packages changed, imported in {time.perf_counter() - started:.2f} s, "
        f"peak RSS {peak_mib():.0f} MiB"
    )
    engine.dispose()


def rematch(url: str) -> None:
    from sqlalchemy import func, select

    from trustyard.db.engine import read_tx
    from trustyard.db.tables import event_outbox, jobs
    from trustyard.events.outbox import Outbox
    from trustyard.jobs.interfaces import JobContext
    from trustyard.jobs.queue import SqlJobQueue
    from trustyard.scanning.stores import ScanStore
    from trustyard.vulnerabilities.images import ImageMatcher, ImageStore
    from trustyard.vulnerabilities.jobs import RematchImages
    from trustyard.vulnerabilities.rematch import REMATCH_KIND, Rematcher
    from trustyard.vulnerabilities.service import VulnerabilityService

    engine = engine_for(url)
    with read_tx(engine) as conn:
        queued = conn.execute(
            select(jobs.c.id, jobs.c.payload).where(jobs.c.kind == REMATCH_KIND).order_by(jobs.c.id)
        ).all()
    matcher = ImageMatcher(ImageStore(ScanStore()), VulnerabilityService())
    handler = RematchImages(Rematcher(engine, matcher, Outbox(SqlJobQueue(engine))))
    wall, cpu = time.perf_counter(), time.process_time()
    for job_id, payload in queued:
        handler(JobContext(job_id, REMATCH_KIND, json.loads(payload), 1, 1, "bench"))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with read_tx(engine) as conn:
        counted = dict(
            conn.execute(
                select(event_outbox.c.type, func.count()).group_by(event_outbox.c.type)
            ).all()
        )
    print(
        f"rematch: {len(queued)} jobs in {wall:.2f} s ({cpu:.2f} s CPU), peak RSS "
        f"{peak_mib():.0f} MiB; events {counted}"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--share", type=float, default=0.10, help="of the fixture's packages")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--phase", choices=["setup", "update", "rematch"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase is not None:
        url = args.database_url
        if args.phase == "setup":
            setup(args.work, url, args.images, args.components, args.share, args.seed)
        else:
            (update if args.phase == "update" else rematch)(url)
        return
    work = Path(tempfile.mkdtemp(prefix="vuln-rematch-"))
    try:
        url = args.database_url or f"sqlite:///{work / 'bench.db'}"
        common = [sys.executable, __file__, "--work", str(work), "--database-url", url]
        sizes = [
            "--images",
            str(args.images),
            "--components",
            str(args.components),
            "--share",
            str(args.share),
            "--seed",
            str(args.seed),
        ]
        for phase in ("setup", "update", "rematch"):
            subprocess.run([*common, *sizes, "--phase", phase], check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
