"""Benchmark trustyard against the reference registry in one run.

Starts the reference registry (distribution, Debian `docker-registry`) and a trustyard server
(one worker per core, scan on push on as in production), each on its own data folder under a
temporary folder, runs what the flags
select, writes the raw outputs to bench/results/<time>/ and prints a markdown table:

  --rates      shared/bench/rates.py: wrk/ab request rates of the hot reads (ref first)
  --regbench   shared/bench/regbench.py: every kind of request, correctness-checked, with the
               RSS/CPU of both server process trees (--scenario to pick scenarios)
  --limits     also regbench --limits (sha256, disk and loopback speed of this machine)
  --memory     push one 1 GiB blob (chunked PATCH of 64 MiB, then monolithic) streamed from a
               generator, sampling the RSS of every server process every 20 ms
               (--memory-ref: the same on the reference registry)
  --auth       also run a third server with accounts on ("trustyard-auth"), and send rates and
               regbench to it as user `bench`, who may push through an organization team grant
               (the real permission path, not the administrator's); the report adds a table of
               trustyard-auth against the open trustyard of the same run
  --webhook    with --auth: a fourth server ("trustyard-hook"), accounts on as well, with a
               registry-wide webhook subscription (pushes and new repositories) to a receiver
               on loopback; the report adds trustyard-hook against trustyard-auth: what
               recording and delivering events costs
  --before SRC also run every trustyard server above a second time from the source folder SRC
               (e.g. a `git worktree add ../before <commit>`'s src), named "<name>-before":
               old and new code side by side in the same run; the report adds a table of
               each new server against its old twin
  --before-first  with --before: each old server runs just before its new twin in a round
               (by default after it): a server's place in a round matters on a shared
               machine (the others' scans of earlier setups run in the background)
  --scan-off   scan on push off on every server (on by default, as deployed): the request
               path alone, without the background scans of earlier setups
  --quick      small counts and sizes everywhere (a smoke run, not a measurement)
  --report DIR print the tables of a past run again

Example (from the repository root):
  /tmp/probe/bin/python bench/run.py --rates --regbench --memory

Every server it started is stopped by PID on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
MiB = 1 << 20
REF, TRUSTYARD, AUTH, HOOK = "ref", "trustyard", "trustyard-auth", "trustyard-hook"
BEFORE = "-before"  # suffix of the servers running the old code (--before)
HOOK_ADMIN_PASSWORD = "an admin password for the webhook benchmark"
BENCH_USER, BENCH_PASSWORD = "bench", "a password for the benchmark user"
BENCH_ORGS = ("regbench", "rates")  # the repository prefixes regbench and rates.py use

QUICK_REGBENCH = [
    "--rounds", "1", "--count", "200", "--large-mib", "32", "--range-requests", "50",
    "--tags", "300", "--tag-listings", "2", "--mixed-seconds", "5", "--mixed-pool", "64",
]  # fmt: skip
QUICK_RATES = ["--rounds", "1", "--seconds", "3"]


def shared_dir() -> Path:
    """The shared lab folder, found as the tests find it."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.images import shared_dir as find_shared

    return find_shared()


# --------------------------------------------------------------------------- servers


@dataclass
class Target:
    name: str
    url: str
    pid: int  # root of the server's process tree


