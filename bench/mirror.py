"""Mirroring the shared test images from one trustyard to another (issue 13), against
`skopeo sync` doing the same copy between the same two servers in the same run.

Two trustyard servers (SQLite, accounts on, as deployed) A and B; the six shared test images
are pushed into A as `bench/<name>:latest` (multi-arch with every child). B is reached through
the counting proxy of tests/support/proxy.py, so both copies are measured the same way: the
request body bytes that reach B (blob uploads and manifests).

1. skopeo: `skopeo sync --src docker --dest docker --all` of each repository of A into
   `skopeo/` on B; wall time, bytes into B, peak RSS (/usr/bin/time -f %M). Then the same
   sync again (unchanged): bytes into B.
2. trustyard: a remote on A naming B (through the proxy) and one push policy per repository
   (`bench/<name>` -> `mirror/<name>`, initialEvaluation); wall time from the first policy's
   creation until every policy's runs are finished; bytes into B; the runs' bytesMoved; peak
   RSS of A's processes (VmHWM, reset through /proc/PID/clear_refs before the phase: the
   worker is the largest). Then "run now" on every policy (unchanged): bytes into B.

Usage (from the repository root): .venv/bin/python bench/mirror.py [--images a,b,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.images import IMAGE_NAMES, image_layout  # noqa: E402
from tests.support.mirroring import ADMIN_PASSWORD, SITE_ENV, Site, copy  # noqa: E402
from tests.support.proxy import CountingProxy  # noqa: E402
from tests.support.server import TrustyardServer  # noqa: E402

CREDS = f"admin:{ADMIN_PASSWORD}"
# As deployed (accounts on), with the jobs polled quickly; not the tests' short timeouts.
BENCH_ENV = {
    key: SITE_ENV[key]
    for key in (
        "TRUSTYARD_AUTH__ENABLED",
        "TRUSTYARD_ADMIN_PASSWORD",
        "TRUSTYARD_JOBS__POLL_SECONDS",
    )
}


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mib(pids: list[int]) -> dict[int, float]:
    peaks: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
    return peaks


def skopeo_sync(a: Site, b_host: str, names: list[str]) -> tuple[float, float]:
    """Sync every repository; (seconds, largest peak RSS of a skopeo in MiB)."""
    started = time.perf_counter()
    peak = 0.0
    for name in names:
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M",
             "skopeo", "sync", "--src", "docker", "--dest", "docker", "--all",
             "--src-tls-verify=false", "--dest-tls-verify=false",
             "--src-creds", CREDS, "--dest-creds", CREDS,
             f"{a.host}/bench/{name}", f"{b_host}/skopeo"],
            capture_output=True, text=True, check=False, timeout=1800,
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"skopeo sync {name}: {result.stderr[-2000:]}")
        peak = max(peak, int(result.stderr.strip().splitlines()[-1]) / 1024)
    return time.perf_counter() - started, peak


def trustyard_mirror(a: Site, names: list[str], first: bool) -> tuple[float, int, int]:
    """Create (first) or run again the policies; (seconds, runs' bytesMoved, failed items)."""
    started = time.perf_counter()
    policies: list[tuple[str, int, int | None]] = []
    for name in names:
        repository = f"bench/{name}"
        if first:
            policy = a.add_policy(
                repository,
                direction="push",
                remote="site-b",
                remoteRepository=f"mirror/{name}",
                initialEvaluation=True,
            )
            policies.append((repository, int(policy["id"]), None))
        else:
            policy_id = int(a.api.get(f"/repositories/{repository}/mirror-policies").json()
                            ["items"][0]["id"])  # fmt: skip
            policies.append((repository, policy_id, a.run_now(repository, policy_id)))
    moved = failed = 0
    for repository, policy_id, run_id in policies:
        if run_id is None:
            runs = a.await_settled(repository, policy_id)
        else:
            runs = [a.await_run(repository, policy_id, run_id)]
        for run in runs:
            moved += int(run.get("bytesMoved") or 0)
            failed += int(run.get("itemsFailed") or 0)
    return time.perf_counter() - started, moved, failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", default=",".join(IMAGE_NAMES))
    parser.add_argument("--skopeo-only", action="store_true", help="skip trustyard's side")
    args = parser.parse_args()
    names = [n for n in args.images.split(",") if n]
    work = Path(tempfile.mkdtemp(prefix="trustyard-bench-mirror-"))
    a_server = TrustyardServer(work / "a", extra_env=BENCH_ENV)
    b_server = TrustyardServer(work / "b", extra_env=BENCH_ENV)
    results: dict[str, Any] = {"images": names}
    with contextlib.ExitStack() as stack:
        for server in (a_server, b_server):
            server.start()
            stack.callback(server.stop)
        a, b = Site(a_server), Site(b_server)
        proxy = stack.enter_context(CountingProxy(b.url))
        for name in names:
            copy(f"oci:{image_layout(name)}:latest", f"docker://{a.host}/bench/{name}:latest")

        seconds, peak = skopeo_sync(a, proxy.host, names)
        results["skopeo"] = {
            "seconds": round(seconds, 2),
            "bytes_into_b": proxy.bytes_sent(),
            "peak_rss_mib": round(peak, 1),
        }
        proxy.reset_counters()
        seconds, _ = skopeo_sync(a, proxy.host, names)
        results["skopeo"]["rerun_seconds"] = round(seconds, 2)
        results["skopeo"]["rerun_bytes_into_b"] = proxy.bytes_sent()
        proxy.reset_counters()
        if args.skopeo_only:
            print(json.dumps(results, indent=2))
            return

        a.add_remote("site-b", proxy.url, username="admin", password=ADMIN_PASSWORD)
        assert a_server.process is not None
        tree = process_tree(a_server.process.pid)
        reset_peaks(tree)
        seconds, moved, failed = trustyard_mirror(a, names, first=True)
        peaks = peak_rss_mib(tree)
        results["trustyard"] = {
            "seconds": round(seconds, 2),
            "bytes_into_b": proxy.bytes_sent(),
            "bytes_moved_reported": moved,
            "items_failed": failed,
            "peak_rss_mib_largest_process": round(max(peaks.values(), default=0.0), 1),
            "peak_rss_mib_per_process": {str(k): round(v, 1) for k, v in peaks.items()},
        }
        proxy.reset_counters()
        seconds, moved, failed = trustyard_mirror(a, names, first=False)
        results["trustyard"]["rerun_seconds"] = round(seconds, 2)
        results["trustyard"]["rerun_bytes_into_b"] = proxy.bytes_sent()
        results["trustyard"]["rerun_blob_bytes_into_b"] = proxy.bytes_sent(
            path_part="/blobs/uploads/"
        )
        results["trustyard"]["rerun_bytes_moved_reported"] = moved
        for name in names:
            a_digest = a.digest(f"bench/{name}", "latest")
            results.setdefault("digest_exact", {})[name] = a_digest == b.digest(
                f"mirror/{name}", "latest"
            ) and a_digest == b.digest(f"skopeo/{name}", "latest")
    print(json.dumps(results, indent=2))
    out = REPO_ROOT / "bench" / "results" / f"mirror-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    if os.environ.get("KEEP") is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
