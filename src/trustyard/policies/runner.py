"""A policy's run over one tag (`evaluate`) or over every tag of its source (`run`).

`evaluate` is one write transaction: the policy's row locked (FOR UPDATE on PostgreSQL; one
writer on SQLite), so an edit waits for the run and the run judges by one revision; the tag
read again, and the run stops when it names another image than the one it was queued for
(that image has a job of its own); the facts the condition needs loaded and judged. Failed:
nothing happens. Pending (no scan yet): a scan is asked for when none exists; its end runs the
policy again. Passed: the image is promoted with the authority of the policy's creator, after
checking that they may still push to the target (else the policy's `last_error` says why),
and its events are published in the same transaction (the target's own policies and scan on
push react to them). A chain longer than `policies.max_depth` stops with an error.

`run` judges every tag in a read transaction and queues an `evaluate` for each tag that
passes or waits for a scan: those judge again, under the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, Engine

from trustyard.auth import audit
from trustyard.auth.access import AccessPolicy, Authenticator
from trustyard.auth.authorize import Action
from trustyard.content.interfaces import Repository
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import ManifestUnknown, NotFound
from trustyard.events.outbox import Outbox
from trustyard.events.stores import detach_dedupe_key
from trustyard.kit.clock import Clock, utc_now
from trustyard.policies.facts import FactsLoader
from trustyard.policies.interfaces import (
    Evaluation,
    Outcome,
    PolicyRecord,
    PromotionRecord,
    PromotionRefused,
    ScanRequester,
)
from trustyard.policies.promotion import PromotionService
from trustyard.policies.service import PolicyService
from trustyard.policies.templates import render
from trustyard.policies.triggers import (
    SCAN_NEEDS,
    PolicyTriggers,
    evaluate_key,
    is_fallback_tag,
    run_key,
)

log = logging.getLogger(__name__)

RUN_BATCH = 500  # tags judged at once by a run over a whole repository
# Whether a user may push to a repository: None when they may, else why not (in words).
PushCheck = Callable[[Connection, str | None, str], str | None]


class Ran(StrEnum):
    PROMOTED = "promoted"  # passed, and a tag moved
    UNCHANGED = "unchanged"  # passed; the target tag named the image already
    FAILED = "failed"  # a rule failed
    PENDING = "pending"  # waiting for a scan or its matching
    MOVED = "moved"  # the tag names another image now (or is gone): that one has its job
    GONE = "gone"  # the policy (or a repository) is gone, or disabled
    REFUSED = "refused"  # passed but could not promote: the policy's last_error says why


@dataclass(frozen=True, slots=True)
class Evaluate:
    """One `policies.evaluate` job: judge `tag` of the policy's source, which named `digest`
    when the job was queued."""

    policy_id: int
    tag: str
    digest: str
    trigger: str
    depth: int  # the promotion this would be in its chain (1: of an image pushed by hand)
    actor: str | None  # who pushed (the promotion's record and events name them)


@dataclass(frozen=True, slots=True)
class Verdict:
    ran: Ran
    evaluation: Evaluation | None = None
    detail: str | None = None


class _Moved(Exception):
    """The copy found the tag naming another image than the one judged."""


class CreatorCheck:
    """With accounts on: may the policy's creator (still) push to the target?"""

    def __init__(self, authenticator: Authenticator, access: AccessPolicy) -> None:
        self.authenticator = authenticator
        self.access = access

    def __call__(self, conn: Connection, user: str | None, target: str) -> str | None:
        if user is None:
            return "the policy has no creator whose authority it could promote with"
        try:
            principal = self.authenticator.load_principal(conn, user)
        except NotFound:
            return f"the policy's creator {user!r} no longer exists or is deactivated"
        if not self.access.may(conn, principal, Action.PUSH, target):
            return f"the policy's creator {user!r} may no longer push to {target!r}"
        return None


