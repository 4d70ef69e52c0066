"""ManifestService on a real migrated database (SQLite and PostgreSQL): a push by tag or digest,
what it refuses (a wrong digest, a missing blob or child, a size that lies, a malformed
manifest), reads through the hot-read path, deletes by tag and by digest, indexes and their
children, subjects and referrers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.databases import migrated_engine
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.manifests import (
    FACT_REPOSITORY_ID,
    FACT_SCAN_ON_PUSH,
    FACT_SCANNABLE,
    ManifestService,
    PushedManifest,
    acceptable,
)
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import (
    DigestInvalid,
    DigestMismatch,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    TagInvalid,
)
from trustyard.events.model import EventType
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SBOM = "application/spdx+json"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


class Registry:
    """One repository of its own per test, with the blobs it pushes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = ContentStore()
        self.service = ManifestService(self.store, StoreHotReads(engine, self.store))
        self.repository = f"unit/{uuid.uuid4().hex[:10]}"

    def blob(self, data: bytes, repository: str | None = None) -> dict[str, Any]:
        """Push a blob into the repository; its descriptor."""
        digest = str(digest_bytes(data))
        with write_tx(self.engine) as conn:
            repository_id = self.store.ensure_repository(conn, repository or self.repository)
            self.store.record_blob(conn, digest, len(data))
            self.store.link_blob(conn, repository_id, digest)
        return {"digest": digest, "size": len(data)}

    def image(self, label: str, **fields: Any) -> bytes:
        config = {"mediaType": CONFIG, **self.blob(b'{"label": "%s"}' % label.encode())}
        layer = {"mediaType": LAYER, **self.blob(label.encode() * 10)}
        document = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config,
            "layers": [layer],
            **fields,
        }
        return json.dumps(document).encode()

    def put(
        self, reference: str, body: bytes, content_type: str | None = mt.OCI_MANIFEST
    ) -> PushedManifest:
        with write_tx(self.engine) as conn:
            return self.service.put(conn, self.repository, reference, body, content_type)

    def delete(self, reference: str) -> tuple[str, tuple[str, ...]]:
        with write_tx(self.engine) as conn:
            deleted = self.service.delete(conn, self.repository, reference)
        return deleted.digest, deleted.tags

    def tags(self) -> list[str]:
        return self.service.tags(self.repository, None, None).items

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[str]:
        with read_tx(self.engine) as conn:
            found = self.service.referrers(conn, self.repository, digest, artifact_type)
        return sorted(r.digest for r in found)


@pytest.fixture
def registry(engine: Engine) -> Registry:
    return Registry(engine)


def facts(pushed: PushedManifest) -> dict[str, Any]:
    """The facts of the push's MANIFEST_PUSH event (what scan on push reads)."""
    [event] = [e for e in pushed.events if e.type is EventType.MANIFEST_PUSH]
    return dict(event.facts)


def descriptor(body: bytes, media_type: str = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest_bytes(body)), "size": len(body), **extra}


# --- put and get -------------------------------------------------------------------------------


def test_a_push_by_tag_is_read_back_by_tag_and_by_digest(registry: Registry) -> None:
    body = registry.image("one")
    pushed = registry.put("v1", body)
    digest = str(digest_bytes(body))
    assert (str(pushed.digest), pushed.created) == (digest, True)
    assert not pushed.repository_created  # its blobs' push created it
    assert (pushed.media_type, pushed.size, pushed.subject) == (mt.OCI_MANIFEST, len(body), None)
    assert (facts(pushed)[FACT_SCAN_ON_PUSH], facts(pushed)[FACT_SCANNABLE]) == (True, True)
    for reference in ("v1", digest):
        record = registry.service.get(registry.repository, reference)
        assert (record.digest, record.media_type, record.payload) == (digest, mt.OCI_MANIFEST, body)
    assert registry.tags() == ["v1"]


def test_a_push_returns_the_events_it_implies_in_order(registry: Registry) -> None:
    """The outcome names what happened, for the edge to publish: the repository's creation,
    the new manifest (with the facts scan on push reads), the tag; a second push of the same
    manifest under another tag is only a tag push."""
    index = index_of()
    with write_tx(registry.engine) as conn:
        pushed = registry.service.put(conn, registry.repository, "v1", index, mt.OCI_INDEX, "ann")
        repository_id = registry.store.repository_id(conn, registry.repository)
    digest = str(digest_bytes(index))
    assert [(e.type, e.repository, e.actor) for e in pushed.events] == [
        (EventType.REPO_CREATED, registry.repository, "ann"),
        (EventType.MANIFEST_PUSH, registry.repository, "ann"),
        (EventType.TAG_PUSH, registry.repository, "ann"),
    ]
    assert pushed.events[1].contents["digest"] == digest
    assert pushed.events[2].contents["tag"] == "v1"
    assert facts(pushed) == {
        FACT_REPOSITORY_ID: repository_id,
        FACT_SCAN_ON_PUSH: True,
        FACT_SCANNABLE: False,  # an empty index holds no image
    }
    again = registry.put("v2", index, mt.OCI_INDEX)
    assert [e.type for e in again.events] == [EventType.TAG_PUSH]
    by_digest = registry.put(digest, index, mt.OCI_INDEX)
    assert by_digest.events == ()


