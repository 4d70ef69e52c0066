"""Domain events: what happened in the registry, as typed, transport-free records.

Core domains decide them (a push returns the events it implies) and the edges publish them
through `trustyard.events.outbox.Outbox`, in the transaction of the change. Feature domains react
to them as consumers, registered by the composition root in one of two places: in the
publishing transaction (cheap reactions that must commit with the change: scanning queues its
scan of a pushed image) or after commit, in outbox order, through the dispatcher job (webhooks;
promotion and mirroring later).

An event names its type (DTR's names: `TAG_PUSH`, ...), the repository it is about (None for
registry-wide events), who caused it, when, and its `contents`: the JSON object webhooks
deliver. The constructors below are the one place where each type's contents are
shaped; README's webhooks section documents them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Connection

from trustyard.kit.clock import utc_now


class EventType(StrEnum):
    TAG_PUSH = "TAG_PUSH"
    TAG_DELETE = "TAG_DELETE"
    MANIFEST_PUSH = "MANIFEST_PUSH"
    MANIFEST_PULL = "MANIFEST_PULL"
    MANIFEST_DELETE = "MANIFEST_DELETE"
    REPO_CREATED = "REPO_CREATED"
    REPO_UPDATED = "REPO_UPDATED"
    REPO_DELETED = "REPO_DELETED"
    SCAN_COMPLETED = "SCAN_COMPLETED"
    SCAN_FAILED = "SCAN_FAILED"
    VULNERABILITY_FOUND = "VULNERABILITY_FOUND"  # an image gained vulnerabilities on re-match
    VULNERABILITY_RESOLVED = "VULNERABILITY_RESOLVED"  # ... or lost some
    SCANNER_UPDATE_COMPLETED = "SCANNER_UPDATE_COMPLETED"  # the vulnerability DB was updated
    PROMOTION = "PROMOTION"  # an image was promoted into the repository (a tag moved)
    # Reserved for later issues: subscriptions may name them; nothing emits them yet.
    PUSH_MIRRORING = "PUSH_MIRRORING"
    POLL_MIRRORING = "POLL_MIRRORING"

    @property
    def dotted(self) -> str:
        """`tag.push`, `repo.created`, ...: the type's name in CloudEvents `type`."""
        return self.value.lower().replace("_", ".", 1)


EMITTED = frozenset(
    {
        EventType.TAG_PUSH,
        EventType.TAG_DELETE,
        EventType.MANIFEST_PUSH,
        EventType.MANIFEST_PULL,
        EventType.MANIFEST_DELETE,
        EventType.REPO_CREATED,
        EventType.REPO_UPDATED,
        EventType.REPO_DELETED,
        EventType.SCAN_COMPLETED,
        EventType.SCAN_FAILED,
        EventType.VULNERABILITY_FOUND,
        EventType.VULNERABILITY_RESOLVED,
        EventType.SCANNER_UPDATE_COMPLETED,
        EventType.PROMOTION,
    }
)
RESERVED = frozenset(EventType) - EMITTED
# Registry-wide events (no repository): only registry-scoped subscriptions receive them.
REGISTRY_WIDE = frozenset({EventType.SCANNER_UPDATE_COMPLETED})


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as every payload writes times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def namespace_of(repository: str) -> str:
    return repository.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    repository: str | None
    actor: str | None  # username or org+robot; None: anonymous (or an open registry)
    contents: Mapping[str, Any]
    created_at: datetime = field(default_factory=utc_now)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # stable across redeliveries
    seq: int | None = None  # the outbox row's id, once stored
    # What the deciding service knew that consumers in the publishing transaction may use
    # (ids, settings it read anyway), so that reacting costs no query. Never stored nor
    # delivered: a dispatched consumer sees an empty mapping.
    facts: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def namespace(self) -> str | None:
        return namespace_of(self.repository) if self.repository else None


