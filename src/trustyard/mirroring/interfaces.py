"""Remotes, mirroring policies, their runs and items: the records, the vocabulary and the
errors of mirroring.

A push policy copies tags of a local repository to a repository of a remote registry when
they pass its rules (the policy engine's, over the image's facts); a pull policy copies tags
of a remote repository into the local one, on a schedule, on demand or when the remote's
webhook calls (its rules may read only the tag). Each (policy, source tag) is one item: what
the destination should hold, what it was last made to hold, and how the last attempt went.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from trustyard.errors import Invalid, NotFound, StateConflict


class Direction(StrEnum):
    PUSH = "push"  # local repository -> remote repository
    PULL = "pull"  # remote repository -> local repository


class Trigger(StrEnum):
    PUSH = "push"  # a tag pushed (or promoted) into the local repository
    DELETE = "delete"  # a tag deleted in the local repository
    INITIAL = "initial"  # initialEvaluation at creation: every existing tag
    MANUAL = "manual"  # "run now" (API or CLI)
    SCHEDULE = "schedule"  # a pull policy's poll interval came round
    WEBHOOK = "webhook"  # the remote's webhook called
    RETRY = "retry"  # failed items only


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every item done (or skipped)
    PARTIAL = "partial"  # some items failed, the others done
    FAILED = "failed"  # the run could not proceed (the remote unreachable, bad credentials)


class ItemStatus(StrEnum):
    PENDING = "pending"  # to do (again)
    WAITING = "waiting"  # the rules need facts not there yet (a scan): done when they come
    DONE = "done"  # the destination holds `synced_digest` under `target_tag`
    SKIPPED = "skipped"  # the rules refused the image (the reason in last_error)
    FAILED = "failed"  # the last attempt failed (last_error); retried by the next run


class ItemAction(StrEnum):
    COPY = "copy"
    DELETE = "delete"


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """A remote registry. The secret is never in a record: `has_secret` says whether one is
    stored (sealed), `RemoteService.endpoint` opens it for the client only."""

    id: int
    name: str
    url: str
    username: str | None
    has_secret: bool
    tls_verify: bool
    ca_certificate: str | None
    max_concurrency: int
    description: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MirrorPolicyRecord:
    id: int
    direction: Direction
    repository_id: int  # the local repository (push: the source; pull: the destination)
    repository: str
    remote_id: int
    remote: str  # the remote's name
    remote_repository: str
    enabled: bool
    rules: tuple[Mapping[str, Any], ...] | None  # at most one of rules and expression
    expression: str | None
    tag_template: str
    needs: frozenset[str]  # policies.interfaces.Need values the rules read
    propagate_deletes: bool
    with_referrers: bool
    poll_interval_seconds: int | None  # pull only
    has_webhook_secret: bool  # pull only: the webhook endpoint takes this policy's secret
    next_poll_at: datetime | None
    revision: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_run_id: int | None
    last_run_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class CurrentTransfer:
    """The blob a run moves right now."""

    tag: str
    digest: str
    bytes_done: int
    bytes_total: int


@dataclass(frozen=True, slots=True)
class MirrorRunRecord:
    id: int
    policy_id: int
    trigger: Trigger
    status: RunStatus
    job_id: int | None
    items_total: int
    items_done: int
    items_failed: int
    items_skipped: int
    bytes_moved: int
    current: CurrentTransfer | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class MirrorItemRecord:
    id: int
    policy_id: int
    tag: str  # at the source
    target_tag: str  # at the destination (the tag template rendered)
    digest: str | None  # what the destination should hold (None: delete)
    action: ItemAction
    status: ItemStatus
    synced_digest: str | None  # what it was last made to hold (kept after a delete: a tombstone)
    attempts: int
    last_error: str | None
    run_id: int | None
    bytes_moved: int
    updated_at: datetime


# --- errors ------------------------------------------------------------------------------------


class RemoteNotKnown(NotFound):
    def __init__(self, name: int | str) -> None:
        super().__init__("remote", str(name))


class MirrorPolicyNotFound(NotFound):
    def __init__(self, policy_id: int | str) -> None:
        super().__init__("mirroring policy", str(policy_id))


class MirrorRunNotFound(NotFound):
    def __init__(self, run_id: int | str) -> None:
        super().__init__("mirroring run", str(run_id))


class MirrorInvalid(Invalid):
    """A remote or policy refused at creation or update; `where` names the field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}", {"field": where})
        self.where = where
        self.reason = message


class RemoteInUse(StateConflict):
    """A remote that policies still name cannot be deleted."""

    def __init__(self, name: str, policies: int) -> None:
        super().__init__(
            f"remote {name!r} is used by {policies} mirroring "
            f"polic{'y' if policies == 1 else 'ies'}: delete them first"
        )


class HookRefused(Invalid):
    """A webhook call without the policy's secret, or for a policy that takes none. The edge
    answers 401 whatever the reason, so a caller learns nothing about the policy."""
