"""The README's webhook example, run as written: its request bodies are JSON, and its receiver
(`hook.py`) gets the sample event from a real server (only the receiver's port is changed)."""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.server import TrustyardServer
from tests.support.workers import FAST_JOBS

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"
ADMIN_PASSWORD = "an admin password for the readme"
ALICE = ("alice", "a long password for alice")
TIMEOUT = 120.0


def readme() -> str:
    return README.read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", readme(), flags=re.DOTALL)


def test_every_request_body_of_the_readme_is_json() -> None:
    bodies = [
        body for block in code_blocks("sh") for body in re.findall(r"-d '(.*?)'", block, re.DOTALL)
    ]
    assert len(bodies) >= 5
    for body in bodies:
        json.loads(body)  # no comments, no trailing commas


@pytest.fixture
def hook(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    [receiver] = [block for block in code_blocks("python") if "class Hook" in block]
    port = free_port()
    assert '("127.0.0.1", 9000)' in receiver
    script = tmp_path / "hook.py"
    script.write_text(receiver.replace("9000", str(port)))
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        yield port, process
    finally:
        process.kill()
        process.wait()


def test_the_readme_receiver_gets_the_sample_event(
    start_server: Callable[..., TrustyardServer], hook: tuple[int, subprocess.Popen[str]]
) -> None:
    port, receiver = hook
    [example] = [block for block in code_blocks("sh") if "$API/webhooks -d '" in block]
    [body] = re.findall(r"-d '(.*?)'", example, re.DOTALL)
    subscription = json.loads(body.replace(":9000/", f":{port}/"))
    assert subscription["url"].startswith("http://127.0.0.1:")
    assert "TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS=127.0.0.1/32 make serve" in readme()
    server = start_server(
        "readme-webhook",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS="127.0.0.1/32",
        **FAST_JOBS,
    )
    api = f"{server.url}/api/v1"
    with httpx.Client(timeout=60) as http:
        made = http.post(
            f"{api}/users",
            auth=("admin", ADMIN_PASSWORD),
            json={"username": ALICE[0], "password": ALICE[1]},
        )
        assert made.status_code == 201, made.text
        made = http.post(f"{api}/organizations", auth=ALICE, json={"name": "acme"})
        assert made.status_code == 201, made.text
        created = http.post(f"{api}/webhooks", auth=ALICE, json=subscription)
        assert created.status_code == 201, created.text
        tested = http.post(f"{api}/webhooks/{created.json()['id']}/test", auth=ALICE)
        assert tested.status_code == 202, tested.text
    assert receiver.stdout is not None
    ready, _, _ = select.select([receiver.stdout], [], [], TIMEOUT)
    assert ready, f"hook.py printed nothing; server log:\n{server.log()}"
    event, _, delivered = receiver.stdout.readline().partition(" ")
    assert event == "TAG_PUSH"
    assert json.loads(delivered)["contents"]["namespace"] == "acme"
