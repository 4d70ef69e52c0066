"""Evaluating a promotion policy of 6 rules over 1,000 stored images (issue 12).

Setup (not measured): a SQLite database (or --database-url) and a blob folder with one
repository of N images (--images, default 1,000), each under its own tag, with an image
config (platform, created time, labels) in the blob store and a stored, matched scan of about
M components (--components, default 300; a third of them packages of the PyPI records of
../shared/vulndb at versions those records name, so images have vulnerabilities, the rest
names no record knows; licences on every component; one deb `openssl` in each), made from a
fixed seed. The PyPI fixture is imported first, so matching finds real findings.

Measured (each in a fresh process, so caches start empty): what a dry run or an initial
evaluation does over the whole repository through the registry's own objects (the facts
loader built by wiring/policies.py: the tags with their manifests, sizes, platforms and config
facts, the BOM components of the latest scans, the counts after triage), then the policy's
compiled rules judge every image. Reported: the first pass (cold: BOMs and configs read and
converted) and the best of --repeat later passes in the same process (warm: components
cached per scan, configs per digest), with the time in loading and in judging, and the CPU
time of the process (less disturbed than the wall clock on a shared machine).

The policy: tag starts with "1.", component.name neq log4j-core, component.version
deb:openssl lt 3.0.12, license.name noneof [GPL-3.0-only, AGPL-3.0-only],
vulnerability.critical lte 5, label.maintainer eq platform-team (every fact group: config,
scan, vulnerabilities).

  .venv/bin/python bench/policy_eval.py
  .venv/bin/python bench/policy_eval.py --images 200 --components 100
"""

from __future__ import annotations

import argparse
import json
import random
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
REPOSITORY = "bench/app"
LICENSES = ["MIT", "Apache-2.0", "BSD-3-Clause", "MIT OR Apache-2.0", "ISC", "PSF-2.0"]
RULES: list[dict[str, Any]] = [
    {"field": "tag", "operator": "sw", "values": ["1."]},
    {"field": "component.name", "operator": "neq", "values": ["log4j-core"]},
    {"field": "component.version", "operator": "lt", "values": ["deb:openssl", "3.0.12"]},
    {"field": "license.name", "operator": "noneof", "values": ["GPL-3.0-only", "AGPL-3.0-only"]},
    {"field": "vulnerability.critical", "operator": "lte", "values": ["5"]},
    {"field": "label.maintainer", "operator": "eq", "values": ["platform-team"]},
]


def settings_for(url: str, work: Path) -> Any:
    from trustyard.config import Settings

    return Settings(database_url=url, data_dir=work / "data")


def pypi_fixture() -> dict[str, list[str]]:
    """PyPI package names of the fixture with versions its records name."""
    known: dict[str, set[str]] = {}
    for path in sorted((VULNDB / "pypi").glob("*.json")):
        record = json.loads(path.read_bytes())
        if record.get("withdrawn"):
            continue
        for affected in record.get("affected", []):
            name = affected.get("package", {}).get("name")
            if not name:
                continue
            versions = known.setdefault(name, set())
            versions.update(affected.get("versions", [])[:5])
    return {name: sorted(v) for name, v in known.items() if v}


