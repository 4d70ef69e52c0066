"""Promotion's copy: an image of one repository made an image of another, metadata only.

A promotion copies the manifest a reference names into the target repository with everything a
client pulling it there expects to find: an index's child manifests (nested ones too), every
referrer whose subject is a copied manifest (signatures, SBOMs, attestations; their own
referrers too) and the tag-fallback tags (`sha256-<hex>.sig`, `.att`, `.sbom`) that name such
artifacts for clients without the referrers API. Manifest rows are copied byte for byte (the
digests stay); blobs are linked to the target repository, never copied, so a promotion writes
no blob bytes whatever the image's size.

The walk follows manifests level by level (a few queries per level, not per manifest) and is
bounded: `MAX_LEVELS` levels of children and referrers, `MAX_MANIFESTS` manifests and
`MAX_PAYLOAD_BYTES` of new manifest bytes; an image beyond them is refused, never half copied.

The target tag is then pointed at the image. A repository with immutable tags refuses to move a
tag that names another image (the same image is fine: promotion is idempotent), and a
fallback tag the target already has for another artifact is kept (it holds the target's own
signatures). The result names what moved, with the target's domain events: MANIFEST_PUSH per
newly copied manifest and TAG_PUSH per tag moved, each with the facts a push gives (so the
target's scan on push and policies apply) and `promotion_depth`. Promoting an image to a tag
that already names it, with nothing new to copy, changes nothing and returns no event.

The SQL lives here with the logic: it is the copy's own and touches only content's tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from trustyard.content.interfaces import ManifestRecord, Repository
from trustyard.content.manifests import FACT_REPOSITORY_ID, FACT_SCAN_ON_PUSH, FACT_SCANNABLE
from trustyard.content.stores import ContentStore
from trustyard.db.tables import manifest_references, manifests, repository_blobs, tags
from trustyard.errors import ManifestUnknown, StateConflict
from trustyard.events import model as events
from trustyard.events.model import Event
from trustyard.kit.clock import utc_now
from trustyard.oci.digest import parse_digest
from trustyard.oci.manifest import parse_manifest, scannable
from trustyard.oci.names import check_tag

# The fact every event of a promotion carries: how many promotions led to this one (0: the
# first, manual or by a policy of the repository pushed to). A policy run reads it from the
# TAG_PUSH that triggered it and promotes one deeper, so a depth guard can stop a loop.
FACT_PROMOTION_DEPTH: Final = "promotion_depth"

FALLBACK_SUFFIXES: Final = (".sig", ".att", ".sbom")  # cosign's tag-fallback artifacts
MAX_LEVELS: Final = 16  # index -> child -> referrer -> referrer of referrer...
MAX_MANIFESTS: Final = 1000
MAX_PAYLOAD_BYTES: Final = 64 << 20  # manifest bytes newly copied by one promotion


class TagImmutable(StateConflict):
    """The target repository's tags are immutable and the tag names another image."""

    def __init__(self, repository: str, tag: str, current: str) -> None:
        super().__init__(
            f"tag {tag!r} of {repository} is immutable and names {current}: it cannot be moved"
        )
        self.repository = repository
        self.tag = tag
        self.current = current


class CopyTooLarge(StateConflict):
    """The image, with its children and referrers, is beyond what one promotion copies."""


