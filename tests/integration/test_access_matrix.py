"""The role x endpoint matrix of issue 3: every route of /v2, /api/v1 and /auth/token, called
by every kind of caller, with the exact outcome each one must get.

How to audit it:
- `IDENTITIES` (tests/support/access_world.py) says who calls and what each one holds.
- `MATRIX` below gives every route a rule ("pull", "org-owner", ...) and a concrete request
  whose success is real (a manifest PUT pushes a valid manifest, a DELETE removes a throwaway
  object made for that one request).
- `expect` is the one function that turns (rule, identity, target) into an outcome: allowed
  (the route's exact success status), 401, 403 or 404.
- The list of routes comes from the routers (`trustyard.registry.routes.ROUTES` and the FastAPI
  app), so a new route without an entry fails `test_every_route_has_a_matrix_entry`.

Every refusal is also checked for leaks: no digest, location or range headers, no tag, digest,
content, team, robot, member or token name the request did not itself contain, and, where the
caller may not know the object exists, the very answer a missing object gets.
"""

from __future__ import annotations

import enum
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr
from sqlalchemy import create_engine

from tests.integration.oci_helpers import OCI_MANIFEST, brief, error_codes, push_blob, sha256
from tests.support.access_world import (
    ADMIN_PASSWORD,
    APP,
    BY_KEY,
    GHOSTS,
    IDENTITIES,
    MISSING_TOKEN_ID,
    MISSING_WEBHOOK_ID,
    ORG,
    OTHER_ORG,
    OTHER_SERVICE,
    PASSWORD,
    PUB,
    REPOSITORIES,
    ROBOT,
    SCANNED_PACKAGE,
    SPARE_USER,
    WEBHOOK_NETWORKS,
    WEBHOOK_URL,
    Call,
    Role,
    Who,
    World,
    unique,
)
from tests.support.server import TrustyardServer
from trustyard.api.app import create_api
from trustyard.config import AuthSettings, Settings
from trustyard.registry.routes import ROUTES
from trustyard.vulnerabilities.vex import parse_document
from trustyard.wiring.accounts import make_accounts

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("access-matrix")]


# --- outcomes and the one function that decides them ---------------------------------------------
class Outcome(enum.Enum):
    ALLOWED = "allowed"
    UNAUTHORIZED = 401  # log in (again): no or unusable credentials, or a registry token
    DENIED = 403  # the caller may know the object, but not do this
    HIDDEN = 404  # the caller may not know the object exists: answered as if it did not


ALLOWED, UNAUTHORIZED, DENIED, HIDDEN = Outcome

ACTIONS = ("pull", "push", "delete")
NEEDS = {
    "pull": Role.READ_ONLY,
    "push": Role.READ_WRITE,
    "delete": Role.READ_WRITE,
    "admin": Role.ADMIN,
}
REGISTRY_RULES = {"login", "catalog", "pull", "push", "delete"}
TOKEN_RULES = {"token", "token-password"}
API_RULES = {
    "docs",  # the API's own documentation: for everybody, credentials or not
    "account",  # any account with a usable (full) credential
    "user",  # a user (not a robot)
    "admin",  # system administrators
    "self",  # the user named by the target, and system administrators
    "token-owner",  # only the owner of the token (others cannot tell it exists)
    "org-member",  # who may see the organization: its owners, team members, administrators
    "org-owner",  # its owners and administrators; other members 403, the rest 404
    "browse",  # anybody, anonymous and narrow tokens included: lists what they may pull
    "repo-read",  # the repository's readers (as on /v2); for anybody else it does not exist
    "repo-admin",  # the repository's admins: description, visibility, grants, deletion
    "repo-scan",  # start a scan: read-write on the repository (DTR's "start scans")
    "repo-promote",  # promote an image: pull on the source (the target), push where it goes
    "policy-write",  # create or change a promotion policy: push on the source and the target
    "repo-create",  # create a repository in the organization: owners and administrators
    "audit",  # administrators, and owners for their own organization
}


def may(who: Who, action: str, repository: str) -> bool:
    """Whether `who` may do `action` on `repository` (its role, narrowed by its token)."""
    if who.roles.get(repository, Role.NONE) < NEEDS[action]:
        return False
    return who.scope is None or (repository, action) in who.scope


def may_list_catalog(who: Who) -> bool:
    return who.scope is None  # the robot's narrow token leaves out registry:catalog:*


def expect(rule: str, who: Who, target: str, *, bearer: bool = False) -> Outcome:
    """The outcome of a request under `rule` on `target`, by `who` (with a registry token
    from the token endpoint when `bearer`)."""
    if rule == "docs":
        return ALLOWED
    if not who.valid:
        return UNAUTHORIZED
    if rule in REGISTRY_RULES:
        # Anonymous callers and registry tokens are told to (re)authenticate; a caller who
        # may pull the repository learns 403; anyone else cannot tell it from a missing one.
        refusal = UNAUTHORIZED if who.anonymous or bearer else None
        if rule == "login":
            return UNAUTHORIZED if who.anonymous and not bearer else ALLOWED
        if rule == "catalog":
            return ALLOWED if may_list_catalog(who) else refusal or DENIED
        if may(who, rule, target):
            return ALLOWED
        return refusal or (DENIED if may(who, "pull", target) else HIDDEN)
    if bearer and rule != "token-password":
        return UNAUTHORIZED  # registry tokens are for /v2 only: they buy no other token either
    if rule in TOKEN_RULES:
        # Anonymous callers get a token for public pulls; the password grant needs a login.
        return UNAUTHORIZED if who.anonymous and rule == "token-password" else ALLOWED
    assert rule in API_RULES, rule
    if rule == "browse":
        return ALLOWED
    if rule == "repo-read":
        return ALLOWED if may(who, "pull", target) else HIDDEN
    if who.anonymous:
        return UNAUTHORIZED
    if who.scope is not None:
        return DENIED  # a token narrowed to some repositories cannot manage anything
    if rule == "repo-admin":
        if may(who, "admin", target):
            return ALLOWED
        return DENIED if may(who, "pull", target) else HIDDEN
    if rule == "repo-scan":
        if may(who, "push", target):
            return ALLOWED
        return DENIED if may(who, "pull", target) else HIDDEN
    if rule == "policy-write":  # the source (target) first, then where the policy promotes
        if not may(who, "push", target):
            return DENIED if may(who, "pull", target) else HIDDEN
        into = policy_target(target)
        if may(who, "push", into):
            return ALLOWED
        return DENIED if may(who, "pull", into) else HIDDEN
    if rule == "repo-promote":
        into = promotion_target(target)
        if not (may(who, "pull", target) and may(who, "pull", into)):
            return HIDDEN
        return ALLOWED if may(who, "push", into) else DENIED
    decisions = {
        "account": ALLOWED,
        "user": ALLOWED if who.credential == "password" else DENIED,
        "admin": ALLOWED if who.admin else DENIED,
        "self": ALLOWED if who.admin or who.login == target else DENIED,
        "token-owner": ALLOWED if who.login == target else HIDDEN,
        "org-member": ALLOWED if who.admin or who.acme else HIDDEN,
    }
    if rule in decisions:
        return decisions[rule]
    owns_org = who.admin or who.acme == "owner"
    if rule in ("repo-create", "audit"):
        return ALLOWED if owns_org else DENIED  # the same 403 whether acme exists or not
    assert rule == "org-owner", rule
    return ALLOWED if owns_org else DENIED if who.acme else HIDDEN


