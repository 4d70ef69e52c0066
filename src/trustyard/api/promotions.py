"""/api/v1 promotion: copy an image of one repository into another by hand, list the
promotions into and out of a repository, and read an image's history in a repository (who
pushed it under which tag, where it was promoted from and to, by whom, by which policy).

Promoting needs the right to pull the source and to push to the target (read-write), like a
`skopeo copy` between the two; either repository the caller may not read answers 404 exactly
like a missing one. Promotion is idempotent: promoting an image to a tag that already names it
moves nothing (200, `moved` false), writes no history, audit entry or PROMOTION event.

Reading needs the right to pull the repository (anonymous callers too, for public ones). A
promotion names the other repository involved; one the caller may not pull is left out of the
answer (null) with its tag, so that a promotion list does not reveal private repositories.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from trustyard.api.audit import Trail
from trustyard.api.deps import Anyone, Publish, Registry, Repositories
from trustyard.api.errors import forbidden, problems
from trustyard.api.repositories import readable_repository, resolve_reference
from trustyard.api.schemas import MAX_ROW_ID, Page
from trustyard.auth import audit
from trustyard.auth.authorize import Action
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.auth.scopes import TokenScope
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import Invalid
from trustyard.events.model import timestamp
from trustyard.policies.interfaces import PromotionRecord
from trustyard.policies.promotion import MANUAL, PromotionService

router = APIRouter(tags=["promotion"])

PROMOTIONS = "/repositories/{name:path}/promotions"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
NAME_PATTERN = r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
MAX_PUSHES = 100  # the newest pushes of the image a history shows
Direction = Literal["in", "out"]
Reference = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=r"^[A-Za-z0-9_.:+=-]+$",
        description="a tag, or a manifest digest (`sha256:...`)",
    ),
]


def get_promotions(request: Request) -> PromotionService:
    promotions: PromotionService = request.app.state.promotions  # set by the composition root
    return promotions


Promotions = Annotated[PromotionService, Depends(get_promotions)]


# --- bodies ------------------------------------------------------------------------------------
class PromotionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(
        min_length=1,
        max_length=300,
        pattern=r"^[A-Za-z0-9_.:+=-]+$",
        description="the image in this repository: a tag, or a manifest digest (`sha256:...`)",
    )
    targetRepository: str = Field(  # DTR-style names, as policies have
        min_length=1, max_length=255, pattern=NAME_PATTERN, description="where it goes"
    )
    targetTag: str | None = Field(
        default=None,
        pattern=TAG_PATTERN,
        description="its tag there; default the source tag (required when `reference` is a digest)",
    )


class PromotionOut(BaseModel):
    id: int | None = Field(description="the history entry; null when nothing moved")
    moved: bool = Field(description="false: the target tag already named the image")
    source_repository: str | None = Field(
        description="null when the caller may not pull the source"
    )
    source_reference: str | None = Field(description="the tag or digest promoted")
    digest: str
    target_repository: str | None = Field(
        description="null when the caller may not pull the target"
    )
    target_tag: str | None
    previous_digest: str | None = Field(description="what the target tag named before")
    policy_id: int | None = Field(description="the promotion policy; null: by hand")
    policy_revision: int | None
    trigger: str = Field(
        description="manual | push | scan | vulnerabilities | triage | demand | initial"
    )
    depth: int = Field(description="how many promotions led to this one")
    actor: str | None = Field(description="who asked, or who pushed what a policy promoted")
    promoted_as: str | None = Field(description="whose rights wrote the target")
    created_at: datetime | None


HistoryKind = Literal["pushed", "promoted-from", "promoted-to"]


class HistoryEntry(BaseModel):
    kind: HistoryKind
    at: datetime
    actor: str | None = Field(description="who pushed, asked, or pushed what a policy promoted")
    source_repository: str | None = Field(description="promotions: where the image came from")
    source_reference: str | None
    target_repository: str | None = Field(description="where it was pushed or promoted to")
    target_tag: str | None
    policy_id: int | None
    policy_revision: int | None
    trigger: str | None
    promoted_as: str | None
    summary: str = Field(description="the entry in words")


class HistoryOut(BaseModel):
    repository: str
    digest: str
    entries: list[HistoryEntry] = Field(description="oldest first")


# --- who may see what --------------------------------------------------------------------------
Visible = Callable[[str], bool]


def visibility(
    conn: Connection, accounts: Accounts, principal: Principal, scope: TokenScope | None
) -> Visible:
    """Whether the caller may pull a repository, each name decided once."""
    known: dict[str, bool] = {}

    def visible(name: str) -> bool:
        if name not in known:
            known[name] = accounts.policy.may(conn, principal, Action.PULL, name, scope)
        return known[name]

    return visible


def promotion_out(record: PromotionRecord, visible: Visible) -> PromotionOut:
    source = visible(record.source_repository)
    target = visible(record.target_repository)
    return PromotionOut(
        id=record.id,
        moved=True,
        source_repository=record.source_repository if source else None,
        source_reference=record.source_reference if source else None,
        digest=record.digest,
        target_repository=record.target_repository if target else None,
        target_tag=record.target_tag if target else None,
        previous_digest=record.previous_digest if target else None,
        policy_id=record.policy_id,
        policy_revision=record.policy_revision,
        trigger=record.trigger,
        depth=record.depth,
        actor=record.actor,
        promoted_as=record.promoted_as,
        created_at=record.created_at,
    )


# --- routes --------------------------------------------------------------------------------------
_CREATED: dict[int | str, dict[str, Any]] = {
    200: {"model": PromotionOut, "description": "the target tag already named the image"},
    **problems(404, 409),
}


@router.post(PROMOTIONS, status_code=201, responses=_CREATED)
def promote(
    name: str,
    body: PromotionCreate,
    response: Response,
    trail: Trail,
    accounts: Registry,
    repositories: Repositories,
    promotions: Promotions,
    publish: Publish,
) -> PromotionOut:
    """Promote an image of this repository (by tag or digest) into another repository under a
    tag: the manifest, an index's children and every referrer (signatures, SBOMs,
    attestations) with their fallback tags; metadata only, no blob is copied. Needs pull on
    this repository and read-write on the target. 201 when the tag moved; 200 when it already
    named the image (nothing changes). 409 when the target's tags are immutable and the tag
    names another image."""
    caller = trail.principal
    by_digest = ":" in body.reference
    tag = body.targetTag or (None if by_digest else body.reference)
    if tag is None:
        raise Invalid("targetTag: required when the image is given by digest")
    with write_tx(accounts.engine) as conn:
        source = readable_repository(conn, accounts, repositories, caller, None, name)
        target = readable_repository(
            conn, accounts, repositories, caller, None, body.targetRepository
        )
        if not accounts.policy.may(conn, caller, Action.PUSH, target.name):
            raise forbidden(f"promoting into {target.name!r} needs read-write on it")
        done = promotions.promote(
            conn,
            source,
            body.reference,
            target,
            tag,
            actor=caller.name,
            promoted_as=caller.name,
            policy=None,
            trigger=MANUAL,
            depth=0,
        )
        publish(conn, *done.events)
        if done.record is not None:
            trail.record(
                conn,
                "manifest.promote",
                "repository",
                target.name,
                organization=target.namespace,
                detail={
                    "promotion": done.record.id,
                    "source": source.name,
                    "reference": body.reference,
                    "digest": done.record.digest,
                    "tag": tag,
                    "previous_digest": done.record.previous_digest,
                },
            )
    if done.record is not None:
        return promotion_out(done.record, lambda _: True)
    response.status_code = 200
    digest = done.copy.digest if done.copy is not None else body.reference
    return PromotionOut(
        id=None,
        moved=False,
        source_repository=source.name,
        source_reference=body.reference,
        digest=digest,
        target_repository=target.name,
        target_tag=tag,
        previous_digest=digest,
        policy_id=None,
        policy_revision=None,
        trigger=MANUAL,
        depth=0,
        actor=caller.name,
        promoted_as=caller.name,
        created_at=None,
    )


@router.get(PROMOTIONS, responses=problems(404))
def list_promotions(
    name: str,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    promotions: Promotions,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="the `next` of the previous page")
    ] = None,
    direction: Annotated[
        Direction | None,
        Query(description="in: promotions into this repository; out: out of it; default both"),
    ] = None,
) -> Page[PromotionOut]:
    """The promotions into and out of this repository, newest first."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        )
        found = promotions.page(
            conn, repository.id, direction=direction, before=after, limit=limit + 1
        )
        visible = visibility(conn, accounts, reader.principal, reader.scope)
        items = [promotion_out(record, visible) for record in found[:limit]]
    return Page(items=items, next=str(found[limit - 1].id) if len(found) > limit else None)