def test_a_delete_returns_the_events_it_implies(registry: Registry) -> None:
    body = registry.image("gone")
    registry.put("a", body)
    registry.put("b", body)
    with write_tx(registry.engine) as conn:
        untagged = registry.service.delete(conn, registry.repository, "a", "ann")
    assert [(e.type, e.contents["tag"]) for e in untagged.events] == [(EventType.TAG_DELETE, "a")]
    digest = str(digest_bytes(body))
    with write_tx(registry.engine) as conn:
        deleted = registry.service.delete(conn, registry.repository, digest, "ann")
    assert [e.type for e in deleted.events] == [EventType.TAG_DELETE, EventType.MANIFEST_DELETE]
    assert deleted.events[1].contents["tags"] == ["b"]
    assert {e.actor for e in deleted.events} == {"ann"}


def test_the_first_push_into_a_repository_creates_it(registry: Registry) -> None:
    empty_index = index_of()
    pushed = registry.put("empty", empty_index, mt.OCI_INDEX)
    assert (pushed.created, pushed.repository_created, facts(pushed)[FACT_SCANNABLE]) == (
        True,
        True,
        False,
    )
    again = registry.put("empty", empty_index, mt.OCI_INDEX)
    assert (again.created, again.repository_created) == (False, False)


def test_pushing_the_same_manifest_again_creates_nothing(registry: Registry) -> None:
    body = registry.image("again")
    first = registry.put("a", body)
    second = registry.put(str(first.digest), body)
    third = registry.put("b", body)
    assert (first.created, second.created, third.created) == (True, False, False)
    assert (second.repository_created, third.repository_created) == (False, False)
    assert second.repository_id == third.repository_id == first.repository_id
    assert registry.tags() == ["a", "b"]


def test_a_tag_moves_to_the_manifest_pushed_last(registry: Registry) -> None:
    old, new = registry.image("old"), registry.image("new")
    registry.put("latest", old)
    registry.put("latest", new)
    assert registry.service.get(registry.repository, "latest").payload == new
    # The manifest it named is still there by digest.
    assert registry.service.get(registry.repository, str(digest_bytes(old))).payload == old


def test_a_push_by_digest_must_match_the_body(registry: Registry) -> None:
    body = registry.image("claimed")
    wrong = str(digest_bytes(b"something else"))
    with pytest.raises(DigestMismatch, match=f"not {wrong}"):
        registry.put(wrong, body)
    with pytest.raises(DigestInvalid):
        registry.put("sha256:short", body)


def test_a_bad_tag_is_refused_on_push_and_unknown_on_read(registry: Registry) -> None:
    body = registry.image("tagged")
    with pytest.raises(TagInvalid):
        registry.put("-bad-tag", body)
    with pytest.raises(ManifestUnknown):
        registry.service.get(registry.repository, "-bad-tag")


def test_unknown_references_and_repositories(registry: Registry) -> None:
    registry.put("v1", registry.image("there"))
    with pytest.raises(ManifestUnknown) as missing:
        registry.service.get(registry.repository, "v2")
    assert missing.value.detail == {"reference": "v2"}
    with pytest.raises(ManifestUnknown):
        registry.service.get(registry.repository, str(digest_bytes(b"never pushed")))
    with pytest.raises(ManifestUnknown):
        registry.service.get("unit/no-such-repository", "v1")
    with pytest.raises(NameUnknown):
        registry.service.tags("unit/no-such-repository", None, None)


def test_a_manifest_needs_its_blobs_in_this_repository(registry: Registry) -> None:
    elsewhere = registry.blob(b"layer in another repository", f"{registry.repository}-other")
    config = registry.blob(b"{}")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": CONFIG, **config},
            "layers": [{"mediaType": LAYER, **elsewhere}],
        }
    ).encode()
    with pytest.raises(ManifestBlobUnknown) as refused:
        registry.put("v1", body)
    assert refused.value.detail == {"digest": elsewhere["digest"]}
    with pytest.raises(ManifestUnknown):
        registry.service.get(registry.repository, "v1")


def test_a_descriptor_whose_size_lies_is_invalid(registry: Registry) -> None:
    config = registry.blob(b"{}")
    layer = registry.blob(b"twelve bytes")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": CONFIG, **config},
            "layers": [{"mediaType": LAYER, "digest": layer["digest"], "size": 13}],
        }
    ).encode()
    with pytest.raises(ManifestInvalid, match="says 13 bytes, the blob has 12"):
        registry.put("v1", body)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", mt.OCI_MANIFEST),
        (b"[]", mt.OCI_MANIFEST),
        (b'{"schemaVersion": 1}', mt.OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}).encode(), None),
    ],
    ids=["not-json", "not-an-object", "schema-1", "no-config"],
)
def test_malformed_manifests_are_invalid_and_store_nothing(
    registry: Registry, body: bytes, content_type: str | None
) -> None:
    with pytest.raises(ManifestInvalid):
        registry.put("v1", body, content_type)
    with pytest.raises(NameUnknown):  # not even the repository was created
        registry.tags()


