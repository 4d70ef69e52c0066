"""/api/v1 fuzzed by schemathesis against its own OpenAPI document (issue 3: "no 500s").

A real server with accounts on (one per backend) is seeded with a small world, its served
`/api/v1/openapi.json` is loaded, and every operation is called with generated requests as
three callers in turn: the system administrator, an ordinary user and an anonymous caller
(whose `Authorization` header is itself fuzzed, with `STRANGE_CREDENTIALS` mixed in). Every
answer must pass `CHECKS`: no 5xx, a documented status code and content type, a body and headers
that match the documented schema, and schema-invalid input refused with a 4xx. A second test
walks chains of calls (the stateful phase: links inferred from the document, e.g. the names a
list returns fed to the operations on one object) as the administrator.

Generated names rarely hit anything that exists, so the seeded names are mixed into path, query
and body values (schemathesis dictionaries, `NAME_PROBABILITY`): many examples reach the code
behind the 404.

Destructive operations: the callers keep logging in for the whole run, so no request may delete,
deactivate, demote or re-password `admin` or `uma` (`locks_out_a_caller`: such examples are
rejected, and in sequences the name is swapped for a missing one; changing one's own password
with a wrong `current_password` would also lock the account). Anything else may be destroyed
(organizations, teams, repositories, robots, tokens, other users): `seed` rebuilds the world,
idempotently, and clears the login back-off before each run.

Bounded and deterministic for CI: a fixed seed, derandomized generation, no example database,
`MAX_EXAMPLES` generated examples per operation and caller, plus the coverage phase's boundary
values and wrong types (as the administrator only: the others are turned away before their
input is used) and `SEQUENCES` chains of at most `STEPS` calls.
"""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import Phase, reject, settings
from schemathesis import Case
from schemathesis.errors import FailureGroup
from schemathesis.schemas import BaseSchema
from sqlalchemy import delete

from tests.integration.oci_helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    descriptor,
    encode,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from tests.support.server import TrustyardServer
from trustyard.db.engine import make_engine, write_tx
from trustyard.db.tables import login_failures
from trustyard.jobs.queue import SqlJobQueue

# One server per backend for the module: its tests run in order on one xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("api-fuzz")]

ADMIN_PASSWORD = "the fuzzing administrator's password"
USER = "uma"  # the ordinary user: owns `umbrella`, a read-write member of acme/dev
USER_PASSWORD = "the fuzzing user's password"
OTHER = "vic"  # a user the fuzzer may do anything to
LOGINS = frozenset({"admin", USER})
GHOST = "ghost"  # a name nothing has
SCANNED_METADATA = b"Metadata-Version: 2.1\nName: fuzzpkg\nVersion: 1.0\n"

SEED = 20240603
MAX_EXAMPLES = 10
SEQUENCES = 15
STEPS = 8
NAME_PROBABILITY = 0.5

# What every answer must satisfy.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
]
# Not checked: `positive_data_acceptance` ("schema-valid input is accepted"). The document
# gives the shape of the input; some rules are the domain's and answered 422 or 409 by
# design: the password policy, the scope grammar, an expiry in the future, unique names.

# Credentials a stranger might send: unknown, malformed, NUL bytes, made-up tokens.
STRANGE_CREDENTIALS = [
    "Basic " + base64.b64encode(b"ghost:not a password").decode(),
    "Basic " + base64.b64encode(b"gh\x00st:pass\x00word").decode(),
    "Basic " + base64.b64encode(b"no colon at all").decode(),
    "Basic " + base64.b64encode("g\u00e9ant:\u00e9".encode()).decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic not base64 !",
    "Basic ",
    "Bearer ty_pat_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "Bearer ty_pat_\x7f",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
    "Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6Ingi.e30.c2ln",
    "Bearer not.a.jwt",
    "Digest username=admin",
]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


CALLERS: dict[str, str | None] = {
    "admin": basic("admin", ADMIN_PASSWORD),
    "user": basic(USER, USER_PASSWORD),
    "anonymous": None,
}


