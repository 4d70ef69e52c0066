"""Promotion policies of a source repository: /api/v1 and DTR's /api/v0 shape of them.

- `/api/v1/repositories/{name}/promotion-policies`: create, list, get, change (PATCH),
  delete; `POST .../{id}/run` judges every tag of the source now; `POST
  /api/v1/repositories/{name}/policy-dry-run` judges every tag by rules or an expression
  without storing anything, each rule's verdict with its reason.
- `/api/v0/repositories/{namespace}/{repo}/promotionPolicies[/{id}]`: DTR's routes, bodies
  and answers (create, list, get, update by PUT or POST, delete; `?initialEvaluation=true`),
  so DTR users' scripts keep working.

Who may do what: managing a repository's policies (list, get, delete, run, dry run) needs
read-write on it; creating or changing one needs read-write on the source AND on the target,
because the policy promotes with its creator's authority. A caller who may not read the
source gets the 404 a missing repository gets; one who may read but not write it, 403. A
target the caller may not read is a missing repository; one they may only read, 403.
Administrators may do all. Every change is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from trustyard.api.audit import AuditTrail, Trail
from trustyard.api.deps import Caller, Limit, Registry, Repositories
from trustyard.api.errors import problems
from trustyard.api.repositories import writable_repository
from trustyard.api.schemas import MAX_ROW_ID, NO_NUL, Page
from trustyard.auth.authorize import Action
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.content.interfaces import Repository
from trustyard.content.repositories import RepositoryService
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import StateConflict, Unavailable
from trustyard.kit.clock import utc_now
from trustyard.policies.facts import FactsLoader
from trustyard.policies.interfaces import Need, Outcome, PolicyRecord
from trustyard.policies.service import PolicyChange, PolicyService

router = APIRouter(tags=["promotion policies"])
dtr_router = APIRouter(prefix="/api/v0", tags=["promotion policies (DTR)"])

POLICIES = "/repositories/{name:path}/promotion-policies"
DTR_POLICIES = "/repositories/{namespace}/{reponame}/promotionPolicies"
PolicyId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Component = Annotated[
    str, Path(min_length=1, max_length=255, pattern=r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
]
After = Annotated[
    int | None, Query(ge=1, le=MAX_ROW_ID, description="the `next` of the previous page")
]
InitialEvaluation = Annotated[
    bool, Query(description="judge the source's existing tags at once (DTR's initialEvaluation)")
]
# Bounds of the body's shape; the settings (policies.max_rules...) hold each policy to less.
# (A body of the longest values stays under the API's 1 MiB body limit.)
MAX_RULES = 1000
MAX_VALUES = 500
MAX_VALUE = 1024
MAX_EXPRESSION = 65536
# DTR's list has no pages: all of a repository's, at most what any setting allows.
MOST_POLICIES = 10_000


def get_policies(request: Request) -> PolicyService:
    policies: PolicyService | None = getattr(request.app.state, "policies", None)
    if policies is None:
        raise Unavailable("promotion policies are not available on this server")
    return policies


Policies = Annotated[PolicyService, Depends(get_policies)]


# --- bodies ------------------------------------------------------------------------------------
class Rule(BaseModel):
    """One rule (DTR's shape): every rule of a policy must pass."""

    field: str = Field(
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
        description="tag, repository, digest, platform, component.name, component.version, "
        "vulnerability.critical|major|minor|unknown|all, license.name, size, pushed, "
        "created, label.<key> (DTR's names too)",
    )
    operator: str = Field(
        min_length=1,
        max_length=32,
        pattern=NO_NUL,
        description="eq, neq, sw, ew, c, oneof, noneof, matches, gt, gte, lt, lte, before, "
        "after, olderthan, newerthan (and their long names)",
    )
    values: list[Annotated[str, Field(max_length=MAX_VALUE, pattern=NO_NUL)] | int | float] = Field(
        max_length=MAX_VALUES
    )


class RuleOut(BaseModel):
    field: str
    operator: str
    values: list[str]


Rules = Annotated[list[Rule], Field(max_length=MAX_RULES)]
Expression = Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION, pattern=NO_NUL)]
Target = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=NO_NUL, description="namespace/repository"),
]
Template = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="the target tag: %n the source tag, %h the short digest, strftime's date "
        "codes (UTC), %% a percent sign",
    ),
]


class PolicyCreate(BaseModel):
    """A policy: `rules` (all must pass) or a CEL `expression`, into `targetRepository`."""

    model_config = ConfigDict(extra="forbid")

    targetRepository: Target
    rules: Rules | None = None
    expression: Expression | None = Field(
        default=None, description="a CEL expression instead of rules"
    )
    tagTemplate: Template = "%n"
    enabled: bool = True