class EventConsumer(Protocol):
    """Reacts to events inside a write transaction, typically by storing work and enqueueing
    jobs in it. Registered with the outbox, it runs in the publishing transaction itself
    (it must be cheap, and it commits or rolls back with the change); registered with the
    dispatcher, it sees committed events in outbox order, in the transaction that marks them
    dispatched, so each consumer sees each event once."""

    def consume(self, conn: Connection, events: Sequence[Event]) -> None: ...


# --- constructors: the contents of each type ------------------------------------------------


def _base(repository: str, actor: str | None) -> dict[str, Any]:
    return {"namespace": namespace_of(repository), "repository": repository, "author": actor}


def tag_pushed(repository: str, tag: str, digest: str, media_type: str, actor: str | None) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {
        "tag": tag,
        "digest": digest,
        "mediaType": media_type,
        "imageName": f"{repository}:{tag}",
        "pushedAt": timestamp(at),
    }
    return Event(EventType.TAG_PUSH, repository, actor, contents, at)


def tag_deleted(repository: str, tag: str, digest: str | None, actor: str | None) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {
        "tag": tag,
        "digest": digest,
        "imageName": f"{repository}:{tag}",
        "deletedAt": timestamp(at),
    }
    return Event(EventType.TAG_DELETE, repository, actor, contents, at)


