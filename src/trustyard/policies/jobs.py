"""The jobs of promotion policies (queued by `triggers.py`, run by `runner.py`):

- `policies.push` {repository_id, tag, digest, depth, actor, policy_ids}: what a push
  queues in its transaction (one job, whatever the number of policies), split here into a
  `policies.evaluate` per policy;
- `policies.evaluate` {policy_id, tag, digest, trigger, depth, actor}: judge one tag and
  promote it when it passes;
- `policies.run` {policy_id, trigger}: judge every tag of the policy's source and queue an
  evaluation of each that passes or waits for a scan (initial evaluation, on demand, after a
  repository's triage decision).

Both are idempotent: judging again finds the same verdict, and promoting an image a tag
already names moves nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from trustyard.db.engine import write_tx
from trustyard.jobs.interfaces import JobContext, PermanentJobError
from trustyard.policies.promotion import TRIGGERS
from trustyard.policies.runner import Evaluate, PolicyRunner
from trustyard.policies.triggers import EVALUATE_KIND, PUSH_KIND, RUN_KIND, PolicyTriggers

log = logging.getLogger(__name__)

__all__ = ["EVALUATE_KIND", "PUSH_KIND", "RUN_KIND", "EvaluatePolicy", "PushPolicies", "RunPolicy"]


class PushPolicies:
    """`policies.push`: a push's evaluations queued, one per policy (in one transaction)."""

    def __init__(self, engine: Engine, triggers: PolicyTriggers) -> None:
        self.engine = engine
        self.triggers = triggers

    def __call__(self, job: JobContext) -> None:
        try:
            with write_tx(self.engine) as conn:
                self.triggers.fan_out(conn, job.payload)
        except ValueError as bad:
            raise PermanentJobError(str(bad)) from None


def _request(job: JobContext) -> Evaluate:
    payload = job.payload
    policy_id, tag, digest = payload.get("policy_id"), payload.get("tag"), payload.get("digest")
    trigger, depth, actor = payload.get("trigger"), payload.get("depth"), payload.get("actor")
    if (
        not isinstance(policy_id, int)
        or not isinstance(tag, str)
        or not isinstance(digest, str)
        or trigger not in TRIGGERS
        or not isinstance(depth, int)
        or not (actor is None or isinstance(actor, str))
    ):
        raise PermanentJobError(
            f"{EVALUATE_KIND} needs policy_id, tag, digest, a known trigger, depth and actor"
        )
    assert isinstance(trigger, str)
    return Evaluate(policy_id, tag, digest, trigger, depth, actor)


class EvaluatePolicy:
    def __init__(self, runner: PolicyRunner) -> None:
        self.runner = runner

    def __call__(self, job: JobContext) -> None:
        request = _request(job)
        verdict = self.runner.evaluate(request, job.id)
        log.info(
            "policy %d on %s (%s, %s): %s",
            request.policy_id,
            request.tag,
            request.digest,
            request.trigger,
            verdict.ran,
        )


class RunPolicy:
    def __init__(self, runner: PolicyRunner) -> None:
        self.runner = runner

    def __call__(self, job: JobContext) -> None:
        policy_id, trigger = job.payload.get("policy_id"), job.payload.get("trigger")
        if (
            not isinstance(policy_id, int)
            or not isinstance(trigger, str)
            or trigger not in TRIGGERS
        ):
            raise PermanentJobError(f"{RUN_KIND} needs policy_id and a known trigger")
        queued = self.runner.run(policy_id, trigger, job.id)
        log.info("policy %d (%s): %d tags to evaluate", policy_id, trigger, queued)