@router.get("/repositories/{name:path}/manifests/{reference}/history", responses=problems(404))
def manifest_history(
    name: str,
    reference: Reference,
    reader: Anyone,
    accounts: Registry,
    repositories: Repositories,
    promotions: Promotions,
) -> HistoryOut:
    """How the image got into this repository and where it went: its pushes (the newest
    100, with who pushed which tag), the promotions that brought it here and those that took
    it elsewhere (by whom, by which policy), oldest first."""
    with read_tx(accounts.engine) as conn:
        repository = readable_repository(
            conn, accounts, repositories, reader.principal, reader.scope, name
        )
        digest = resolve_reference(conn, accounts, repository.name, reference)
        pushes = audit.pushes(conn, repository.name, digest, limit=MAX_PUSHES)
        moves = promotions.history(conn, repository.id, digest)
        visible = visibility(conn, accounts, reader.principal, reader.scope)
        entries = [_pushed(event, repository.name) for event in pushes]
        entries += [_moved(record, repository.name, visible) for record in moves]
    entries.sort(key=lambda entry: entry.at)
    return HistoryOut(repository=repository.name, digest=digest, entries=entries)


def _pushed(event: audit.AuditEvent, repository: str) -> HistoryEntry:
    tag = (event.detail or {}).get("tag")
    where = f"{repository}:{tag}" if tag else repository
    return HistoryEntry(
        kind="pushed",
        at=event.at,
        actor=event.actor or None,
        source_repository=None,
        source_reference=None,
        target_repository=repository,
        target_tag=tag,
        policy_id=None,
        policy_revision=None,
        trigger=None,
        promoted_as=None,
        summary=f"pushed to {where} by {event.actor or 'an anonymous client'} at "
        f"{timestamp(event.at)}",
    )


