"""Hostile requests against a real `trustyard serve` (2 workers, SQLite), old code or new.

  body        anonymous and authenticated 30 MB JSON bodies to POST /api/v1/organizations:
              status and time of each, then two anonymous ones at once while a third client
              reads GET /v2/ every 20 ms (the /v2 latency during the attack); the peak
              resident memory (VmHWM) of every server process
  stall       an authenticated /api/v1 body that stops after 10 bytes: status and time
              (the server runs with TRUSTYARD_SERVER__BODY_TIMEOUT=10)
  malformed   POST /auth/token and /api/v1 with a broken chunked encoding and with a body
              cut short (raw sockets): status, and tracebacks added to the server log
  jwt         a bearer token signed with the server's own key whose exp is 10**30 (and 1e30)
              on /v2/ and /api/v1/users/me
  existence   a user reads a private repository of someone else and a missing one (same
              namespace) on /api/v1/repositories/{r}, .../manifests/latest/scan and
              .../manifests/latest/bom, interleaved, ROUNDS each: median, quartiles, and
              whether status, headers and body are identical; and POST /api/v1/webhooks for a
              user's namespace and a missing one

Run from the repository root; `--src ../before/src` runs the old code (PYTHONPATH; make it
with `git worktree add ../before <commit>`):
  .venv/bin/python bench/api_abuse.py body
  .venv/bin/python bench/api_abuse.py --src ../before/src body
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.ports import LOOPBACK  # noqa: E402
from tests.support.server import TrustyardServer  # noqa: E402

ADMIN = ("admin", "bench-admin-password-1")
BOB = ("bob", "bench-bob-password-12")
MB = 1_000_000


def processes(server: TrustyardServer) -> list[int]:
    """The server's process tree (granian's workers included), by walking /proc."""
    assert server.process is not None
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [server.process.pid], [server.process.pid]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def peak_mib(server: TrustyardServer) -> dict[int, float]:
    """VmHWM (peak resident memory) of each process of the server, in MiB."""
    peaks = {}
    for pid in processes(server):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[pid] = int(line.split()[1]) / 1024
    return peaks


@contextmanager
def running(args: argparse.Namespace, **env: str) -> Iterator[TrustyardServer]:
    """`trustyard serve` (accounts on, 2 workers, SQLite, no scans, no embedded job workers)
    from this tree or from `--src`, stopped by its process group at the end."""
    environment = {
        "TRUSTYARD_AUTH__ENABLED": "true",
        "TRUSTYARD_ADMIN_PASSWORD": ADMIN[1],
        "TRUSTYARD_SCANNING__ENABLED": "false",
        "TRUSTYARD_JOBS__EMBEDDED_WORKERS": "0",
        **env,
    }
    if args.src:
        environment["PYTHONPATH"] = args.src
    data = Path(tempfile.mkdtemp(prefix="trustyard-abuse-")) / "d"
    server = TrustyardServer(data_dir=data, workers=2, extra_env=environment).start()
    try:
        yield server
    finally:
        server.stop()


def client(url: str, login: tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=url, auth=httpx.BasicAuth(*login) if login else None, timeout=300)


def big_json(size: int) -> bytes:
    """A JSON object of about `size` bytes: a list of small objects (each costs a parser a
    dict of about 200 bytes for 8 bytes of JSON)."""
    return b'{"name": "abuse", "pad": [' + b'{"b":1},' * (size // 8) + b"{}]}"


def timed(action: Callable[[], httpx.Response]) -> tuple[int, float]:
    began = time.perf_counter()
    answer = action()
    return answer.status_code, time.perf_counter() - began


def show_peaks(server: TrustyardServer, label: str) -> None:
    peaks = peak_mib(server)
    listed = ", ".join(f"{pid}: {mib:.0f}" for pid, mib in sorted(peaks.items()))
    print(f"  peak RSS (VmHWM, MiB) {label}: max {max(peaks.values()):.0f}  [{listed}]")


def body(args: argparse.Namespace) -> None:
    payload = big_json(30 * MB)
    print(f"body of {len(payload) / MB:.1f} MB")
    with running(args) as server:
        show_peaks(server, "at start")
        anonymous, admin = client(server.url), client(server.url, ADMIN)
        post = "/api/v1/organizations"
        headers = {"content-type": "application/json"}
        status, seconds = timed(lambda: anonymous.post(post, content=payload, headers=headers))
        print(f"  anonymous: {status} in {seconds:.2f} s")
        status, seconds = timed(lambda: admin.post(post, content=payload, headers=headers))
        print(f"  admin: {status} in {seconds:.2f} s")

        def chunked() -> Iterator[bytes]:
            step = 1 << 20
            for at in range(0, len(payload), step):
                yield payload[at : at + step]

        status, seconds = timed(lambda: admin.post(post, content=chunked(), headers=headers))
        print(f"  admin, chunked (no Content-Length): {status} in {seconds:.2f} s")
        show_peaks(server, "after single requests")
        latencies: list[float] = []
        done = threading.Event()

        def probe() -> None:
            with client(server.url) as reader:
                while not done.is_set():
                    began = time.perf_counter()
                    reader.get("/v2/")
                    latencies.append(time.perf_counter() - began)
                    time.sleep(0.02)

        results: list[tuple[int, float]] = []

        def attack() -> None:
            with client(server.url) as attacker:
                results.append(timed(lambda: attacker.post(post, content=payload, headers=headers)))

        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(0.5)
        attackers = [threading.Thread(target=attack) for _ in range(2)]
        began = time.perf_counter()
        for thread in attackers:
            thread.start()
        for thread in attackers:
            thread.join()
        elapsed = time.perf_counter() - began
        time.sleep(0.3)
        done.set()
        prober.join()
        print(
            "  two anonymous at once: "
            + ", ".join(f"{status} in {seconds:.2f} s" for status, seconds in results)
            + f" (both done after {elapsed:.2f} s)"
        )
        print(
            f"  GET /v2/ meanwhile: {len(latencies)} requests, median "
            f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        show_peaks(server, "at the end")


def raw(port: int, data: bytes, wait: float = 300.0, close: bool = True) -> tuple[str, float]:
    """Send `data`, optionally half-close, and return the status line and the time to it."""
    began = time.perf_counter()
    with socket.create_connection((LOOPBACK, port)) as sock:
        sock.settimeout(wait)
        sock.sendall(data)
        if close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while b"\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except TimeoutError:
            return "no answer", time.perf_counter() - began
    line = answer.split(b"\r\n", 1)[0].decode("latin-1") or "connection closed"
    return line, time.perf_counter() - began


def basic(login: tuple[str, str]) -> bytes:
    import base64

    return b"Authorization: Basic " + base64.b64encode(":".join(login).encode()) + b"\r\n"


def stall(args: argparse.Namespace) -> None:
    with running(args, TRUSTYARD_SERVER__BODY_TIMEOUT="10") as server:
        request = (
            b"POST /api/v1/organizations HTTP/1.1\r\nHost: x\r\n" + basic(ADMIN)
            + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"name": "'
        )  # fmt: skip
        line, seconds = raw(server.port, request, close=False)
        print(f"  stalled /api/v1 body (body_timeout 10 s): {line!r} after {seconds:.1f} s")
        print(f"  tracebacks in the log: {server.log().count('Traceback')}")


def malformed(args: argparse.Namespace) -> None:
    form = b"grant_type=password&username=admin&password=x"
    cases = {
        "/auth/token, bad chunked encoding": b"POST /auth/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ZZZ\r\nabc\r\n0\r\n\r\n",
        "/auth/token, body cut short": b"POST /auth/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n" + form,
        "/api/v1, bad chunked encoding": b"POST /api/v1/organizations HTTP/1.1\r\nHost: x\r\n"
        + basic(ADMIN)
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n"
        b"0\r\n\r\n",
        "/api/v1, body cut short": b"POST /api/v1/organizations HTTP/1.1\r\nHost: x\r\n"
        + basic(ADMIN)
        + b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name": "x',
    }
    with running(args) as server:
        for label, request in cases.items():
            before = server.log().count("Traceback")
            line, seconds = raw(server.port, request, wait=30)
            time.sleep(0.5)  # let the server write its log
            added = server.log().count("Traceback") - before
            print(f"  {label}: {line!r} in {seconds:.2f} s, tracebacks logged: {added}")


def jwt_overflow(args: argparse.Namespace) -> None:
    import jwt
    from sqlalchemy import create_engine, select

    from trustyard.auth.jwt_tokens import TokenSigner
    from trustyard.db.tables import signing_keys

    with running(args) as server:
        assert httpx.get(f"{server.url}/auth/token", params={"service": "trustyard"}).is_success
        passphrase = (server.data_dir / "signing.passphrase").read_text().strip()
        engine = create_engine(f"sqlite:///{server.data_dir / 'trustyard.db'}")
        with engine.connect() as conn:
            pem = conn.execute(select(signing_keys.c.private_key)).scalar_one()
        signer = TokenSigner.from_pem(pem.encode(), passphrase)
        now = int(datetime.now(UTC).timestamp())
        for exp in (10**30, 1e30):
            claims = {
                "iss": signer.issuer, "sub": "admin", "aud": "trustyard", "exp": exp,
                "nbf": now, "iat": now, "jti": "bench", "access": [],
            }  # fmt: skip
            key = signer._key  # a bench forging a token with the server's own key
            token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": signer.kid})
            bearer = {"authorization": f"Bearer {token}"}
            for path in ("/v2/", "/api/v1/users/me"):
                status = httpx.get(f"{server.url}{path}", headers=bearer).status_code
                print(f"  exp={exp!r} on {path}: {status}")
        print(f"  tracebacks in the log: {server.log().count('Traceback')}")


def existence(args: argparse.Namespace) -> None:
    with running(args, TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS="127.0.0.1/32") as server:
        with client(server.url, ADMIN) as admin:
            made = admin.post("/api/v1/users", json={"username": BOB[0], "password": BOB[1]})
            assert made.status_code == 201, made.text
            made = admin.post(
                "/api/v1/repositories", json={"name": "admin/secret", "visibility": "private"}
            )
            assert made.status_code == 201, made.text
        suffixes = ("", "/manifests/latest/scan", "/manifests/latest/bom")
        with client(server.url, BOB) as bob:
            for suffix in suffixes:
                urls = {
                    kind: f"/api/v1/repositories/admin/{name}{suffix}"
                    for kind, name in (("private", "secret"), ("missing", "absent"))
                }
                times: dict[str, list[float]] = {kind: [] for kind in urls}
                answers: dict[str, set[tuple[int, str, bytes]]] = {kind: set() for kind in urls}
                for round_ in range(args.rounds + 30):
                    for kind, url in urls.items():
                        began = time.perf_counter()
                        answer = bob.get(url)
                        spent = time.perf_counter() - began
                        if round_ >= 30:  # warmed up
                            times[kind].append(spent)
                        headers = sorted(
                            (k, v) for k, v in answer.headers.items() if k.lower() != "date"
                        )
                        # The answers name the repository: compare them with the name masked.
                        content = answer.content.replace(b"absent", b"secret")
                        answers[kind].add((answer.status_code, repr(headers), content))
                print(f"  {urls['private']} vs .../absent{suffix}, {args.rounds} rounds:")
                for kind, values in times.items():
                    q1, median, q3 = statistics.quantiles([v * 1000 for v in values], n=4)
                    statuses = sorted({status for status, _, _ in answers[kind]})
                    print(
                        f"    {kind:8s} status {statuses}: median {median:.3f} ms, "
                        f"quartiles {q1:.3f}-{q3:.3f} ms"
                    )
                difference = statistics.median(times["private"]) - statistics.median(
                    times["missing"]
                )
                identical = answers["private"] == answers["missing"]
                print(
                    f"    difference of medians {difference * 1000:+.3f} ms; "
                    f"answers identical (status, headers, body): {identical}"
                )
            hook = {"url": "http://127.0.0.1:9/hook", "events": ["TAG_PUSH"]}
            for namespace in ("admin", "nobody"):
                answer = bob.post("/api/v1/webhooks", json={**hook, "namespace": namespace})
                print(f"  POST /api/v1/webhooks namespace={namespace!r}: {answer.status_code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("body", "stall", "malformed", "jwt", "existence"))
    parser.add_argument("--src", help="PYTHONPATH of the code to run (e.g. ../before/src)")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    print(f"{args.what}: {'code at ' + args.src if args.src else 'this tree'}")
    {
        "body": body,
        "stall": stall,
        "malformed": malformed,
        "jwt": jwt_overflow,
        "existence": existence,
    }[args.what](args)


if __name__ == "__main__":
    main()
