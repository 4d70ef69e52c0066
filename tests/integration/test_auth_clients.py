"""Real clients log in to a registry with accounts on.

skopeo (``skopeo login`` and ``--creds``), podman (``podman login``, push, pull), buildah
(``push --creds``) and the python ``oras`` client each push and pull the smallest test image
with a user's password and with a robot token (``org+robot`` / ``ty_rbt_...``), digest for
digest. A robot token scoped to pull can pull but not push, and writes nothing; a wrong secret
fails with a clear message and leaves nothing behind.

Every client keeps its credentials in the test's own auth file (``REGISTRY_AUTH_FILE`` for the
containers tools, an explicit config file for oras), so no test sees another's login.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import oras.provider
import pytest
from sqlalchemy import Connection

from tests.integration.clients import (
    ALL_MANIFEST_TYPES,
    Clients,
    file_digest,
    layout_blob_path,
    layout_blobs,
    layout_top,
)
from tests.support.images import image_info, image_layout
from tests.support.server import TrustyardServer
from trustyard.auth.accounts import AccountService
from trustyard.db.engine import make_engine, write_tx

pytestmark = pytest.mark.integration

IMAGE = "go-binary"  # the smallest single-platform test image: one 1.2 MB layer
ADMIN_PASSWORD = "an admin password for client tests"
PASSWORD = "correct horse battery staple"
OWNER = "olga"  # owns organization acme; the tests read the registry's truth as her
DEVELOPER = "dev"  # member of acme's team "builders", which may read and write acme/*
ROBOT = "acme+ci"  # robot of acme with a read-write grant on acme/*
SPARE_ROBOT = "acme+spare"  # a robot whose token the wrong-secret test mangles
CLIENT_NAMES = ("skopeo", "podman", "buildah", "oras")
# More builders, one per client, who type their password wrong: a few failed logins in a row
# lock an account for a while, so each client's typos must not lock anyone else out.
TYPO_USERS = tuple(f"typo-{client}" for client in CLIENT_NAMES)
CREDENTIAL_KINDS = ("password", "robot-token")
DENIED = "denied: requested access to the resource is denied"
BAD_LOGIN = "invalid username/password"
SKOPEO_FAILED = 1  # exit status of skopeo on any failure
PODMAN_FAILED = 125  # podman's and buildah's exit status when the command itself fails
ORAS_BLOB_TYPE = "application/vnd.trustyard.test.blob"  # not a tar layer: oras keeps it as is

T = TypeVar("T")


@dataclass(frozen=True)
class AuthRegistry:
    """A trustyard with accounts on, and the secrets the tests log in with."""

    server: TrustyardServer
    robot_token: str  # acme+ci, scopes repository:acme/*:pull,push
    pull_token: str  # acme+ci, scope repository:acme/*:pull
    spare_token: str  # acme+spare, scopes repository:acme/*:pull,push

    @property
    def host(self) -> str:
        return self.server.host

    def credentials(self, kind: str) -> tuple[str, str]:
        return (DEVELOPER, PASSWORD) if kind == "password" else (ROBOT, self.robot_token)

    def owner_http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=(OWNER, PASSWORD), timeout=60)

    def tags(self, repository: str) -> list[str] | None:
        """The repository's tags as its owner sees them; None when it does not exist."""
        with self.owner_http() as http:
            answer = http.get(f"/v2/{repository}/tags/list")
        if answer.status_code == 404:
            assert answer.json()["errors"][0]["code"] == "NAME_UNKNOWN"
            return None
        assert answer.status_code == 200, answer.text
        return sorted(answer.json()["tags"])

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """(Docker-Content-Digest, parsed manifest) of `reference`, its bytes checked."""
        with self.owner_http() as http:
            answer = http.get(
                f"/v2/{repository}/manifests/{reference}", headers={"Accept": ALL_MANIFEST_TYPES}
            )
        assert answer.status_code == 200, answer.text
        digest = answer.headers["Docker-Content-Digest"]
        assert _sha256(answer.content) == digest
        manifest: dict[str, Any] = answer.json()
        return digest, manifest

    def assert_blobs_intact(self, repository: str, manifest: dict[str, Any]) -> None:
        """Every blob the manifest names is served with exactly its digest and size."""
        with self.owner_http() as http:
            for descriptor in [manifest["config"], *manifest["layers"]]:
                blob = http.get(f"/v2/{repository}/blobs/{descriptor['digest']}")
                assert blob.status_code == 200, descriptor
                assert _sha256(blob.content) == descriptor["digest"]
                assert len(blob.content) == descriptor["size"]


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _on_database(server: TrustyardServer, work: Callable[[Connection, AccountService], T]) -> T:
    url = server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"
    engine = make_engine(url)
    try:
        with write_tx(engine) as conn:
            return work(conn, AccountService())
    finally:
        engine.dispose()