class Servers:
    """Both registries, each on its own data folder under `workdir`; stop() stops both by PID."""

    def __init__(
        self,
        workdir: Path,
        workers: int,
        auth: bool = False,
        webhook: bool = False,
        before: Path | None = None,
        before_first: bool = False,
        scan: bool = True,
    ) -> None:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        from tests.support.refreg import ReferenceRegistry
        from tests.support.server import TrustyardServer

        self.workdir = workdir
        self.ref = ReferenceRegistry(base_dir=workdir)
        # Every server as deployed: scan on push is on by default in production (the tests'
        # TrustyardServer turns it off unless asked), accounts on where the kind says so.
        scanning = {"TRUSTYARD_SCANNING__ENABLED": "true" if scan else "false"}
        accounts = scanning | {"TRUSTYARD_AUTH__ENABLED": "true"}
        hook = accounts | {
            "TRUSTYARD_ADMIN_PASSWORD": HOOK_ADMIN_PASSWORD,
            "TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS": "127.0.0.1/32",
        }
        kinds: list[tuple[str, dict[str, str]]] = [(TRUSTYARD, scanning)]
        kinds += [(AUTH, accounts)] if auth else []
        kinds += [(HOOK, hook)] if webhook else []
        sources: list[tuple[str, dict[str, str]]] = [("", {})]
        if before is not None:
            sources.append((BEFORE, {"PYTHONPATH": str(before.resolve())}))
            if before_first:  # the place in a round matters on a shared machine: swap them
                sources.reverse()
        # (target name, server, kind): each kind from the new code, then from the old one.
        self.servers: list[tuple[str, Any, str]] = []
        for kind, env in kinds:
            for suffix, source_env in sources:
                name = kind + suffix
                server = TrustyardServer(
                    data_dir=workdir / name / "data", workers=workers, extra_env=env | source_env
                )
                self.servers.append((name, server, kind))
        self.trustyard = next(server for name, server, _ in self.servers if name == TRUSTYARD)
        self.receivers: list[Any] = []
        self.targets: list[Target] = []

    def start(self) -> list[Target]:
        self.ref.start()
        assert self.ref.pid is not None
        self.targets.append(Target(REF, self.ref.url, self.ref.pid))
        for name, server, kind in self.servers:
            server.data_dir.parent.mkdir(parents=True, exist_ok=True)
            server.start()
            assert server.process is not None
            if kind != TRUSTYARD:
                seed_bench_accounts(f"sqlite:///{server.data_dir / 'trustyard.db'}")
            if kind == HOOK:
                self._subscribe(server)
            self.targets.append(Target(name, server.url, server.process.pid))
        return self.targets

    def _subscribe(self, server: Any) -> None:
        receiver = LeanReceiver()
        self.receivers.append(receiver)
        subscribe = httpx.post(
            f"{server.url}/api/v1/webhooks",
            auth=("admin", HOOK_ADMIN_PASSWORD),
            json={
                "url": receiver.url(),
                "registry": True,
                "events": ["TAG_PUSH", "MANIFEST_PUSH", "REPO_CREATED"],
            },
            timeout=60,
        )
        _expect(subscribe, 201, "POST /api/v1/webhooks")

    def save_logs(self, out: Path) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            shutil.copy(self.ref.log_file, out / "ref-registry.log")
        for name, server, _ in self.servers:
            with contextlib.suppress(OSError):
                shutil.copy(server.log_path, out / f"{name}.log")

    def stop(self) -> None:
        try:
            for _, server, _ in reversed(self.servers):
                with contextlib.suppress(Exception):
                    server.stop()
            for receiver in self.receivers:
                receiver.close()
                print(
                    f"webhook receiver got {receiver.count} deliveries, "
                    f"{receiver.cpu_seconds():.1f} s of CPU",
                    file=sys.stderr,
                )
        finally:
            self.ref.stop()