# --- indexes -----------------------------------------------------------------------------------


def index_of(*children: bytes, **fields: Any) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            descriptor(child, platform={"os": "linux", "architecture": f"arch{i}"})
            for i, child in enumerate(children)
        ],
        **fields,
    }
    return json.dumps(document).encode()


def test_an_index_needs_its_children_pushed_first(registry: Registry) -> None:
    amd, arm = registry.image("amd64"), registry.image("arm64")
    registry.put(str(digest_bytes(amd)), amd)
    index = index_of(amd, arm)
    with pytest.raises(ManifestBlobUnknown, match="push it first") as refused:
        registry.put("multi", index, mt.OCI_INDEX)
    assert refused.value.detail == {"digest": str(digest_bytes(arm))}
    registry.put(str(digest_bytes(arm)), arm)
    pushed = registry.put("multi", index, mt.OCI_INDEX)
    assert (pushed.media_type, facts(pushed)[FACT_SCANNABLE]) == (mt.OCI_INDEX, True)
    assert registry.service.get(registry.repository, "multi").payload == index


def test_deleting_an_index_leaves_its_children(registry: Registry) -> None:
    child = registry.image("child")
    registry.put(str(digest_bytes(child)), child)
    index = index_of(child)
    registry.put("multi", index, mt.OCI_INDEX)
    assert registry.delete("multi") == (str(digest_bytes(index)), ("multi",))
    assert registry.delete(str(digest_bytes(index))) == (str(digest_bytes(index)), ())
    assert registry.service.get(registry.repository, str(digest_bytes(child))).payload == child


# --- delete ------------------------------------------------------------------------------------


def test_deleting_a_tag_keeps_the_manifest(registry: Registry) -> None:
    body = registry.image("kept")
    digest = str(digest_bytes(body))
    registry.put("a", body)
    registry.put("b", body)
    assert registry.delete("a") == (digest, ("a",))
    assert registry.tags() == ["b"]
    assert registry.service.get(registry.repository, digest).payload == body
    with pytest.raises(ManifestUnknown):
        registry.delete("a")


def test_deleting_a_manifest_by_digest_removes_every_tag_naming_it(registry: Registry) -> None:
    body = registry.image("gone")
    digest = str(digest_bytes(body))
    registry.put("x", body)
    registry.put("y", body)
    found_digest, found_tags = registry.delete(digest)
    assert (found_digest, sorted(found_tags)) == (digest, ["x", "y"])
    assert registry.tags() == []
    for reference in ("x", "y", digest):
        with pytest.raises(ManifestUnknown):
            registry.service.get(registry.repository, reference)
    with pytest.raises(ManifestUnknown):
        registry.delete(digest)


# --- subjects and referrers --------------------------------------------------------------------


def test_referrers_of_a_subject_filtered_by_artifact_type(registry: Registry) -> None:
    subject = registry.image("subject")
    subject_digest = str(digest_bytes(subject))
    registry.put("v1", subject)
    sbom = registry.image("sbom", artifactType=SBOM, subject=descriptor(subject))
    signature = registry.image(
        "signature",
        artifactType="application/vnd.dev.cosign.artifact.sig.v1+json",
        subject=descriptor(subject),
    )
    pushed = registry.put(str(digest_bytes(sbom)), sbom)
    registry.put(str(digest_bytes(signature)), signature)
    assert (pushed.subject, pushed.artifact_type, facts(pushed)[FACT_SCANNABLE]) == (
        subject_digest,
        SBOM,
        False,
    )
    assert registry.referrers(subject_digest) == sorted(
        [str(digest_bytes(sbom)), str(digest_bytes(signature))]
    )
    assert registry.referrers(subject_digest, SBOM) == [str(digest_bytes(sbom))]
    assert registry.referrers(subject_digest, "application/none") == []
    # A referrer may come before its subject, and a subject may have none.
    assert registry.referrers(str(digest_bytes(b"no subject"))) == []
    registry.delete(str(digest_bytes(sbom)))
    assert registry.referrers(subject_digest) == [str(digest_bytes(signature))]
    with pytest.raises(DigestInvalid):
        registry.referrers("not-a-digest")


# --- which stored manifests a client accepts ---------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "accept", "expected"),
    [
        (mt.OCI_MANIFEST, [], True),
        (mt.OCI_MANIFEST, [mt.OCI_MANIFEST], True),
        (mt.OCI_MANIFEST, ["*/*"], True),
        (mt.OCI_MANIFEST, ["application/*"], True),
        (mt.OCI_MANIFEST, [mt.OCI_INDEX], False),
        ("application/x-unknown", [mt.OCI_INDEX], True),
    ],
)
def test_acceptable(media_type: str, accept: list[str], expected: bool) -> None:
    assert acceptable(media_type, accept) is expected