def _seed_accounts(conn: Connection, accounts: AccountService) -> tuple[str, str, str]:
    for name in (OWNER, DEVELOPER, *TYPO_USERS):
        accounts.create_user(conn, name, PASSWORD)
    accounts.create_organization(conn, "acme", OWNER)
    accounts.create_team(conn, "acme", "builders")
    for member in (DEVELOPER, *TYPO_USERS):
        accounts.add_member(conn, "acme", "builders", member)
    accounts.set_team_organization_grant(conn, "acme", "builders", "read-write")
    for robot in (ROBOT, SPARE_ROBOT):
        name = robot.partition("+")[2]
        accounts.create_robot(conn, "acme", name)
        accounts.set_robot_grant(conn, "acme", name, "acme/*", "read-write")
    push_pull = ["repository:acme/*:pull,push"]
    _, robot_token = accounts.create_token(conn, ROBOT, "ci pushes", push_pull)
    _, pull_token = accounts.create_token(conn, ROBOT, "ci pulls", ["repository:acme/*:pull"])
    _, spare_token = accounts.create_token(conn, SPARE_ROBOT, "spare", push_pull)
    return robot_token, pull_token, spare_token


@pytest.fixture(scope="module")
def registry(start_server: Callable[..., TrustyardServer]) -> AuthRegistry:
    server = start_server(
        "auth-clients", TRUSTYARD_AUTH__ENABLED="true", TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    robot_token, pull_token, spare_token = _on_database(server, _seed_accounts)
    assert all(t.startswith("ty_rbt_") for t in (robot_token, pull_token, spare_token))
    return AuthRegistry(server, robot_token, pull_token, spare_token)


@pytest.fixture
def clients(tmp_path: Path, registry: AuthRegistry) -> Clients:
    root = tmp_path / "clients"
    auth_file = root / "auth.json"
    found = Clients(root, [registry.host], {"REGISTRY_AUTH_FILE": str(auth_file)})
    auth_file.write_text('{"auths": {}}', encoding="utf-8")  # podman refuses a missing file
    return found


def saved_logins(clients: Clients) -> dict[str, str]:
    """host -> "user:secret" of every login in the test's auth file."""
    path = Path(clients.env()["REGISTRY_AUTH_FILE"])
    auths: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))["auths"]
    return {host: base64.b64decode(entry["auth"]).decode() for host, entry in auths.items()}


def assert_layout_round_trip(pulled: Path) -> None:
    """The pulled OCI layout is the test image, digest for digest and byte for byte."""
    source = layout_top(image_layout(IMAGE))
    top = layout_top(pulled)
    assert (top["digest"], top["mediaType"], top["size"]) == (
        source["digest"],
        source["mediaType"],
        source["size"],
    )
    assert layout_blobs(pulled) == layout_blobs(image_layout(IMAGE))
    for digest in layout_blobs(pulled):
        assert file_digest(layout_blob_path(pulled, digest)) == digest


def failed(result: subprocess.CompletedProcess[str], status: int, message: str) -> None:
    """The client exited with `status` and said `message` (an authorization error)."""
    assert result.returncode == status, f"exit {result.returncode}\n{result.stderr}"
    assert message in result.stderr, result.stderr


def seed_image(registry: AuthRegistry, clients: Clients, repository: str) -> str:
    """The owner pushes the test image as `repository:1.0`; returns its digest."""
    clients.skopeo(
        "copy", "--quiet", "--dest-creds", f"{OWNER}:{PASSWORD}",
        f"oci:{image_layout(IMAGE)}:latest", f"docker://{registry.host}/{repository}:1.0",
    )  # fmt: skip
    assert registry.tags(repository) == ["1.0"]
    digest: str = image_info(IMAGE)["digest"]
    return digest