class LeanReceiver:
    """The webhook receiver of the benchmark: an asyncio server on loopback that answers every
    POST 200 and counts them, and no more. It shares the machine's cores with the servers, so
    it should cost little: tests/support's receiver (http.server, a thread per connection,
    every request kept) took about a quarter of a core at 600 deliveries a second. Its own
    CPU time is reported."""

    def __init__(self) -> None:
        import asyncio

        self.count = 0
        self._cpu = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def cpu_seconds(self) -> float:
        return self._cpu

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._answer, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._cpu = time.thread_time()

    async def _answer(self, reader: Any, writer: Any) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.count += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, ValueError, EOFError) as error:
            print(f"webhook receiver: {error}", file=sys.stderr)
        finally:
            writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def seed_bench_accounts(database_url: str) -> None:
    """User `bench`, member of a team with read-write on every repository of the organizations
    named after the benchmarks' repository prefixes."""
    from trustyard.auth.accounts import AccountService
    from trustyard.db.engine import make_engine, write_tx

    engine = make_engine(database_url)
    accounts = AccountService()
    try:
        with write_tx(engine) as conn:
            accounts.create_user(conn, BENCH_USER, BENCH_PASSWORD)
            accounts.create_user(conn, "bench-owner", BENCH_PASSWORD)
            for org in BENCH_ORGS:
                accounts.create_organization(conn, org, "bench-owner")
                accounts.create_team(conn, org, "writers")
                accounts.add_member(conn, org, "writers", BENCH_USER)
                accounts.set_team_organization_grant(conn, org, "writers", "read-write")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- external tools