@dataclass(frozen=True, slots=True)
class CopiedImage:
    """What a promotion's copy did in the target repository."""

    digest: str  # the promoted manifest
    media_type: str
    tag: str
    moved: bool  # the tag names the image now and did not before
    previous_digest: str | None  # what the tag named before (None: it did not exist)
    copied: tuple[str, ...] = ()  # manifests new in the target, in the order they were written
    linked_blobs: int = 0  # blob links added to the target (bytes are never copied)
    fallback_tags: tuple[str, ...] = ()  # sha256-<hex>.sig/.att/.sbom tags set in the target
    kept_tags: tuple[str, ...] = ()  # fallback tags the target keeps naming its own artifact
    events: tuple[Event, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything a client can see changed (a tag moved or a manifest appeared)."""
        return bool(self.events)


@dataclass(slots=True)
class _Node:
    """A manifest of the source on the walk, and the edges the copy follows from it."""

    id: int
    digest: str
    media_type: str
    size: int
    subject: str | None
    children: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    referrers: list[str] = field(default_factory=list)  # by subject, then by fallback tag


def fallback_tag_names(digest: str) -> list[str]:
    """The tags that name a manifest's tag-fallback artifacts: `sha256-<hex>.sig` ..."""
    stem = digest.replace(":", "-", 1)
    return [stem + suffix for suffix in FALLBACK_SUFFIXES]


class ManifestCopier:
    def __init__(self, store: ContentStore | None = None) -> None:
        self.store = store or ContentStore()

    def resolve(self, conn: Connection, repository: Repository, reference: str) -> ManifestRecord:
        """The manifest a tag or digest names in `repository`; ManifestUnknown otherwise."""
        if ":" in reference:
            found = self.store.get_manifest(conn, repository.name, str(parse_digest(reference)))
        else:
            found = self.store.resolve_tag(conn, repository.name, check_tag(reference))
        if found is None:
            raise ManifestUnknown(
                reference, f"{reference[:200]} is not a manifest of {repository.name}"
            )
        return found

    def copy(
        self,
        conn: Connection,
        source: Repository,
        reference: str,
        target: Repository,
        tag: str,
        *,
        actor: str | None = None,
        depth: int = 0,
    ) -> CopiedImage:
        """Copy the image `reference` names in `source` into `target` under `tag` (see the
        module's docstring), in the caller's transaction."""
        check_tag(tag)
        root = self.resolve(conn, source, reference)
        nodes, fallbacks = _walk(conn, source.id, root.digest)
        if root.digest not in nodes:  # deleted since it was resolved
            raise ManifestUnknown(
                reference, f"{reference[:200]} is not a manifest of {source.name}"
            )
        order = _order(nodes, root.digest)
        present = self.store.manifests_by_digest(conn, target.id, [n.digest for n in order])
        missing = [node for node in order if node.digest not in present]
        new_bytes = sum(node.size for node in missing)
        if new_bytes > MAX_PAYLOAD_BYTES:
            raise CopyTooLarge(
                f"{reference[:200]} brings {new_bytes} bytes of manifests to copy, more than"
                f" one promotion copies ({MAX_PAYLOAD_BYTES})"
            )
        # A TAG_PUSH of a push names its repository's id; the promotion's depth is added.
        facts = {FACT_REPOSITORY_ID: target.id, FACT_PROMOTION_DEPTH: depth}
        happened: list[Event] = []
        previous = _tag_digest(conn, target.id, tag)
        if previous is not None and previous != root.digest and target.immutable_tags:
            raise TagImmutable(target.name, tag, previous)
        written = self._insert(conn, source, target, missing)
        for node, parsed_facts in written:
            happened.append(
                events.manifest_pushed(
                    target.name,
                    node.digest,
                    node.media_type,
                    node.size,
                    actor,
                    artifact_type=parsed_facts["artifact_type"],
                    subject=node.subject,
                    facts={
                        **facts,
                        FACT_SCAN_ON_PUSH: target.scan_on_push,
                        FACT_SCANNABLE: parsed_facts["scannable"],
                    },
                )
            )
        linked = _link_blobs(conn, source.id, target.id, {b for n in order for b in n.blobs})
        moved, previous = self._point(conn, target, tag, root.digest, previous)
        if moved:
            tagged = events.tag_pushed(target.name, tag, root.digest, root.media_type, actor)
            happened.append(dataclasses.replace(tagged, facts=facts))
        set_tags, kept = self._fallback_tags(conn, target, fallbacks, nodes, actor, facts, happened)
        return CopiedImage(
            root.digest,
            root.media_type,
            tag,
            moved,
            previous,
            tuple(node.digest for node, _ in written),
            linked,
            tuple(set_tags),
            tuple(kept),
            tuple(happened),
        )

    def _insert(
        self, conn: Connection, source: Repository, target: Repository, missing: list[_Node]
    ) -> list[tuple[_Node, dict[str, Any]]]:
        """Write the missing manifests into the target (their rows and references, as a push
        would): each written one with what its event needs. One a concurrent promotion or
        push wrote first (waited for on PostgreSQL) is left to it: it sends its event."""
        if not missing:
            return []
        params = {"repository_id": source.id, "digests": [n.digest for n in missing]}
        payloads = {row.digest: bytes(row.payload) for row in conn.execute(_PAYLOADS, params)}
        if len(payloads) < len(missing):  # deleted from the source since the walk
            raise StateConflict(
                f"manifests of {source.name} were deleted during the promotion; try again"
            )
        written: list[tuple[_Node, dict[str, Any]]] = []
        for node in missing:
            payload = payloads[node.digest]
            parsed = parse_manifest(payload, node.media_type)
            record = ManifestRecord(node.digest, node.media_type, payload, node.subject)
            references = [("blob", str(d.digest)) for d in parsed.blobs if not d.foreign]
            references += [("manifest", str(d.digest)) for d in parsed.children]
            try:
                with conn.begin_nested():
                    self.store.insert_manifest(
                        conn,
                        target.id,
                        record,
                        parsed.artifact_type,
                        parsed.annotations,
                        references,
                    )
            except IntegrityError:
                continue
            written.append(
                (node, {"artifact_type": parsed.artifact_type, "scannable": scannable(parsed)})
            )
        return written

    def _point(
        self, conn: Connection, target: Repository, tag: str, digest: str, seen: str | None
    ) -> tuple[bool, str | None]:
        """Point `tag` at the copied manifest: whether it moved, and what it named before.

        `seen` is what the tag named when the copy began (its row locked on PostgreSQL). A tag
        seen missing is claimed with an insert that does nothing when a concurrent promotion or
        push made it first; that one's tag then decides, as if seen: the same image is no move,
        another one is refused by an immutable repository and replaced by any other."""
        manifest_id = self._target_manifest(conn, target, digest)
        previous = seen
        if previous is None:
            if _claim_tag(conn, target.id, tag, manifest_id):
                return True, None
            previous = _tag_digest(conn, target.id, tag)  # committed by the concurrent one
        if previous == digest:
            return False, previous
        if previous is not None and target.immutable_tags:
            raise TagImmutable(target.name, tag, previous)
        self.store.set_tag(conn, target.id, tag, manifest_id)
        return True, previous

    def _target_manifest(self, conn: Connection, target: Repository, digest: str) -> int:
        manifest_id = self.store.manifest_id(conn, target.id, digest)
        if manifest_id is None:  # in the target when the copy began, deleted since
            raise StateConflict(
                f"{digest} was deleted from {target.name} during the promotion; try again"
            )
        return manifest_id

    def _fallback_tags(
        self,
        conn: Connection,
        target: Repository,
        fallbacks: dict[str, str],
        nodes: dict[str, _Node],
        actor: str | None,
        facts: dict[str, Any],
        happened: list[Event],
    ) -> tuple[list[str], list[str]]:
        """Set the source's fallback tags of copied manifests in the target, unless the target
        has the tag naming an artifact of its own."""
        set_tags: list[str] = []
        kept: list[str] = []
        for name in sorted(fallbacks):
            digest = fallbacks[name]
            current = _tag_digest(conn, target.id, name)
            if current is None:
                manifest_id = self._target_manifest(conn, target, digest)
                if not _claim_tag(conn, target.id, name, manifest_id):
                    current = _tag_digest(conn, target.id, name)  # made concurrently
            if current == digest:
                continue
            if current is not None:
                kept.append(name)
                continue
            set_tags.append(name)
            tagged = events.tag_pushed(target.name, name, digest, nodes[digest].media_type, actor)
            happened.append(dataclasses.replace(tagged, facts=facts))
        return set_tags, kept


def _walk(
    conn: Connection, repository_id: int, root: str
) -> tuple[dict[str, _Node], dict[str, str]]:
    """Every manifest of the source the copy of `root` needs, and the fallback tags naming
    some of them (tag -> digest). Manifests an index lists that the source lacks are skipped:
    the target mirrors the source."""
    nodes: dict[str, _Node] = {}
    fallbacks: dict[str, str] = {}
    frontier = [root]
    for _ in range(MAX_LEVELS):
        params = {"repository_id": repository_id, "digests": frontier}
        found = {
            row.digest: _Node(row.id, row.digest, row.media_type, row.size, row.subject_digest)
            for row in conn.execute(_NODES, params)
        }
        if len(nodes) + len(found) > MAX_MANIFESTS:
            raise CopyTooLarge(
                f"{root} has more than {MAX_MANIFESTS} manifests with its children and referrers"
            )
        nodes.update(found)
        _follow(conn, repository_id, found, fallbacks)
        frontier = sorted(
            {d for node in found.values() for d in (*node.children, *node.referrers)} - set(nodes)
        )
        if not frontier:
            return nodes, fallbacks
    raise CopyTooLarge(f"{root} nests children and referrers more than {MAX_LEVELS} levels deep")


def _follow(
    conn: Connection, repository_id: int, found: dict[str, _Node], fallbacks: dict[str, str]
) -> None:
    """Fill in the edges of one level's manifests: children and blobs (their references),
    referrers by subject, and the manifests their fallback tags name (added to `fallbacks`)."""
    if not found:
        return
    by_id = {node.id: node for node in found.values()}
    for ref in conn.execute(_REFERENCES, {"ids": list(by_id)}):
        edges = by_id[ref.manifest_id]
        (edges.children if ref.kind == "manifest" else edges.blobs).append(ref.digest)
    params = {"repository_id": repository_id, "digests": list(found)}
    for referrer in conn.execute(_REFERRERS, params):
        found[referrer.subject_digest].referrers.append(referrer.digest)
    names = {name: digest for digest in found for name in fallback_tag_names(digest)}
    for tagged in conn.execute(
        _FALLBACK_TAGS, {"repository_id": repository_id, "names": list(names)}
    ):
        fallbacks[tagged.name] = tagged.digest
        found[names[tagged.name]].referrers.append(tagged.digest)


def _order(nodes: dict[str, _Node], root: str) -> list[_Node]:
    """Manifests in the order a client would push them: an index's children before it, an
    artifact after its subject."""
    ordered: list[_Node] = []
    seen: set[str] = set()

    def visit(digest: str) -> None:
        node = nodes.get(digest)
        if node is None or digest in seen:
            return
        seen.add(digest)
        for child in node.children:
            visit(child)
        ordered.append(node)
        for referrer in node.referrers:
            visit(referrer)

    visit(root)  # bounded: the walk found at most MAX_LEVELS levels
    return ordered


def _tag_digest(conn: Connection, repository_id: int, tag: str) -> str | None:
    """The digest a tag of the repository names, its row locked on PostgreSQL for the rest
    of the transaction (SQLite runs one writer at a time)."""
    return conn.scalar(_TAG_DIGEST, {"repository_id": repository_id, "name": tag})


def _claim_tag(conn: Connection, repository_id: int, tag: str, manifest_id: int) -> bool:
    """Create the tag naming the manifest unless it exists (a concurrent writer's, waited for
    on PostgreSQL); True when this call created it."""
    values = {
        "repository_id": repository_id,
        "name": tag,
        "manifest_id": manifest_id,
        "updated_at": utc_now(),
    }
    # RETURNING says whether a row was written (with psycopg, rowcount says -1 here).
    return conn.execute(_claim_tag_statement(conn.dialect.name), values).first() is not None


def _link_blobs(conn: Connection, source_id: int, target_id: int, digests: set[str]) -> int:
    """Link to the target the blobs the copied manifests reference that the source holds; the
    number of links added."""
    if not digests:
        return 0
    wanted = sorted(digests)
    held = set(conn.scalars(_LINKED, {"repository_id": source_id, "digests": wanted}))
    have = set(conn.scalars(_LINKED, {"repository_id": target_id, "digests": wanted}))
    adding = sorted(held - have)
    if adding:
        now = utc_now()
        rows = [{"repository_id": target_id, "digest": d, "created_at": now} for d in adding]
        conn.execute(_link_statement(conn.dialect.name), rows)
    return len(adding)


_NODES = select(
    manifests.c.id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.size,
    manifests.c.subject_digest,
).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)
_REFERENCES = select(
    manifest_references.c.manifest_id, manifest_references.c.kind, manifest_references.c.digest
).where(manifest_references.c.manifest_id.in_(bindparam("ids", expanding=True)))
_REFERRERS = select(manifests.c.digest, manifests.c.subject_digest).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.subject_digest.in_(bindparam("digests", expanding=True)),
)
_FALLBACK_TAGS = (
    select(tags.c.name, manifests.c.digest)
    .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
    .where(
        tags.c.repository_id == bindparam("repository_id"),
        tags.c.name.in_(bindparam("names", expanding=True)),
    )
)
_PAYLOADS = select(manifests.c.digest, manifests.c.payload).where(
    manifests.c.repository_id == bindparam("repository_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)
_TAG_DIGEST = (
    select(manifests.c.digest)
    .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
    .where(tags.c.repository_id == bindparam("repository_id"), tags.c.name == bindparam("name"))
    .with_for_update(of=tags)
)
_LINKED = select(repository_blobs.c.digest).where(
    repository_blobs.c.repository_id == bindparam("repository_id"),
    repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
)
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _insert_ignoring(dialect_name: str, table_name: str, key: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on `table_name` (tags or repository_blobs)."""
    statement = _STATEMENTS.get((dialect_name, table_name))
    if statement is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        table = tags if table_name == "tags" else repository_blobs
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(key))
        _STATEMENTS[(dialect_name, table_name)] = statement
    return statement


def _claim_tag_statement(dialect_name: str) -> Any:
    statement = _STATEMENTS.get((dialect_name, "tags-returning"))
    if statement is None:
        ignoring = _insert_ignoring(dialect_name, "tags", ("repository_id", "name"))
        statement = ignoring.returning(tags.c.name)
        _STATEMENTS[(dialect_name, "tags-returning")] = statement
    return statement


def _link_statement(dialect_name: str) -> Any:
    return _insert_ignoring(dialect_name, "repository_blobs", ("repository_id", "digest"))
