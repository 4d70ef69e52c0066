"""The world of the access matrix: a registry with accounts on, the identities that call it,
what each of them holds, and throwaway objects for requests that change state.

Everything is seeded straight into the server's database through `AccountService` (the REST
API is what the matrix tests, so it does not build its own fixtures) and content is pushed over
/v2 as the system administrator.
"""

from __future__ import annotations

import base64
import enum
import gzip
import io
import tarfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import delete, update

from tests.integration.oci_helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    encode,
    image_manifest,
    push_artifact,
    push_blob,
    put_manifest,
    sha256,
)
from tests.support.server import TrustyardServer
from trustyard.auth.accounts import AccountService
from trustyard.auth.scopes import ScopeGrant
from trustyard.auth.signing import SigningKeys
from trustyard.content.stores import ContentStore
from trustyard.db.engine import make_engine, read_tx, write_tx
from trustyard.db.tables import access_tokens, jobs, login_failures, repositories
from trustyard.events.model import EventType
from trustyard.jobs.queue import SqlJobQueue
from trustyard.scanning.stores import ScanStore
from trustyard.webhooks.destinations import DestinationPolicy
from trustyard.webhooks.interfaces import Scope
from trustyard.webhooks.service import WebhookService
from trustyard.webhooks.signing import SecretBox

ADMIN_PASSWORD = "the matrix administrator's password"
PASSWORD = "every matrix user's password"

ORG = "acme"  # the organization everything below belongs to
OTHER_ORG = "globex"  # the outsider's own organization
APP = "acme/app"  # private; teams hold read-only, read-write and admin on it
PUB = "acme/pub"  # public; no team holds anything on it
REPOSITORIES = (APP, PUB)
# Names that exist nowhere: a hidden object must answer exactly like these.
GHOSTS = {APP: "acme/nil", PUB: "acme/nul", ORG: "ghostorg"}
MISSING_TOKEN_ID = "aaaaaaaaaaaa"  # a well-formed public id no token has
MISSING_WEBHOOK_ID = "wh_0000000000000000"  # a well-formed id no webhook has
# Webhooks of the matrix point here: loopback (allowed on the matrix server), nothing listens.
WEBHOOK_URL = "http://127.0.0.1:9/matrix"
WEBHOOK_NETWORKS = "127.0.0.1/32"

# Teams of acme and the role each holds on acme/app.
TEAM_ROLES = {"pullers": "read-only", "pushers": "read-write", "keepers": "admin"}
ROBOT = "deploybot"  # acme+deploybot: read-write on acme/*, its token narrowed to pulling APP
ROBOT_LOGIN = f"{ORG}+{ROBOT}"
ROBOT_TOKEN_SCOPES = (f"repository:{APP}:pull",)
OTHER_SERVICE = "another-service"
# The Python distribution in the layer of every seeded image (what scans find and the
# component search looks for).
SCANNED_PACKAGE = "matrixpkg"
SCANNED_VERSION = "1.0"


class Role(enum.IntEnum):
    """Issue 3's roles, restated here so that the expectations do not borrow the code's."""

    NONE = 0
    READ_ONLY = 1
    READ_WRITE = 2
    ADMIN = 3


Credential = Literal[
    "none", "password", "robot-token", "expired-token", "revoked-token", "foreign-jwt"
]
INVALID_CREDENTIALS: frozenset[Credential] = frozenset(
    {"expired-token", "revoked-token", "foreign-jwt"}
)


@dataclass(frozen=True)
class Who:
    """One identity of the matrix and what it holds, as `World.seed` sets it up."""

    key: str
    login: str | None  # the account it authenticates as; None: anonymous
    credential: Credential
    roles: Mapping[str, Role]  # its role on APP and PUB, before any token scope
    scope: frozenset[tuple[str, str]] | None = None  # (repository, action) its token allows
    admin: bool = False  # system administrator
    acme: Literal["", "member", "owner"] = ""  # its place in organization acme
    team: str | None = None  # its team in acme

    @property
    def valid(self) -> bool:
        """Whether the server should accept its credentials at all."""
        return self.credential not in INVALID_CREDENTIALS

    @property
    def anonymous(self) -> bool:
        return self.credential == "none"