def knows(rule: str, who: Who, target: str) -> bool:
    """Whether `who` may learn that the object a request under `rule` names exists. When not,
    every refusal must be the very answer a missing object gets."""
    if not who.valid:
        return False
    if rule in ("pull", "push", "delete", "repo-read", "repo-admin", "repo-scan", "policy-write"):
        return may(who, "pull", target)
    if rule == "repo-promote":
        return may(who, "pull", APP)  # the private one of the two: the name a call hides
    if rule in ("org-member", "org-owner", "repo-create", "audit"):
        return who.admin or who.acme != ""
    if rule == "token-owner":
        return who.login == target
    return True


# --- the matrix ----------------------------------------------------------------------------------
Builder = Callable[[World, Who, str], Call]
Check = Callable[[World, Who, str, httpx.Response], None]


@dataclass(frozen=True)
class Entry:
    rule: str
    ok: int  # the exact status of an allowed request
    build: Builder
    targets: tuple[str, ...] = ("",)  # what the rule is about (a repository, a user...)
    check: Check | None = None  # more to verify on an allowed answer


def repo_call(method: str, tail: str, **extra: Any) -> Builder:
    """A /v2 request on the target repository; `tail` may use {tag}, {digest}, {layer}."""

    def build(w: World, who: Who, target: str) -> Call:
        item = w.content[target]
        path = f"/v2/{target}/" + tail.format(
            tag=item.tag, digest=item.digest, layer=item.layer_digest
        )
        return Call(method, path, **extra).hiding(target, GHOSTS[target])

    return build


def v2(rule: str, ok: int, build: Builder, check: Check | None = None) -> Entry:
    return Entry(rule, ok, build, REPOSITORIES, check)


def put_manifest(w: World, who: Who, target: str) -> Call:
    body = w.manifest_body(target)
    path = f"/v2/{target}/manifests/{unique('tag')}"
    headers = {"Content-Type": OCI_MANIFEST}
    call = Call("PUT", path, headers=headers, content=body)
    return call.hiding(target, GHOSTS[target])


def on_upload(method: str, data: bytes | None = None, finish: bool = False) -> Builder:
    def build(w: World, who: Who, target: str) -> Call:
        path = w.new_upload(target)
        params = {"digest": sha256(data or b"")} if finish else {}
        headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
        call = Call(method, path, params=params, headers=headers, content=data)
        return call.hiding(target, GHOSTS[target])

    return build


def delete_new(kind: str) -> Builder:
    def build(w: World, who: Who, target: str) -> Call:
        reference = w.new_manifest(target) if kind == "manifests" else w.new_blob(target)
        call = Call("DELETE", f"/v2/{target}/{kind}/{reference}")
        return call.hiding(target, GHOSTS[target])

    return build