@dataclass(frozen=True)
class World:
    """Ids that `seed` made and that only exist at run time."""

    token_ids: tuple[str, ...]
    job_ids: tuple[int, ...]
    image: Image | None = None  # acme/app:v1, scanned
    policy_ids: tuple[int, ...] = ()  # promotion policies of acme/app and acme/pub


def scanned_image(server: TrustyardServer) -> Image:
    """Push (again: the same bytes) a small image with one Python distribution into acme/app
    and wait for its scan, so the scanning routes have a BOM, a layer and a component."""
    files = {"usr/lib/python3/dist-packages/fuzzpkg-1.0.dist-info/METADATA": SCANNED_METADATA}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(buffer.getvalue(), mtime=0)
    config = encode({"architecture": "amd64", "os": "linux"})
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as v2:
        push_blob(v2, "acme/app", config)
        push_blob(v2, "acme/app", layer)
        document = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
        manifest = encode(document)
        expect(put_manifest(v2, "acme/app", "v1", manifest), 201)
        scan = f"/api/v1/repositories/acme/app/manifests/{sha256(manifest)}/scan"
        deadline = time.monotonic() + 120
        while (found := v2.get(scan)).json().get("status") not in ("succeeded", "failed"):
            if found.status_code == 404:  # an earlier run turned scan_on_push off
                expect(v2.post(scan), 202)
            assert time.monotonic() < deadline, "the seeded image was not scanned"
            time.sleep(0.2)
    return Image(manifest, OCI_MANIFEST, config, [layer])


def expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    assert response.status_code in statuses, f"{response.request.url}: {response.text}"
    return response


def seed(server: TrustyardServer) -> World:
    """Rebuild the world whatever the previous run left of it (201 or 409, 204 again)."""
    engine = make_engine(server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}")
    try:
        with write_tx(engine) as conn:
            conn.execute(delete(login_failures))  # the anonymous run's made-up logins
            # Due in an hour: queued for the whole run (the workers leave it alone).
            queue = SqlJobQueue(engine)
            job_ids = tuple(queue.enqueue(conn, "fuzz.idle", delay=3600).id for _ in range(2))
    finally:
        engine.dispose()
    admin = httpx.Client(base_url=f"{server.url}/api/v1", auth=("admin", ADMIN_PASSWORD))
    user = httpx.Client(base_url=f"{server.url}/api/v1", auth=(USER, USER_PASSWORD))
    with admin, user:
        for name, password in ((USER, USER_PASSWORD), (OTHER, "the other user's password")):
            expect(admin.post("/users", json={"username": name, "password": password}), 201, 409)
            reset = {"password": password, "is_active": True, "is_admin": False}
            expect(admin.patch(f"/users/{name}", json=reset), 200)
        expect(admin.post("/organizations", json={"name": "acme"}), 201, 409)
        expect(user.post("/organizations", json={"name": "umbrella"}), 201, 409)
        expect(admin.put(f"/organizations/umbrella/owners/{USER}"), 204)
        for org, team in (("acme", "dev"), ("umbrella", "ops")):
            expect(admin.post(f"/organizations/{org}/teams", json={"name": team}), 201, 409)
        expect(admin.put(f"/organizations/acme/teams/dev/members/{USER}"), 204)
        for name, visibility in (
            ("acme/app", "private"),
            ("acme/pub", "public"),
            ("umbrella/tool", "public"),
            (f"{USER}/own", "private"),
        ):
            body = {"name": name, "visibility": visibility}
            expect(admin.post("/repositories", json=body), 201, 409)
        role = {"role": "read-write"}
        expect(admin.put("/organizations/acme/teams/dev/repositories/acme/app", json=role), 204)
        expect(admin.post("/organizations/umbrella/robots", json={"name": "bot"}), 201, 409)
        grant = "/organizations/umbrella/robots/bot/repositories/umbrella/*"
        expect(admin.put(grant, json={"role": "read-only"}), 204)
        robot_token = admin.post("/organizations/umbrella/robots/bot/tokens", json={"name": "ci"})
        user_token = user.post("/tokens", json={"name": "laptop"})
        token_ids = tuple(
            expect(answer, 201).json()["public_id"] for answer in (robot_token, user_token)
        )
        # Disabled (no cycle between the two, nothing runs by itself), a rule no tag meets.
        never = [{"field": "tag", "operator": "eq", "values": ["never"]}]
        policy_ids = tuple(
            expect(
                admin.post(
                    f"/repositories/{source}/promotion-policies",
                    json={"targetRepository": target, "rules": never, "enabled": False},
                ),
                201,
            ).json()["id"]
            for source, target in (("acme/app", "acme/pub"), ("acme/pub", "acme/app"))
        )
    return World(token_ids, job_ids, scanned_image(server), policy_ids)