def oras_registry(registry: AuthRegistry, backend: str = "token") -> oras.provider.Registry:
    """An oras client. Its default "token" backend follows the Docker token flow, but keeps the
    pull-only token its first HEAD earned and resends it for the upload that needs push
    (oras-project/oras-py#187, open against 0.2.x), so pushes use the "basic" backend, which
    answers every challenge with the saved Basic credentials."""
    return oras.provider.Registry(hostname=registry.host, insecure=True, auth_backend=backend)


def layer_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The test image's only layer as a file for oras, with its descriptor."""
    (layer,) = image_info(IMAGE)["images"][0]["layers"]
    path = tmp_path / "go-binary-layer.tar.gz"
    shutil.copyfile(layout_blob_path(image_layout(IMAGE), layer["digest"]), path)
    return path, layer


def oras_push(
    client: oras.provider.Registry, target: str, blob: Path, auth_config: Path | None = None
) -> httpx.Response:
    response: httpx.Response = client.push(
        target=target,
        files=[f"{blob}:{ORAS_BLOB_TYPE}"],
        config_path=str(auth_config) if auth_config else None,
        disable_path_validation=True,
        quiet=True,
    )
    return response


# --- skopeo -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_skopeo_login_then_copy_both_ways(
    kind: str, registry: AuthRegistry, clients: Clients, tmp_path: Path
) -> None:
    user, secret = registry.credentials(kind)
    repository = f"acme/skopeo-login-{kind}"
    target = f"{registry.host}/{repository}:1.0"

    login = clients.skopeo("login", "--username", user, "--password", secret, registry.host)

    assert login.stdout.strip() == "Login Succeeded!"
    assert saved_logins(clients) == {registry.host: f"{user}:{secret}"}
    clients.push_layout(image_layout(IMAGE), target)
    pulled = tmp_path / "pulled"
    clients.pull_layout(target, pulled)
    assert_layout_round_trip(pulled)
    digest, manifest = registry.manifest(repository, "1.0")
    assert digest == image_info(IMAGE)["digest"]
    registry.assert_blobs_intact(repository, manifest)
    # It was the saved login that opened the private repository.
    clients.skopeo("logout", registry.host)
    assert saved_logins(clients) == {}
    anonymous = clients.skopeo(
        "copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{tmp_path / 'anon'}:x",
        check=False,
    )  # fmt: skip
    failed(anonymous, SKOPEO_FAILED, "unauthorized")


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_skopeo_creds_flags_copy_inspect_and_list_tags(
    kind: str, registry: AuthRegistry, clients: Clients, tmp_path: Path
) -> None:
    user, secret = registry.credentials(kind)
    creds = f"{user}:{secret}"
    repository = f"acme/skopeo-creds-{kind}"
    target = f"docker://{registry.host}/{repository}:1.0"

    clients.skopeo(
        "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
        f"oci:{image_layout(IMAGE)}:latest", target,
    )  # fmt: skip
    pulled = tmp_path / "pulled"
    clients.skopeo(
        "copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds,
        target, f"oci:{pulled}:latest",
    )  # fmt: skip

    assert_layout_round_trip(pulled)
    inspected = json.loads(
        clients.skopeo("inspect", "--tls-verify=false", "--creds", creds, target).stdout
    )
    assert inspected["Digest"] == image_info(IMAGE)["digest"]
    listed = clients.skopeo(
        "list-tags",
        "--tls-verify=false",
        "--creds",
        creds,
        f"docker://{registry.host}/{repository}",
    )
    assert json.loads(listed.stdout)["Tags"] == ["1.0"]
    assert saved_logins(clients) == {}  # flags are not remembered


