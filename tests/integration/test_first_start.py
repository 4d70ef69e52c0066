"""What a newcomer sees on first start with the defaults: accounts on, an `admin` whose password
is generated and printed once, and `trustyard passwd` as the way back in when it is lost."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from tests.support.server import TrustyardServer

pytestmark = pytest.mark.integration


def status_with(server: TrustyardServer, user: str, password: str) -> int:
    return httpx.get(f"{server.url}/v2/", auth=(user, password), timeout=30).status_code


def test_first_start_prints_the_admin_password_and_passwd_replaces_it(
    start_server: Callable[..., TrustyardServer],
) -> None:
    server = start_server("first-start", TRUSTYARD_AUTH__ENABLED="true")
    printed = re.findall(r"log in as admin with password (\S+)", server.log())
    assert len(printed) == 1, server.log()
    first = printed[0]
    assert "podman login --tls-verify=false -u admin" in server.log()

    assert httpx.get(f"{server.url}/v2/", timeout=30).status_code == 401
    assert status_with(server, "admin", first) == 200
    assert status_with(server, "admin", first + "x") == 401

    server.stop()
    changed = server.cli("passwd", "admin")
    new = re.fullmatch(r"new password of 'admin': (\S+)\n", changed.stdout)
    assert new is not None, changed.stdout + changed.stderr
    server.start()

    # The restarted server does not print a password again (it was shown once), but says how
    # to get back in.
    assert "trustyard passwd admin" in server.log().split("trustyard listening")[-2]
    assert len(re.findall(r"log in as admin with password", server.log())) == 1
    assert status_with(server, "admin", first) == 401
    assert status_with(server, "admin", new.group(1)) == 200


def test_passwd_reads_a_chosen_password_and_refuses_unknown_accounts(
    start_server: Callable[..., TrustyardServer],
) -> None:
    server = start_server(
        "passwd", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD="the first password"
    )
    assert "its first password came from TRUSTYARD_ADMIN_PASSWORD" in server.log()
    server.stop()
    env = server.env()
    chosen = subprocess.run(
        [sys.executable, "-m", "trustyard", "passwd", "admin", "--password-stdin",
         "--data-dir", str(server.data_dir)],
        check=False, input="a chosen new password\n", env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert chosen.returncode == 0, chosen.stderr
    assert "a chosen new password" not in chosen.stdout + chosen.stderr  # never echoed

    unknown = server.cli("passwd", "nobody", check=False)
    assert unknown.returncode == 1
    assert "'nobody' does not exist" in unknown.stderr

    server.start()
    assert status_with(server, "admin", "a chosen new password") == 200
    assert status_with(server, "admin", "the first password") == 401