def dictionaries(world: World, caller: str) -> dict[str, Any]:
    """Seeded names for parameters (and made-up credentials for the anonymous caller)."""
    names = ["admin", USER, OTHER, "acme", "umbrella", "dev", "ops", "bot", GHOST]
    repositories = ["acme/app", "acme/pub", "umbrella/tool", f"{USER}/own", "acme/ghost"]
    values: dict[str, list[Any]] = {
        "names": names,
        "repositories": repositories,
        "both": names + repositories,
        "patterns": ["umbrella/*", "umbrella/tool", "acme/*", "*"],
        "roles": ["read-only", "read-write", "admin"],
        "scopes": ["repository:acme/app:pull", "repository:*:*", "registry:catalog:*"],
        "tokens": [*world.token_ids, "aaaaaaaaaaaa"],
        "jobs": [*world.job_ids, 1],
        "references": ["v1", *([world.image.digest] if world.image else []), "nope"],
        "layers": [sha256(layer) for layer in world.image.layers] if world.image else [],
        "components": ["fuzzpkg", "openssl"],
        "policies": [*world.policy_ids, 1],
        "reponames": ["app", "pub", "tool", "own", "ghost"],
        "credentials": STRANGE_CREDENTIALS,
    }
    bindings = {
        "path.name": "both",  # /users/{name} and /repositories/{name}
        "path.org": "names",
        "path.team": "names",
        "path.user": "names",
        "path.robot": "names",
        "path.repository": "repositories",
        "path.pattern": "patterns",
        "path.public_id": "tokens",
        "path.job_id": "jobs",
        "path.policy_id": "policies",  # promotion policies, /api/v1 and DTR's /api/v0
        "path.promotionPolicyID": "policies",
        "path.namespace": "names",
        "path.reponame": "reponames",
        "query.after": "both",
        "path.reference": "references",
        "path.digest": "layers",
        "query.name": "components",
        "query.namespace": "names",
        "query.organization": "names",
        "query.actor": "names",
        "body.name": "both",
        "body.username": "names",
        "body.role": "roles",
        "body.scopes[*]": "scopes",
        "body.reference": "references",  # a manual promotion's image
        "body.targetRepository": "repositories",  # ... and where it goes
    }
    if caller == "anonymous":
        bindings["header.authorization"] = "credentials"
    return {
        "dictionaries": {name: {"values": entries} for name, entries in values.items()},
        "parameters": {
            key: {"dictionary": name, "probability": NAME_PROBABILITY}
            for key, name in bindings.items()
        },
    }


def load_schema(server: TrustyardServer, caller: str, *, stateful: bool = False) -> BaseSchema:
    world = seed(server)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {
                # Boundary values and wrong types for every parameter, once, as the caller who
                # gets past authentication (no requests with unexpected methods: Starlette's 405).
                "coverage": {"enabled": caller == "admin", "unexpected-methods": []},
                "stateful": {
                    "enabled": stateful,
                    "max-steps": STEPS,
                    "inference": {"algorithms": ["location-headers", "dependency-analysis"]},
                },
            },
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
            **dictionaries(world, caller),
        }
    )
    loaded = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json", config=config)

    return loaded


