"""When promotion policies run: an outbox consumer in the publishing transaction, so the job
of a policy exists exactly when the change that calls for it commits.

- TAG_PUSH into a repository with enabled policies: a `policies.evaluate` job per policy for
  the tag (not for cosign's tag-fallback tags `sha256-<hex>.sig/.att/.sbom`, which are
  artifacts of an image, promoted with it). A policy that needs the scan (components,
  vulnerability counts) is left to the scan's end when the push itself queued a scan of the
  image (a new image in a repository that scans on push); otherwise it runs now, and asks for
  a scan if none exists. The depth of a promoted image's push is carried by the event, so
  chains are counted.
- SCAN_COMPLETED: the policies needing the scan or vulnerability counts (matching happens in
  the scan's transaction, before this consumer), for every tag naming the scanned manifest;
  VULNERABILITY_FOUND / _RESOLVED (a database update re-matched the image): the policies
  needing vulnerability counts, for the tags the event names.
- `counts_changed`: a triage decision changed counts (of one image, a repository, or an
  organization's repositories); `initial`: a whole repository's tags now (a policy's
  `initialEvaluation`, an on-demand run).

One live job per (policy, tag, digest) (the dedupe key): a second push of the same image
adds nothing while the first job waits, and a push of another image gets its own job (the
first then finds that its tag moved, and stops).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection

from trustyard.content.images import ImageReads
from trustyard.content.manifests import FACT_REPOSITORY_ID, FACT_SCAN_ON_PUSH, FACT_SCANNABLE
from trustyard.content.promotion import FACT_PROMOTION_DEPTH
from trustyard.content.stores import ContentStore
from trustyard.events.model import Event, EventType
from trustyard.jobs.queue import SqlJobQueue
from trustyard.policies.interfaces import Need, PolicyRecord
from trustyard.policies.promotion import PromotionStore
from trustyard.policies.stores import PolicyStore

EVALUATE_KIND: Final = "policies.evaluate"
RUN_KIND: Final = "policies.run"
PUSH_KIND: Final = "policies.push"
SCAN_NEEDS: Final = frozenset({Need.SCAN, Need.VULNERABILITIES})
_FALLBACK = re.compile(r"sha256-[0-9a-f]{64}\..+")


def evaluate_key(policy_id: int, tag: str, digest: str) -> str:
    return f"{EVALUATE_KIND}:{policy_id}:{digest}:{tag}"


def push_key(repository_id: int, tag: str, digest: str) -> str:
    return f"{PUSH_KIND}:{repository_id}:{digest}:{tag}"


def run_key(policy_id: int) -> str:
    return f"{RUN_KIND}:{policy_id}"


def is_fallback_tag(tag: str) -> bool:
    """A cosign tag-fallback artifact's tag (`sha256-<hex>.sig`, `.att`, `.sbom`...)."""
    return _FALLBACK.fullmatch(tag) is not None


