"""Webhooks across crashes and trouble: an event committed just before a SIGKILL is delivered
after the restart (whether no worker had run yet or one was in the middle of sending it), a
destination refused at delivery time (the SSRF check runs again), and a subscription that
keeps failing is marked inactive, visibly, and delivers what waited once turned on again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_database_url
from tests.integration.oci_helpers import brief, push_image
from tests.integration.webhook_helpers import (
    ADMIN_PASSWORD,
    FAST,
    deliveries,
    eventually,
    settled,
    subscribe,
    unique,
)
from tests.support.server import TrustyardServer
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def launch(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[type[TrustyardServer]]:
    """Make servers of the test's own (stopped at the end) on the test's backend."""
    started: list[TrustyardServer] = []
    database_url = make_database_url(backend, request)

    class Server(TrustyardServer):
        def __init__(self, **env: str) -> None:
            super().__init__(tmp_path / "data", database_url, extra_env={**FAST, **env})
            started.append(self)

    try:
        yield Server
    finally:
        for server in started:
            server.stop()


def admin_client(server: TrustyardServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD), timeout=60
    )


def new_repository(client: httpx.Client) -> str:
    name = f"admin/{unique('r')}"
    created = client.post("/api/v1/repositories", json={"name": name})
    assert created.status_code == 201, brief(created)
    return name


def test_an_event_committed_before_a_sigkill_is_delivered_after_restart(
    launch: type[TrustyardServer], receiver: WebhookReceiver
) -> None:
    server = launch(TRUSTYARD_JOBS__EMBEDDED_WORKERS="0").start()  # nothing sends before the kill
    with admin_client(server) as admin:
        repository = new_repository(admin)
        created = subscribe(admin, receiver, "/crash", ["TAG_PUSH"], repository=repository)
        image = push_image(admin, repository, "before-the-kill")
    server.kill()
    assert receiver.received() == []
    server.extra_env["TRUSTYARD_JOBS__EMBEDDED_WORKERS"] = "1"
    server.start()
    got = receiver.wait_for(lambda found: len(found) == 1, path="/crash")
    contents = got[0].json()["contents"]
    assert (contents["tag"], contents["digest"]) == ("before-the-kill", image.digest)
    assert got[0].signed_with(created["secret"])
    with admin_client(server) as admin:
        [delivery] = settled(admin, created["id"], 1)
    assert delivery["attempts"] == 1


def test_a_delivery_cut_off_by_a_sigkill_is_sent_again_after_restart(
    launch: type[TrustyardServer], receiver: WebhookReceiver
) -> None:
    server = launch(TRUSTYARD_JOBS__LEASE_SECONDS="2").start()
    with admin_client(server) as admin:
        repository = new_repository(admin)
        created = subscribe(admin, receiver, "/cut", ["TAG_PUSH"], repository=repository)
        receiver.hold()  # the first attempt reaches the receiver and waits for its answer
        push_image(admin, repository, "in-flight")

        def in_flight() -> bool:
            jobs = admin.get("/api/v1/jobs", params={"kind": "webhooks.deliver"}).json()
            return any(job["state"] == "running" for job in jobs["items"])

        eventually(in_flight, what="the delivery job running")
    server.kill()
    receiver.release()
    server.start()
    with admin_client(server) as admin:

        def delivered() -> list[dict[str, object]]:
            found = deliveries(admin, created["id"])
            return [d for d in found if d["state"] == "delivered"]

        [delivery] = eventually(delivered, what="the delivery recorded as delivered")
    assert delivery["event_type"] == "TAG_PUSH"
    answered = receiver.delivered("/cut")
    assert answered  # at least once; the cut-off attempt may have been answered too
    assert {r.event_id for r in answered} == {delivery["event_id"]}
    assert all(r.json()["contents"]["tag"] == "in-flight" for r in answered)


def test_a_destination_is_checked_again_at_delivery(
    launch: type[TrustyardServer], receiver: WebhookReceiver
) -> None:
    server = launch().start()
    with admin_client(server) as admin:
        repository = new_repository(admin)
        created = subscribe(admin, receiver, "/ssrf", ["TAG_PUSH"], repository=repository)
    server.stop()
    del server.extra_env["TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS"]  # loopback is refused now
    server.start()
    with admin_client(server) as admin:
        push_image(admin, repository, "v1")

        def refused() -> list[dict[str, object]]:
            found = deliveries(admin, created["id"])
            return [a for d in found for a in d["history"]]

        attempts = eventually(refused, what="a refused attempt")
        assert attempts[0]["status_code"] is None
        error = str(attempts[0]["error"])
        assert error.startswith("destination refused: '127.0.0.1' resolves to 127.0.0.1")
        assert admin.get(f"/api/v1/webhooks/{created['id']}").json()["failing_since"]
        changed = admin.patch(
            f"/api/v1/webhooks/{created['id']}", json={"url": receiver.url("/elsewhere")}
        )
        assert changed.status_code == 422, brief(changed)
    assert receiver.received() == []


def test_a_subscription_failing_for_too_long_is_marked_inactive(
    launch: type[TrustyardServer], receiver: WebhookReceiver
) -> None:
    # Inactive after 1.7 s of failures (0.00002 days).
    server = launch(TRUSTYARD_WEBHOOKS__INACTIVE_AFTER_DAYS="0.00002").start()
    receiver.fail_next(10**9, status=503)
    with admin_client(server) as admin:
        repository = new_repository(admin)
        created = subscribe(admin, receiver, "/down", ["TAG_PUSH"], repository=repository)
        url = f"/api/v1/webhooks/{created['id']}"
        push_image(admin, repository, "waiting")
        off = eventually(
            lambda: (body := admin.get(url).json())["active"] is False and body,
            what="the subscription marked inactive",
        )
        assert "HTTP 503" in off["inactive_reason"]
        assert "failed without a success since" in off["inactive_reason"]
        assert off["inactive_since"] is not None
        assert off["failing_since"] is not None
        [waiting] = deliveries(admin, created["id"])
        assert waiting["state"] == "pending"
        assert waiting["attempts"] >= 2
        assert {a["status_code"] for a in waiting["history"]} == {503}
        receiver.fail_next(0)
        on = admin.patch(url, json={"active": True})
        assert on.status_code == 200, brief(on)
        assert (on.json()["active"], on.json()["inactive_reason"]) == (True, None)
        got = receiver.wait_for(lambda found: len(found) == 1, path="/down")
        assert got[0].json()["contents"]["tag"] == "waiting"
        settled(admin, created["id"], 1)
        assert admin.get(url).json()["failing_since"] is None