class PolicyUpdate(BaseModel):
    """What to change (what is left out stays): `rules` replace an expression and the other
    way round."""

    model_config = ConfigDict(extra="forbid")

    targetRepository: Target | None = None
    rules: Rules | None = None
    expression: Expression | None = None
    tagTemplate: Template | None = None
    enabled: bool | None = None


class DtrPolicyCreate(BaseModel):
    """DTR's CreatePromotionPolicy."""

    enabled: bool = True
    rules: Rules = Field(default_factory=list)
    tagTemplate: Template = "%n"
    targetRepository: Target


class DtrPolicyUpdate(BaseModel):
    """DTR's UpdatePromotionPolicy: what is left out stays."""

    enabled: bool | None = None
    rules: Rules | None = None
    tagTemplate: Template | None = None
    targetRepository: Target | None = None


def _rules_out(record: PolicyRecord) -> list[RuleOut] | None:
    if record.rules is None:
        return None
    return [
        RuleOut(
            field=str(rule.get("field", "")),
            operator=str(rule.get("operator", "")),
            values=[str(value) for value in rule.get("values", ())],
        )
        for rule in record.rules
    ]


class DtrPolicyOut(BaseModel):
    """DTR's PromotionPolicy."""

    id: int
    sourceRepository: str
    targetRepository: str | None = Field(
        description="null: a repository the caller may not read (another's policy)"
    )
    tagTemplate: str
    enabled: bool
    rules: list[RuleOut] | None = Field(description="null: the policy is an expression")
    lastPromotedAt: datetime | None
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, record: PolicyRecord, target: str | None) -> DtrPolicyOut:
        """`target`: the target's name as the caller may see it (`shown_target`)."""
        return cls(
            id=record.id,
            sourceRepository=record.source_repository,
            targetRepository=target,
            tagTemplate=record.tag_template,
            enabled=record.enabled,
            rules=_rules_out(record),
            lastPromotedAt=record.last_promoted_at,
            createdAt=record.created_at,
            updatedAt=record.updated_at,
        )


class PolicyOut(DtrPolicyOut):
    expression: str | None
    needs: list[str] = Field(description="facts beyond the manifest: config, scan, vulnerabilities")
    revision: int = Field(description="counts changes; a promotion records the one it used")
    createdBy: str | None = Field(description="whose authority the policy promotes with")
    lastError: str | None = Field(description="why the last run could not promote")

    @classmethod
    def of(cls, record: PolicyRecord, target: str | None) -> PolicyOut:
        return cls(
            **DtrPolicyOut.of(record, target).model_dump(),
            expression=record.expression,
            needs=sorted(need.value for need in record.needs),
            revision=record.revision,
            createdBy=record.created_by,
            lastError=record.last_error,
        )


# --- who may do what ---------------------------------------------------------------------------
def managed_source(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    caller: Principal,
    name: str,
) -> Repository:
    """The source repository, if `caller` manages its policies (read-write): 404 when they
    may not read it, 403 when they may only read it."""
    refusal = "the promotion policies of {repository!r} need read-write on it"
    return writable_repository(conn, accounts, repositories, caller, name, refusal)


def writable_target(
    conn: Connection,
    accounts: Accounts,
    repositories: RepositoryService,
    caller: Principal,
    name: str,
) -> Repository:
    """The target repository, if `caller` may push to it: a policy promotes with its
    creator's authority. One they may not read is a missing repository; read-only, 403."""
    refusal = "a policy promoting into {repository!r} needs read-write on it"
    return writable_repository(conn, accounts, repositories, caller, name, refusal)


def shown_target(
    conn: Connection, accounts: Accounts, caller: Principal, record: PolicyRecord
) -> str | None:
    """The policy's target as `caller` may see it: None when they may not read it (a private
    repository someone else's policy of this source promotes into)."""
    target = record.target_repository
    return target if accounts.policy.may(conn, caller, Action.PULL, target) else None


def _audit(
    trail: AuditTrail,
    conn: Connection,
    action: str,
    record: PolicyRecord,
    detail: dict[str, object] | None = None,
) -> None:
    trail.record(
        conn,
        action,
        "repository",
        record.source_repository,
        organization=record.source_repository.split("/", 1)[0],
        detail={"policy": record.id, "target": record.target_repository, **(detail or {})},
    )