@pytest.mark.parametrize("how", ["login", "creds"])
def test_skopeo_with_a_pull_only_robot_token_pulls_but_cannot_push(
    how: str, registry: AuthRegistry, clients: Clients, tmp_path: Path
) -> None:
    repository = f"acme/pull-only-skopeo-{how}"
    seed_image(registry, clients, repository)
    src_flags: list[str] = []
    dest_flags: list[str] = []
    if how == "login":
        clients.skopeo(
            "login", "--username", ROBOT, "--password", registry.pull_token, registry.host
        )
    else:
        src_flags = ["--src-creds", f"{ROBOT}:{registry.pull_token}"]
        dest_flags = ["--dest-creds", f"{ROBOT}:{registry.pull_token}"]

    pulled = tmp_path / "pulled"
    clients.skopeo(
        "copy", "--quiet", "--src-tls-verify=false", *src_flags,
        f"docker://{registry.host}/{repository}:1.0", f"oci:{pulled}:latest",
    )  # fmt: skip
    assert_layout_round_trip(pulled)
    for target in (f"{repository}:2.0", f"{repository}-new:1.0"):
        pushed = clients.skopeo(
            "copy", "--quiet", "--dest-tls-verify=false", *dest_flags,
            f"oci:{image_layout(IMAGE)}:latest", f"docker://{registry.host}/{target}",
            check=False,
        )  # fmt: skip
        failed(pushed, SKOPEO_FAILED, DENIED)

    assert registry.tags(repository) == ["1.0"]
    assert registry.tags(f"{repository}-new") is None


def test_skopeo_refuses_a_wrong_secret_cleanly(registry: AuthRegistry, clients: Clients) -> None:
    user = "typo-skopeo"
    typo = clients.skopeo(
        "login", "--username", user, "--password", PASSWORD + "!", registry.host, check=False
    )
    failed(typo, SKOPEO_FAILED, BAD_LOGIN)
    mangled = registry.spare_token[:-1] + ("B" if registry.spare_token.endswith("A") else "A")
    robot = clients.skopeo(
        "login", "--username", SPARE_ROBOT, "--password", mangled, registry.host, check=False
    )
    failed(robot, SKOPEO_FAILED, BAD_LOGIN)
    assert saved_logins(clients) == {}
    pushed = clients.skopeo(
        "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"{user}:not it",
        f"oci:{image_layout(IMAGE)}:latest", f"docker://{registry.host}/acme/typo-skopeo:1.0",
        check=False,
    )  # fmt: skip
    failed(pushed, SKOPEO_FAILED, BAD_LOGIN)
    assert registry.tags("acme/typo-skopeo") is None
    # A typo locks nobody out: the right secret works at once.
    login = clients.skopeo("login", "--username", user, "--password", PASSWORD, registry.host)
    assert login.stdout.strip() == "Login Succeeded!"
    assert saved_logins(clients) == {registry.host: f"{user}:{PASSWORD}"}


# --- podman -----------------------------------------------------------------------------------


def podman_login(clients: Clients, host: str, user: str, secret: str) -> None:
    login = clients.podman(
        "login", "--tls-verify=false", "--username", user, "--password", secret, host
    )
    assert login.stdout.strip() == "Login Succeeded!"
    assert saved_logins(clients) == {host: f"{user}:{secret}"}


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_podman_login_then_push_and_pull(
    kind: str, registry: AuthRegistry, clients: Clients
) -> None:
    user, secret = registry.credentials(kind)
    config = image_info(IMAGE)["images"][0]["config"]
    repository = f"acme/podman-{kind}"
    target = f"{registry.host}/{repository}:1.0"
    image_id = clients.podman("pull", "--quiet", f"oci:{image_layout(IMAGE)}:latest").stdout
    assert f"sha256:{image_id.strip()}" == config

    podman_login(clients, registry.host, user, secret)
    digest_file = clients.digestfile("podman-push")
    clients.podman(
        "push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file),
        image_id.strip(), target,
    )  # fmt: skip

    pushed = digest_file.read_text(encoding="utf-8").strip()
    digest, manifest = registry.manifest(repository, "1.0")
    assert digest == pushed
    assert manifest["config"]["digest"] == config
    registry.assert_blobs_intact(repository, manifest)
    clients.podman("rmi", "--all", "--force")
    pulled_id = clients.podman("pull", "--quiet", "--tls-verify=false", target).stdout.strip()
    assert f"sha256:{pulled_id}" == config
    (inspected,) = json.loads(clients.podman("image", "inspect", target).stdout)
    assert inspected["Digest"] == pushed
    assert f"{registry.host}/{repository}@{pushed}" in inspected["RepoDigests"]


