"""Promotion policies through the API on a real server with accounts: DTR's /api/v0 routes
with DTR's documented bodies and answer names, the /api/v1 routes (an expression, partial
changes, pages, on-demand runs), the access rule (read-write on the source AND on the target;
read-only on the target is refused with 403, a target the caller cannot see is a missing
repository), refusals at creation as 400 naming the rule, the template or the cycle, the
per-repository limit (409), the audit trail, and the dry run over every tag with each rule's
reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.oci_helpers import brief, push_image
from tests.integration.test_api import assert_problem
from tests.support.server import TrustyardServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("policies-api")]

ADMIN_PASSWORD = "the policy administrator's password"
PASSWORD = "a policy tester's long password"
ORG = "pol"
DEV, QA, PROD, SECRET = f"{ORG}/dev", f"{ORG}/qa", f"{ORG}/prod", f"{ORG}/secret"
LIMITED = f"{ORG}/limited"  # the per-repository limit is met here
LIMIT = 3
V0 = "/api/v0/repositories"
A = "/api/v1"
# Who holds what: wendy read-write on dev, qa and prod; rita read-write on dev, read-only
# on prod, nothing on secret; rhea read-only on dev; mal nothing at all.
GRANTS = {
    "wendy": {DEV: "read-write", QA: "read-write", PROD: "read-write"},
    "rita": {DEV: "read-write", PROD: "read-only"},
    "rhea": {DEV: "read-only"},
    "mal": {},
}
TAG_ENDS_STABLE = {"field": "tag", "operator": "ew", "values": ["stable"]}
DTR_KEYS = {
    "id",
    "sourceRepository",
    "targetRepository",
    "tagTemplate",
    "enabled",
    "rules",
    "lastPromotedAt",
    "createdAt",
    "updatedAt",
}


@dataclass
class World:
    server: TrustyardServer
    digests: dict[str, str]  # tag of DEV -> digest

    def call(self, user: str, method: str, path: str, **extra: Any) -> httpx.Response:
        password = ADMIN_PASSWORD if user == "admin" else PASSWORD
        with httpx.Client(
            base_url=self.server.url, auth=httpx.BasicAuth(user, password), timeout=60
        ) as client:
            return client.request(method, path, **extra)

    def expect(self, status: int, user: str, method: str, path: str, **extra: Any) -> Any:
        answer = self.call(user, method, path, **extra)
        assert answer.status_code == status, brief(answer)
        return answer.json() if answer.content else None


def dtr_policy(target: str, *rules: dict[str, Any], template: str = "%n") -> dict[str, Any]:
    """A policy in DTR's documented shape."""
    return {
        "enabled": True,
        "rules": list(rules),
        "tagTemplate": template,
        "targetRepository": target,
    }


@pytest.fixture(scope="module")
def world(start_server: Callable[..., TrustyardServer]) -> World:
    server = start_server(
        "policies-api",
        TRUSTYARD_AUTH__ENABLED="true",
        TRUSTYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        TRUSTYARD_POLICIES__MAX_POLICIES_PER_REPOSITORY=str(LIMIT),
        TRUSTYARD_SCANNING__ENABLED="false",
    )
    with httpx.Client(
        base_url=server.url, auth=httpx.BasicAuth("admin", ADMIN_PASSWORD), timeout=60
    ) as admin:
        assert admin.post(f"{A}/organizations", json={"name": ORG}).status_code == 201
        for name in (DEV, QA, PROD, SECRET, LIMITED):
            assert admin.post(f"{A}/repositories", json={"name": name}).status_code == 201
        for user, grants in GRANTS.items():
            made = admin.post(f"{A}/users", json={"username": user, "password": PASSWORD})
            assert made.status_code == 201, brief(made)
            for repository, role in grants.items():
                team = f"{user}-{repository.split('/')[1]}"
                assert admin.post(f"{A}/organizations/{ORG}/teams", json={"name": team}).is_success
                assert admin.put(f"{A}/organizations/{ORG}/teams/{team}/members/{user}").is_success
                granted = admin.put(
                    f"{A}/organizations/{ORG}/teams/{team}/repositories/{repository}",
                    json={"role": role},
                )
                assert granted.status_code == 204, brief(granted)
        digests = {tag: push_image(admin, DEV, tag).digest for tag in ("1.0-stable", "1.1-rc")}
    return World(server, digests)