class PolicyRunner:
    def __init__(
        self,
        engine: Engine,
        service: PolicyService,
        loader: FactsLoader,
        promotions: PromotionService,
        outbox: Outbox,
        triggers: PolicyTriggers,
        *,
        max_depth: int,
        requester: ScanRequester | None = None,
        may_push: PushCheck | None = None,
        content: ContentStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.service = service
        self.store = service.store
        self.loader = loader
        self.promotions = promotions
        self.outbox = outbox
        self.triggers = triggers
        self.max_depth = max_depth
        self.requester = requester
        self.may_push = may_push
        self.content = content or ContentStore()
        self.clock = clock

    # --- one tag -----------------------------------------------------------------------------
    def evaluate(self, request: Evaluate, job_id: int | None = None) -> Verdict:
        """One write transaction (a push shares SQLite's writer with it: one, not two). It
        first gives up the job's dedupe key, so a push of the same image that commits from now
        on queues a job of its own (on PostgreSQL, one enqueuing meanwhile waits for this
        transaction, then finds the key free)."""
        try:
            with write_tx(self.engine) as conn:
                if job_id is not None:
                    key = evaluate_key(request.policy_id, request.tag, request.digest)
                    detach_dedupe_key(conn, job_id, key)
                return self._evaluate(conn, request)
        except _Moved:
            return Verdict(Ran.MOVED)

    def _evaluate(self, conn: Connection, request: Evaluate) -> Verdict:
        policy = self.store.lock(conn, request.policy_id)
        repositories = self._repositories(conn, policy)
        if policy is None or repositories is None:
            return Verdict(Ran.GONE)
        source, target = repositories
        where = f"{source.name}:{request.tag}"
        if request.depth > self.max_depth:
            error = (
                f"stopped before promoting {where}: it would be promotion number "
                f"{request.depth} of one chain, past policies.max_depth ({self.max_depth})"
            )
            log.warning("policy %d: %s", policy.id, error)
            self.store.record_run(conn, policy.id, error=error)
            return Verdict(Ran.REFUSED, detail=error)
        condition = self.service.compiled(policy)
        now = self.clock()
        facts = self.loader.tag(conn, source, request.tag, condition.needs, now)
        if facts is None or facts.digest != request.digest:
            return Verdict(Ran.MOVED)
        evaluation = condition.evaluate(facts, now)
        if evaluation.outcome is Outcome.FAILED:
            return Verdict(Ran.FAILED, evaluation)
        if evaluation.outcome is Outcome.PENDING:
            if self.requester is not None and condition.needs & SCAN_NEEDS:
                self.requester.request(conn, source.id, request.digest)
            return Verdict(Ran.PENDING, evaluation)
        refusal = self.may_push(conn, policy.created_by, target.name) if self.may_push else None
        if refusal is not None:
            return self._refused(conn, policy, where, refusal, evaluation)
        try:
            tag = render(policy.tag_template, request.tag, request.digest, now)
            with conn.begin_nested():
                result = self.promotions.promote(
                    conn,
                    source,
                    request.tag,
                    target,
                    tag,
                    actor=request.actor,
                    promoted_as=policy.created_by,
                    policy=policy,
                    trigger=request.trigger,
                    depth=request.depth,
                )
                if result.copy is not None and result.copy.digest != request.digest:
                    raise _Moved
        except PromotionRefused as refused:
            return self._refused(conn, policy, where, refused.message, evaluation)
        except ManifestUnknown:
            return Verdict(Ran.MOVED)
        self.outbox.publish(conn, *result.events)
        if result.record is not None:
            _audit(conn, policy, result.record, target)
        self.store.record_run(conn, policy.id, promoted_at=now if result.moved else None)
        return Verdict(Ran.PROMOTED if result.moved else Ran.UNCHANGED, evaluation)

    def _refused(
        self,
        conn: Connection,
        policy: PolicyRecord,
        where: str,
        reason: str,
        evaluation: Evaluation,
    ) -> Verdict:
        error = f"could not promote {where}: {reason}"
        log.warning("policy %d: %s", policy.id, error)
        self.store.record_run(conn, policy.id, error=error)
        return Verdict(Ran.REFUSED, evaluation, error)

    def _repositories(
        self, conn: Connection, policy: PolicyRecord | None
    ) -> tuple[Repository, Repository] | None:
        if policy is None or not policy.enabled:
            return None
        source = self.content.repository_record(conn, policy.source_repository)
        target = self.content.repository_record(conn, policy.target_repository)
        if source is None or target is None:
            return None
        return source, target

    # --- every tag ---------------------------------------------------------------------------
    def run(self, policy_id: int, trigger: str, job_id: int | None = None) -> int:
        """Judge every tag of the policy's source; queue an `evaluate` for each one that
        passes or waits for a scan. Returns how many were queued."""
        if job_id is not None:
            with write_tx(self.engine) as conn:
                detach_dedupe_key(conn, job_id, run_key(policy_id))
        now = self.clock()
        chosen: list[tuple[datetime, str, str]] = []
        with read_tx(self.engine) as conn:
            policy = self.store.get(conn, policy_id)
            repositories = self._repositories(conn, policy)
            if policy is None or repositories is None:
                return 0
            condition = self.service.compiled(policy)
            names = [
                name
                for name in self.loader.images.tag_list(conn, repositories[0].id)
                if not is_fallback_tag(name)
            ]
            for start in range(0, len(names), RUN_BATCH):  # bounded memory, whatever the size
                batch = names[start : start + RUN_BATCH]
                images = self.loader.tags(conn, repositories[0], condition.needs, batch, now)
                chosen += [
                    (facts.pushed_at or now, facts.tag, facts.digest)
                    for facts in images
                    if facts.tag is not None
                    and condition.evaluate(facts, now).outcome is not Outcome.FAILED
                ]
        if not chosen:
            return 0
        with write_tx(self.engine) as conn:
            for _, tag, digest in sorted(chosen):  # the least recently pushed first
                self.triggers.enqueue(
                    conn, policy, tag, digest, trigger=trigger, depth=1, actor=policy.created_by
                )
        return len(chosen)


def _audit(
    conn: Connection, policy: PolicyRecord, record: PromotionRecord, target: Repository
) -> None:
    """A policy's promotion in the audit log, as its creator (whose rights it promotes with),
    in the promotion's transaction, like a manual one (api/promotions.py)."""
    creator = policy.created_by or ""
    audit.record(
        conn,
        audit.AuditEvent(
            record.created_at,
            creator,
            "robot" if "+" in creator else "user",
            "manifest.promote",
            "repository",
            target.name,
            "ok",
            None,
            target.namespace,
            {
                "promotion": record.id,
                "source": record.source_repository,
                "reference": record.source_reference,
                "digest": record.digest,
                "tag": record.target_tag,
                "previous_digest": record.previous_digest,
                "policy": policy.id,
                "trigger": record.trigger,
                "pushed_by": record.actor,
            },
        ),
    )