def _moved(record: PromotionRecord, repository: str, visible: Visible) -> HistoryEntry:
    into = record.target_repository == repository
    out = promotion_out(record, visible)
    if into:
        kind: HistoryKind = "promoted-from"
        words = "promoted from " + _place(out.source_repository, out.source_reference)
    else:
        kind = "promoted-to"
        words = "promoted to " + _place(out.target_repository, out.target_tag)
    who = record.actor or "an anonymous client"
    by = (
        f"by policy {record.policy_id} (revision {record.policy_revision}, as "
        f"{record.promoted_as}; {record.trigger} by {who})"
        if record.policy_id is not None
        else f"by {who}"
    )
    return HistoryEntry(
        kind=kind,
        at=record.created_at,
        actor=record.actor,
        source_repository=out.source_repository,
        source_reference=out.source_reference,
        target_repository=out.target_repository,
        target_tag=out.target_tag,
        policy_id=record.policy_id,
        policy_revision=record.policy_revision,
        trigger=record.trigger,
        promoted_as=record.promoted_as,
        summary=f"{words} {by} at {timestamp(record.created_at)}",
    )


def _place(repository: str | None, reference: str | None) -> str:
    if repository is None:
        return "a repository you may not read"
    separator = "@" if reference and ":" in reference else ":"
    return f"{repository}{separator}{reference}" if reference else repository