R = Role
IDENTITIES: tuple[Who, ...] = (
    Who("anonymous", None, "none", {APP: R.NONE, PUB: R.READ_ONLY}),
    Who("reader", "rory-reads", "password", {APP: R.READ_ONLY, PUB: R.READ_ONLY},
        acme="member", team="pullers"),
    Who("writer", "wanda-writes", "password", {APP: R.READ_WRITE, PUB: R.READ_ONLY},
        acme="member", team="pushers"),
    Who("repo-admin", "arne-admins", "password", {APP: R.ADMIN, PUB: R.READ_ONLY},
        acme="member", team="keepers"),
    Who("org-owner", "olga-owns", "password", {APP: R.ADMIN, PUB: R.ADMIN}, acme="owner"),
    Who("sys-admin", "admin", "password", {APP: R.ADMIN, PUB: R.ADMIN}, admin=True),
    # The owner of another organization, globex.
    Who("outsider", "otto-outside", "password", {APP: R.NONE, PUB: R.READ_ONLY}),
    # A robot of acme granted read-write on acme/*, logging in with a token that only pulls APP.
    Who("robot", ROBOT_LOGIN, "robot-token", {APP: R.READ_WRITE, PUB: R.READ_WRITE},
        frozenset({(APP, "pull")}), acme="member"),
    # Personal access tokens of members of `pushers` (read-write on APP), past their expiry
    # and revoked: as good as no credentials at all.
    Who("expired-token", "lapsed-lars", "expired-token", {APP: R.READ_WRITE, PUB: R.READ_ONLY},
        acme="member", team="pushers"),
    Who("revoked-token", "revoked-rex", "revoked-token", {APP: R.READ_WRITE, PUB: R.READ_ONLY},
        acme="member", team="pushers"),
    # A registry token signed with this registry's own key, but for another service, claiming
    # everything on both repositories for the organization's owner.
    Who("other-service", "olga-owns", "foreign-jwt", {APP: R.NONE, PUB: R.NONE}),
)  # fmt: skip
BY_KEY = {who.key: who for who in IDENTITIES}
SPARE_USER = "spare-sam"  # an account no identity uses: the object of membership changes


@dataclass(frozen=True)
class Content:
    """What an image repository holds, for requests and for leak checks."""

    tag: str
    manifest: bytes
    digest: str
    config: bytes
    layer: bytes
    layer_digest: str
    referrer_digest: str  # an artifact whose subject is the manifest