def test_podman_with_a_pull_only_robot_token_pulls_but_cannot_push(
    registry: AuthRegistry, clients: Clients
) -> None:
    repository = "acme/pull-only-podman"
    digest = seed_image(registry, clients, repository)
    source = f"{registry.host}/{repository}:1.0"
    podman_login(clients, registry.host, ROBOT, registry.pull_token)

    image_id = clients.podman("pull", "--quiet", "--tls-verify=false", source).stdout.strip()

    assert f"sha256:{image_id}" == image_info(IMAGE)["images"][0]["config"]
    (inspected,) = json.loads(clients.podman("image", "inspect", source).stdout)
    assert inspected["Digest"] == digest
    for target in (f"{repository}:2.0", f"{repository}-new:1.0"):
        pushed = clients.run(
            "podman", "push", "--tls-verify=false", source, f"{registry.host}/{target}",
            check=False,
        )  # fmt: skip
        failed(pushed, PODMAN_FAILED, DENIED)
    assert registry.tags(repository) == ["1.0"]
    assert registry.tags(f"{repository}-new") is None


def test_podman_login_refuses_a_wrong_password_cleanly(
    registry: AuthRegistry, clients: Clients
) -> None:
    user = "typo-podman"
    typo = clients.run(
        "podman", "login", "--tls-verify=false", "--username", user, "--password", "not it",
        registry.host, check=False,
    )  # fmt: skip
    failed(typo, PODMAN_FAILED, BAD_LOGIN)
    assert saved_logins(clients) == {}
    podman_login(clients, registry.host, user, PASSWORD)


# --- buildah ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_buildah_push_with_creds_then_pull(
    kind: str, registry: AuthRegistry, clients: Clients
) -> None:
    user, secret = registry.credentials(kind)
    creds = f"{user}:{secret}"
    config = image_info(IMAGE)["images"][0]["config"]
    repository = f"acme/buildah-{kind}"
    target = f"{registry.host}/{repository}:1.0"
    image_id = clients.buildah("pull", "--quiet", f"oci:{image_layout(IMAGE)}:latest").stdout
    digest_file = clients.digestfile("buildah-push")

    clients.buildah(
        "push", "--quiet", "--tls-verify=false", "--creds", creds,
        "--digestfile", str(digest_file), image_id.strip(), f"docker://{target}",
    )  # fmt: skip

    pushed = digest_file.read_text(encoding="utf-8").strip()
    digest, manifest = registry.manifest(repository, "1.0")
    assert digest == pushed
    assert manifest["config"]["digest"] == config
    registry.assert_blobs_intact(repository, manifest)
    assert saved_logins(clients) == {}  # --creds is not remembered
    clients.buildah("rmi", "--all", "--force")
    pulled_id = clients.buildah(
        "pull", "--quiet", "--tls-verify=false", "--creds", creds, f"docker://{target}"
    ).stdout.strip()
    assert f"sha256:{pulled_id}" == config


def test_buildah_with_a_pull_only_robot_token_pulls_but_cannot_push(
    registry: AuthRegistry, clients: Clients
) -> None:
    repository = "acme/pull-only-buildah"
    seed_image(registry, clients, repository)
    creds = f"{ROBOT}:{registry.pull_token}"
    source = f"{registry.host}/{repository}:1.0"

    image_id = clients.buildah(
        "pull", "--quiet", "--tls-verify=false", "--creds", creds, f"docker://{source}"
    ).stdout.strip()

    assert f"sha256:{image_id}" == image_info(IMAGE)["images"][0]["config"]
    for target in (f"{repository}:2.0", f"{repository}-new:1.0"):
        pushed = clients.run(
            "buildah", "push", "--tls-verify=false", "--creds", creds,
            image_id, f"docker://{registry.host}/{target}", check=False,
        )  # fmt: skip
        failed(pushed, PODMAN_FAILED, DENIED)
    assert registry.tags(repository) == ["1.0"]
    assert registry.tags(f"{repository}-new") is None