def run_tool(argv: list[str], log_path: Path) -> int:
    """Run a benchmark tool, echoing its output to stderr and saving it to `log_path`."""
    print(f"\n$ {shlex.join(argv)}", file=sys.stderr, flush=True)
    with open(log_path, "w") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stderr.write(line)
                log.write(line)
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# rates.py reads response headers through dict(), which makes its lookup of "Location"
# case-sensitive; trustyard's server (granian) sends lowercase names, as HTTP allows. This shim
# only title-cases header names for rates.py's urllib setup requests; wrk and ab are untouched.
RATES_SHIM = """
import email.message, runpy, sys
_keys = email.message.Message.keys
email.message.Message.keys = lambda self: [k.title() for k in _keys(self)]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _load_json(path: Path, argv: list[str], status: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    doc["exit_status"] = status
    doc["argv"] = argv
    return doc


def run_rates(targets: list[Target], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, "-c", RATES_SHIM, str(shared_dir() / "bench" / "rates.py")]
    argv += [f"--target={t.name}={t.url}" for t in targets]
    argv += [
        f"--auth={t.name}={BENCH_USER}:{BENCH_PASSWORD}"
        for t in targets
        if t.name.removesuffix(BEFORE) in (AUTH, HOOK)
    ]
    argv += QUICK_RATES if args.quick else []
    if args.rounds:
        argv += ["--rounds", str(args.rounds)]
    argv += ["--json", str(out / "rates.json")]
    return _load_json(out / "rates.json", argv, run_tool(argv, out / "rates.txt"))


def run_regbench(targets: list[Target], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, str(shared_dir() / "bench" / "regbench.py")]
    for t in targets:
        argv += [f"--target={t.name}={t.url}", f"--server-pid={t.name}={t.pid}"]
        if t.name.removesuffix(BEFORE) in (AUTH, HOOK):
            argv += [f"--auth={t.name}={BENCH_USER}:{BENCH_PASSWORD}"]
    for scenario in args.scenario or []:
        argv += ["--scenario", scenario]
    argv += QUICK_REGBENCH if args.quick else []
    if args.rounds:
        argv += ["--rounds", str(args.rounds)]
    if args.limits:
        argv += ["--limits", "--data-dir", str(args.workdir)]
    argv += ["--json", str(out / "regbench.json")]
    return _load_json(out / "regbench.json", argv, run_tool(argv, out / "regbench.txt"))


# --------------------------------------------------------------------------- memory probe


def process_tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return pids


def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pids: list[int]) -> int:
    """Proportional set size summed over `pids`: pages shared after fork counted once."""
    total = 0
    for pid in pids:
        with (
            contextlib.suppress(OSError, IndexError, ValueError),
            open(f"/proc/{pid}/smaps_rollup") as f,
        ):
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples VmRSS of every process in a tree every `interval` seconds, in a thread."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.pids = process_tree(root)
        self.peak_kib: dict[int, int] = {}
        self.peak_sum_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> int:
        total = 0
        for pid in self.pids:
            kib = vm_rss_kib(pid)
            if kib is None:
                continue
            total += kib
            self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), kib)
        self.peak_sum_kib = max(self.peak_sum_kib, total)
        self.samples += 1
        return total

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.samples % 25 == 0:  # pick up respawned workers twice a second
                self.pids = process_tree(self.root)
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def blob_blocks(total: int, seed: bytes, block: int = MiB) -> Iterator[bytes]:
    """Deterministic, incompressible-enough content: a random block stamped with seed and index."""
    base = hashlib.sha256(seed).digest() * (block // 32)
    for index, start in enumerate(range(0, total, block)):
        stamp = seed[:16].ljust(16, b"\0") + index.to_bytes(16, "big")
        yield (stamp + base[32:])[: min(block, total - start)]


def blob_digest(total: int, seed: bytes) -> str:
    hasher = hashlib.sha256()
    for data in blob_blocks(total, seed):
        hasher.update(data)
    return f"sha256:{hasher.hexdigest()}"


def slice_blocks(total: int, seed: bytes, start: int, length: int) -> Iterator[bytes]:
    """The bytes [start, start+length) of the blob, as a generator (start is block-aligned)."""
    skip, sent = start // MiB, 0
    for index, data in enumerate(blob_blocks(total, seed)):
        if index < skip:
            continue
        if sent >= length:
            return
        piece = data[: length - sent]
        sent += len(piece)
        yield piece


def _absolute(base: str, location: str) -> str:
    return location if location.startswith("http") else base + location


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        msg = f"{what}: HTTP {response.status_code} (want {status}): {response.text[:300]}"
        raise RuntimeError(msg)


def push_blob(client: httpx.Client, url: str, repo: str, mode: str, size: int, chunk: int) -> str:
    """Push a generated blob by `mode` ("chunked" or "monolithic"); return its digest."""
    seed = f"{mode}-{time.time_ns()}".encode()
    digest = blob_digest(size, seed)
    started = client.post(f"{url}/v2/{repo}/blobs/uploads/")
    _expect(started, 202, "POST upload")
    location = _absolute(url, started.headers["location"])
    octets = {"content-type": "application/octet-stream"}
    if mode == "chunked":
        for start in range(0, size, chunk):
            length = min(chunk, size - start)
            headers = {
                **octets,
                "content-length": str(length),
                "content-range": f"{start}-{start + length - 1}",
            }
            body = slice_blocks(size, seed, start, length)
            patched = client.patch(location, content=body, headers=headers)
            _expect(patched, 202, f"PATCH at {start}")
            location = _absolute(url, patched.headers["location"])
        done = client.put(_with_digest(location, digest), headers={"content-length": "0"})
    else:
        headers = {**octets, "content-length": str(size)}
        body = blob_blocks(size, seed)
        done = client.put(_with_digest(location, digest), content=body, headers=headers)
    _expect(done, 201, "PUT upload")
    head = client.head(f"{url}/v2/{repo}/blobs/{digest}")
    _expect(head, 200, "HEAD blob")
    if int(head.headers.get("content-length", -1)) != size:
        raise RuntimeError(f"HEAD blob: size {head.headers.get('content-length')} != {size}")
    return digest


@dataclass
class MemoryRow:
    target: str
    mode: str
    size_mib: int
    chunk_mib: int | None
    seconds: float
    mib_s: float
    server_cpu_s: float
    processes: int
    idle_sum_mib: float
    idle_pss_mib: float | None  # None in results written before PSS was recorded
    peak_sum_mib: float
    peak_root_mib: float
    peak_worker_mib: float | None  # max over the root's descendants (the workers)
    per_process_mib: dict[str, float] = field(default_factory=dict)


def run_memory(targets: list[Target], out: Path, args: argparse.Namespace) -> list[MemoryRow]:
    size = (128 if args.quick else args.memory_mib) * MiB
    chunk = args.chunk_mib * MiB
    rows: list[MemoryRow] = []
    chosen = [t for t in targets if t.name == TRUSTYARD or (args.memory_ref and t.name == REF)]
    with httpx.Client(timeout=httpx.Timeout(900.0)) as client:
        for target in chosen:
            for mode in ("chunked", "monolithic"):
                print(f"[memory] {target.name} {mode} {size // MiB} MiB", file=sys.stderr)
                pids = process_tree(target.pid)
                cpu0 = cpu_seconds(pids)
                idle_pss = pss_kib(pids)
                with RssSampler(target.pid) as sampler:
                    idle = sampler.sample()
                    t0 = time.perf_counter()
                    push_blob(client, target.url, "bench/memory", mode, size, chunk)
                    elapsed = time.perf_counter() - t0
                cpu = cpu_seconds(process_tree(target.pid)) - cpu0
                workers = [kib for pid, kib in sampler.peak_kib.items() if pid != target.pid]
                rows.append(
                    MemoryRow(
                        target=target.name,
                        mode=mode,
                        size_mib=size // MiB,
                        chunk_mib=chunk // MiB if mode == "chunked" else None,
                        seconds=elapsed,
                        mib_s=size / MiB / elapsed,
                        server_cpu_s=cpu,
                        processes=len(sampler.peak_kib),
                        idle_sum_mib=idle / 1024,
                        idle_pss_mib=idle_pss / 1024,
                        peak_sum_mib=sampler.peak_sum_kib / 1024,
                        peak_root_mib=sampler.peak_kib.get(target.pid, 0) / 1024,
                        peak_worker_mib=max(workers) / 1024 if workers else None,
                        per_process_mib={str(p): k / 1024 for p, k in sampler.peak_kib.items()},
                    )
                )
    (out / "memory.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return rows


# --------------------------------------------------------------------------- report


def _f(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _git(*argv: str) -> str:
    result = subprocess.run(
        ["git", *argv], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout


def git_state(out: Path) -> str:
    """The measured code: HEAD, plus src.diff in the results when src/ has local changes."""
    head = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    diff = _git("diff", "HEAD", "--", "src")
    untracked = _git("ls-files", "--others", "--exclude-standard", "--", "src").split()
    if not diff and not untracked:
        return head
    diff += "".join(_git("diff", "--no-index", "--", "/dev/null", path) for path in untracked)
    (out / "src.diff").write_text(diff)
    return f"{head} + uncommitted changes in src/ (see src.diff)"


def failed(tool: str, doc: dict[str, Any]) -> list[str]:
    return [f"{tool} failed (exit {doc['exit_status']}) before writing results: see {tool}.txt"]


def rates_table(doc: dict[str, Any]) -> list[str]:
    if "rows" not in doc:
        return failed("rates", doc)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for row in doc["rows"]:
        rows.setdefault(row["request"], {})[row["target"]] = row
    lines = [
        f"rates.py (wrk/ab, 32 connections, median of {doc['rounds']} x {doc['seconds']} s)",
        "",
        "| request | ref req/s | trustyard req/s | ratio | ref p99 ms | trustyard p99 ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for request, by_target in rows.items():
        ref, ty = by_target.get(REF, {}), by_target.get(TRUSTYARD, {})
        bad = " (non-2xx!)" if ref.get("non2xx") or ty.get("non2xx") else ""
        lines.append(
            f"| {request}{bad} | {_f(ref.get('rps'))} | {_f(ty.get('rps'))} "
            f"| {_f(ty.get('ratio'), '.2f')} | {_f(ref.get('p99_ms'), '.1f')} "
            f"| {_f(ty.get('p99_ms'), '.1f')} |"
        )
    return lines


def cpu_per_unit(rows: list[dict[str, Any]], scenario: str, target: str) -> float | None:
    """Median over rounds of server CPU per unit of work: ms per operation, or s per GiB."""
    values: list[float] = [
        r["server_cpu_pct"] / 100 / r["value"]
        for r in rows
        if r["scenario"] == scenario and r["target"] == target
        if r.get("server_cpu_pct") is not None and r["value"] > 0
    ]
    if not values:
        return None
    per_unit = statistics.median(values)
    return per_unit * 1024 if rows[0]["unit"] == "MiB/s" else per_unit * 1000


def regbench_table(doc: dict[str, Any]) -> list[str]:
    if "summary" not in doc:
        return failed("regbench", doc)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for row in doc["summary"]:
        rows.setdefault(row["scenario"], {})[row["target"]] = row
    rounds = max((r["rounds"] for r in doc["summary"]), default=0)
    lines = [
        f"regbench.py (median of {rounds} round(s); srv CPU = server CPU per unit of work, "
        "ms per operation or s per GiB, the steadier number on a shared machine; "
        "RSS = peak of the process tree)",
        "",
        "| scenario | unit | ref | trustyard | ratio (min..max) | ref srv CPU "
        "| trustyard srv CPU | ref RSS MiB | trustyard RSS MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for scenario, by_target in rows.items():
        ref, ty = by_target.get(REF, {}), by_target.get(TRUSTYARD, {})
        bad = " (errors!)" if any(r.get("errors") or r.get("failures") for r in (ref, ty)) else ""
        spread = ""
        if ty.get("ratio") is not None:
            spread = f"{ty['ratio']:.2f} ({ty['ratio_min']:.2f}..{ty['ratio_max']:.2f})"
        unit = (ref or ty).get("unit", "")
        scenario_rows = [r for r in doc["rows"] if r["scenario"] == scenario]
        cpu_unit = " s/GiB" if unit == "MiB/s" else " ms"
        ref_cpu, ty_cpu = (cpu_per_unit(scenario_rows, scenario, t) for t in (REF, TRUSTYARD))
        lines.append(
            f"| {scenario}{bad} | {unit} | {_f(ref.get('median'), ',.1f')} "
            f"| {_f(ty.get('median'), ',.1f')} | {spread or '-'} "
            f"| {_f(ref_cpu, '.2f')}{cpu_unit if ref_cpu is not None else ''} "
            f"| {_f(ty_cpu, '.2f')}{cpu_unit if ty_cpu is not None else ''} "
            f"| {_f(ref.get('rss_peak_mib'))} | {_f(ty.get('rss_peak_mib'))} |"
        )
    limits = doc.get("limits_mib_s")
    if limits:
        lines += ["", "| machine limit (regbench --limits) | MiB/s |", "|---|--:|"]
        lines += [f"| {k} | {v:,.0f} |" for k, v in limits.items()]
    return lines


def pair_table(
    rates: dict[str, Any] | None,
    regbench: dict[str, Any] | None,
    base: str,
    other: str,
    title: str,
) -> list[str]:
    """Target `other` against target `base` of the same run, per request kind / scenario."""
    lines = [
        title,
        "",
        f"| benchmark | measure | {base} | {other} | {other} / {base} |",
        "|---|---|--:|--:|--:|",
    ]
    found = False
    for doc, key, value, tool in (
        (rates, "request", "rps", "rates"),
        (regbench, "scenario", "median", "regbench"),
    ):
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for row in (doc or {}).get("rows" if tool == "rates" else "summary", []):
            rows.setdefault(row[key], {})[row["target"]] = row
        for name, by_target in rows.items():
            first, second = by_target.get(base, {}), by_target.get(other, {})
            if not first.get(value) or second.get(value) is None:
                continue
            found = True
            unit = "req/s" if tool == "rates" else first.get("unit", "")
            lines.append(
                f"| {tool} | {name} ({unit}) | {first[value]:,.1f} | {second[value]:,.1f} "
                f"| {second[value] / first[value]:.2f} |"
            )
    return lines if found else []


def auth_tables(rates: dict[str, Any] | None, regbench: dict[str, Any] | None) -> list[list[str]]:
    """What accounts cost (trustyard-auth vs the open trustyard), and what a webhook
    subscription costs (trustyard-hook vs trustyard-auth), when those targets ran."""
    tables = [
        pair_table(
            rates,
            regbench,
            TRUSTYARD,
            AUTH,
            f"accounts on ({AUTH}, user `{BENCH_USER}` through a team grant) vs the open "
            "trustyard, same run",
        ),
        pair_table(
            rates,
            regbench,
            AUTH,
            HOOK,
            f"a registry-wide webhook subscription ({HOOK}: events recorded, dispatched and "
            f"delivered to a receiver on loopback) vs {AUTH} without one, same run",
        ),
    ]
    for name in (TRUSTYARD, AUTH, HOOK):
        tables.append(
            pair_table(
                rates,
                regbench,
                name + BEFORE,
                name,
                f"{name} (this code) vs {name}{BEFORE} (the code of --before), same run: "
                "> 1 means the new code is faster",
            )
        )
    return [table for table in tables if table]


def memory_table(rows: list[MemoryRow]) -> list[str]:
    lines = [
        "memory (one blob streamed from a generator; RSS sampled every 20 ms; "
        "'per worker' = max over the server's worker processes, root listed apart; "
        "PSS counts pages that forked workers share with their parent once)",
        "",
        "| target | mode | size MiB | MiB/s | server CPU s | processes | idle RSS sum "
        "| idle PSS sum | peak RSS per worker | peak RSS root | peak RSS sum |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        mode = f"{r.mode} ({r.chunk_mib} MiB PATCH)" if r.chunk_mib else r.mode
        lines.append(
            f"| {r.target} | {mode} | {r.size_mib} | {r.mib_s:,.0f} | {r.server_cpu_s:.1f} "
            f"| {r.processes} | {r.idle_sum_mib:,.0f} | {_f(r.idle_pss_mib)} "
            f"| {_f(r.peak_worker_mib)} "
            f"| {r.peak_root_mib:,.0f} | {r.peak_sum_mib:,.0f} |"
        )
    return lines


def header(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    return [
        f"### trustyard vs reference registry, {meta['started']} (preliminary)",
        "",
        f"- command: `{meta['command']}`",
        f"- trustyard {meta['git']}, {meta['workers']} workers, SQLite, fsync on; "
        f"reference: {meta['ref_version']}",
        f"- machine: {m['cpus']} x {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}",
        f"- load average before/after: {meta['load_before']} / {meta.get('load_after', '?')};"
        f" 1-min load during the run: {meta.get('load_during', '?')}"
        " (the machine is shared: compare ratios and CPU per operation more than rates)",
    ]


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rates", action="store_true", help="run rates.py (wrk/ab)")
    p.add_argument("--regbench", action="store_true", help="run regbench.py")
    p.add_argument("--scenario", action="append", help="regbench scenario (repeatable)")
    p.add_argument("--limits", action="store_true", help="also run regbench --limits")
    p.add_argument("--memory", action="store_true", help="1 GiB push with RSS sampling")
    p.add_argument("--memory-mib", type=int, default=1024, help="blob size for --memory")
    p.add_argument("--chunk-mib", type=int, default=64, help="PATCH size for --memory")
    p.add_argument(
        "--memory-ref", action="store_true", help="also run --memory on the reference registry"
    )
    p.add_argument("--auth", action="store_true", help="add trustyard with accounts on")
    p.add_argument("--webhook", action="store_true", help="with --auth: add one with a webhook")
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    p.add_argument(
        "--before", type=Path, metavar="SRC", help="also run each server from this old src"
    )
    p.add_argument(
        "--before-first",
        action="store_true",
        help="with --before: each old twin runs before its new server in a round",
    )
    p.add_argument(
        "--scan-off",
        action="store_true",
        help="scan on push off everywhere: the request path alone, without background scans",
    )
    p.add_argument("--rounds", type=int, help="rounds for rates/regbench (default: theirs)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="trustyard workers")
    p.add_argument("--workdir", type=Path, help="parent of the temp folder (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the servers' data folders")
    p.add_argument("--report", type=Path, metavar="DIR", help="only re-print a results folder")
    args = p.parse_args(argv)
    if args.report:
        return args
    if not (args.rates or args.regbench or args.memory):
        p.error("nothing to do: give --rates, --regbench and/or --memory")
    if args.webhook and not args.auth:
        p.error("--webhook needs --auth (it is compared with trustyard-auth)")
    if args.scenario and not args.regbench:
        p.error("--scenario needs --regbench")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class LoadSampler:
    """The 1-minute load average every 10 s during the run: how shared the machine was."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(10.0):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        if not self.samples:
            return "-"
        low, mid, high = min(self.samples), statistics.median(self.samples), max(self.samples)
        return f"min {low:.1f}, median {mid:.1f}, max {high:.1f}"