def lists_visible_repositories(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    listed = set(answer.json()["repositories"]) & set(REPOSITORIES)
    assert listed == {name for name in REPOSITORIES if may(who, "pull", name)}


def lists_the_tag(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    assert w.content[target].tag in answer.json()["tags"]


def serves_the_manifest(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    assert answer.headers["docker-content-digest"] == w.content[target].digest
    if answer.request.method == "GET":
        assert answer.content == w.content[target].manifest


def serves_the_layer(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    assert answer.headers["docker-content-digest"] == w.content[target].layer_digest
    if answer.request.method == "GET":
        assert answer.content == w.content[target].layer


def lists_the_referrer(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    digests = [item["digest"] for item in answer.json()["manifests"]]
    assert digests == [w.content[target].referrer_digest]


def stored_the_manifest(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    assert answer.request.content is not None
    assert answer.headers["docker-content-digest"] == sha256(answer.request.content)


def plain(method: str, path: str) -> Builder:
    return lambda w, who, target: Call(method, path)


REGISTRY: dict[str, Entry] = {
    "GET /v2 base": Entry("login", 200, plain("GET", "/v2/")),
    "HEAD /v2 base": Entry("login", 200, plain("HEAD", "/v2/")),
    "GET /v2 catalog": Entry(
        "catalog", 200, plain("GET", "/v2/_catalog"), check=lists_visible_repositories
    ),
    "GET /v2 tags": v2("pull", 200, repo_call("GET", "tags/list"), lists_the_tag),
    "HEAD /v2 tags": v2("pull", 200, repo_call("HEAD", "tags/list")),
    "GET /v2 manifest": v2(
        "pull",
        200,
        repo_call("GET", "manifests/{tag}", headers={"Accept": OCI_MANIFEST}),
        serves_the_manifest,
    ),
    "HEAD /v2 manifest": v2(
        "pull",
        200,
        repo_call("HEAD", "manifests/{tag}", headers={"Accept": OCI_MANIFEST}),
        serves_the_manifest,
    ),
    "PUT /v2 manifest": v2("push", 201, put_manifest, stored_the_manifest),
    "DELETE /v2 manifest": v2("delete", 202, delete_new("manifests")),
    "POST /v2 upload_start": v2("push", 202, repo_call("POST", "blobs/uploads/")),
    "GET /v2 upload": v2("push", 204, on_upload("GET")),
    "PATCH /v2 upload": v2("push", 202, on_upload("PATCH", b"a chunk of a layer")),
    "PUT /v2 upload": v2("push", 201, on_upload("PUT", b"a whole small layer", finish=True)),
    # Cancelling an upload takes the delete action, as in the reference registry.
    "DELETE /v2 upload": v2("delete", 204, on_upload("DELETE")),
    "GET /v2 blob": v2("pull", 200, repo_call("GET", "blobs/{layer}"), serves_the_layer),
    "HEAD /v2 blob": v2("pull", 200, repo_call("HEAD", "blobs/{layer}"), serves_the_layer),
    "DELETE /v2 blob": v2("delete", 202, delete_new("blobs")),
    "GET /v2 referrers": v2(
        "pull", 200, repo_call("GET", "referrers/{digest}"), lists_the_referrer
    ),
}


# /auth/token: the grants must be exactly what `may` says.
TOKEN_SCOPES = (
    *(f"repository:{name}:pull,push,delete" for name in REPOSITORIES),
    "registry:catalog:*",
)


def grants_exactly_what_may_allows(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "trustyard"
    granted = {
        (item["type"], item["name"]): set(item["actions"])
        for item in claims["access"]
        if item["actions"]
    }
    wanted = {
        ("repository", name): {a for a in ACTIONS if may(who, a, name)} for name in REPOSITORIES
    }
    wanted[("registry", "catalog")] = {"*"} if may_list_catalog(who) else set()
    assert granted == {key: actions for key, actions in wanted.items() if actions}


def token_get(w: World, who: Who, target: str) -> Call:
    return Call("GET", "/auth/token", params={"service": "trustyard", "scope": list(TOKEN_SCOPES)})


def token_password_grant(w: World, who: Who, target: str) -> Call:
    form = {"grant_type": "password", "service": "trustyard", "scope": " ".join(TOKEN_SCOPES)}
    if who.login and who.credential != "foreign-jwt":
        form |= {"username": who.login, "password": w.secrets[who.key]}
    return Call("POST", "/auth/token", data=form)


TOKEN_ENDPOINT: dict[str, Entry] = {
    "GET /auth/token": Entry("token", 200, token_get, check=grants_exactly_what_may_allows),
    "POST /auth/token": Entry(
        "token-password", 200, token_password_grant, check=grants_exactly_what_may_allows
    ),
}


# /api/v1
A = "/api/v1"
O = f"{A}/organizations/{ORG}"  # noqa: E741 - reads like the path it abbreviates
WRITER = BY_KEY["writer"].login or ""
ROLE = {"role": "read-only"}


def api(method: str, path: str, *, hide: str | None = None, **extra: Any) -> Builder:
    """A fixed request; `hide` names the object a caller may not know about."""

    def build(w: World, who: Who, target: str) -> Call:
        call = Call(method, path, **extra)
        return call.hiding(hide, GHOSTS[hide]) if hide else call

    return build


def in_org(
    method: str, tail: Callable[[World], str], body: Callable[[], Any] | None = None
) -> Builder:
    """A request below /organizations/acme on objects made for it (`tail` makes them);
    `body` makes its JSON body."""

    def build(w: World, who: Who, target: str) -> Call:
        json = body() if body is not None else None
        return Call(method, f"{O}/{tail(w)}", json=json).hiding(ORG, GHOSTS[ORG])

    return build


def revoke_writer_token(w: World, who: Who, target: str) -> Call:
    public_id = w.new_token(WRITER)
    return Call("DELETE", f"{A}/tokens/{public_id}").hiding(public_id, MISSING_TOKEN_ID)


def robot_token_path(w: World) -> str:
    robot = w.new_robot()
    return f"robots/{robot}/tokens/{w.new_token(f'{ORG}+{robot}')}"


def new_owner(w: World) -> str:
    user = w.new_user()
    w.add_owner(user)
    return f"owners/{user}"


def delete_repository(w: World, who: Who, target: str) -> Call:
    name = w.new_repository_like_app()
    return Call("DELETE", f"{A}/repositories/{name}").hiding(name, GHOSTS[APP])


def delete_organization(w: World, who: Who, target: str) -> Call:
    name = w.new_org_like_acme()
    return Call("DELETE", f"{A}/organizations/{name}").hiding(name, GHOSTS[ORG])


def names_the_caller(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    assert answer.json()["name"] == who.login


def lists_visible_organizations(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    listed = {org["name"] for org in answer.json()["items"]} & {ORG, OTHER_ORG}
    visible = {ORG: who.admin or who.acme != "", OTHER_ORG: who.admin or who.key == "outsider"}
    assert listed == {org for org, seen in visible.items() if seen}


def lists_own_tokens_only(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    assert {token["owner"] for token in answer.json()["items"]} <= {who.login}


def lists_readable_grants(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    """A team's grants show only repositories the caller may read (pullers hold one on APP)."""
    listed = {grant["repository"] for grant in answer.json()["items"]} & set(REPOSITORIES)
    assert listed == ({APP} if may(who, "pull", APP) else set())


def lists_the_tags(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    tags = {tag["name"]: tag for tag in answer.json()["items"]}
    item = w.content[target]
    assert tags[item.tag]["digest"] == item.digest
    assert tags[item.tag]["size"] > len(item.manifest)


def names_the_admins(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert body["repository"] == target
    roles = {team["name"]: team["role"] for team in body["teams"]}
    assert roles.get("keepers") == "admin"
    assert "admin" in {user["name"] for user in body["users"]}


def lists_readable_repositories(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    listed = {repo["name"] for repo in answer.json()["items"]} & set(REPOSITORIES)
    assert listed == {name for name in REPOSITORIES if may(who, "pull", name)}


def on_image(method: str, tail: str, **extra: Any) -> Builder:
    """A request about the target repository's image (by tag) under /api/v1."""

    def build(w: World, who: Who, target: str) -> Call:
        path = f"{A}/repositories/{target}/manifests/{w.content[target].tag}/{tail}"
        return Call(method, path, **extra).hiding(target, GHOSTS[target])

    return build


def on_layer(w: World, who: Who, target: str) -> Call:
    path = f"{A}/repositories/{target}/layers/{w.content[target].layer_digest}/bom"
    return Call("GET", path).hiding(target, GHOSTS[target])


def shows_the_scan(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert (body["repository"], body["digest"]) == (target, w.content[target].digest)
    assert body["status"] in ("queued", "running", "succeeded")


def serves_the_bom(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert (body["repository"], body["digest"]) == (target, w.content[target].digest)
    [image] = body["images"]
    assert [layer["digest"] for layer in image["layers"]] == [w.content[target].layer_digest]


def reports_the_vulnerabilities(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert (body["repository"], body["manifest_digest"]) == (target, w.content[target].digest)
    assert body["status"] in ("pending", "matched")


def serves_the_layer_bom(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert body["digest"] == w.content[target].layer_digest
    assert [c["name"] for c in body["components"]] == [SCANNED_PACKAGE]


def lists_readable_components(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    listed = {item["repository"] for item in answer.json()["items"]} & set(REPOSITORIES)
    assert listed == {name for name in REPOSITORIES if may(who, "pull", name)}


def lists_managed_webhooks(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    listed = {item["id"] for item in answer.json()["items"]}
    if may(who, "admin", APP):
        assert w.shared_webhook in listed
    else:
        assert listed == set()


def create_webhook(w: World, who: Who, target: str) -> Call:
    body = {"url": WEBHOOK_URL, "events": ["TAG_PUSH"], "repository": target}
    return Call("POST", f"{A}/webhooks", json=body).hiding(target, GHOSTS[target])


def on_webhook(method: str, tail: str = "", *, fresh: bool = False, **extra: Any) -> Builder:
    """A request on a subscription to APP's events (`fresh`: one made for this request)."""

    def build(w: World, who: Who, target: str) -> Call:
        webhook = w.new_webhook(target) if fresh else w.shared_webhook
        call = Call(method, f"{A}/webhooks/{webhook}{tail}", **extra)
        return call.hiding(webhook, MISSING_WEBHOOK_ID)

    return build


def redeliver_call(w: World, who: Who, target: str) -> Call:
    webhook = w.new_webhook(target)
    delivery = w.new_delivery(webhook)
    path = f"{A}/webhooks/{webhook}/deliveries/{delivery}/redeliver"
    return Call("POST", path).hiding(webhook, MISSING_WEBHOOK_ID)


def promotion_target(source: str) -> str:
    """Where a matrix promotion from `source` goes: the other repository of the two."""
    return PUB if source == APP else APP


def promote_call(w: World, who: Who, target: str) -> Call:
    """Promote the target repository's image into the other one under a new tag; the call
    hides APP, the private one, wherever it is named (the path or the body)."""
    body = {
        "reference": w.content[target].tag,
        "targetRepository": promotion_target(target),
        "targetTag": unique("promoted-"),
    }
    call = Call("POST", f"{A}/repositories/{target}/promotions", json=body)
    return call.hiding(APP, GHOSTS[APP])


def promoted_the_image(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert body["moved"] is True
    assert (body["source_repository"], body["digest"]) == (target, w.content[target].digest)
    assert body["target_repository"] == promotion_target(target)
    assert (body["trigger"], body["actor"]) == ("manual", who.login)


def names_only_readable_repositories(
    w: World, who: Who, target: str, answer: httpx.Response
) -> None:
    for item in answer.json()["items"]:
        for name in (item["source_repository"], item["target_repository"]):
            assert name is None or may(who, "pull", name), (who.key, item)


def tells_the_history(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    assert (body["repository"], body["digest"]) == (target, w.content[target].digest)
    assert "pushed" in {entry["kind"] for entry in body["entries"]}
    for entry in body["entries"]:
        for name in (entry["source_repository"], entry["target_repository"]):
            assert name is None or may(who, "pull", name), (who.key, entry)


# Promotion policies of the matrix: disabled (no cycle between the two repositories, nothing
# runs by itself) and with a rule no tag meets (a run on demand promotes nothing).
NEVER = [{"field": "tag", "operator": "eq", "values": ["never-a-tag-of-the-matrix"]}]
V0 = "/api/v0/repositories"
_SHARED_POLICIES: dict[tuple[str, str, bool], int] = {}


def policy_target(source: str) -> str:
    """Where a matrix policy of `source` promotes: the other repository of the two."""
    return PUB if source == APP else APP


def policy_body(source: str, enabled: bool = False) -> dict[str, Any]:
    return {"targetRepository": policy_target(source), "rules": NEVER, "enabled": enabled}


def new_policy(w: World, source: str, enabled: bool = False) -> int:
    """A policy of `source` made by the administrator; returns its id."""
    body = policy_body(source, enabled)
    made = w.admin.post(f"{A}/repositories/{source}/promotion-policies", json=body)
    assert made.status_code == 201, brief(made)
    return int(made.json()["id"])


def shared_policy(w: World, source: str, enabled: bool = False) -> int:
    """One policy of `source` for the requests that leave it in place (the enabled one only
    of APP: one each way would close a cycle)."""
    key = (w.database_url, source, enabled)
    if key not in _SHARED_POLICIES:
        _SHARED_POLICIES[key] = new_policy(w, source, enabled)
    return _SHARED_POLICIES[key]


def on_policies(
    method: str,
    tail: str = "",
    *,
    dtr: bool = False,
    fresh: bool = False,
    enabled: bool = False,
    **extra: Any,
) -> Builder:
    """A request on the target repository's promotion policies (`tail` may use {id}: a
    shared policy, or one made for this request when `fresh`), by /api/v1 or DTR's /api/v0."""

    def build(w: World, who: Who, target: str) -> Call:
        if dtr:
            base = f"{V0}/{target}/promotionPolicies"
        else:
            base = f"{A}/repositories/{target}/promotion-policies"
        rest = tail
        if "{id}" in tail:
            made = new_policy(w, target) if fresh else shared_policy(w, target, enabled)
            rest = tail.format(id=made)
        return Call(method, base + rest, **extra).hiding(target, GHOSTS[target])

    return build


def create_policy_call(dtr: bool) -> Builder:
    def build(w: World, who: Who, target: str) -> Call:
        body = policy_body(target)
        if dtr:
            body["tagTemplate"] = "%n"
        return on_policies("POST", dtr=dtr, json=body)(w, who, target)

    return build


def dry_run_call(w: World, who: Who, target: str) -> Call:
    path = f"{A}/repositories/{target}/policy-dry-run"
    return Call("POST", path, json={"rules": NEVER}).hiding(target, GHOSTS[target])


def judged_the_tag(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    outcomes = {item["tag"]: item for item in answer.json()["items"]}
    item = outcomes[w.content[target].tag]
    assert (item["digest"], item["outcome"]) == (w.content[target].digest, "failed")


def promotes_into_the_other(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    body = answer.json()
    body = body.get("policy", body)
    assert (body["sourceRepository"], body["targetRepository"]) == (target, policy_target(target))


EDIT = {"tagTemplate": "edited-%n"}
POLICY = f"{A}/repositories/{{name}}/promotion-policies"
DTR_POLICY = "/api/v0/repositories/{namespace}/{reponame}/promotionPolicies"


MISSING_VEX_ID = "2147483000"  # a well-formed id no VEX document has


def new_override(w: World, target: str) -> int:
    """An override of `target` made by the administrator; returns its id."""
    body = {"vulnerability": unique("CVE-"), "reason": "made for one matrix request"}
    made = w.admin.post(f"{A}/repositories/{target}/vulnerability-overrides", json=body)
    assert made.status_code == 201, brief(made)
    return int(made.json()["id"])


def vex_document() -> dict[str, Any]:
    statement = {
        "vulnerability": {"name": unique("CVE-")},
        "status": "not_affected",
        "justification": "component_not_present",
    }
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": f"urn:matrix:{unique()}",
        "author": "matrix",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [statement],
    }


def new_vex(w: World, target: str) -> str:
    """A VEX document imported for `target` by the administrator; returns its id (never
    one that is part of the route's own path, which the twin request could not swap)."""
    while True:
        made = w.admin.post(f"{A}/vex", params={"repository": target}, json=vex_document())
        assert made.status_code == 201, brief(made)
        vex_id = str(made.json()["id"])
        if vex_id not in f"{A}/vex/":
            return vex_id


def create_override(w: World, who: Who, target: str) -> Call:
    body = {"vulnerability": unique("CVE-"), "reason": "not reachable"}
    path = f"{A}/repositories/{target}/vulnerability-overrides"
    return Call("POST", path, json=body).hiding(target, GHOSTS[target])


def delete_override(w: World, who: Who, target: str) -> Call:
    path = f"{A}/repositories/{target}/vulnerability-overrides/{new_override(w, target)}"
    return Call("DELETE", path).hiding(target, GHOSTS[target])


def import_vex(w: World, who: Who, target: str) -> Call:
    call = Call("POST", f"{A}/vex", params={"repository": target}, json=vex_document())
    return call.hiding(target, GHOSTS[target])


def on_vex(method: str) -> Builder:
    """A request on a VEX document of the target repository, made for this request."""

    def build(w: World, who: Who, target: str) -> Call:
        vex_id = new_vex(w, target)
        return Call(method, f"{A}/vex/{vex_id}").hiding(vex_id, MISSING_VEX_ID)

    return build


def lists_readable_vex(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    listed = {item["repository"] for item in answer.json()["items"]}
    assert listed <= {name for name in REPOSITORIES if may(who, "pull", name)}


def exports_vex(w: World, who: Who, target: str, answer: httpx.Response) -> None:
    document = parse_document(answer.content)
    image = f"/api/v1/repositories/{target}/manifests/{w.content[target].digest}/vex#"
    assert image in document.id


def one_record_bundle() -> bytes:
    record = {
        "id": "MATRIX-0001",
        "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "matrix-demo"}, "versions": ["1"]}],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("MATRIX-0001.json", json.dumps(record))
    return buffer.getvalue()


def upload_bundle(w: World, who: Who, target: str) -> Call:
    return Call(
        "POST", f"{A}/vulndb/imports", params={"source": "matrix"}, content=one_record_bundle()
    )


def docs(path: str, example: str | None = None) -> dict[str, Entry]:
    """GET and HEAD of `path` (a route; `example` fills in its parameters)."""
    return {f"{m} {path}": Entry("docs", 200, plain(m, example or path)) for m in ("GET", "HEAD")}


MANAGEMENT: dict[str, Entry] = {
    **docs(f"{A}/openapi.json"),
    **docs(f"{A}/docs"),
    **docs(f"{A}/docs/oauth2-redirect"),
    **docs(f"{A}/docs/static/{{name}}", f"{A}/docs/static/swagger-ui.css"),
    f"GET {A}/me": Entry("account", 200, api("GET", f"{A}/me"), check=names_the_caller),
    # users
    f"GET {A}/users": Entry("admin", 200, api("GET", f"{A}/users")),
    f"POST {A}/users": Entry(
        "admin",
        201,
        lambda w, who, t: Call(
            "POST", f"{A}/users", json={"username": unique("u"), "password": PASSWORD}
        ),
    ),
    f"GET {A}/users/{{name}}": Entry("self", 200, api("GET", f"{A}/users/{WRITER}"), (WRITER,)),
    f"PATCH {A}/users/{{name}}": Entry(
        "self", 200, api("PATCH", f"{A}/users/{WRITER}", json={"full_name": "W. W."}), (WRITER,)
    ),
    f"DELETE {A}/users/{{name}}": Entry(
        "admin", 204, lambda w, who, t: Call("DELETE", f"{A}/users/{w.new_user()}")
    ),
    # organizations
    f"GET {A}/organizations": Entry(
        "account", 200, api("GET", f"{A}/organizations"), check=lists_visible_organizations
    ),
    f"POST {A}/organizations": Entry(
        "user",
        201,
        lambda w, who, t: Call("POST", f"{A}/organizations", json={"name": unique("org")}),
    ),
    f"GET {A}/organizations/{{org}}": Entry("org-member", 200, api("GET", O, hide=ORG)),
    f"DELETE {A}/organizations/{{org}}": Entry("admin", 204, delete_organization),
    f"GET {A}/organizations/{{org}}/owners": Entry(
        "org-member", 200, api("GET", f"{O}/owners", hide=ORG)
    ),
    f"PUT {A}/organizations/{{org}}/owners/{{user}}": Entry(
        "org-owner", 204, in_org("PUT", lambda w: f"owners/{w.new_user()}")
    ),
    f"DELETE {A}/organizations/{{org}}/owners/{{user}}": Entry(
        "org-owner", 204, in_org("DELETE", new_owner)
    ),
    # teams, members, grants
    f"GET {A}/organizations/{{org}}/teams": Entry(
        "org-member", 200, api("GET", f"{O}/teams", hide=ORG)
    ),
    f"POST {A}/organizations/{{org}}/teams": Entry(
        "org-owner", 201, in_org("POST", lambda w: "teams", lambda: {"name": unique()})
    ),
    f"PATCH {A}/organizations/{{org}}/teams/{{team}}": Entry(
        "org-owner",
        200,
        in_org("PATCH", lambda w: f"teams/{w.new_team()}", lambda: {"description": "renamed"}),
    ),
    f"DELETE {A}/organizations/{{org}}/teams/{{team}}": Entry(
        "org-owner", 204, in_org("DELETE", lambda w: f"teams/{w.new_team()}")
    ),
    f"GET {A}/organizations/{{org}}/teams/{{team}}": Entry(
        "org-member", 200, api("GET", f"{O}/teams/pullers", hide=ORG)
    ),
    f"GET {A}/organizations/{{org}}/teams/{{team}}/repositories": Entry(
        "org-member",
        200,
        api("GET", f"{O}/teams/pullers/repositories", hide=ORG),
        check=lists_readable_grants,
    ),
    f"GET {A}/organizations/{{org}}/teams/{{team}}/members": Entry(
        "org-member", 200, api("GET", f"{O}/teams/pullers/members", hide=ORG)
    ),
    f"PUT {A}/organizations/{{org}}/teams/{{team}}/members/{{user}}": Entry(
        "org-owner", 204, in_org("PUT", lambda w: f"teams/{w.new_team()}/members/{SPARE_USER}")
    ),
    f"DELETE {A}/organizations/{{org}}/teams/{{team}}/members/{{user}}": Entry(
        "org-owner",
        204,
        in_org("DELETE", lambda w: f"teams/{w.new_team((SPARE_USER,))}/members/{SPARE_USER}"),
    ),
    # Issue 3: a repository's admins manage its grants.
    f"PUT {A}/organizations/{{org}}/teams/{{team}}/repositories/{{repository}}": Entry(
        "repo-admin",
        204,
        in_org("PUT", lambda w: f"teams/{w.new_team()}/repositories/{APP}", lambda: ROLE),
        (APP,),
    ),
    f"DELETE {A}/organizations/{{org}}/teams/{{team}}/repositories/{{repository}}": Entry(
        "repo-admin",
        204,
        in_org("DELETE", lambda w: f"teams/{w.new_team(app_role='read-only')}/repositories/{APP}"),
        (APP,),
    ),
    f"PUT {A}/organizations/{{org}}/teams/{{team}}/organization-grant": Entry(
        "org-owner",
        204,
        in_org("PUT", lambda w: f"teams/{w.new_team()}/organization-grant", lambda: ROLE),
    ),
    f"DELETE {A}/organizations/{{org}}/teams/{{team}}/organization-grant": Entry(
        "org-owner",
        204,
        in_org("DELETE", lambda w: f"teams/{w.new_team(org_role='read-only')}/organization-grant"),
    ),
    # robots and their tokens
    f"GET {A}/organizations/{{org}}/robots": Entry(
        "org-owner", 200, api("GET", f"{O}/robots", hide=ORG)
    ),
    f"POST {A}/organizations/{{org}}/robots": Entry(
        "org-owner", 201, in_org("POST", lambda w: "robots", lambda: {"name": unique("bot")})
    ),
    f"DELETE {A}/organizations/{{org}}/robots/{{robot}}": Entry(
        "org-owner", 204, in_org("DELETE", lambda w: f"robots/{w.new_robot()}")
    ),
    f"PUT {A}/organizations/{{org}}/robots/{{robot}}/repositories/{{pattern}}": Entry(
        "org-owner",
        204,
        in_org("PUT", lambda w: f"robots/{w.new_robot()}/repositories/{APP}", lambda: ROLE),
    ),
    f"DELETE {A}/organizations/{{org}}/robots/{{robot}}/repositories/{{pattern}}": Entry(
        "org-owner",
        204,
        in_org("DELETE", lambda w: f"robots/{w.new_robot('read-only')}/repositories/{APP}"),
    ),
    f"GET {A}/organizations/{{org}}/robots/{{robot}}/tokens": Entry(
        "org-owner", 200, api("GET", f"{O}/robots/{ROBOT}/tokens", hide=ORG)
    ),
    f"POST {A}/organizations/{{org}}/robots/{{robot}}/tokens": Entry(
        "org-owner",
        201,
        in_org(
            "POST",
            lambda w: f"robots/{w.new_robot()}/tokens",
            lambda: {"name": "ci", "scopes": [f"repository:{APP}:pull"]},
        ),
    ),
    f"DELETE {A}/organizations/{{org}}/robots/{{robot}}/tokens/{{public_id}}": Entry(
        "org-owner", 200, in_org("DELETE", robot_token_path)
    ),
    # personal access tokens
    f"GET {A}/tokens": Entry("user", 200, api("GET", f"{A}/tokens"), check=lists_own_tokens_only),
    f"POST {A}/tokens": Entry(
        "user", 201, lambda w, who, t: Call("POST", f"{A}/tokens", json={"name": unique()})
    ),
    f"DELETE {A}/tokens/{{public_id}}": Entry(
        "token-owner",
        200,
        revoke_writer_token,
        (WRITER,),
    ),
    # repositories
    f"GET {A}/repositories": Entry(
        "browse", 200, api("GET", f"{A}/repositories"), check=lists_readable_repositories
    ),
    f"POST {A}/repositories": Entry(
        "repo-create",
        201,
        lambda w, who, t: Call(
            "POST", f"{A}/repositories", json={"name": f"{ORG}/{unique('new')}"}
        ).hiding(ORG, GHOSTS[ORG]),
    ),
    f"GET {A}/repositories/{{name}}": Entry(
        "repo-read", 200, api("GET", f"{A}/repositories/{APP}", hide=APP), (APP,)
    ),
    f"GET {A}/repositories/{{name}}/tags": Entry(
        "repo-read",
        200,
        lambda w, who, t: Call("GET", f"{A}/repositories/{t}/tags").hiding(t, GHOSTS[t]),
        REPOSITORIES,
        lists_the_tags,
    ),
    f"GET {A}/repositories/{{name}}/access": Entry(
        "repo-admin",
        200,
        api("GET", f"{A}/repositories/{APP}/access", hide=APP),
        (APP,),
        names_the_admins,
    ),
    f"PATCH {A}/repositories/{{name}}": Entry(
        "repo-admin",
        200,
        api("PATCH", f"{A}/repositories/{APP}", hide=APP, json={"description": "edited"}),
        (APP,),
    ),
    f"DELETE {A}/repositories/{{name}}": Entry("repo-admin", 204, delete_repository, (APP,)),
    # scanning
    f"POST {A}/repositories/{{name}}/manifests/{{reference}}/scan": Entry(
        "repo-scan", 202, on_image("POST", "scan"), REPOSITORIES, shows_the_scan
    ),
    f"GET {A}/repositories/{{name}}/manifests/{{reference}}/scan": Entry(
        "repo-read", 200, on_image("GET", "scan"), REPOSITORIES, shows_the_scan
    ),
    f"GET {A}/repositories/{{name}}/manifests/{{reference}}/bom": Entry(
        "repo-read", 200, on_image("GET", "bom"), REPOSITORIES, serves_the_bom
    ),
    f"GET {A}/repositories/{{name}}/layers/{{digest}}/bom": Entry(
        "repo-read", 200, on_layer, REPOSITORIES, serves_the_layer_bom
    ),
    f"GET {A}/repositories/{{name}}/manifests/{{reference}}/vulnerabilities": Entry(
        "repo-read",
        200,
        on_image("GET", "vulnerabilities"),
        REPOSITORIES,
        reports_the_vulnerabilities,
    ),
    f"GET {A}/components": Entry(
        "browse",
        200,
        api("GET", f"{A}/components", params={"name": SCANNED_PACKAGE}),
        check=lists_readable_components,
    ),
    # background jobs
    f"GET {A}/jobs": Entry("admin", 200, api("GET", f"{A}/jobs")),
    f"GET {A}/jobs/{{job_id}}": Entry(
        "admin", 200, lambda w, who, t: Call("GET", f"{A}/jobs/{w.new_job('queued')}")
    ),
    f"POST {A}/jobs/{{job_id}}/retry": Entry(
        "admin", 200, lambda w, who, t: Call("POST", f"{A}/jobs/{w.new_job('dead')}/retry")
    ),
    f"POST {A}/jobs/{{job_id}}/cancel": Entry(
        "admin", 200, lambda w, who, t: Call("POST", f"{A}/jobs/{w.new_job('queued')}/cancel")
    ),
    # webhooks: a subscription to APP's events belongs to APP's administrators
    f"GET {A}/webhooks": Entry(
        "account", 200, api("GET", f"{A}/webhooks"), check=lists_managed_webhooks
    ),
    f"POST {A}/webhooks": Entry("repo-admin", 201, create_webhook, (APP,)),
    f"GET {A}/webhooks/{{webhook_id}}": Entry("repo-admin", 200, on_webhook("GET"), (APP,)),
    f"PATCH {A}/webhooks/{{webhook_id}}": Entry(
        "repo-admin", 200, on_webhook("PATCH", json={"description": "edited"}), (APP,)
    ),
    f"DELETE {A}/webhooks/{{webhook_id}}": Entry(
        "repo-admin", 204, on_webhook("DELETE", fresh=True), (APP,)
    ),
    f"POST {A}/webhooks/{{webhook_id}}/test": Entry(
        "repo-admin", 202, on_webhook("POST", "/test"), (APP,)
    ),
    f"GET {A}/webhooks/{{webhook_id}}/deliveries": Entry(
        "repo-admin", 200, on_webhook("GET", "/deliveries"), (APP,)
    ),
    f"POST {A}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver": Entry(
        "repo-admin", 202, redeliver_call, (APP,)
    ),
    # triage: DTR's overrides and OpenVEX documents; changing them needs read-write on the
    # repository, as starting a scan does (the "repo-scan" rule)
    f"GET {A}/repositories/{{name}}/vulnerability-overrides": Entry(
        "repo-read",
        200,
        lambda w, who, t: Call("GET", f"{A}/repositories/{t}/vulnerability-overrides").hiding(
            t, GHOSTS[t]
        ),
        REPOSITORIES,
    ),
    f"POST {A}/repositories/{{name}}/vulnerability-overrides": Entry(
        "repo-scan", 201, create_override, REPOSITORIES
    ),
    f"DELETE {A}/repositories/{{name}}/vulnerability-overrides/{{override_id}}": Entry(
        "repo-scan", 204, delete_override, REPOSITORIES
    ),
    f"POST {A}/vex": Entry("repo-scan", 201, import_vex, REPOSITORIES),
    f"GET {A}/vex": Entry("browse", 200, api("GET", f"{A}/vex"), check=lists_readable_vex),
    f"GET {A}/vex/{{vex_id}}": Entry("repo-read", 200, on_vex("GET"), REPOSITORIES),
    f"DELETE {A}/vex/{{vex_id}}": Entry("repo-scan", 204, on_vex("DELETE"), REPOSITORIES),
    f"GET {A}/repositories/{{name}}/manifests/{{reference}}/vex": Entry(
        "repo-read", 200, on_image("GET", "vex"), REPOSITORIES, exports_vex
    ),
    # promotion: pull on the source and push on the target; reading as the repository
    f"POST {A}/repositories/{{name}}/promotions": Entry(
        "repo-promote", 201, promote_call, REPOSITORIES, promoted_the_image
    ),
    f"GET {A}/repositories/{{name}}/promotions": Entry(
        "repo-read",
        200,
        lambda w, who, t: Call("GET", f"{A}/repositories/{t}/promotions").hiding(t, GHOSTS[t]),
        REPOSITORIES,
        names_only_readable_repositories,
    ),
    f"GET {A}/repositories/{{name}}/manifests/{{reference}}/history": Entry(
        "repo-read", 200, on_image("GET", "history"), REPOSITORIES, tells_the_history
    ),
    # promotion policies: managing a repository's needs read-write on it; creating or
    # changing one needs read-write on where it promotes as well
    f"GET {POLICY}": Entry("repo-scan", 200, on_policies("GET"), REPOSITORIES),
    f"POST {POLICY}": Entry(
        "policy-write", 201, create_policy_call(False), REPOSITORIES, promotes_into_the_other
    ),
    f"GET {POLICY}/{{policy_id}}": Entry(
        "repo-scan", 200, on_policies("GET", "/{id}"), REPOSITORIES, promotes_into_the_other
    ),
    f"PATCH {POLICY}/{{policy_id}}": Entry(
        "policy-write", 200, on_policies("PATCH", "/{id}", json=EDIT), REPOSITORIES
    ),
    f"DELETE {POLICY}/{{policy_id}}": Entry(
        "repo-scan", 204, on_policies("DELETE", "/{id}", fresh=True), REPOSITORIES
    ),
    f"POST {POLICY}/{{policy_id}}/run": Entry(  # an enabled policy: APP's only
        "repo-scan",
        202,
        on_policies("POST", "/{id}/run", enabled=True),
        (APP,),
        promotes_into_the_other,
    ),
    f"POST {A}/repositories/{{name}}/policy-dry-run": Entry(
        "repo-scan", 200, dry_run_call, REPOSITORIES, judged_the_tag
    ),
    f"GET {DTR_POLICY}": Entry("repo-scan", 200, on_policies("GET", dtr=True), REPOSITORIES),
    f"POST {DTR_POLICY}": Entry(
        "policy-write", 201, create_policy_call(True), REPOSITORIES, promotes_into_the_other
    ),
    f"GET {DTR_POLICY}/{{promotionPolicyID}}": Entry(
        "repo-scan",
        200,
        on_policies("GET", "/{id}", dtr=True),
        REPOSITORIES,
        promotes_into_the_other,
    ),
    f"PUT {DTR_POLICY}/{{promotionPolicyID}}": Entry(
        "policy-write", 200, on_policies("PUT", "/{id}", dtr=True, json=EDIT), REPOSITORIES
    ),
    f"POST {DTR_POLICY}/{{promotionPolicyID}}": Entry(
        "policy-write", 200, on_policies("POST", "/{id}", dtr=True, json=EDIT), REPOSITORIES
    ),
    f"DELETE {DTR_POLICY}/{{promotionPolicyID}}": Entry(
        "repo-scan", 204, on_policies("DELETE", "/{id}", dtr=True, fresh=True), REPOSITORIES
    ),
    # audit
    f"GET {A}/audit": Entry(
        "audit", 200, api("GET", f"{A}/audit", hide=ORG, params={"organization": ORG})
    ),
    # the vulnerability database: its state for any account; uploads and updates for admins
    f"GET {A}/vulndb": Entry("account", 200, api("GET", f"{A}/vulndb")),
    f"POST {A}/vulndb/imports": Entry("admin", 200, upload_bundle),
    f"POST {A}/vulndb/updates": Entry("admin", 202, api("POST", f"{A}/vulndb/updates")),
}

MATRIX: dict[str, Entry] = {**REGISTRY, **TOKEN_ENDPOINT, **MANAGEMENT}

# Where the code and issue 3 disagree today: (route, identity) -> what is wrong. These cases
# are strict xfails, so fixing the code makes them fail until they are removed from here.
TEAM_GRANT = f"{A}/organizations/{{org}}/teams/{{team}}/repositories/{{repository}}"
KNOWN_GAPS: dict[tuple[str, str], str] = {}


# --- the routes, from the routers ----------------------------------------------------------------
def registry_routes() -> set[str]:
    return {f"{method} /v2 {route.name}" for route in ROUTES for method in route.handlers}


def management_app() -> FastAPI:
    """/api/v1 as the composition root builds it (listing its routes touches no database)."""
    auth = AuthSettings(enabled=True, signing_passphrase=SecretStr("only to list routes"))
    settings = Settings(auth=auth)
    accounts = make_accounts(settings, create_engine("sqlite://"))
    assert accounts is not None
    return create_api(accounts)


def management_routes(*, schema_only: bool = False) -> set[str]:
    """METHOD PATH of every route the app serves below /api/v1 and /api/v0 (DTR's routes;
    the app is mounted there only); `schema_only`: just those its OpenAPI document describes."""
    found = set()
    for route in iter_route_contexts(management_app().routes):
        path = route.path_format or ""
        if not path.startswith((f"{A}/", "/api/v0/")):
            continue  # nothing routes it to the app
        if schema_only:
            original = route.original_route
            if not (isinstance(original, APIRoute) and original.include_in_schema):
                continue
        found |= {f"{method} {path}" for method in route.methods or ()}
    return found


# The token endpoint is dispatched by trustyard.app.TrustyardApp itself, not by a router;
# `test_the_token_endpoint_answers_only_get_and_post` keeps this list honest.
TOKEN_ROUTES = {"GET /auth/token", "POST /auth/token"}
SERVED = registry_routes() | management_routes() | TOKEN_ROUTES


@pytest.mark.parametrize("key", sorted(SERVED | set(MATRIX)))
def test_every_route_has_a_matrix_entry(key: str) -> None:
    if key not in MATRIX:
        pytest.fail(f"new route {key} has no matrix entry: add one to MATRIX")
    if key not in SERVED:
        pytest.fail(f"the matrix entry {key} names a route that no longer exists")


# --- the world -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> Iterator[World]:
    server = start_server(
        "matrix",
        TRUSTYARD_SCANNING__ENABLED="true",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_WEBHOOKS__ALLOWED_NETWORKS=WEBHOOK_NETWORKS,
    )
    seeded = World(server).seed()
    try:
        yield seeded
    finally:
        seeded.close()


def test_the_served_api_is_the_one_enumerated(world: World) -> None:
    document = world.http.get(f"{A}/openapi.json").json()
    served = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    assert served == management_routes(schema_only=True)


def test_the_token_endpoint_answers_only_get_and_post(world: World) -> None:
    for method in ("PUT", "PATCH", "DELETE", "HEAD"):
        answer = world.http.request(method, "/auth/token")
        assert answer.status_code == 405, (method, brief(answer))


def test_the_token_endpoint_mints_tokens_for_this_registry_only(world: World) -> None:
    """The other half of the foreign-token identity: nobody gets a token for another service
    here, not even the owner asking for a repository she owns."""
    owner = BY_KEY["org-owner"]
    scope = f"repository:{APP}:pull,push"
    asked = world.http.get(
        "/auth/token",
        params={"service": OTHER_SERVICE, "scope": scope},
        headers={"Authorization": world.authorization[owner.key] or ""},
    )
    form = {
        "grant_type": "password",
        "service": OTHER_SERVICE,
        "scope": scope,
        "username": owner.login or "",
        "password": world.secrets[owner.key],
    }
    granted = world.http.post("/auth/token", data=form)
    for answer in (asked, granted):
        assert answer.status_code == 400, brief(answer)
        assert answer.json()["error"] == "invalid_request"
        assert "token" not in answer.json()
        assert "access_token" not in answer.json()


# --- running one case ----------------------------------------------------------------------------
REVEALING_HEADERS = (
    "docker-content-digest",
    "location",
    "link",
    "etag",
    "range",
    "docker-upload-uuid",
    "oci-subject",
)


def bearer_scopes(entry: Entry, target: str) -> tuple[str, ...]:
    if entry.rule == "catalog":
        return ("registry:catalog:*", *(f"repository:{name}:pull" for name in REPOSITORIES))
    if entry.rule not in REGISTRY_RULES:
        return TOKEN_SCOPES  # all the token can hold: still nothing outside /v2
    return (f"repository:{target}:pull,push,delete",) if target else ()


def snapshot(answer: httpx.Response, alias: tuple[str, str] | None = None) -> tuple[Any, ...]:
    """Status, headers (without date and length) and body; with `alias`, the missing name
    written back as the real one."""

    def same(text: str) -> str:
        return text.replace(alias[1], alias[0]) if alias else text

    headers = sorted(
        (name, same(value))
        for name, value in answer.headers.items()
        if name not in ("date", "content-length", "connection")
    )
    return answer.status_code, headers, same(answer.content.decode("latin-1"))


def check_refusal(w: World, who: Who, call: Call, answer: httpx.Response, bearer: bool) -> None:
    status = answer.status_code
    if call.path.startswith("/v2"):
        if status == 401:
            challenge = answer.headers["www-authenticate"]
            assert challenge.startswith('Bearer realm="'), challenge
            assert ('error="insufficient_scope"' in challenge) == bearer, challenge
        if call.method != "HEAD":
            codes = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN"}
            assert error_codes(answer) == [codes[status]]
    elif call.path.startswith((A, "/api/v0/")):
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == status
        if status == 401:
            assert answer.headers["www-authenticate"] == 'Basic realm="trustyard"'
    else:
        body = answer.json()
        assert body["error"] in ("invalid_client", "invalid_grant"), body
        assert "token" not in body
        assert "access_token" not in body
    for name in REVEALING_HEADERS:
        assert name not in answer.headers, f"a refusal carries {name}: {answer.headers[name]}"
    said = call.text()
    text = answer.content.decode("latin-1")
    for secret in w.sensitive:
        if secret not in said and secret != who.login:
            assert secret not in text, f"a refusal reveals {secret!r}: {text[:300]}"
    for item in w.content.values():
        assert item.layer not in answer.content
        assert item.manifest not in answer.content


def run(w: World, key: str, who: Who, target: str, *, bearer: bool) -> None:
    entry = MATRIX[key]
    call = entry.build(w, who, target)
    if bearer:
        authorization: str | None = f"Bearer {w.bearer(who, bearer_scopes(entry, target))}"
    else:
        authorization = w.authorization[who.key]
    if not who.valid or who.anonymous:
        w.forget_failed_logins()
    outcome = expect(entry.rule, who, target, bearer=bearer)
    answer = w.send(call, authorization)
    where = f"{call.method} {call.path} as {who.key}{' with a registry token' if bearer else ''}"
    if outcome is ALLOWED:
        assert answer.status_code == entry.ok, f"{where}: wanted {entry.ok}, got {brief(answer)}"
        if entry.check is not None:
            entry.check(w, who, target, answer)
        return
    assert answer.status_code == outcome.value, f"{where}: wanted {outcome}, got {brief(answer)}"
    check_refusal(w, who, call, answer, bearer)
    if call.alias is not None and not knows(entry.rule, who, target):
        # Whoever may not know the object exists gets the answer a missing one gets.
        if not who.valid or who.anonymous:
            w.forget_failed_logins()
        twin = w.send(call.ghost(), authorization)
        assert snapshot(answer) == snapshot(twin, call.alias), f"{where} differs from missing"


def cases() -> Iterator[Any]:
    for key in sorted(set(MATRIX) & SERVED):
        for who in IDENTITIES:
            gap = KNOWN_GAPS.get((key, who.key))
            marks = [pytest.mark.xfail(reason=gap, strict=True)] if gap else []
            yield pytest.param(key, who.key, id=f"{key} as {who.key}", marks=marks)


@pytest.mark.parametrize(("key", "who_key"), list(cases()))
def test_matrix(world: World, key: str, who_key: str) -> None:
    who = BY_KEY[who_key]
    entry = MATRIX[key]
    for target in entry.targets:
        run(world, key, who, target, bearer=False)
        # The same request with a registry token the identity gets from /auth/token (the
        # password grant carries its credentials in the form: a token changes nothing there).
        if who.valid and who.credential != "foreign-jwt" and entry.rule != "token-password":
            run(world, key, who, target, bearer=True)


# --- mounts: a blob travels only from a repository the caller may pull ----------------------------
@pytest.mark.parametrize(
    ("who_key", "into", "mounted"),
    [("writer", APP, False), ("outsider", f"{OTHER_ORG}/mine", False), ("org-owner", APP, True)],
)
def test_a_cross_repository_mount_needs_pull_on_the_source(
    world: World, who_key: str, into: str, mounted: bool
) -> None:
    vault = f"{ORG}/{unique('vault')}"  # private, and no team holds anything on it
    digest = push_blob(world.admin, vault, unique("secret").encode() * 8)
    world.sensitive.add(digest)
    authorization = world.authorization[who_key]
    assert authorization is not None
    # Without `from` nobody mounts with accounts on (a token could never name the source), so
    # that one goes first: the blob must not be there after it.
    for params in ({"mount": digest}, {"mount": digest, "from": vault}):
        answer = world.http.post(
            f"/v2/{into}/blobs/uploads/", params=params, headers={"Authorization": authorization}
        )
        if mounted and "from" in params:
            assert answer.status_code == 201, brief(answer)
            assert answer.headers["docker-content-digest"] == digest
        else:  # a plain upload session instead: the blob stays where it is
            assert answer.status_code == 202, brief(answer)
            assert "docker-content-digest" not in answer.headers
            held = world.http.head(
                f"/v2/{into}/blobs/{digest}", headers={"Authorization": authorization}
            )
            assert held.status_code == 404, brief(held)