# --- DTR's shape ---------------------------------------------------------------------------------
def test_dtr_routes_create_list_get_update_and_delete_in_dtrs_shape(world: World) -> None:
    body = dtr_policy(
        QA, {"field": "vulnerability_critical", "operator": "lte", "values": ["0"]}, TAG_ENDS_STABLE
    )
    made = world.expect(201, "wendy", "POST", f"{V0}/{DEV}/promotionPolicies", json=body)
    assert set(made) == DTR_KEYS
    assert made["sourceRepository"] == DEV
    assert made["targetRepository"] == QA
    assert made["tagTemplate"] == "%n"
    assert made["enabled"] is True
    assert made["lastPromotedAt"] is None
    # Stored with the canonical field names (DTR's alias read).
    assert made["rules"][0] == {
        "field": "vulnerability.critical",
        "operator": "lte",
        "values": ["0"],
    }
    path = f"{V0}/{DEV}/promotionPolicies/{made['id']}"
    listed = world.expect(200, "wendy", "GET", f"{V0}/{DEV}/promotionPolicies")
    assert isinstance(listed, list)
    assert made in listed
    assert world.expect(200, "wendy", "GET", path) == made
    put = world.expect(200, "wendy", "PUT", path, json={"tagTemplate": "qa-%n-%Y%m%d"})
    assert put["tagTemplate"] == "qa-%n-%Y%m%d"
    assert put["rules"] == made["rules"]  # what the update leaves out stays
    posted = world.expect(200, "wendy", "POST", path, json={"enabled": False})
    assert posted["enabled"] is False
    assert posted["tagTemplate"] == "qa-%n-%Y%m%d"
    revision = world.expect(
        200, "wendy", "GET", f"{A}/repositories/{DEV}/promotion-policies/{made['id']}"
    )
    assert revision["revision"] == 3
    assert world.call("wendy", "DELETE", path).status_code == 204
    assert_problem(world.call("wendy", "GET", path), 404)
    assert_problem(world.call("wendy", "DELETE", path), 404)


def test_dtr_initial_evaluation_queues_a_run_of_the_existing_tags(world: World) -> None:
    made = world.expect(
        201,
        "wendy",
        "POST",
        f"{V0}/{DEV}/promotionPolicies",
        params={"initialEvaluation": "true"},
        json=dtr_policy(PROD, TAG_ENDS_STABLE, template="initial-%n"),
    )
    entries = world.expect(
        200, "admin", "GET", f"{A}/audit", params={"action": "promotion_policy.create"}
    )
    entry = next(e for e in entries["items"] if (e["detail"] or {}).get("policy") == made["id"])
    assert isinstance(entry["detail"]["initial_job"], int)
    world.expect(204, "wendy", "DELETE", f"{V0}/{DEV}/promotionPolicies/{made['id']}")


def test_an_unknown_v0_path_is_a_problem_not_found(world: World) -> None:
    assert_problem(world.call("wendy", "GET", "/api/v0/repositories"), 404)


