"""GET /metrics on a real `trustyard serve` (2 worker processes and the embedded job worker):
request counts add up across the processes, latency histograms have their buckets, route
labels are route names and templates (never paths), the job queue's state and the job runs
are counted, and only allowed callers may read it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from tests.support.server import TrustyardServer
from tests.support.workers import FAST_JOBS
from trustyard.db.engine import make_engine, write_tx
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.testkinds import RECORD_KIND
from trustyard.metrics.recorder import REQUEST_BUCKETS

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("metrics")]

DEADLINE = 120.0  # for counts other processes write at most a second later
TOKEN = "a metrics token for the tests"
ADMIN_PASSWORD = "an admin password for metrics tests"
Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def parse(text: str) -> Samples:
    return {
        (sample.name, labels(**sample.labels)): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(server: TrustyardServer, **headers: str) -> Samples:
    answer = httpx.get(f"{server.url}/metrics", headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(answer.text)


def wait_for(
    server: TrustyardServer, expected: dict[tuple[str, Labels], float], **headers: str
) -> Samples:
    """Scrape until every expected sample has its value (other processes' counts arrive
    with their next flush); fail with the differences."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = scrape(server, **headers)
        wrong = {key: (found.get(key), value) for key, value in expected.items()}
        wrong = {key: pair for key, pair in wrong.items() if pair[0] != pair[1]}
        if not wrong:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"samples (found, expected) still wrong: {wrong}")
        time.sleep(0.2)


def database(server: TrustyardServer) -> Engine:
    return make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    """An open registry whose embedded worker runs the test job kinds."""
    return start_server("metrics", **FAST_JOBS)


# -- requests ----------------------------------------------------------------------------------


def test_request_counts_add_up_across_worker_processes(registry: TrustyardServer) -> None:
    # The kernel hands each new connection to whichever worker process accepts first, so
    # one batch may all land on one process: send batches until two processes have counted
    # some (the sum across them is the point), each batch awaited in the scrape.
    batch, most = 80, 20
    route = {"route": "catalog", "method": "GET"}
    duration = "trustyard_http_request_duration_seconds"

    def catalog(_: int) -> int:
        # a connection per request, 8 at a time
        return httpx.get(f"{registry.url}/v2/_catalog", timeout=60).status_code

    count = 0
    for _ in range(most):
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(catalog, range(batch))) == {200}
        count += batch
        found = wait_for(
            registry,
            {
                ("trustyard_http_requests_total", labels(**route, status="200")): count,
                (f"{duration}_count", labels(**route)): count,
            },
        )
        # Each worker process counted its share in a file of its own.
        shares = []
        for path in (registry.data_dir / "metrics").glob("*.json"):
            series = json.loads(path.read_text())["tables"]["http"]
            shares += [sum(values[1:]) for key, values in series if key[0] == "catalog"]
        assert sum(shares) == count
        if len(shares) >= 2:
            break
    assert len(shares) >= 2, f"{most} batches of {batch} requests all went to one process"
    # The histogram: every bucket, cumulative, ending with +Inf = the count.
    buckets = [
        (dict(key)["le"], value)
        for (name, key), value in found.items()
        if name == f"{duration}_bucket" and dict(key)["route"] == "catalog"
    ]
    assert [le for le, _ in buckets] == [repr(bound) for bound in REQUEST_BUCKETS] + ["+Inf"]
    values = [value for _, value in buckets]
    assert values == sorted(values)
    assert values[-1] == count
    assert found[(f"{duration}_sum", labels(**route))] > 0


def test_route_labels_are_route_names_never_paths(registry: TrustyardServer) -> None:
    unique = uuid.uuid4().hex[:10]
    repo = f"metrics/r{unique}"
    digest = "sha256:" + "0" * 64
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        answers = [
            ("manifest", "GET", client.get(f"/v2/{repo}/manifests/1.0")),
            ("blob", "HEAD", client.head(f"/v2/{repo}/blobs/{digest}")),
            ("tags", "GET", client.get(f"/v2/{repo}/tags/list")),
            ("upload_start", "POST", client.post(f"/v2/{repo}/blobs/uploads/")),
            ("base", "DELETE", client.delete("/v2/")),
            ("unmatched", "GET", client.get(f"/v2/{repo}/no-such-endpoint")),
            ("unmatched", "GET", client.get(f"/elsewhere/{unique}")),
            ("tags", "other", client.request("PROPFIND", f"/v2/{repo}/tags/list")),
            ("healthz", "GET", client.get("/healthz")),
        ]
    statuses = [(route, method, answer.status_code) for route, method, answer in answers]
    assert [status for _, _, status in statuses] == [404, 404, 404, 202, 405, 404, 404, 405, 200]
    total = "trustyard_http_requests_total"
    expected: dict[tuple[str, Labels], float] = {}
    for route, method, status in statuses:
        if route != "healthz":  # the tests' start-up polls it too
            key = (total, labels(route=route, method=method, status=str(status)))
            expected[key] = expected.get(key, 0) + 1
    found = wait_for(registry, expected)
    assert found[(total, labels(route="healthz", method="GET", status="200"))] >= 1
    for _, key in found:
        assert all(unique not in value for _, value in key)