def _evaluate_existing(
    request: Request, conn: Connection, record: PolicyRecord, trigger: str
) -> int | None:
    """Queue the judging of the source's existing tags (what initialEvaluation and a run on
    demand do): the job's id, or None when this server runs no policies."""
    triggers = getattr(request.app.state, "policy_triggers", None)
    if triggers is None:
        return None
    job: int = triggers.initial(conn, record, trigger=trigger)
    return job


# --- the shared steps of both shapes -----------------------------------------------------------
def _create(
    request: Request,
    name: str,
    body: PolicyCreate,
    initial: bool,
    caller: Principal,
    trail: AuditTrail,
    accounts: Accounts,
    repositories: RepositoryService,
    policies: PolicyService,
) -> PolicyRecord:
    rules = [rule.model_dump() for rule in body.rules] if body.rules is not None else None
    with write_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        target = writable_target(conn, accounts, repositories, caller, body.targetRepository)
        record = policies.create(
            conn,
            source,
            target,
            rules=rules,
            expression=body.expression,
            tag_template=body.tagTemplate,
            enabled=body.enabled,
            created_by=caller.name,
        )
        wanted = initial and record.enabled
        job = _evaluate_existing(request, conn, record, "initial") if wanted else None
        _audit(trail, conn, "promotion_policy.create", record, {"initial_job": job})
    return record


def _update(
    name: str,
    policy_id: int,
    body: PolicyUpdate,
    caller: Principal,
    trail: AuditTrail,
    accounts: Accounts,
    repositories: RepositoryService,
    policies: PolicyService,
) -> PolicyRecord:
    rules = [rule.model_dump() for rule in body.rules] if body.rules is not None else None
    with write_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        current = policies.get(conn, source, policy_id)
        new_target = body.targetRepository
        target = writable_target(
            conn, accounts, repositories, caller, new_target or current.target_repository
        )
        change = PolicyChange(
            target=target if new_target is not None else None,
            enabled=body.enabled,
            rules=rules,
            expression=body.expression,
            tag_template=body.tagTemplate,
        )
        record = policies.update(conn, source, policy_id, change)
        changed = sorted(body.model_dump(exclude_none=True))
        _audit(trail, conn, "promotion_policy.update", record, {"changes": changed})
    return record


def _delete(
    name: str,
    policy_id: int,
    caller: Principal,
    trail: AuditTrail,
    accounts: Accounts,
    repositories: RepositoryService,
    policies: PolicyService,
) -> None:
    with write_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        record = policies.delete(conn, source, policy_id)
        _audit(trail, conn, "promotion_policy.delete", record)


def _get(
    name: str,
    policy_id: int,
    caller: Principal,
    accounts: Accounts,
    repositories: RepositoryService,
    policies: PolicyService,
) -> tuple[PolicyRecord, str | None]:
    with read_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        record = policies.get(conn, source, policy_id)
        return record, shown_target(conn, accounts, caller, record)


# --- /api/v1 -----------------------------------------------------------------------------------
@router.post(POLICIES, status_code=201, responses=problems(404, 409))
def create_policy(
    name: str,
    body: PolicyCreate,
    request: Request,
    response: Response,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
    initialEvaluation: InitialEvaluation = False,
) -> PolicyOut:
    """A promotion policy of the repository: when an image of it meets `rules` (all of them)
    or `expression`, it is copied into `targetRepository` under the tag `tagTemplate` makes.
    Needs read-write on both repositories; refused when the rules cannot be evaluated or the
    policy would close a cycle of promotions."""
    record = _create(
        request, name, body, initialEvaluation, caller, trail, accounts, repositories, policies
    )
    response.headers["Location"] = f"/api/v1/repositories/{record.source_repository}" + (
        f"/promotion-policies/{record.id}"
    )
    return PolicyOut.of(record, record.target_repository)  # they may push it


@router.get(POLICIES, responses=problems(404))
def list_policies(
    name: str,
    caller: Caller,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
    limit: Limit = 100,
    after: After = None,
) -> Page[PolicyOut]:
    """The repository's promotion policies, oldest first."""
    with read_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        found = policies.list(conn, source, limit=limit + 1, after=after)
        items = [
            PolicyOut.of(record, shown_target(conn, accounts, caller, record))
            for record in found[:limit]
        ]
    return Page(items=items, next=str(items[-1].id) if len(found) > limit else None)