# --- /api/v1 ------------------------------------------------------------------------------------
def test_v1_policies_take_an_expression_change_in_part_and_page(world: World) -> None:
    base = f"{A}/repositories/{DEV}/promotion-policies"
    body = {"targetRepository": QA, "expression": 'tag.endsWith("-stable")', "tagTemplate": "%n"}
    answer = world.call("wendy", "POST", base, json=body)
    assert answer.status_code == 201, brief(answer)
    made = answer.json()
    assert answer.headers["location"] == f"{base}/{made['id']}"
    assert made["rules"] is None
    assert made["expression"] == 'tag.endsWith("-stable")'
    assert made["revision"] == 1
    assert made["createdBy"] == "wendy"
    assert made["lastError"] is None
    second = world.expect(
        201, "wendy", "POST", base, json={"targetRepository": PROD, "rules": [TAG_ENDS_STABLE]}
    )
    assert second["needs"] == []
    changed = world.expect(
        200, "wendy", "PATCH", f"{base}/{made['id']}", json={"rules": [TAG_ENDS_STABLE]}
    )
    assert (changed["expression"], changed["revision"]) == (None, 2)
    assert changed["rules"] == [TAG_ENDS_STABLE]
    first = world.expect(200, "wendy", "GET", base, params={"limit": 1})
    assert first["next"] is not None
    rest = world.expect(200, "wendy", "GET", base, params={"limit": 1, "after": first["next"]})
    listed = [item["id"] for item in first["items"] + rest["items"]]
    assert listed[:2] == sorted(listed[:2])
    for policy in (made, second):
        world.expect(204, "wendy", "DELETE", f"{base}/{policy['id']}")


def test_a_policy_runs_on_demand(world: World) -> None:
    base = f"{A}/repositories/{DEV}/promotion-policies"
    made = world.expect(
        201, "wendy", "POST", base, json=dtr_policy(QA, TAG_ENDS_STABLE, template="demand-%n")
    )
    run = world.expect(202, "wendy", "POST", f"{base}/{made['id']}/run")
    assert run["policy"]["id"] == made["id"]
    assert isinstance(run["job"], int)
    assert_problem(world.call("rhea", "POST", f"{base}/{made['id']}/run"), 403)
    world.expect(200, "wendy", "PATCH", f"{base}/{made['id']}", json={"enabled": False})
    disabled = assert_problem(world.call("wendy", "POST", f"{base}/{made['id']}/run"), 409)
    assert "disabled" in str(disabled["detail"])
    world.expect(204, "wendy", "DELETE", f"{base}/{made['id']}")


# --- who may --------------------------------------------------------------------------------------
def test_read_write_on_the_source_without_push_on_the_target_is_refused(world: World) -> None:
    """Issue 12: rita may push dev but only read prod: no policy of hers writes prod."""
    for path in (f"{V0}/{DEV}/promotionPolicies", f"{A}/repositories/{DEV}/promotion-policies"):
        refused = assert_problem(
            world.call("rita", "POST", path, json=dtr_policy(PROD, TAG_ENDS_STABLE)), 403
        )
        assert PROD in str(refused["detail"])
        # A target she cannot even see answers as a missing repository does.
        hidden = world.call("rita", "POST", path, json=dtr_policy(SECRET, TAG_ENDS_STABLE))
        missing = world.call(
            "rita", "POST", path, json=dtr_policy(f"{ORG}/nothing", TAG_ENDS_STABLE)
        )
        assert_problem(hidden, 404)
        assert hidden.json()["detail"].replace(SECRET, "x") == missing.json()["detail"].replace(
            f"{ORG}/nothing", "x"
        )
    assert world.expect(200, "admin", "GET", f"{V0}/{DEV}/promotionPolicies") == []
    # Nor may she move wendy's policy there.
    made = world.expect(
        201, "wendy", "POST", f"{V0}/{DEV}/promotionPolicies", json=dtr_policy(QA, TAG_ENDS_STABLE)
    )
    path = f"{V0}/{DEV}/promotionPolicies/{made['id']}"
    assert_problem(world.call("rita", "PUT", path, json={"targetRepository": PROD}), 403)
    # QA is hidden from her: even the policy's own target refuses her changes, and she
    # reads the policy without its name.
    assert_problem(world.call("rita", "PUT", path, json={"enabled": False}), 404)
    assert world.expect(200, "rita", "GET", path)["targetRepository"] is None
    listed = world.expect(200, "rita", "GET", f"{A}/repositories/{DEV}/promotion-policies")
    assert [p["targetRepository"] for p in listed["items"] if p["id"] == made["id"]] == [None]
    assert world.expect(200, "wendy", "GET", path)["targetRepository"] == QA
    world.expect(204, "admin", "DELETE", path)


