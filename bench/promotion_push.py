"""What promotion policies add to a push: regbench's manifest scenario against two repositories
of ONE trustyard server, one with three promotion policies and one without (issue 12).

One server (accounts on, scan on push on, as deployed) serves both regbench targets, so the
two repositories share the machine, the database and the worker: the ratio is the cost of the
policies alone. regbench names its repositories `<prefix>/<run id>/t<slot>/<scenario>` with a
random run id; a small shim runs regbench with a fixed run id so the policies can be created on
the right repository before the timed rounds (the shared tool itself is untouched).

The three policies on `.../t<slot>/manifest` (every push is a tag push, so each fires):
  1. tag matches ^r[0-9]+-[0-9]+$             -> promoted-1, tag %n   (passes: promotes)
  2. tag starts with r, critical vulns <= 0  -> promoted-2, tag %n-%h (waits for the scan and
                                                the match, then promotes)
  3. tag equals release                      -> promoted-3           (fails: never promotes)

Each order of the two targets in a round is run (plain first, then policies first): the
worker's backlog from the pushes of one target runs into the rounds of the target after it.
Prints both regbench tables and the manifest/put ratio (policies / plain) of each order, and
how many promotions the worker had made when regbench finished and when its backlog drained.

Usage (from the repository root): .venv/bin/python bench/promotion_push.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from run import (  # noqa: E402  (bench/run.py: the shared helpers of the benchmarks)
    BENCH_PASSWORD,
    BENCH_USER,
    QUICK_REGBENCH,
    run_tool,
    seed_bench_accounts,
    shared_dir,
)

ADMIN_PASSWORD = "an admin password for the promotion benchmark"
PLAIN, POLICIES = "plain", "policies"

# Runs regbench with a fixed run id (argv[1]); the rest of argv goes to regbench.
SHIM = """
import importlib.util, sys
path, run_id = sys.argv[1], sys.argv[2]
sys.argv = [path] + sys.argv[3:]
spec = importlib.util.spec_from_file_location("regbench", path)
module = importlib.util.module_from_spec(spec)
sys.modules["regbench"] = module
spec.loader.exec_module(module)
made = module.Config
module.Config = lambda **fields: made(**{**fields, "run_id": run_id})
module.main()
"""


def policies_for(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "enabled": True,
            "rules": [{"field": "tag", "operator": "matches", "values": ["^r[0-9]+-[0-9]+$"]}],
            "targetRepository": f"{prefix}/promoted-1",
            "tagTemplate": "%n",
        },
        {
            "enabled": True,
            "rules": [
                {"field": "tag", "operator": "sw", "values": ["r"]},
                {"field": "vulnerability.critical", "operator": "lte", "values": ["0"]},
            ],
            "targetRepository": f"{prefix}/promoted-2",
            "tagTemplate": "%n-%h",
        },
        {
            "enabled": True,
            "rules": [{"field": "tag", "operator": "eq", "values": ["release"]}],
            "targetRepository": f"{prefix}/promoted-3",
            "tagTemplate": "%n",
        },
    ]


def expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise SystemExit(f"{what}: {response.status_code} {response.text[:500]}")


def prepare(url: str, prefix: str, order: list[str]) -> None:
    """Both repositories, the three targets and the policies (as the administrator)."""
    admin = ("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=url, auth=admin, timeout=60) as client:
        names = [f"{prefix}/t{slot}/manifest" for slot in range(len(order))]
        names += [f"{prefix}/promoted-{n}" for n in (1, 2, 3)]
        for name in names:
            expect(client.post("/api/v1/repositories", json={"name": name}), 201, f"create {name}")
        source = f"{prefix}/t{order.index(POLICIES)}/manifest"
        for body in policies_for(prefix):
            answer = client.post(f"/api/v1/repositories/{source}/promotion-policies", json=body)
            expect(answer, 201, f"policy on {source}")


def promotions(url: str, prefix: str) -> int:
    """Tags in the three target repositories (every promotion moved one)."""
    total = 0
    with httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=60) as client:
        for n in (1, 2, 3):
            answer = client.get(f"/v2/{prefix}/promoted-{n}/tags/list")
            if answer.status_code == 200:
                total += len(answer.json().get("tags") or [])
    return total


def backlog(database: Path) -> int:
    """Jobs queued or running (scans, matches, evaluations, promotions' scans)."""
    import sqlite3

    with sqlite3.connect(database) as db:
        row = db.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
        return int(row.fetchone()[0])


def drained(url: str, prefix: str, database: Path, limit: float = 1800.0) -> int:
    """Wait until the worker's backlog is done (no job queued or running); the promotions
    made by then."""
    began = time.monotonic()
    while backlog(database) and time.monotonic() - began < limit:
        time.sleep(0.5)
    return promotions(url, prefix)


def manifest_put(doc: dict[str, Any], target: str) -> float | None:
    for row in doc.get("summary", []):
        if row.get("scenario") == "manifest/put" and row.get("target") == target:
            return float(row["median"])
    return None


def run_order(order: list[str], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.server import TrustyardServer

    env = {
        "TRUSTYARD_AUTH__ENABLED": "true",
        "TRUSTYARD_SCANNING__ENABLED": "true",
        "TRUSTYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TRUSTYARD_VULNERABILITIES__UPDATE_CRON": "",
        "TRUSTYARD_JOBS__EMBEDDED_WORKERS": "1" if args.worker else "0",
    }
    name = "-".join(order)
    server = TrustyardServer(
        data_dir=out / name / "data", workers=os.cpu_count() or 1, extra_env=env
    )
    server.data_dir.parent.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        assert server.process is not None
        seed_bench_accounts(f"sqlite:///{server.data_dir / 'trustyard.db'}")
        run_id = os.urandom(4).hex()
        prefix = f"regbench/{run_id}"
        prepare(server.url, prefix, order)
        regbench = str(shared_dir() / "bench" / "regbench.py")
        argv = [sys.executable, "-c", SHIM, regbench, run_id]
        for target in order:
            argv += [
                f"--target={target}={server.url}",
                f"--server-pid={target}={server.process.pid}",
            ]
            argv += [f"--auth={target}={BENCH_USER}:{BENCH_PASSWORD}"]
        argv += ["--scenario", "manifest", "--json", str(out / f"{name}.json")]
        argv += QUICK_REGBENCH if args.quick else []
        if args.rounds:
            argv += ["--rounds", str(args.rounds)]
        status = run_tool(argv, out / f"{name}.txt")
        doc: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
        at_end = promotions(server.url, prefix)
        began = time.monotonic()
        final = (
            drained(server.url, prefix, server.data_dir / "trustyard.db") if args.worker else at_end
        )
        return {
            "order": order,
            "status": status,
            "plain": manifest_put(doc, PLAIN),
            "policies": manifest_put(doc, POLICIES),
            "promotions_at_end": at_end,
            "promotions_final": final,
            "drain_seconds": time.monotonic() - began,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--rounds", type=int, help="regbench rounds (default: regbench's)")
    parser.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="start no job worker: the request path alone (jobs are queued, none runs)",
    )
    args = parser.parse_args()
    out = REPO_ROOT / "bench" / "results" / time.strftime("promotion-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for order in ([PLAIN, POLICIES], [POLICIES, PLAIN]):
        results.append(run_order(order, out, args))
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        "\n| order in a round | plain manifest/put | with 3 policies | ratio | promotions at"
        " end / after the backlog (drain s) |"
    )
    print("|---|--:|--:|--:|--:|")
    for r in results:
        ratio = r["policies"] / r["plain"] if r["plain"] and r["policies"] else float("nan")
        print(
            f"| {' then '.join(r['order'])} | {r['plain'] or 0:,.0f} req/s |"
            f" {r['policies'] or 0:,.0f} req/s | {ratio:.2f}x |"
            f" {r['promotions_at_end']:,} / {r['promotions_final']:,} ({r['drain_seconds']:.0f}) |"
        )
    print(f"\nraw outputs: {out}")
    if any(r["status"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