def setup(work: Path, url: str, images: int, components: int, seed: int) -> None:
    from trustyard.content.hotreads import StoreHotReads
    from trustyard.content.manifests import ManifestService
    from trustyard.content.stores import ContentStore
    from trustyard.db import migrate
    from trustyard.db.engine import make_engine, write_tx
    from trustyard.oci.digest import digest_bytes
    from trustyard.scanning.stores import ScanStore
    from trustyard.vulnerabilities.images import ImageMatcher, ImageStore
    from trustyard.vulnerabilities.importer import Importer
    from trustyard.vulnerabilities.service import VulnerabilityService
    from trustyard.wiring.common import make_driver

    rnd = random.Random(seed)
    settings = settings_for(url, work)
    engine = make_engine(url)
    migrate.upgrade(engine)
    driver = make_driver(settings)
    started = time.perf_counter()
    Importer(engine).import_bundle(VULNDB / "pypi", source="pypi")
    print(f"setup: PyPI fixture imported ({time.perf_counter() - started:.1f} s)")
    known = pypi_fixture()
    names = sorted(known)
    unknown = [f"lib-{i:05d}" for i in range(components * 20)]
    content, scans = ContentStore(), ScanStore()
    manifests = ManifestService(content, StoreHotReads(engine, content))
    matcher = ImageMatcher(ImageStore(scans), VulnerabilityService())

    def blob(conn: Any, repository_id: int, data: bytes, media_type: str) -> dict[str, Any]:
        digest = digest_bytes(data)
        path = driver.blob_path(digest)  # type: ignore[attr-defined]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        content.record_blob(conn, str(digest), len(data))
        content.link_blob(conn, repository_id, str(digest))
        return {"mediaType": media_type, "digest": str(digest), "size": len(data)}

    started = time.perf_counter()
    pending: list[int] = []
    for number in range(images):
        chosen = rnd.sample(names, min(len(names), components // 3))
        items = [("pypi", name, rnd.choice(known[name])) for name in chosen]
        items += [
            (
                rnd.choice(["pypi", "npm", "golang"]),
                name,
                f"1.{rnd.randrange(30)}.{rnd.randrange(9)}",
            )
            for name in rnd.sample(unknown, components - len(items) - 1)
        ]
        items.append(("deb", "openssl", "3.0.11-1~deb12u2"))
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": f"2026-0{1 + number % 9}-01T00:00:00Z",
            "config": {"Labels": {"maintainer": "platform-team", "build": str(number)}},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{number:064x}"]},
        }
        with write_tx(engine) as conn:
            repository_id = content.ensure_repository(conn, REPOSITORY)
            config_ref = blob(conn, repository_id, json.dumps(config).encode(), OCI_CONFIG)
            layer_ref = blob(conn, repository_id, f"layer {number}".encode() * 100, OCI_LAYER)
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config_ref,
                    "layers": [layer_ref],
                }
            ).encode()
            tag = f"1.{number // 100}.{number % 100}"
            pushed = manifests.put(conn, REPOSITORY, tag, body, OCI_MANIFEST)
            digest = str(pushed.digest)
            bom = {
                "manifest_digest": digest,
                "platform": "linux/amd64",
                "distro": {"id": "debian", "version_id": "12", "pretty_name": ""},
                "layers": [],
                "components": [
                    {
                        "ecosystem": ecosystem,
                        "name": name,
                        "version": version,
                        "purl": f"pkg:{ecosystem}/{name}@{version}",
                        "locations": [f"usr/lib/{name}/METADATA"],
                        "detector": "bench",
                        "licenses": rnd.choice(LICENSES),
                        "layer": layer_ref["digest"],
                        "diff_id": f"sha256:{number:064x}",
                    }
                    for ecosystem, name, version in items
                ],
            }
            scan_id = scans.create_scan(
                conn,
                repository_id,
                digest,
                job_id=None,
                trigger="push",
                force=False,
                requested_by=None,
            )
            scan = scans.get(conn, scan_id)
            assert scan is not None
            scans.succeed(conn, scan, [bom], [])
        pending.append(scan_id)
        if len(pending) == 50 or number == images - 1:
            with write_tx(engine) as conn:
                for each in pending:
                    matcher.match_scan(conn, each)
            pending = []
    print(
        f"setup: {images} images of {components} components stored, scanned and matched "
        f"({time.perf_counter() - started:.1f} s)"
    )
    engine.dispose()


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def measure(work: Path, url: str, repeat: int) -> None:
    from trustyard.content.stores import ContentStore
    from trustyard.db.engine import make_engine, read_tx
    from trustyard.jobs.queue import SqlJobQueue
    from trustyard.kit.clock import utc_now
    from trustyard.policies.interfaces import Outcome
    from trustyard.wiring.policies import make_facts_loader, make_policy_service
    from trustyard.wiring.scanning import make_scan_service

    settings = settings_for(url, work)
    engine = make_engine(url)
    loader = make_facts_loader(settings, make_scan_service(settings, SqlJobQueue(engine)))
    condition = make_policy_service(settings).condition(RULES, None)
    passes, cpus = [], []
    outcomes: dict[str, int] = {}
    for _ in range(1 + repeat):
        with read_tx(engine) as conn:
            repository = ContentStore().repository_record(conn, REPOSITORY)
            assert repository is not None
            began, cpu = time.perf_counter(), time.process_time()
            facts = loader.tags(conn, repository, frozenset(condition.needs))
            loaded = time.perf_counter()
            now = utc_now()
            verdicts = [condition.evaluate(each, now) for each in facts]
            judged = time.perf_counter()
            cpus.append(time.process_time() - cpu)
        passes.append((loaded - began, judged - loaded, len(facts)))
        outcomes = {}
        for verdict in verdicts:
            outcomes[verdict.outcome.value] = outcomes.get(verdict.outcome.value, 0) + 1
    engine.dispose()
    (cold_load, cold_judge, count), *warm = passes
    print(f"images judged: {count}; outcomes: {outcomes}; needs: {sorted(condition.needs)}")
    cold = cold_load + cold_judge
    split = f"load {cold_load:.3f} s, judge {cold_judge:.3f} s; CPU {cpus[0]:.3f} s"
    print(f"cold: {cold:.3f} s ({split})")
    if warm:
        best = min(range(len(warm)), key=lambda i: warm[i][0] + warm[i][1])
        load, judge, _ = warm[best]
        print(
            f"warm (best of {len(warm)}): {load + judge:.3f} s (load {load:.3f} s, judge "
            f"{judge:.3f} s; CPU {cpus[1 + best]:.3f} s)"
        )
    assert Outcome.PENDING.value not in outcomes, "every image is scanned and matched"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="warm passes after the cold one")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--phase", choices=["setup", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase is not None:
        if args.phase == "setup":
            setup(args.work, args.database_url, args.images, args.components, args.seed)
        else:
            measure(args.work, args.database_url, args.repeat)
        return
    work = Path(tempfile.mkdtemp(prefix="policy-eval-"))
    try:
        url = args.database_url or f"sqlite:///{work / 'bench.db'}"
        common = [sys.executable, __file__, "--work", str(work), "--database-url", url]
        sizes = ["--images", str(args.images), "--components", str(args.components)]
        subprocess.run([*common, *sizes, "--seed", str(args.seed), "--phase", "setup"], check=True)
        subprocess.run([*common, "--repeat", str(args.repeat), "--phase", "measure"], check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