def test_readers_and_strangers_manage_no_policies(world: World) -> None:
    made = world.expect(
        201, "admin", "POST", f"{V0}/{DEV}/promotionPolicies", json=dtr_policy(QA, TAG_ENDS_STABLE)
    )
    path = f"{V0}/{DEV}/promotionPolicies/{made['id']}"
    for user, status in (("rhea", 403), ("mal", 404)):
        assert_problem(world.call(user, "GET", f"{V0}/{DEV}/promotionPolicies"), status)
        assert_problem(world.call(user, "GET", path), status)
        assert_problem(world.call(user, "DELETE", path), status)
        assert_problem(
            world.call(
                user, "POST", f"{V0}/{DEV}/promotionPolicies", json=dtr_policy(QA, TAG_ENDS_STABLE)
            ),
            status,
        )
    assert_problem(world.call("anonymous-nobody", "GET", path), 401)
    # The refusals are in the organization's audit log, DTR's routes too.
    audit = {"organization": ORG, "actor": "rhea"}
    denied = world.expect(200, "admin", "GET", f"{A}/audit", params=audit)["items"]
    assert any(
        e["outcome"] == "denied" and e["resource"] == f"{V0}/{DEV}/promotionPolicies"
        for e in denied
    ), denied
    world.expect(204, "admin", "DELETE", path)


# --- refused at creation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            dtr_policy(QA, {"field": "nonsense", "operator": "eq", "values": ["x"]}),
            "rules[0].field",
        ),
        (
            dtr_policy(QA, TAG_ENDS_STABLE, {"field": "tag", "operator": "gt", "values": ["1"]}),
            "rules[1]",
        ),
        (
            dtr_policy(QA, {"field": "tag", "operator": "matches", "values": ["(unclosed"]}),
            "rules[0]",
        ),
        (dtr_policy(QA, TAG_ENDS_STABLE, template="%Q"), "tagTemplate"),
        (dtr_policy(DEV, TAG_ENDS_STABLE), "cycle"),
    ],
)
def test_what_cannot_be_evaluated_is_refused_with_400_saying_where(
    world: World, body: dict[str, Any], said: str
) -> None:
    refused = assert_problem(
        world.call("wendy", "POST", f"{V0}/{DEV}/promotionPolicies", json=body), 400
    )
    assert said in str(refused["detail"])


def test_an_expression_that_does_not_compile_is_refused(world: World) -> None:
    body = {"targetRepository": QA, "expression": "tag ==", "tagTemplate": "%n"}
    refused = assert_problem(
        world.call("wendy", "POST", f"{A}/repositories/{DEV}/promotion-policies", json=body), 400
    )
    assert str(refused["detail"]).startswith("expression")


def test_a_cycle_names_its_path(world: World) -> None:
    made = world.expect(
        201, "wendy", "POST", f"{V0}/{DEV}/promotionPolicies", json=dtr_policy(QA, TAG_ENDS_STABLE)
    )
    further = world.expect(
        201, "wendy", "POST", f"{V0}/{QA}/promotionPolicies", json=dtr_policy(PROD, TAG_ENDS_STABLE)
    )
    refused = assert_problem(
        world.call(
            "wendy", "POST", f"{V0}/{PROD}/promotionPolicies", json=dtr_policy(DEV, TAG_ENDS_STABLE)
        ),
        400,
    )
    assert f"{PROD} -> {DEV} -> {QA} -> {PROD}" in str(refused["detail"])
    world.expect(204, "wendy", "DELETE", f"{V0}/{DEV}/promotionPolicies/{made['id']}")
    world.expect(204, "wendy", "DELETE", f"{V0}/{QA}/promotionPolicies/{further['id']}")


