"""/api/v1/jobs on a real `trustyard serve` (accounts on) whose embedded worker runs the jobs:
admins list, page, look into, retry and cancel jobs; everyone else is refused."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.integration.test_api import PASSWORD, assert_problem, basic
from tests.support.server import TrustyardServer
from tests.support.workers import FAST_JOBS
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.jobs.queue import SqlJobQueue
from trustyard.jobs.testkinds import RECORD_KIND, ensure_table, test_job_runs

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-jobs")]

ADMIN_PASSWORD = "an admin password for job tests"
DEADLINE = 120.0
Body = dict[str, Any]


class World:
    def __init__(self, server: TrustyardServer) -> None:
        self.server = server
        url = server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"
        self.engine: Engine = make_engine(url)

    def client(self, user: str | None = "admin") -> httpx.Client:
        auth = None
        if user is not None:
            auth = basic(user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
        return httpx.Client(base_url=self.server.url, auth=auth, timeout=60)

    def enqueue(self, payload: Body | None = None, **options: Any) -> int:
        with write_tx(self.engine) as conn:
            return SqlJobQueue(self.engine).enqueue(conn, RECORD_KIND, payload, **options).id

    def job(self, job_id: int) -> Body:
        with self.client() as admin:
            answer = admin.get(f"/api/v1/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        body: Body = answer.json()
        return body

    def wait_state(self, job_id: int, state: str) -> Body:
        deadline = time.monotonic() + DEADLINE
        while (body := self.job(job_id))["state"] != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stayed {body['state']}:\n{self.server.log()}")
            time.sleep(0.1)
        return body


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> Iterator[World]:
    server = start_server(
        "api-jobs",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        **FAST_JOBS,
    )
    with httpx.Client(base_url=server.url, auth=basic("admin", ADMIN_PASSWORD)) as admin:
        created = admin.post("/api/v1/users", json={"username": "mallory", "password": PASSWORD})
        assert created.status_code == 201, created.text
    world = World(server)
    ensure_table(world.engine)  # the test's own reads need it; the worker creates it too
    try:
        yield world
    finally:
        world.engine.dispose()


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def test_serve_runs_jobs_in_a_worker_process_of_its_own(world: World) -> None:
    job_id = world.enqueue({"n": 1})
    done = world.wait_state(job_id, "succeeded")
    assert (done["kind"], done["payload"], done["attempts"], done["max_attempts"]) == (
        RECORD_KIND,
        {"n": 1},
        1,
        5,
    )
    assert done["finished_at"] is not None
    assert done["lease_owner"] is None
    [attempt] = done["history"]
    assert attempt["outcome"] == "succeeded"
    assert attempt["error"] is None
    with read_tx(world.engine) as conn:
        [pid] = conn.scalars(select(test_job_runs.c.pid).where(test_job_runs.c.job_id == job_id))
    assert world.server.process is not None
    serve_pid = world.server.process.pid
    assert pid != serve_pid
    assert parent_of(pid) == serve_pid  # started by serve, beside granian's workers
    # and below them: requests win the CPU when the cores are busy
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, serve_pid) + 5
    assert attempt["worker"].split(":")[1] == str(pid)


def test_a_dead_job_shows_its_errors_and_an_admin_retries_it(world: World) -> None:
    job_id = world.enqueue({"fail_times": 2}, max_attempts=2)
    dead = world.wait_state(job_id, "dead")
    assert dead["attempts"] == 2
    assert dead["last_error"].startswith("RuntimeError: planned failure of run 2 (attempt 2)")
    assert [(a["attempt"], a["outcome"]) for a in dead["history"]] == [(1, "failed"), (2, "failed")]
    with world.client() as admin:
        retried = admin.post(f"/api/v1/jobs/{job_id}/retry")
        assert retried.status_code == 200, retried.text
        assert (retried.json()["state"], retried.json()["attempts"]) in {
            ("queued", 0),
            ("running", 1),  # the worker may be quicker than the answer
            ("succeeded", 1),
        }
        done = world.wait_state(job_id, "succeeded")
        assert [a["outcome"] for a in done["history"]] == ["failed", "failed", "succeeded"]
        events = admin.get("/api/v1/audit", params={"action": "job.retry"}).json()["items"]
    assert [(e["actor"], e["resource"], e["detail"]) for e in events] == [
        ("admin", str(job_id), {"kind": RECORD_KIND})
    ]


def test_admins_list_jobs_by_state_and_kind_page_by_page(world: World) -> None:
    waiting = [world.enqueue({"n": n}, delay=3600) for n in range(3)]
    with world.client() as admin:
        first = admin.get(
            "/api/v1/jobs", params={"state": "queued", "kind": RECORD_KIND, "limit": 2}
        )
        assert first.status_code == 200, first.text
        page = first.json()
        assert [item["id"] for item in page["items"]] == waiting[:0:-1]
        assert page["next"] == str(waiting[1])
        rest = admin.get(
            "/api/v1/jobs",
            params={"state": "queued", "kind": RECORD_KIND, "limit": 2, "after": page["next"]},
        ).json()
        assert [item["id"] for item in rest["items"]] == [waiting[0]]
        assert rest["next"] is None
        both = admin.get("/api/v1/jobs", params=[("state", "dead"), ("state", "succeeded")])
        assert {item["state"] for item in both.json()["items"]} <= {"dead", "succeeded"}
        assert_problem(admin.get("/api/v1/jobs", params={"state": "lost"}), 422)
        assert_problem(admin.get("/api/v1/jobs", params={"kind": "Bad Kind"}), 422)
        for job_id in waiting:
            assert admin.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200


def test_an_admin_cancels_a_queued_job_only(world: World) -> None:
    job_id = world.enqueue(delay=3600)
    with world.client() as admin:
        cancelled = admin.post(f"/api/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["finished_at"] is not None
        again = assert_problem(admin.post(f"/api/v1/jobs/{job_id}/cancel"), 409)
        assert again["detail"] == f"job {job_id} is cancelled: only queued jobs can be cancelled"
        retry = assert_problem(admin.post(f"/api/v1/jobs/{job_id}/retry"), 409)
        assert retry["detail"] == (
            f"job {job_id} is cancelled: only failed and dead jobs can be retried"
        )
        missing = assert_problem(admin.get("/api/v1/jobs/987654321"), 404)
        assert missing["detail"] == "job 987654321 does not exist"
        assert_problem(admin.post("/api/v1/jobs/987654321/retry"), 404)
        assert_problem(admin.post("/api/v1/jobs/0/cancel"), 422)
    assert world.job(job_id)["state"] == "cancelled"


@pytest.mark.parametrize("who", ["mallory", None])
def test_only_administrators_see_or_touch_jobs(world: World, who: str | None) -> None:
    job_id = world.enqueue(delay=3600)
    status = 403 if who else 401
    with world.client(who) as caller:
        assert_problem(caller.get("/api/v1/jobs"), status)
        assert_problem(caller.get(f"/api/v1/jobs/{job_id}"), status)
        assert_problem(caller.post(f"/api/v1/jobs/{job_id}/cancel"), status)
        refused = assert_problem(caller.post(f"/api/v1/jobs/{job_id}/retry"), status)
    if who is None:
        assert refused["detail"] == "authentication required"
    else:
        assert refused["detail"] == "only system administrators may do this"
    assert world.job(job_id)["state"] == "queued"
