"""What starts a promotion policy's run on a real server (no job worker, so the queued jobs
stay to be looked at; scanning off, as test servers run): a push queues an evaluation of the
pushed tag by each policy in the push's own transaction (not of a cosign fallback tag); a
vulnerability override and an OpenVEX document (created or deleted) run again the policies
that judge vulnerability counts, and only those: for the image's tags when the decision is
about one image, over every tag otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.integration.oci_helpers import brief, push_image
from tests.support.server import TrustyardServer
from trustyard.db.engine import make_engine, write_tx
from trustyard.db.tables import jobs

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("policy-triggers")]

ADMIN_PASSWORD = "the policy trigger administrator's password"
ORG = "ptr"
SOURCE, TARGET = f"{ORG}/app", f"{ORG}/qa"
A = "/api/v1"
GATE = {"field": "vulnerability.critical", "operator": "eq", "values": ["0"]}
TAGGED = {"field": "tag", "operator": "sw", "values": ["v"]}


@dataclass
class World:
    admin: httpx.Client
    engine: Engine
    gate: int  # the policy judging vulnerability counts
    plain: int  # the one judging the tag only
    digest: str

    def taken(self) -> list[tuple[str, dict[str, Any]]]:
        """The policies' queued jobs (kind, payload), taken off the queue."""
        with write_tx(self.engine) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.kind, jobs.c.payload)
                .where(jobs.c.kind.like("policies.%"), jobs.c.state == "queued")
                .order_by(jobs.c.id)
            ).all()
            conn.execute(
                jobs.update()
                .where(jobs.c.id.in_([row.id for row in rows]))
                .values(state="cancelled", dedupe_key=None)
            )
        return [(row.kind, json.loads(row.payload)) for row in rows]


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> Iterator[World]:
    server = start_server(
        "policy-triggers",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_JOBS__EMBEDDED_WORKERS="0",
    )
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    auth = httpx.BasicAuth("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as admin:
        assert admin.post(f"{A}/organizations", json={"name": ORG}).status_code == 201
        for name in (SOURCE, TARGET):
            assert admin.post(f"{A}/repositories", json={"name": name}).status_code == 201
        made = []
        for rules in ([GATE], [TAGGED]):
            answer = admin.post(
                f"{A}/repositories/{SOURCE}/promotion-policies",
                json={"targetRepository": TARGET, "rules": rules, "tagTemplate": "%n"},
            )
            assert answer.status_code == 201, brief(answer)
            made.append(answer.json()["id"])
        image = push_image(admin, SOURCE, "v1")
        try:
            yield World(admin, engine, made[0], made[1], image.digest)
        finally:
            engine.dispose()


def test_a_push_queues_one_job_naming_each_policy(world: World) -> None:
    push_image(world.admin, SOURCE, "sha256-" + "b" * 64 + ".sig")  # a fallback tag: none
    pushed = push_image(world.admin, SOURCE, "v2")
    found = [
        (kind, p["policy_ids"], p["tag"], p["digest"], p["trigger"])
        for kind, p in world.taken()
        if p["tag"] != "v1"
    ]
    # Scanning is off on this server: no scan will end, so the gate runs now too (and waits).
    # One job for the push (one row in its transaction); the worker splits it per policy.
    assert found == [("policies.push", [world.gate, world.plain], "v2", pushed.digest, "push")]


def test_an_override_runs_the_gate_again(world: World) -> None:
    world.taken()
    created = world.admin.post(
        f"{A}/repositories/{SOURCE}/vulnerability-overrides",
        json={"vulnerability": "CVE-2024-0001", "reason": "not reachable", "digest": world.digest},
    )
    assert created.status_code == 201, brief(created)
    assert [(k, p["policy_id"], p["tag"], p["trigger"]) for k, p in world.taken()] == [
        ("policies.evaluate", world.gate, "v1", "triage")
    ]
    whole = world.admin.post(
        f"{A}/repositories/{SOURCE}/vulnerability-overrides",
        json={"vulnerability": "CVE-2024-0002", "reason": "mitigated"},
    )
    assert whole.status_code == 201, brief(whole)
    assert world.taken() == [("policies.run", {"policy_id": world.gate, "trigger": "triage"})]
    deleted = world.admin.delete(
        f"{A}/repositories/{SOURCE}/vulnerability-overrides/{created.json()['id']}"
    )
    assert deleted.status_code == 204, brief(deleted)
    assert [(p["policy_id"], p["tag"]) for _, p in world.taken()] == [(world.gate, "v1")]


def test_a_vex_document_runs_the_gate_again(world: World) -> None:
    world.taken()
    document = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "urn:ptr:1",
        "author": "Ptr Security",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2024-0003"},
                "products": [{"@id": "pkg:pypi/urllib3@1.24.1"}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }
        ],
    }
    imported = world.admin.post(f"{A}/vex", params={"organization": ORG}, json=document)
    assert imported.status_code == 201, brief(imported)
    assert world.taken() == [("policies.run", {"policy_id": world.gate, "trigger": "triage"})]
    deleted = world.admin.delete(f"{A}/vex/{imported.json()['id']}")
    assert deleted.status_code == 204, brief(deleted)
    assert world.taken() == [("policies.run", {"policy_id": world.gate, "trigger": "triage"})]