@dataclass(frozen=True)
class Call:
    """One concrete HTTP request, and (for a named object) its twin naming a missing one."""

    method: str
    path: str
    params: Mapping[str, str | list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    data: Mapping[str, str] | None = None
    alias: tuple[str, str] | None = None  # (real name, missing name)

    def hiding(self, real: str, missing: str) -> Call:
        """This call, able to produce its twin aimed at `missing` instead of `real`."""
        assert real in self.text(), (real, self.text())
        return replace(self, alias=(real, missing))

    def ghost(self) -> Call:
        """The twin: the same request with the object's name replaced by a missing one's."""
        assert self.alias is not None

        def swap(value: Any) -> Any:
            assert self.alias is not None
            if isinstance(value, str):
                return value.replace(*self.alias)
            if isinstance(value, list):
                return [swap(item) for item in value]
            if isinstance(value, dict):
                return {key: swap(item) for key, item in value.items()}
            return value

        return replace(
            self,
            path=swap(self.path),
            params=swap(dict(self.params)),
            json=swap(self.json),
            data=swap(self.data),
            alias=None,
        )

    def text(self) -> str:
        """Everything the caller itself said, as text (what an answer may repeat)."""
        parts = [self.path, repr(dict(self.params)), repr(self.json), repr(self.data)]
        if self.content is not None:
            parts.append(self.content.decode("latin-1"))
        return " ".join(parts)


def image_layer() -> bytes:
    """A gzip-compressed tar layer: a unique file and one Python distribution."""
    metadata = f"Metadata-Version: 2.1\nName: {SCANNED_PACKAGE}\nVersion: {SCANNED_VERSION}\n"
    files = {
        "srv/unique.bin": uuid.uuid4().bytes * 64,
        f"usr/lib/python3/dist-packages/{SCANNED_PACKAGE}-{SCANNED_VERSION}.dist-info/METADATA": (
            metadata.encode()
        ),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class World:
    """The seeded server: credentials per identity, content, throwaway objects."""

    def __init__(self, server: TrustyardServer) -> None:
        self.server = server
        self.database_url = server.database_url or f"sqlite:///{server.data_dir / 'trustyard.db'}"
        self.engine = make_engine(self.database_url)
        self.service = AccountService()
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.admin = httpx.Client(
            base_url=server.url, timeout=60, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD)
        )
        self.authorization: dict[str, str | None] = {}  # identity key -> Authorization
        self.secrets: dict[str, str] = {}  # identity key -> password or token text
        self.content: dict[str, Content] = {}
        self.sensitive: set[str] = set()  # what no refusal may reveal
        self.shared_webhook = ""  # a subscription to APP's events (made by seed)
        self._bearers: dict[tuple[str, str], tuple[float, str]] = {}

    def close(self) -> None:
        self.http.close()
        self.admin.close()
        self.engine.dispose()

    # --- seeding -----------------------------------------------------------------------------
    def seed(self) -> World:
        people = ("password", "expired-token", "revoked-token")
        users = sorted({who.login for who in IDENTITIES if who.login and who.credential in people})
        with write_tx(self.engine) as conn:
            for name in users:
                if name != "admin":
                    self.service.create_user(conn, name, PASSWORD)
            self.service.create_user(conn, SPARE_USER, None)
            self.service.create_organization(conn, ORG, BY_KEY["org-owner"].login or "")
            self.service.create_organization(conn, OTHER_ORG, BY_KEY["outsider"].login or "")
            for team in TEAM_ROLES:
                self.service.create_team(conn, ORG, team)
            for who in IDENTITIES:
                if who.team and who.login:
                    self.service.add_member(conn, ORG, who.team, who.login)
            self.service.create_robot(conn, ORG, ROBOT)
            self.service.set_robot_grant(conn, ORG, ROBOT, f"{ORG}/*", "read-write")
        for repository in REPOSITORIES:
            self.content[repository] = self._push_image(repository)
        with write_tx(self.engine) as conn:
            conn.execute(
                update(repositories).where(repositories.c.name == PUB).values(visibility="public")
            )
            for team, role in TEAM_ROLES.items():
                self.service.set_team_repository_grant(conn, ORG, team, APP, role)
        self._seed_credentials()
        self._wait_for_scans()
        self.shared_webhook = self.new_webhook()
        self.sensitive |= {*users, SPARE_USER, *TEAM_ROLES, ROBOT, OTHER_ORG} - {"admin"}
        for item in self.content.values():
            self.sensitive |= {item.tag, item.digest, sha256(item.config), item.layer_digest}
            self.sensitive.add(item.referrer_digest)
        return self

    def _push_image(self, repository: str) -> Content:
        config = encode({"architecture": "amd64", "os": "linux", "label": unique()})
        layer = image_layer()
        push_blob(self.admin, repository, config)
        push_blob(self.admin, repository, layer)
        document = image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER, layer)])
        manifest = encode(document)
        tag = unique("keep")
        answer = put_manifest(self.admin, repository, tag, manifest)
        assert answer.status_code == 201, answer.text
        subject = {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest)}
        referrer, _, answer = push_artifact(self.admin, repository, subject, "text/plain")
        assert answer.status_code == 201, answer.text
        return Content(tag, manifest, sha256(manifest), config, layer, sha256(layer), referrer)

    def _wait_for_scans(self, deadline: float = 180.0) -> None:
        """The seeded images are scanned on push by the server's embedded worker."""
        store, content = ScanStore(), ContentStore()
        give_up = time.monotonic() + deadline
        for repository, item in self.content.items():
            while True:
                with read_tx(self.engine) as conn:
                    repository_id = content.repository_id(conn, repository)
                    assert repository_id is not None
                    scan = store.latest(conn, repository_id, item.digest)
                if scan is not None and scan.status == "succeeded":
                    break
                assert scan is None or scan.status != "failed", scan.error
                assert time.monotonic() < give_up, f"{repository} not scanned: {scan}"
                time.sleep(0.2)

    def _seed_credentials(self) -> None:
        # The first token makes the server create its signing key; the foreign JWT is signed
        # with that very key, so that only its audience is wrong.
        assert self.http.get("/auth/token", params={"service": "trustyard"}).status_code == 200
        passphrase = (self.server.data_dir / "signing.passphrase").read_text().strip()
        later = datetime.now(UTC) + timedelta(hours=1)
        with write_tx(self.engine) as conn:
            _, robot_token = self.service.create_token(
                conn, ROBOT_LOGIN, "narrow", list(ROBOT_TOKEN_SCOPES)
            )
            expired, expired_token = self.service.create_token(
                conn, BY_KEY["expired-token"].login or "", "expired", None, later
            )
            revoked, revoked_token = self.service.create_token(
                conn, BY_KEY["revoked-token"].login or "", "revoked"
            )
            self.service.revoke_token(conn, revoked.public_id)
            conn.execute(
                update(access_tokens)
                .where(access_tokens.c.public_id == expired.public_id)
                .values(expires_at=datetime.now(UTC) - timedelta(hours=1))
            )
            everything = ("pull", "push", "delete")
            foreign = (
                SigningKeys(passphrase)
                .current(conn)
                .issue(
                    BY_KEY["other-service"].login or "",
                    OTHER_SERVICE,
                    [
                        *(ScopeGrant("repository", name, everything) for name in REPOSITORIES),
                        ScopeGrant("registry", "catalog", ("*",)),
                    ],
                    timedelta(hours=1),
                )
            )
        self.sensitive |= {expired.public_id, revoked.public_id}
        for who in IDENTITIES:
            secret = {
                "none": None,
                "password": ADMIN_PASSWORD if who.admin else PASSWORD,
                "robot-token": robot_token,
                "expired-token": expired_token,
                "revoked-token": revoked_token,
                "foreign-jwt": foreign,
            }[who.credential]
            if secret is not None:
                self.secrets[who.key] = secret
            if who.credential == "foreign-jwt":
                self.authorization[who.key] = f"Bearer {foreign}"
            elif secret is None or who.login is None:
                self.authorization[who.key] = None
            else:
                self.authorization[who.key] = basic(who.login, secret)

    # --- requests ----------------------------------------------------------------------------
    def send(self, call: Call, authorization: str | None) -> httpx.Response:
        headers = dict(call.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        return self.http.request(
            call.method,
            call.path,
            params=dict(call.params) or None,
            headers=headers,
            json=call.json,
            content=call.content,
            data=call.data,
        )

    def forget_failed_logins(self) -> None:
        """The login back-off would turn the 5th refused token into 429 (it is tested on its
        own); the matrix judges every request alone."""
        with write_tx(self.engine) as conn:
            conn.execute(delete(login_failures))

    def bearer(self, who: Who, scopes: tuple[str, ...]) -> str:
        """A registry token from the token endpoint, as `who` logs in there."""
        key = (who.key, " ".join(scopes))
        cached = self._bearers.get(key)
        if cached is not None and time.monotonic() - cached[0] < 120:
            return cached[1]
        authorization = self.authorization[who.key]
        answer = self.http.get(
            "/auth/token",
            params={"service": "trustyard", "scope": list(scopes)},
            headers={"Authorization": authorization} if authorization else {},
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        self._bearers[key] = (time.monotonic(), token)
        return token

    # --- throwaway objects, for requests that change or delete what they name -------------------
    def new_user(self) -> str:
        """A user who never logs in (no password: nothing slow to hash)."""
        name = unique("u")
        with write_tx(self.engine) as conn:
            self.service.create_user(conn, name, None)
        return name

    def new_team(
        self,
        members: tuple[str, ...] = (),
        app_role: str | None = None,
        org_role: str | None = None,
    ) -> str:
        name = unique()
        with write_tx(self.engine) as conn:
            self.service.create_team(conn, ORG, name)
            for member in members:
                self.service.add_member(conn, ORG, name, member)
            if app_role is not None:
                self.service.set_team_repository_grant(conn, ORG, name, APP, app_role)
            if org_role is not None:
                self.service.set_team_organization_grant(conn, ORG, name, org_role)
        self.sensitive.add(name)
        return name

    def new_robot(self, grant: str | None = None) -> str:
        """A robot of acme; `grant`: a role it holds on APP."""
        name = unique("bot")
        with write_tx(self.engine) as conn:
            self.service.create_robot(conn, ORG, name)
            if grant is not None:
                self.service.set_robot_grant(conn, ORG, name, APP, grant)
        self.sensitive.add(name)
        return name

    def new_token(self, owner: str, scopes: tuple[str, ...] | None = None) -> str:
        """A fresh token of a user or robot (`org+robot`); returns its public id."""
        with write_tx(self.engine) as conn:
            token, _ = self.service.create_token(
                conn, owner, unique("token"), None if scopes is None else list(scopes)
            )
        self.sensitive.add(token.public_id)
        return token.public_id

    def add_owner(self, username: str) -> None:
        with write_tx(self.engine) as conn:
            self.service.add_owner(conn, ORG, username)

    def new_org_like_acme(self) -> str:
        """An organization whose owner, teams and robot mirror acme's (no repositories)."""
        name = unique("org")
        with write_tx(self.engine) as conn:
            self.service.create_organization(conn, name, BY_KEY["org-owner"].login or "")
            for team in TEAM_ROLES:
                self.service.create_team(conn, name, team)
            for who in IDENTITIES:
                if who.team and who.login:
                    self.service.add_member(conn, name, who.team, who.login)
            self.service.create_robot(conn, name, ROBOT)
        self.sensitive.add(name)
        return name

    def new_repository_like_app(self) -> str:
        """A private repository of acme that the teams hold the same roles on as on APP."""
        name = f"{ORG}/{unique('repo')}"
        push_blob(self.admin, name, uuid.uuid4().bytes)
        with write_tx(self.engine) as conn:
            for team, role in TEAM_ROLES.items():
                self.service.set_team_repository_grant(conn, ORG, team, name, role)
        self.sensitive.add(name)
        return name

    def new_blob(self, repository: str) -> str:
        digest = push_blob(self.admin, repository, uuid.uuid4().bytes * 4)
        self.sensitive.add(digest)
        return digest

    def new_manifest(self, repository: str) -> str:
        """Push a manifest (by digest) that only the caller's request will use."""
        body = self.manifest_body(repository)
        answer = put_manifest(self.admin, repository, sha256(body), body)
        assert answer.status_code == 201, answer.text
        self.sensitive.add(sha256(body))
        return sha256(body)

    def manifest_body(self, repository: str) -> bytes:
        """A new manifest over the repository's config and layer (both present)."""
        item = self.content[repository]
        document = image_manifest(
            descriptor(OCI_CONFIG, item.config),
            [descriptor(OCI_LAYER, item.layer)],
            annotations={"matrix.case": unique()},
        )
        return encode(document)

    def new_job(self, state: Literal["queued", "dead"]) -> int:
        """A job of a kind no worker handles, due in a year: it stays as it is made."""
        later = datetime.now(UTC) + timedelta(days=365)
        with write_tx(self.engine) as conn:
            job = SqlJobQueue(self.engine).enqueue(
                conn, "matrix.probe", {"case": unique()}, run_after=later
            )
            if state == "dead":
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job.id)
                    .values(state="dead", last_error="gave up", finished_at=datetime.now(UTC))
                )
        return job.id

    def webhooks(self) -> WebhookService:
        passphrase = (self.server.data_dir / "signing.passphrase").read_text().strip()
        policy = DestinationPolicy([WEBHOOK_NETWORKS])
        return WebhookService(SecretBox(passphrase), policy, SqlJobQueue(self.engine))

    def new_webhook(self, repository: str = APP) -> str:
        """A subscription to TAG_PUSH events of `repository`; returns its id."""
        with write_tx(self.engine) as conn:
            created = self.webhooks().create(
                conn,
                scope=Scope.REPOSITORY,
                target=repository,
                url=WEBHOOK_URL,
                event_types=[EventType.TAG_PUSH],
                actor="admin",
            )
        public_id = created.subscription.public_id
        self.sensitive.add(public_id)
        return public_id

    def new_delivery(self, webhook_id: str) -> int:
        """A (test) delivery of the subscription; returns its id."""
        service = self.webhooks()
        with write_tx(self.engine) as conn:
            subscription = service.get(conn, webhook_id)
            return service.test(conn, subscription, None, "admin").id

    def new_upload(self, repository: str) -> str:
        """An upload session opened by the administrator; returns its path."""
        answer = self.admin.post(f"/v2/{repository}/blobs/uploads/")
        assert answer.status_code == 202, answer.text
        return httpx.URL(answer.headers["location"]).path