def _ref_version() -> str:
    with contextlib.suppress(OSError):
        out = subprocess.run(
            ["docker-registry", "--version"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip().split(" ")[-1] or "unknown"
    return "unknown"


def render(out: Path, meta: dict[str, Any]) -> str:
    """The markdown report from the raw results in `out` (written by a run)."""
    sections: list[list[str]] = []
    if (out / "rates.json").exists():
        sections.append(rates_table(json.loads((out / "rates.json").read_text())))
    if (out / "regbench.json").exists():
        sections.append(regbench_table(json.loads((out / "regbench.json").read_text())))
    loaded = {
        name: json.loads((out / f"{name}.json").read_text())
        for name in ("rates", "regbench")
        if (out / f"{name}.json").exists()
    }
    sections += auth_tables(loaded.get("rates"), loaded.get("regbench"))
    if (out / "memory.json").exists():
        memory = json.loads((out / "memory.json").read_text())
        sections.append(memory_table([MemoryRow(**{"idle_pss_mib": None, **r}) for r in memory]))
    return "\n".join(header(meta) + [line for s in sections for line in ["", *s]])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(render(args.report, json.loads((args.report / "meta.json").read_text())))
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / stamp
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="trustyard-bench-", dir=args.workdir))
    args.workdir = workdir
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": shlex.join(["python", "bench/run.py", *(argv or sys.argv[1:])]),
        "git": git_state(out),
        "workers": args.workers,
        "ref_version": f"distribution {_ref_version()}",
        "machine": machine_info(),
        "load_before": _load(),
        "results": str(out),
    }
    status = 0
    load = LoadSampler()
    servers = Servers(
        workdir,
        args.workers,
        auth=args.auth,
        webhook=args.webhook,
        before=args.before,
        before_first=args.before_first,
        scan=not args.scan_off,
    )
    try:
        targets = servers.start()
        meta["targets"] = [asdict(t) for t in targets]
        print(f"servers: {', '.join(f'{t.name}={t.url} (pid {t.pid})' for t in targets)}")
        if args.rates:
            status |= run_rates(targets, out, args)["exit_status"]
        if args.regbench:
            status |= run_regbench(targets, out, args)["exit_status"]
        if args.memory:
            run_memory(targets, out, args)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the stop
        meta["load_after"] = _load()
        meta["load_during"] = load.stop()
        servers.save_logs(out)
        servers.stop()
        if args.keep:
            print(f"data kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["exit_status"] = status
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    report = render(out, meta)
    (out / "summary.md").write_text(report + "\n")
    print(f"\nraw results: {out}\n")
    print(report)
    return status


if __name__ == "__main__":
    sys.exit(main())