# -- jobs ----------------------------------------------------------------------------------


def test_job_queue_depth_ages_and_runs(registry: TrustyardServer) -> None:
    engine = database(registry)
    queue = SqlJobQueue(engine)
    try:
        with write_tx(engine) as conn:
            for _ in range(3):  # no worker runs this kind: they wait, due
                queue.enqueue(conn, "metrics.unhandled", {})
            queue.enqueue(conn, "metrics.later", {}, delay=3600)  # queued, not due
            queue.enqueue(conn, RECORD_KIND, {})  # succeeds
            queue.enqueue(conn, RECORD_KIND, {"permanent": True})  # fails for good
            queue.enqueue(conn, RECORD_KIND, {"fail_times": 2}, max_attempts=2)  # dies
    finally:
        engine.dispose()
    depth = "trustyard_jobs_queue_depth"
    runs = "trustyard_jobs_runs_total"
    found = wait_for(
        registry,
        {
            (depth, labels(kind="metrics.unhandled", state="queued")): 3,
            (depth, labels(kind="metrics.unhandled", state="running")): 0,
            (depth, labels(kind="metrics.later", state="queued")): 1,
            ("trustyard_jobs_oldest_due_age_seconds", labels(kind="metrics.later")): 0,
            ("trustyard_jobs_dead", labels(kind=RECORD_KIND)): 1,
            (depth, labels(kind=RECORD_KIND, state="queued")): 0,
            (runs, labels(kind=RECORD_KIND, outcome="succeeded")): 1,
            (runs, labels(kind=RECORD_KIND, outcome="permanent")): 1,
            (runs, labels(kind=RECORD_KIND, outcome="failed")): 2,
            ("trustyard_jobs_run_duration_seconds_count", labels(kind=RECORD_KIND)): 4,
        },
    )
    age = found[("trustyard_jobs_oldest_due_age_seconds", labels(kind="metrics.unhandled"))]
    assert age > 0
    assert found[("trustyard_jobs_dead", labels(kind="metrics.unhandled"))] == 0


# -- access ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    """Accounts on, a metrics token, and an allow list that excludes the tests' address."""
    return start_server(
        "metrics-token",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_METRICS__TOKEN=TOKEN,
        TRUSTYARD_METRICS__ALLOW_FROM="10.0.0.0/8",
    )


def test_with_a_token_set_every_caller_needs_it(guarded: TrustyardServer) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not the token at all"},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        answer = httpx.get(f"{guarded.url}/metrics", headers=headers, timeout=60)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="trustyard metrics"'
        assert answer.json() == {"detail": "a bearer token is required"}
    # 127.0.0.1 is outside allow_from: with a token the address does not matter
    scrape(guarded, Authorization=f"Bearer {TOKEN}")


def test_api_routes_are_labelled_by_their_templates(guarded: TrustyardServer) -> None:
    admin = httpx.BasicAuth("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=guarded.url, timeout=60) as client:
        assert client.get("/api/v1/users/admin", auth=admin).status_code == 200
        assert client.get("/api/v1/repositories/admin/nothing", auth=admin).status_code == 404
        assert client.get("/api/v1/no/such/thing", auth=admin).status_code == 404
        assert client.get("/auth/token", auth=admin).status_code == 200
        assert client.get("/v2/").status_code == 401
    total = "trustyard_http_requests_total"
    found = wait_for(
        guarded,
        {
            (total, labels(route="/api/v1/users/{name}", method="GET", status="200")): 1,
            (total, labels(route="/api/v1/repositories/{name}", method="GET", status="404")): 1,
            (total, labels(route="unmatched", method="GET", status="404")): 1,
            (total, labels(route="auth_token", method="GET", status="200")): 1,
            (total, labels(route="base", method="GET", status="401")): 1,
        },
        Authorization=f"Bearer {TOKEN}",
    )
    routes = {dict(key)["route"] for name, key in found if name == total}
    assert not any("admin" in route for route in routes)


def test_callers_outside_allow_from_are_refused(
    start_server: Callable[..., TrustyardServer],
) -> None:
    server = start_server("metrics-networks", TRUSTYARD_METRICS__ALLOW_FROM="10.0.0.0/8")
    answer = httpx.get(f"{server.url}/metrics", timeout=60)
    assert answer.status_code == 403
    assert answer.json() == {
        "detail": "metrics are served to the networks in metrics.allow_from only"
    }
    assert httpx.get(f"{server.url}/v2/", timeout=60).status_code == 200


def test_metrics_can_be_turned_off(start_server: Callable[..., TrustyardServer]) -> None:
    server = start_server("metrics-off", TRUSTYARD_METRICS__ENABLED="false")
    assert httpx.get(f"{server.url}/v2/", timeout=60).status_code == 200
    answer = httpx.get(f"{server.url}/metrics", timeout=60)
    assert answer.status_code == 404
    assert not (Path(server.data_dir) / "metrics").exists()