def test_buildah_push_refuses_a_wrong_password_cleanly(
    registry: AuthRegistry, clients: Clients
) -> None:
    image_id = clients.buildah("pull", "--quiet", f"oci:{image_layout(IMAGE)}:latest").stdout
    pushed = clients.run(
        "buildah", "push", "--tls-verify=false", "--creds", "typo-buildah:not it",
        image_id.strip(), f"docker://{registry.host}/acme/typo-buildah:1.0", check=False,
    )  # fmt: skip
    failed(pushed, PODMAN_FAILED, BAD_LOGIN)
    assert registry.tags("acme/typo-buildah") is None


# --- oras (python) ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_oras_login_then_push_and_pull(kind: str, registry: AuthRegistry, tmp_path: Path) -> None:
    user, secret = registry.credentials(kind)
    blob, layer = layer_file(tmp_path)
    repository = f"acme/oras-{kind}"
    target = f"{registry.host}/{repository}:1.0"
    auth_config = tmp_path / "oras-auth.json"

    oras_registry(registry).login(
        user, secret, hostname=registry.host, config_path=str(auth_config)
    )
    saved = json.loads(auth_config.read_text(encoding="utf-8"))["auths"][registry.host]["auth"]
    assert base64.b64decode(saved).decode() == f"{user}:{secret}"
    pushed = oras_push(oras_registry(registry, "basic"), target, blob, auth_config)

    assert pushed.status_code == 201
    digest, manifest = registry.manifest(repository, "1.0")
    assert digest == pushed.headers["Docker-Content-Digest"]
    assert [(x["mediaType"], x["digest"], x["size"]) for x in manifest["layers"]] == [
        (ORAS_BLOB_TYPE, layer["digest"], layer["size"])
    ]
    registry.assert_blobs_intact(repository, manifest)
    puller = oras_registry(registry)
    outdir = tmp_path / "pulled"
    files = puller.pull(target=target, outdir=str(outdir), config_path=str(auth_config))
    assert files == [str(outdir / blob.name)]
    assert file_digest(outdir / blob.name) == layer["digest"]
    assert puller.get_tags(f"{registry.host}/{repository}") == ["1.0"]


def test_oras_with_a_pull_only_robot_token_pulls_but_cannot_push(
    registry: AuthRegistry, tmp_path: Path
) -> None:
    blob, layer = layer_file(tmp_path)
    repository = "acme/pull-only-oras"
    owner = oras_registry(registry, "basic")
    owner.auth.set_basic_auth(OWNER, PASSWORD)
    assert oras_push(owner, f"{registry.host}/{repository}:1.0", blob).status_code == 201
    robot = oras_registry(registry, "basic")
    robot.auth.set_basic_auth(ROBOT, registry.pull_token)

    outdir = tmp_path / "pulled"
    files = robot.pull(target=f"{registry.host}/{repository}:1.0", outdir=str(outdir))

    assert files == [str(outdir / blob.name)]
    assert file_digest(outdir / blob.name) == layer["digest"]
    for target in (f"{repository}:2.0", f"{repository}-new:1.0"):
        with pytest.raises(ValueError, match=r"DENIED|Forbidden"):
            oras_push(robot, f"{registry.host}/{target}", blob)
    assert registry.tags(repository) == ["1.0"]
    assert registry.tags(f"{repository}-new") is None


def test_oras_refuses_a_wrong_password_cleanly(registry: AuthRegistry, tmp_path: Path) -> None:
    """oras-py's login only writes the config file; the registry refuses at first use."""
    blob, _ = layer_file(tmp_path)
    target = f"{registry.host}/acme/typo-oras:1.0"
    pusher = oras_registry(registry, "basic")
    pusher.auth.set_basic_auth("typo-oras", "not it")
    with pytest.raises(ValueError, match="UNAUTHORIZED"):
        oras_push(pusher, target, blob)
    # The token backend would retry a refused token request for minutes (its retry decorator
    # sleeps 3 + 5 + 11 + 29 + 83 s); the basic backend reports the registry's answer at once.
    puller = oras_registry(registry, "basic")
    puller.auth.set_basic_auth("typo-oras", "not it")
    with pytest.raises(ValueError, match="Unauthorized"):
        puller.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert registry.tags("acme/typo-oras") is None