class PolicyTriggers:
    """See the module's docstring. `scan_on_push`: scanning is on, so a push that says its
    image will be scanned is followed by a SCAN_COMPLETED."""

    def __init__(
        self,
        queue: SqlJobQueue,
        images: ImageReads,
        store: PolicyStore | None = None,
        content: ContentStore | None = None,
        promotions: PromotionStore | None = None,
        *,
        scan_on_push: bool = True,
    ) -> None:
        self.queue = queue
        self.store = store or PolicyStore()
        self.content = content or ContentStore()
        self.images = images
        self.promotions = promotions or PromotionStore()
        self.scan_on_push = scan_on_push

    # --- the outbox consumer -------------------------------------------------------------------
    def consume(self, conn: Connection, events: Sequence[Event]) -> None:
        scanning = self._scanning(events)
        for event in events:
            if event.repository is None:
                continue
            if event.type is EventType.TAG_PUSH:
                self._pushed(conn, event, scanning)
            elif event.type is EventType.SCAN_COMPLETED:  # matched in the same transaction
                digest = str(event.contents["digest"])
                self._changed(conn, event.repository, digest, None, SCAN_NEEDS, "scan")
            elif event.type in (EventType.VULNERABILITY_FOUND, EventType.VULNERABILITY_RESOLVED):
                digest = str(event.contents["digest"])
                named = [str(t) for t in event.contents.get("tags") or ()]
                wanted = frozenset({Need.VULNERABILITIES})
                self._changed(conn, event.repository, digest, named, wanted, "vulnerabilities")

    def _scanning(self, events: Sequence[Event]) -> set[tuple[str | None, str]]:
        """The (repository, digest) of the images this batch of events queued a scan of."""
        if not self.scan_on_push:
            return set()
        return {
            (event.repository, str(event.contents["digest"]))
            for event in events
            if event.type is EventType.MANIFEST_PUSH
            and event.facts.get(FACT_SCAN_ON_PUSH)
            and event.facts.get(FACT_SCANNABLE)
        }

    def _pushed(
        self, conn: Connection, event: Event, scanning: set[tuple[str | None, str]]
    ) -> None:
        tag, digest = str(event.contents["tag"]), str(event.contents["digest"])
        if is_fallback_tag(tag):
            return
        repository_id = self._repository_id(conn, event)
        if repository_id is None:
            return
        policies = self.store.enabled_needs(conn, repository_id)
        if not policies:
            return
        depth = _depth(event.facts) + 1
        scan_coming = (event.repository, digest) in scanning
        chosen = [
            policy_id
            for policy_id, needs in policies
            if not (scan_coming and needs & SCAN_NEEDS)  # else the scan's end runs it
        ]
        if not chosen:
            return
        # One job for the push, whatever the number of policies: the worker splits it into
        # an evaluation per policy (`fan_out`), off the push's transaction.
        payload = _payload(0, tag, digest, "push", depth, event.actor)
        del payload["policy_id"]
        payload |= {"repository_id": repository_id, "policy_ids": chosen}
        self.queue.enqueue(
            conn, PUSH_KIND, payload, dedupe_key=push_key(repository_id, tag, digest)
        )

    def fan_out(self, conn: Connection, payload: Mapping[str, Any]) -> int:
        """A push's job split into a `policies.evaluate` per policy it names (one statement;
        an evaluation already queued for the same policy, tag and image is not added).
        Returns how many were asked for."""
        ids, tag, digest = payload.get("policy_ids"), payload.get("tag"), payload.get("digest")
        depth, actor = payload.get("depth"), payload.get("actor")
        if (
            not isinstance(ids, list)
            or not all(isinstance(i, int) for i in ids)
            or not isinstance(tag, str)
            or not isinstance(digest, str)
            or not isinstance(depth, int)
            or not (actor is None or isinstance(actor, str))
        ):
            raise ValueError(f"{PUSH_KIND} needs policy_ids, tag, digest, depth and actor")
        self.queue.enqueue_many(
            conn,
            EVALUATE_KIND,
            [
                (_payload(i, tag, digest, "push", depth, actor), evaluate_key(i, tag, digest))
                for i in ids
            ],
        )
        return len(ids)

    def _changed(
        self,
        conn: Connection,
        repository: str,
        digest: str,
        named: Sequence[str] | None,
        wanted: frozenset[Need],
        trigger: str,
    ) -> None:
        repository_id = self.content.repository_id(conn, repository)
        if repository_id is None:
            return
        policies = [
            policy
            for policy in self.store.of_source(conn, repository_id, enabled=True)
            if policy.needs & wanted
        ]
        if not policies:
            return
        found = self._tags_of(conn, repository_id, digest)
        tags = [tag for tag in found if named is None or tag in named]
        depth = self._arrival_depth(conn, repository, repository_id, digest) + 1
        for policy in policies:
            for tag in tags:
                self.enqueue(conn, policy, tag, digest, trigger=trigger, depth=depth, actor=None)

    # --- asked by other code ------------------------------------------------------------------
    def counts_changed(
        self,
        conn: Connection,
        *,
        repository_id: int | None = None,
        namespace: str | None = None,
        digest: str | None = None,
        trigger: str = "triage",
    ) -> int:
        """A triage decision changed vulnerability counts, in the caller's transaction: of
        the image `digest` of the repository, of the whole repository (no digest), or of
        every repository of `namespace` (an organization's decision). The policies needing
        counts run again: for the image's tags, or over every tag. Returns how many jobs.
        (`trigger` "vulnerabilities": the image was matched again after its match failed.)"""
        if repository_id is not None:
            policies = self.store.of_source(conn, repository_id, enabled=True)
        elif namespace is not None:
            policies = self.store.enabled_in_namespace(conn, namespace)
        else:
            return 0
        made = 0
        for policy in policies:
            if Need.VULNERABILITIES not in policy.needs:
                continue
            if digest is None:
                self.initial(conn, policy, trigger=trigger)
                made += 1
                continue
            source = policy.source_repository_id
            for tag in self._tags_of(conn, source, digest):
                self.enqueue(conn, policy, tag, digest, trigger=trigger, depth=1, actor=None)
                made += 1
        return made

    def initial(self, conn: Connection, policy: PolicyRecord, *, trigger: str = "initial") -> int:
        """Judge every tag of the policy's source now (its `initialEvaluation`; `demand` for
        an on-demand run, `triage` after a repository's decision): a `policies.run` job,
        which queues an evaluation of each tag that passes or waits for a scan. Returns the
        job's id."""
        payload = {"policy_id": policy.id, "trigger": trigger}
        return self.queue.enqueue(conn, RUN_KIND, payload, dedupe_key=run_key(policy.id)).id

    def enqueue(
        self,
        conn: Connection,
        policy: PolicyRecord,
        tag: str,
        digest: str,
        *,
        trigger: str,
        depth: int,
        actor: str | None,
    ) -> int:
        """Queue a `policies.evaluate` of the policy for `tag` naming `digest`."""
        payload = _payload(policy.id, tag, digest, trigger, depth, actor)
        key = evaluate_key(policy.id, tag, digest)
        return self.queue.enqueue(conn, EVALUATE_KIND, payload, dedupe_key=key).id

    # --- helpers -------------------------------------------------------------------------------
    def _repository_id(self, conn: Connection, event: Event) -> int | None:
        known = event.facts.get(FACT_REPOSITORY_ID)
        if isinstance(known, int):
            return known
        assert event.repository is not None
        return self.content.repository_id(conn, event.repository)

    def _tags_of(self, conn: Connection, repository_id: int, digest: str) -> list[str]:
        return [
            t for t in self.images.tag_names(conn, repository_id, digest) if not is_fallback_tag(t)
        ]

    def _arrival_depth(
        self, conn: Connection, repository: str, repository_id: int, digest: str
    ) -> int:
        """How many promotions brought the image into the repository (0: pushed there)."""
        into = [
            record.depth
            for record in self.promotions.history(conn, repository_id, digest)
            if record.target_repository == repository
        ]
        return into[-1] if into else 0


def _payload(
    policy_id: int, tag: str, digest: str, trigger: str, depth: int, actor: str | None
) -> dict[str, Any]:
    return {
        "policy_id": policy_id,
        "tag": tag,
        "digest": digest,
        "trigger": trigger,
        "depth": depth,
        "actor": actor,
    }


def _depth(facts: Mapping[str, Any]) -> int:
    value = facts.get(FACT_PROMOTION_DEPTH)
    return value if isinstance(value, int) and value >= 0 else 0