def test_a_repository_holds_at_most_the_configured_number_of_policies(world: World) -> None:
    path = f"{V0}/{LIMITED}/promotionPolicies"
    for _ in range(LIMIT):
        world.expect(201, "admin", "POST", path, json=dtr_policy(QA, TAG_ENDS_STABLE))
    refused = assert_problem(
        world.call("admin", "POST", path, json=dtr_policy(QA, TAG_ENDS_STABLE)), 409
    )
    assert f"{LIMIT} promotion policies" in str(refused["detail"])


def test_changes_are_audited(world: World) -> None:
    made = world.expect(
        201, "wendy", "POST", f"{V0}/{DEV}/promotionPolicies", json=dtr_policy(QA, TAG_ENDS_STABLE)
    )
    path = f"{V0}/{DEV}/promotionPolicies/{made['id']}"
    world.expect(200, "wendy", "PUT", path, json={"enabled": False})
    world.expect(204, "wendy", "DELETE", path)
    for action in ("create", "update", "delete"):
        entries = world.expect(
            200, "admin", "GET", f"{A}/audit", params={"action": f"promotion_policy.{action}"}
        )
        newest = next(
            e for e in entries["items"] if (e["detail"] or {}).get("policy") == made["id"]
        )
        assert newest["actor"] == "wendy"
        assert newest["detail"]["target"] == QA
        assert newest["resource"] == DEV


# --- the dry run ---------------------------------------------------------------------------------
def test_the_dry_run_judges_every_tag_with_each_rules_reason(world: World) -> None:
    path = f"{A}/repositories/{DEV}/policy-dry-run"
    rules = [TAG_ENDS_STABLE, {"field": "size", "operator": "lt", "values": ["1GB"]}]
    judged = world.expect(200, "wendy", "POST", path, json={"rules": rules})
    assert judged["repository"] == DEV
    assert judged["next"] is None
    outcomes = {item["tag"]: item for item in judged["items"]}
    assert set(outcomes) == set(world.digests)
    stable, rc = outcomes["1.0-stable"], outcomes["1.1-rc"]
    assert (stable["outcome"], rc["outcome"]) == ("passed", "failed")
    assert stable["digest"] == world.digests["1.0-stable"]
    assert [r["passed"] for r in rc["results"]] == [False, True]
    assert "1.1-rc" in rc["results"][0]["reason"]
    assert rc["results"][0]["rule"] == TAG_ENDS_STABLE
    # A page at a time, in name order.
    first = world.expect(200, "wendy", "POST", path, params={"limit": 1}, json={"rules": rules})
    assert [item["tag"] for item in first["items"]] == ["1.0-stable"]
    rest = world.expect(
        200,
        "wendy",
        "POST",
        path,
        params={"limit": 1, "after": first["next"]},
        json={"rules": rules},
    )
    assert [item["tag"] for item in rest["items"]] == ["1.1-rc"]
    assert rest["next"] is None
    # The same by an expression; rules that need a scan stay pending without one.
    by_expression = world.expect(
        200, "wendy", "POST", path, json={"expression": 'tag.endsWith("stable")'}
    )
    assert {i["tag"]: i["outcome"] for i in by_expression["items"]} == {
        "1.0-stable": "passed",
        "1.1-rc": "failed",
    }
    pending = world.expect(
        200,
        "wendy",
        "POST",
        path,
        json={"rules": [{"field": "component.name", "operator": "neq", "values": ["openssl"]}]},
    )
    assert {i["outcome"] for i in pending["items"]} == {"pending"}
    assert pending["needs"] == ["scan"]
    # Refusals as at creation; readers may not.
    assert_problem(
        world.call(
            "wendy", "POST", path, json={"rules": [{"field": "x", "operator": "eq", "values": []}]}
        ),
        400,
    )
    assert_problem(world.call("rhea", "POST", path, json={"rules": rules}), 403)
    assert_problem(world.call("mal", "POST", path, json={"rules": rules}), 404)
