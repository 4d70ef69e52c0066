"""What the policy engine evaluates, what it answers, and the errors it raises.

The engine is pure: it judges `ImageFacts` (everything a rule may read of one image) and
returns an `Evaluation` saying which rule passed or failed and why. Facts are gathered by
`facts.py` through the Protocols below, which the composition root fills with the other
feature domains' services (scanning's BOMs, vulnerabilities' counts after triage, the
ecosystems' version orders): features never import each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection

from trustyard.errors import Invalid, NotFound, StateConflict

# --- facts --------------------------------------------------------------------------------------


class Need(StrEnum):
    """Facts beyond the manifest and its tags that a rule reads (loading them costs more)."""

    CONFIG = "config"  # labels, created time (the image config blob)
    SCAN = "scan"  # BOM components, their versions and licences (a finished scan)
    VULNERABILITIES = "vulnerabilities"  # counts after triage (a matched scan)


class ComponentFact(NamedTuple):
    """One component of the image's BOM (every platform of an index). A named tuple, not a
    dataclass: a repository's worth of BOMs makes hundreds of thousands of them at once, and
    a tuple is built (and shared, being its own key) several times faster."""

    ecosystem: str  # the BOM's: deb, apk, rpm, pypi, npm, golang, ...
    name: str
    version: str
    licenses: tuple[str, ...] = ()
    purl: str = ""


@dataclass(frozen=True, slots=True)
class VulnCounts:
    """DTR's buckets, after triage (suppressed findings left out)."""

    critical: int = 0
    major: int = 0
    minor: int = 0
    unknown: int = 0

    @property
    def all(self) -> int:
        return self.critical + self.major + self.minor + self.unknown


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """Everything a rule may read of one image, as one tag (or digest) of one repository.

    A fact group a policy does not need may be left unloaded: `components` None means "not
    loaded or not scanned yet", `vulnerabilities` None "not loaded or not matched yet"; a rule
    that needs a missing group makes the evaluation `pending`, never failed."""

    repository: str
    digest: str
    media_type: str
    tag: str | None  # the tag under evaluation; None when judged by digest
    tags: tuple[str, ...] = ()  # every tag naming the manifest in its repository
    size: int = 0  # what a pull may download (manifest, config, layers; an index's children)
    pushed_at: datetime | None = None  # when the tag (or, by digest, the manifest) was pushed
    created_at: datetime | None = None  # the image config's `created` (Need.CONFIG)
    labels: Mapping[str, str] = field(default_factory=dict)  # config labels (Need.CONFIG)
    platforms: tuple[str, ...] = ()  # os/arch[/variant]
    components: tuple[ComponentFact, ...] | None = None  # Need.SCAN
    vulnerabilities: VulnCounts | None = None  # Need.VULNERABILITIES
    signatures: tuple[str, ...] = ()  # verified signers (issue 14); empty until signing exists


class VersionOrder(Protocol):
    """Compares two versions of a component under its ecosystem's own order (the BOM's
    ecosystem name: deb, pypi, npm, golang...): <0, 0, >0, or None when the ecosystem has no
    known order or a version does not parse in it."""

    def __call__(self, ecosystem: str, a: str, b: str) -> int | None: ...


# --- results ------------------------------------------------------------------------------------


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"  # a fact the policy needs is not there yet (no scan, not matched)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's verdict: `passed` None when its facts are missing (pending)."""

    index: int  # its place in the policy's list (0-based); 0 for an expression
    rule: Mapping[str, Any]  # the rule as stored ({field, operator, values} or {expression})
    passed: bool | None
    reason: str  # human words: "tag 'v1.2-stable' ends with 'stable'"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A whole policy's verdict over one image: passed when every rule passed."""

    outcome: Outcome
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @classmethod
    def of(cls, results: Sequence[RuleResult]) -> Evaluation:
        if any(r.passed is False for r in results):
            outcome = Outcome.FAILED
        elif any(r.passed is None for r in results):
            outcome = Outcome.PENDING
        else:
            outcome = Outcome.PASSED
        return cls(outcome, tuple(results))


class Condition(Protocol):
    """A compiled rule list or CEL expression: what it needs, and its verdict on facts."""

    @property
    def needs(self) -> frozenset[Need]: ...

    def evaluate(self, facts: ImageFacts, now: datetime) -> Evaluation: ...


# --- errors -------------------------------------------------------------------------------------


class PolicyInvalid(Invalid):
    """A rule, expression or tag template that cannot be evaluated: refused at creation.
    `where` points at it (`rules[2].values`, `expression`, `tagTemplate`)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.reason = message


class PolicyNotFound(NotFound):
    def __init__(self, policy_id: int | str) -> None:
        super().__init__("promotion policy", str(policy_id))


class PromotionCycle(PolicyInvalid):
    """The policy would close a loop of promotions (a -> b -> ... -> a)."""

    def __init__(self, path: Sequence[str]) -> None:
        super().__init__(
            "targetRepository", "this policy would close a promotion cycle: " + " -> ".join(path)
        )
        self.path = tuple(path)


class PromotionRefused(StateConflict):
    """A promotion that cannot happen as asked (the target tag is immutable and names another
    image, the source is not a manifest of the source repository...)."""


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    id: int
    source_repository_id: int
    source_repository: str
    target_repository_id: int
    target_repository: str
    enabled: bool
    rules: tuple[Mapping[str, Any], ...] | None  # exactly one of rules and expression
    expression: str | None
    tag_template: str
    needs: frozenset[Need]
    revision: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_promoted_at: datetime | None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """One promotion that moved a tag: also a line of the promoted image's history."""

    id: int
    target_repository: str
    target_tag: str
    digest: str
    source_repository: str
    source_reference: str
    policy_id: int | None
    policy_revision: int | None
    trigger: str  # manual | push | scan | vulnerabilities | triage | demand | initial
    depth: int
    actor: str | None
    promoted_as: str | None
    previous_digest: str | None
    created_at: datetime


# --- what the composition root hands the facts loader ------------------------------------------


class ComponentSource(Protocol):
    """The BOM components of each manifest's latest finished scan (scanning), for many
    manifests of one repository at once; a manifest without a succeeded scan is absent."""

    def components(
        self, conn: Connection, repository_id: int, digests: Sequence[str]
    ) -> Mapping[str, Sequence[ComponentFact]]: ...


class CountSource(Protocol):
    """Vulnerability counts after triage (vulnerabilities) of each manifest's latest matched
    scan, for many manifests of one repository at once; a manifest never matched is absent."""

    def counts(
        self,
        conn: Connection,
        repository_id: int,
        namespace: str,
        digests: Sequence[str],
        now: datetime,
    ) -> Mapping[str, VulnCounts]: ...


class ScanRequester(Protocol):
    """Queues a scan of a manifest that a policy needs scanned (scanning), unless one is
    queued, running or done; True when it queued one."""

    def request(self, conn: Connection, repository_id: int, digest: str) -> bool: ...