def manifest_pushed(
    repository: str,
    digest: str,
    media_type: str,
    size: int,
    actor: str | None,
    *,
    artifact_type: str | None = None,
    subject: str | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {
        "digest": digest,
        "mediaType": media_type,
        "size": size,
        "artifactType": artifact_type,
        "subject": subject,
        "imageName": f"{repository}@{digest}",
        "pushedAt": timestamp(at),
    }
    return Event(EventType.MANIFEST_PUSH, repository, actor, contents, at, facts=facts or {})


def manifest_pulled(
    repository: str, reference: str, digest: str, media_type: str, actor: str | None
) -> Event:
    at = utc_now()
    by_tag = ":" not in reference
    contents = _base(repository, actor) | {
        "reference": reference,
        "tag": reference if by_tag else None,
        "digest": digest,
        "mediaType": media_type,
        "imageName": f"{repository}:{reference}" if by_tag else f"{repository}@{digest}",
        "pulledAt": timestamp(at),
    }
    return Event(EventType.MANIFEST_PULL, repository, actor, contents, at)


def manifest_deleted(repository: str, digest: str, tags: Sequence[str], actor: str | None) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {
        "digest": digest,
        "tags": sorted(tags),
        "imageName": f"{repository}@{digest}",
        "deletedAt": timestamp(at),
    }
    return Event(EventType.MANIFEST_DELETE, repository, actor, contents, at)


def repository_created(repository: str, visibility: str, by: str, actor: str | None) -> Event:
    """`by`: "push" (the first push created it) or "api"."""
    at = utc_now()
    contents = _base(repository, actor) | {
        "visibility": visibility,
        "createdBy": by,
        "createdAt": timestamp(at),
    }
    return Event(EventType.REPO_CREATED, repository, actor, contents, at)


def repository_updated(repository: str, changes: Mapping[str, Any], actor: str | None) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {"changes": dict(changes), "updatedAt": timestamp(at)}
    return Event(EventType.REPO_UPDATED, repository, actor, contents, at)


def repository_deleted(repository: str, actor: str | None) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {"deletedAt": timestamp(at)}
    return Event(EventType.REPO_DELETED, repository, actor, contents, at)


def scan_completed(
    repository: str,
    digest: str,
    platforms: Sequence[str],
    components: int,
    actor: str | None,
    facts: Mapping[str, Any] | None = None,
) -> Event:
    """A scan of a manifest finished with its bill of materials (`components`: how many,
    over every platform). The vulnerability summary stays zero until vulnerabilities are
    matched (a later issue). `facts`: the scan's id (`scan_id`), for the consumer that
    matches it in the same transaction."""
    at = utc_now()
    contents = _base(repository, actor) | {
        "digest": digest,
        "imageName": f"{repository}@{digest}",
        "platforms": list(platforms),
        "components": components,
        "scanSummary": {"critical": 0, "high": 0, "medium": 0, "low": 0},
        "completedAt": timestamp(at),
    }
    return Event(EventType.SCAN_COMPLETED, repository, actor, contents, at, facts=facts or {})


def scan_failed(repository: str, digest: str, error: str, actor: str | None) -> Event:
    at = utc_now()
    contents = _base(repository, actor) | {
        "digest": digest,
        "imageName": f"{repository}@{digest}",
        "error": error,
        "failedAt": timestamp(at),
    }
    return Event(EventType.SCAN_FAILED, repository, actor, contents, at)


MAX_LISTED = 100  # vulnerabilities listed in one event (`count` says how many in all)


def _vulnerabilities(
    event_type: EventType,
    repository: str,
    digest: str,
    tags: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    database_version: int,
    when: str,
) -> Event:
    at = utc_now()
    contents = _base(repository, None) | {
        "digest": digest,
        "imageName": f"{repository}@{digest}",
        "tags": sorted(tags),
        "databaseVersion": database_version,
        "count": len(items),
        "truncated": len(items) > MAX_LISTED,
        "vulnerabilities": [dict(item) for item in items[:MAX_LISTED]],
        when: timestamp(at),
    }
    return Event(event_type, repository, None, contents, at)


def vulnerabilities_found(
    repository: str,
    digest: str,
    tags: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    database_version: int,
) -> Event:
    """A database update gave a stored image new vulnerabilities (re-matched, not rescanned).
    `items`: `{id, aliases, bucket, score, fixed, component: {platform, ecosystem, name,
    version, purl, layer}}`, the first `MAX_LISTED` of them listed."""
    return _vulnerabilities(
        EventType.VULNERABILITY_FOUND, repository, digest, tags, items, database_version, "foundAt"
    )


def vulnerabilities_resolved(
    repository: str,
    digest: str,
    tags: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    database_version: int,
) -> Event:
    """A database update took vulnerabilities off a stored image (a record now says the
    version is not affected, or was withdrawn); `items` as for `vulnerabilities_found`."""
    return _vulnerabilities(
        EventType.VULNERABILITY_RESOLVED,
        repository,
        digest,
        tags,
        items,
        database_version,
        "resolvedAt",
    )


def scanner_update_completed(
    database_version: int, sources: Sequence[str], images: int, found: int, resolved: int
) -> Event:
    """Registry-wide: the stored images were re-matched after an update of the vulnerability
    database (`sources` the ones it changed): `images` looked at, vulnerabilities `found` and
    `resolved` over all of them."""
    at = utc_now()
    contents = {
        "database": "osv",
        "databaseVersion": database_version,
        "sources": list(sources),
        "images": images,
        "found": found,
        "resolved": resolved,
        "updatedAt": timestamp(at),
    }
    return Event(EventType.SCANNER_UPDATE_COMPLETED, None, None, contents, at)


def promotion(
    repository: str,
    tag: str,
    digest: str,
    source_repository: str,
    source_reference: str,
    actor: str | None,
    *,
    policy_id: int | None,
    trigger: str,
    at: datetime | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Event:
    """An image was promoted into `repository` (the target) under `tag`: copied from
    `source_repository`, where `source_reference` (a tag or digest) named it, by hand
    (`policy_id` None, trigger `manual`) or by a promotion policy of the source."""
    at = at or utc_now()
    contents = _base(repository, actor) | {
        "sourceRepository": source_repository,
        "sourceReference": source_reference,
        "tag": tag,
        "digest": digest,
        "imageName": f"{repository}:{tag}",
        "policyId": policy_id,
        "trigger": trigger,
        "promotedAt": timestamp(at),
    }
    return Event(EventType.PROMOTION, repository, actor, contents, at, facts=facts or {})


# --- samples (the webhook test endpoint) ------------------------------------------------------

_SAMPLE_DIGEST = "sha256:" + "0" * 64
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sample(event_type: EventType, repository: str, actor: str | None) -> Event:
    """An illustrative event of `event_type` about `repository`, for testing a receiver.
    Reserved types get the shape later issues plan for them; their contents carry
    `"sample": true`."""
    tag = "latest"
    made: Event
    match event_type:
        case EventType.TAG_PUSH:
            made = tag_pushed(repository, tag, _SAMPLE_DIGEST, _OCI_MANIFEST, actor)
        case EventType.TAG_DELETE:
            made = tag_deleted(repository, tag, _SAMPLE_DIGEST, actor)
        case EventType.MANIFEST_PUSH:
            made = manifest_pushed(repository, _SAMPLE_DIGEST, _OCI_MANIFEST, 0, actor)
        case EventType.MANIFEST_PULL:
            made = manifest_pulled(repository, tag, _SAMPLE_DIGEST, _OCI_MANIFEST, actor)
        case EventType.MANIFEST_DELETE:
            made = manifest_deleted(repository, _SAMPLE_DIGEST, [tag], actor)
        case EventType.REPO_CREATED:
            made = repository_created(repository, "private", "api", actor)
        case EventType.REPO_UPDATED:
            made = repository_updated(repository, {"description": "sample"}, actor)
        case EventType.REPO_DELETED:
            made = repository_deleted(repository, actor)
        case EventType.VULNERABILITY_FOUND | EventType.VULNERABILITY_RESOLVED:
            item = {
                "id": "GHSA-0000-0000-0000",
                "aliases": ["CVE-0000-0000"],
                "bucket": "critical",
                "score": 9.8,
                "fixed": "1.2.4",
                "component": {
                    "platform": "linux/amd64",
                    "ecosystem": "pypi",
                    "name": "sample",
                    "version": "1.2.3",
                    "purl": "pkg:pypi/sample@1.2.3",
                    "layer": _SAMPLE_DIGEST,
                },
            }
            build = (
                vulnerabilities_found
                if event_type is EventType.VULNERABILITY_FOUND
                else vulnerabilities_resolved
            )
            made = build(repository, _SAMPLE_DIGEST, [tag], [item], 1)
        case EventType.SCANNER_UPDATE_COMPLETED:
            made = scanner_update_completed(1, ["sample"], 1, 1, 0)
        case EventType.PROMOTION:
            source = f"{namespace_of(repository)}/sample-dev"
            made = promotion(
                repository, tag, _SAMPLE_DIGEST, source, "1.0", actor, policy_id=1, trigger="push"
            )
        case _:
            made = _reserved_sample(event_type, repository, actor)
    return Event(
        made.type,
        None if event_type in REGISTRY_WIDE else repository,
        actor,
        {**made.contents, "sample": True},
        made.created_at,
    )


def _reserved_sample(event_type: EventType, repository: str, actor: str | None) -> Event:
    at = utc_now()
    if event_type in REGISTRY_WIDE:
        contents: dict[str, Any] = {"database": "osv", "updatedAt": timestamp(at)}
        return Event(event_type, None, actor, contents, at)
    image = _base(repository, actor) | {
        "tag": "latest",
        "digest": _SAMPLE_DIGEST,
        "imageName": f"{repository}:latest",
    }
    extras: dict[EventType, dict[str, Any]] = {
        EventType.SCAN_COMPLETED: {
            "scanSummary": {"critical": 0, "high": 0, "medium": 0, "low": 0},
            "completedAt": timestamp(at),
        },
        EventType.SCAN_FAILED: {"error": "sample failure", "failedAt": timestamp(at)},
        EventType.PUSH_MIRRORING: {
            "remote": "https://mirror.example/sample",
            "mirroredAt": timestamp(at),
        },
        EventType.POLL_MIRRORING: {
            "remote": "https://source.example/sample",
            "mirroredAt": timestamp(at),
        },
    }
    return Event(event_type, repository, actor, image | extras.get(event_type, {}), at)