@router.get(f"{POLICIES}/{{policy_id}}", responses=problems(404))
def get_policy(
    name: str,
    policy_id: PolicyId,
    caller: Caller,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> PolicyOut:
    """One promotion policy, with when it last promoted and why its last run could not."""
    return PolicyOut.of(*_get(name, policy_id, caller, accounts, repositories, policies))


@router.patch(f"{POLICIES}/{{policy_id}}", responses=problems(404, 409))
def update_policy(
    name: str,
    policy_id: PolicyId,
    body: PolicyUpdate,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> PolicyOut:
    """Change a policy (its revision goes up); checked as a new one is."""
    record = _update(name, policy_id, body, caller, trail, accounts, repositories, policies)
    return PolicyOut.of(record, record.target_repository)  # they may push it


@router.delete(f"{POLICIES}/{{policy_id}}", status_code=204, responses=problems(404))
def delete_policy(
    name: str,
    policy_id: PolicyId,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> Response:
    """Delete a policy (the promotions it made stay in the images' history)."""
    _delete(name, policy_id, caller, trail, accounts, repositories, policies)
    return Response(status_code=204)


class RunOut(BaseModel):
    policy: PolicyOut
    job: int = Field(description="the background job judging the tags (GET /api/v1/jobs/{id})")


@router.post(f"{POLICIES}/{{policy_id}}/run", status_code=202, responses=problems(404, 409, 503))
def run_policy(
    name: str,
    policy_id: PolicyId,
    request: Request,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> RunOut:
    """Judge every tag of the repository by the (enabled) policy now, in the background: the
    tags that pass are promoted."""
    with write_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        record = policies.get(conn, source, policy_id)
        if not record.enabled:
            raise StateConflict(f"promotion policy {record.id} is disabled: enable it to run it")
        job = _evaluate_existing(request, conn, record, "demand")
        if job is None:
            raise Unavailable("this server runs no promotion policies")
        _audit(trail, conn, "promotion_policy.run", record, {"job": job})
        shown = PolicyOut.of(record, shown_target(conn, accounts, caller, record))
    return RunOut(policy=shown, job=job)


# --- the dry run -------------------------------------------------------------------------------
class DryRun(BaseModel):
    """Rules (all must pass) or a CEL expression to judge the repository's tags by."""

    model_config = ConfigDict(extra="forbid")

    rules: Rules | None = None
    expression: Expression | None = None


class RuleResultOut(BaseModel):
    index: int = Field(description="the rule's place in the list (0 for an expression)")
    rule: dict[str, Any] = Field(description="the rule as stored, or {expression}")
    passed: bool | None = Field(description="null: a fact it needs is not there yet")
    reason: str


class TagOutcome(BaseModel):
    tag: str
    digest: str
    outcome: Outcome = Field(description="passed when every rule passed; pending: no scan yet")
    results: list[RuleResultOut]


class DryRunOut(BaseModel):
    repository: str
    needs: list[str] = Field(description="facts beyond the manifest the rules read")
    items: list[TagOutcome] = Field(description="the tags in name order")
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


def get_facts(request: Request) -> FactsLoader:
    facts: FactsLoader | None = getattr(request.app.state, "policy_facts", None)
    if facts is None:
        raise Unavailable("promotion policies are not available on this server")
    return facts


Facts = Annotated[FactsLoader, Depends(get_facts)]
TagAfter = Annotated[
    str | None,
    Query(
        max_length=128,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$",
        description="the `next` of the previous page (a tag)",
    ),
]


EXPRESSION_PAGE = 25  # tags a dry run of a BOM-reading CEL expression judges at once


@router.post("/repositories/{name:path}/policy-dry-run", responses=problems(404))
def dry_run(
    name: str,
    body: DryRun,
    caller: Caller,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
    facts: Facts,
    limit: Limit = 100,
    after: TagAfter = None,
) -> DryRunOut:
    """Judge every tag of the repository (a page of them, in name order) by `rules` or
    `expression` as a policy would, storing nothing: each tag's outcome with every rule's
    verdict and reason. Needs read-write on the repository. A CEL expression that reads the
    components judges at most 25 tags a page (cel-python walks a BOM at about 0.2 ms a
    component: a page of 500 images could hold a request for minutes); follow `next`."""
    rules = [rule.model_dump() for rule in body.rules] if body.rules is not None else None
    condition = policies.condition(rules, body.expression)
    if body.expression is not None and Need.SCAN in condition.needs:
        limit = min(limit, EXPRESSION_PAGE)
    now = utc_now()
    with read_tx(accounts.engine) as conn:
        source = managed_source(conn, accounts, repositories, caller, name)
        page = accounts.policy.content.list_tags(conn, source.id, limit, after)
        found = {
            image.tag: image for image in facts.tags(conn, source, condition.needs, page.items, now)
        }
    items = []
    for tag in page.items:
        image = found.get(tag)
        if image is None:  # deleted between the two reads
            continue
        verdict = condition.evaluate(image, now)
        results = [
            RuleResultOut(index=r.index, rule=dict(r.rule), passed=r.passed, reason=r.reason)
            for r in verdict.results
        ]
        items.append(
            TagOutcome(tag=tag, digest=image.digest, outcome=verdict.outcome, results=results)
        )
    return DryRunOut(
        repository=source.name,
        needs=sorted(need.value for need in condition.needs),
        items=items,
        next=page.items[-1] if page.more and page.items else None,
    )


# --- /api/v0: DTR's shape ----------------------------------------------------------------------
def _dtr_name(namespace: str, reponame: str) -> str:
    return f"{namespace}/{reponame}"


@dtr_router.post(DTR_POLICIES, status_code=201, responses=problems(404, 409))
def dtr_create_policy(
    namespace: Component,
    reponame: Component,
    body: DtrPolicyCreate,
    request: Request,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
    initialEvaluation: InitialEvaluation = False,
) -> DtrPolicyOut:
    """DTR's createPromotionPolicy."""
    create = PolicyCreate(
        targetRepository=body.targetRepository,
        rules=body.rules,
        tagTemplate=body.tagTemplate,
        enabled=body.enabled,
    )
    name = _dtr_name(namespace, reponame)
    record = _create(
        request, name, create, initialEvaluation, caller, trail, accounts, repositories, policies
    )
    return DtrPolicyOut.of(record, record.target_repository)  # they may push it


@dtr_router.get(DTR_POLICIES, responses=problems(404))
def dtr_list_policies(
    namespace: Component,
    reponame: Component,
    caller: Caller,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> list[DtrPolicyOut]:
    """DTR's listRepoPromotionPolicies: every policy of the repository, oldest first."""
    with read_tx(accounts.engine) as conn:
        source = managed_source(
            conn, accounts, repositories, caller, _dtr_name(namespace, reponame)
        )
        found = policies.list(conn, source, limit=MOST_POLICIES)
        return [
            DtrPolicyOut.of(record, shown_target(conn, accounts, caller, record))
            for record in found
        ]


@dtr_router.get(f"{DTR_POLICIES}/{{promotionPolicyID}}", responses=problems(404))
def dtr_get_policy(
    namespace: Component,
    reponame: Component,
    promotionPolicyID: PolicyId,
    caller: Caller,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> DtrPolicyOut:
    """DTR's getPromotionPolicy."""
    name = _dtr_name(namespace, reponame)
    return DtrPolicyOut.of(*_get(name, promotionPolicyID, caller, accounts, repositories, policies))


def _dtr_update(
    namespace: str,
    reponame: str,
    policy_id: int,
    body: DtrPolicyUpdate,
    caller: Principal,
    trail: AuditTrail,
    accounts: Accounts,
    repositories: RepositoryService,
    policies: PolicyService,
) -> DtrPolicyOut:
    change = PolicyUpdate(
        targetRepository=body.targetRepository,
        rules=body.rules,
        tagTemplate=body.tagTemplate,
        enabled=body.enabled,
    )
    name = _dtr_name(namespace, reponame)
    record = _update(name, policy_id, change, caller, trail, accounts, repositories, policies)
    return DtrPolicyOut.of(record, record.target_repository)  # they may push it


@dtr_router.put(f"{DTR_POLICIES}/{{promotionPolicyID}}", responses=problems(404, 409))
@dtr_router.post(f"{DTR_POLICIES}/{{promotionPolicyID}}", responses=problems(404, 409))
def dtr_update_policy(
    namespace: Component,
    reponame: Component,
    promotionPolicyID: PolicyId,
    body: DtrPolicyUpdate,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> DtrPolicyOut:
    """DTR's updatePromotionPolicy, by PUT or (as DTR also took it) POST."""
    return _dtr_update(
        namespace, reponame, promotionPolicyID, body, caller, trail, accounts, repositories,
        policies,
    )  # fmt: skip


@dtr_router.delete(
    f"{DTR_POLICIES}/{{promotionPolicyID}}", status_code=204, responses=problems(404)
)
def dtr_delete_policy(
    namespace: Component,
    reponame: Component,
    promotionPolicyID: PolicyId,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    policies: Policies,
) -> Response:
    """DTR's deletePromotionPolicy."""
    name = _dtr_name(namespace, reponame)
    _delete(name, promotionPolicyID, caller, trail, accounts, repositories, policies)
    return Response(status_code=204)