def call_headers(caller: str) -> dict[str, str] | None:
    """The caller's credentials, replacing the generated `Authorization` header."""
    credentials = CALLERS[caller]
    return {"Authorization": credentials} if credentials else None


def locks_out_a_caller(case: Case) -> bool:
    """Whether the request would delete, deactivate, demote or re-password an account the
    fuzzer logs in with."""
    if case.operation.path != "/api/v1/users/{name}" or case.method not in ("PATCH", "DELETE"):
        return False
    if (case.path_parameters or {}).get("name") not in LOGINS:
        return False
    if case.method == "DELETE" or not isinstance(case.body, dict):
        return True
    return bool({"password", "current_password", "is_admin", "is_active"} & case.body.keys())


@pytest.fixture(scope="module")
def fuzzed(start_server: Callable[..., TrustyardServer]) -> TrustyardServer:
    return start_server(
        "api-fuzz",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_SCANNING__ENABLED="true",
    )


@pytest.fixture(params=list(CALLERS))
def caller(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api_schema(fuzzed: TrustyardServer, caller: str, request: pytest.FixtureRequest) -> BaseSchema:
    # schemathesis 4.32's lazy schema renames the running test through `node._nodeid`, an
    # attribute pytest 9.2 no longer has (it keeps the id in `_id`): give it one to rename.
    request.node._nodeid = request.node.nodeid
    return load_schema(fuzzed, caller)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_answers_as_documented(case: Case, caller: str) -> None:
    if locks_out_a_caller(case):
        reject()
    case.call_and_validate(headers=call_headers(caller), timeout=60)


def test_api_sequences_answer_as_documented(fuzzed: TrustyardServer) -> None:
    """Chains of calls as the administrator, each using what earlier answers returned.

    The steps draw on live answers, which a replay would not see again: hypothesis must never
    replay (or shrink) a sequence, so failures are collected, not raised, and reported at the
    end with the request that reproduces each."""
    # Nothing whose answer moves on the worker's clock: a step's answer decides which steps
    # may follow it, so an answer that differs between two draws of the same choices makes
    # hypothesis refuse the run as FlakyStrategyDefinition (it did, under load, in a full
    # run). Left out here, covered by the stateless run: POST /vulndb/updates and POST
    # .../scan (the jobs they queue go from queued to running to done or dead, and a rescan
    # makes GET .../bom answer 409 until it ends), and a job's retry and cancel (200 or 409
    # by the state the worker has moved the listed job to), and a promotion policy's run on
    # demand (a job too).
    loaded = load_schema(fuzzed, "admin", stateful=True)
    moving = (
        ("POST", "/api/v1/vulndb/updates"),
        ("POST", "/api/v1/repositories/{name}/manifests/{reference}/scan"),
        ("POST", "/api/v1/jobs/{job_id}/retry"),
        ("POST", "/api/v1/jobs/{job_id}/cancel"),
        ("POST", "/api/v1/repositories/{name}/promotion-policies/{policy_id}/run"),
    )
    for method, path in moving:
        loaded = loaded.exclude(method=method, path=path)
    machine = loaded.as_state_machine()
    failures: dict[str, str] = {}

    class Sequences(machine):  # type: ignore[valid-type,misc]
        def before_call(self, case: Case) -> None:
            if locks_out_a_caller(case):
                case.path_parameters = {**(case.path_parameters or {}), "name": GHOST}

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": call_headers("admin"), "timeout": 60}

        def validate_response(self, response: Any, case: Case, *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except FailureGroup as group:
                for failure in group.exceptions:
                    failures.setdefault(f"{case.operation.label}: {failure.title}", str(group))

    Sequences.run(
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            # Generation only: any other phase runs a sequence again (to explain or shrink
            # an error a step raised), and a sequence drawn from live answers draws other
            # steps the second time, which hypothesis reports as FlakyStrategyDefinition
            # instead of the error itself.
            phases=[Phase.generate],
        )
    )
    if failures:
        pytest.fail("\n\n".join(failures.values()), pytrace=False)
