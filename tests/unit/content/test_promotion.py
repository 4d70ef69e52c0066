"""Promotion's copy on a real migrated database (SQLite and PostgreSQL): an index with its
children, its referrers (and theirs) and its tag-fallback signature reach the target with no
blob byte written; pulls of the target by digest and tag work through ManifestService; a
repeat changes nothing; an immutable tag naming another image refuses; the events are the
target's, with the facts scan on push reads."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.support.databases import migrated_engine
from trustyard.content import promotion as promotion_module
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.interfaces import Repository
from trustyard.content.manifests import (
    FACT_REPOSITORY_ID,
    FACT_SCAN_ON_PUSH,
    FACT_SCANNABLE,
    ManifestService,
)
from trustyard.content.promotion import (
    FACT_PROMOTION_DEPTH,
    CopiedImage,
    CopyTooLarge,
    ManifestCopier,
    TagImmutable,
    fallback_tag_names,
)
from trustyard.content.repositories import RepositoryService
from trustyard.content.stores import ContentStore
from trustyard.content.uploads import HashStates, UploadService
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import ManifestUnknown, TagInvalid
from trustyard.events.model import EventType
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.storage.filesystem import FilesystemDriver

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as engine:
        yield engine


@dataclass(frozen=True)
class Pushed:
    digest: str
    body: bytes
    blobs: tuple[str, ...] = ()


class World:
    """Repositories of their own per test, blobs written through the real upload path into a
    filesystem driver, manifests pushed through ManifestService."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.store = ContentStore()
        self.driver = FilesystemDriver(root, fsync=False)
        self.uploads = UploadService(self.store, self.driver, HashStates())
        self.manifests = ManifestService(self.store, StoreHotReads(engine, self.store))
        self.copier = ManifestCopier(self.store)
        self.prefix = f"p{uuid.uuid4().hex[:8]}"

    def repository(self, name: str, **settings: Any) -> Repository:
        service = RepositoryService(self.store)
        with write_tx(self.engine) as conn:
            made = service.create(conn, f"{self.prefix}/{name}")
            if settings:
                made = service.update(conn, made.name, **settings)
        return made

    def blob(self, repository: Repository, data: bytes) -> dict[str, Any]:
        digest, size = self.uploads.write_blob([data])
        with write_tx(self.engine) as conn:
            self.store.record_blob(conn, str(digest), size)
            self.store.link_blob(conn, repository.id, str(digest))
        return {"digest": str(digest), "size": size}

    def put(self, repository: Repository, reference: str, document: dict[str, Any]) -> Pushed:
        body = json.dumps(document).encode()
        with write_tx(self.engine) as conn:
            pushed = self.manifests.put(
                conn, repository.name, reference, body, document.get("mediaType")
            )
        blobs = [document["config"], *document["layers"]] if "config" in document else []
        return Pushed(str(pushed.digest), body, tuple(b["digest"] for b in blobs))

    def image(self, repository: Repository, label: str, tag: str | None = None) -> Pushed:
        config = {
            "mediaType": CONFIG,
            **self.blob(repository, b'{"os": "linux", "l": "%s"}' % label.encode()),
        }
        layer = {"mediaType": LAYER, **self.blob(repository, label.encode() * 100)}
        document = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        }
        body = json.dumps(document).encode()
        return self.put(repository, tag or str(digest_bytes(body)), document)

    def artifact(
        self,
        repository: Repository,
        artifact_type: str,
        content: bytes,
        subject: Pushed | None,
        reference: str | None = None,
    ) -> Pushed:
        """A referrer of `subject` (an SBOM, a signature), or without a subject a cosign
        tag-fallback artifact pushed under `reference`."""
        config = {"mediaType": EMPTY_CONFIG, **self.blob(repository, b"{}")}
        layer = {"mediaType": artifact_type, **self.blob(repository, content)}
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config,
            "layers": [layer],
        }
        if subject is not None:
            document["subject"] = {
                "mediaType": mt.OCI_MANIFEST,
                "digest": subject.digest,
                "size": len(subject.body),
            }
        body = json.dumps(document).encode()
        return self.put(repository, reference or str(digest_bytes(body)), document)

    def index(self, repository: Repository, tag: str, *children: Pushed) -> Pushed:
        document = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": child.digest,
                    "size": len(child.body),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for child, arch in zip(children, ("amd64", "arm64", "s390x"), strict=False)
            ],
        }
        return self.put(repository, tag, document)

    def copy(
        self, source: Repository, reference: str, target: Repository, tag: str, depth: int = 0
    ) -> CopiedImage:
        with write_tx(self.engine) as conn:
            return self.copier.copy(conn, source, reference, target, tag, actor="pat", depth=depth)

    def pull(self, repository: Repository, reference: str) -> bytes:
        return self.manifests.get(repository.name, reference).payload

    def referrers(self, repository: Repository, digest: str) -> set[str]:
        with read_tx(self.engine) as conn:
            found = self.manifests.referrers(conn, repository.name, digest, None)
        return {r.digest for r in found}

    def tags(self, repository: Repository) -> list[str]:
        return self.manifests.tags(repository.name, None, None).items

    def linked(self, repository: Repository, digests: set[str]) -> set[str]:
        with read_tx(self.engine) as conn:
            return {d for d in digests if self.store.repository_blob_size(conn, repository.name, d)}

    def blob_files(self) -> dict[str, tuple[int, int, int]]:
        """Every file under the driver's root: size, inode and modification time."""
        found: dict[str, tuple[int, int, int]] = {}
        for folder, _, names in os.walk(self.driver.root):
            for name in names:
                info = os.stat(os.path.join(folder, name))
                found[os.path.join(folder, name)] = (info.st_size, info.st_ino, info.st_mtime_ns)
        return found


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    return World(engine, tmp_path / "storage")


@dataclass(frozen=True)
class Signed:
    """An index of two images in `dev`, signed, with an SBOM of one image, a signature of
    that SBOM and a cosign tag-fallback signature of the index; plus what must stay behind."""

    dev: Repository
    amd64: Pushed
    arm64: Pushed
    index: Pushed
    signature: Pushed
    sbom: Pushed
    sbom_signature: Pushed
    fallback: Pushed
    fallback_tag: str
    other: Pushed
    other_signature: Pushed

    @property
    def copied(self) -> list[Pushed]:
        return [
            self.amd64,
            self.arm64,
            self.index,
            self.signature,
            self.sbom,
            self.sbom_signature,
            self.fallback,
        ]


def signed_index(world: World) -> Signed:
    dev = world.repository("dev")
    amd64, arm64 = world.image(dev, "amd64"), world.image(dev, "arm64")
    index = world.index(dev, "1.0", amd64, arm64)
    signature = world.artifact(dev, SIGNATURE, b"signature of the index", index)
    sbom = world.artifact(dev, SBOM, b'{"spdxVersion": "SPDX-2.3"}', amd64)
    sbom_signature = world.artifact(dev, SIGNATURE, b"signature of the sbom", sbom)
    fallback_tag = fallback_tag_names(index.digest)[0]
    fallback = world.artifact(dev, SIGNATURE, b"cosign fallback", None, fallback_tag)
    other = world.image(dev, "other", "2.0")
    other_signature = world.artifact(dev, SIGNATURE, b"signature of the other", other)
    return Signed(
        dev,
        amd64,
        arm64,
        index,
        signature,
        sbom,
        sbom_signature,
        fallback,
        fallback_tag,
        other,
        other_signature,
    )


# --- the copy ----------------------------------------------------------------------------------


def test_an_index_arrives_with_children_referrers_and_fallback_tag_and_no_blob_bytes(
    world: World,
) -> None:
    image = signed_index(world)
    qa = world.repository("qa")
    files = world.blob_files()

    copied = world.copy(image.dev, "1.0", qa, "1.0-qa", depth=2)

    assert world.blob_files() == files  # not a byte written, moved or touched
    assert (copied.digest, copied.tag, copied.moved, copied.previous_digest) == (
        image.index.digest,
        "1.0-qa",
        True,
        None,
    )
    assert set(copied.copied) == {m.digest for m in image.copied}
    assert copied.fallback_tags == (image.fallback_tag,)
    # Pulls of the target, by digest and by tag, serve the source's very bytes.
    for manifest in image.copied:
        assert world.pull(qa, manifest.digest) == manifest.body
    assert world.pull(qa, "1.0-qa") == image.index.body
    assert world.pull(qa, image.fallback_tag) == image.fallback.body
    assert world.tags(qa) == sorted(["1.0-qa", image.fallback_tag])
    assert world.referrers(qa, image.index.digest) == {image.signature.digest}
    assert world.referrers(qa, image.amd64.digest) == {image.sbom.digest}
    assert world.referrers(qa, image.sbom.digest) == {image.sbom_signature.digest}
    # Every blob the copied manifests name is linked (so pulls of layers work); only those.
    wanted = {blob for manifest in image.copied for blob in manifest.blobs}
    assert world.linked(qa, wanted) == wanted
    assert copied.linked_blobs == len(wanted)
    assert world.linked(qa, set(image.other.blobs) - wanted) == set()
    for gone in (image.other, image.other_signature):
        with pytest.raises(ManifestUnknown):
            world.pull(qa, gone.digest)


def test_the_events_are_the_targets_in_push_order_with_the_facts_of_a_push(
    world: World,
) -> None:
    image = signed_index(world)
    qa = world.repository("qa", scan_on_push=False)
    copied = world.copy(image.dev, image.index.digest, qa, "stable", depth=3)

    pushes = [e for e in copied.events if e.type is EventType.MANIFEST_PUSH]
    order = [e.contents["digest"] for e in pushes]
    assert sorted(order) == sorted(m.digest for m in image.copied)
    # A client's order: an index after its children, an artifact after its subject.
    assert order.index(image.amd64.digest) < order.index(image.index.digest)
    assert order.index(image.arm64.digest) < order.index(image.index.digest)
    assert order.index(image.index.digest) < order.index(image.signature.digest)
    assert order.index(image.amd64.digest) < order.index(image.sbom.digest)
    assert order.index(image.sbom.digest) < order.index(image.sbom_signature.digest)
    scannable = {image.amd64.digest, image.arm64.digest, image.index.digest}
    for event in pushes:
        assert (event.repository, event.actor) == (qa.name, "pat")
        assert dict(event.facts) == {
            FACT_REPOSITORY_ID: qa.id,
            FACT_SCAN_ON_PUSH: False,
            FACT_SCANNABLE: event.contents["digest"] in scannable,
            FACT_PROMOTION_DEPTH: 3,
        }
    signature = next(e for e in pushes if e.contents["digest"] == image.signature.digest)
    assert signature.contents["subject"] == image.index.digest
    assert signature.contents["artifactType"] == SIGNATURE
    moved = [e for e in copied.events if e.type is not EventType.MANIFEST_PUSH]
    assert [(e.type, e.contents["tag"], e.contents["digest"]) for e in moved] == [
        (EventType.TAG_PUSH, "stable", image.index.digest),
        (EventType.TAG_PUSH, image.fallback_tag, image.fallback.digest),
    ]
    assert all(dict(e.facts) == {FACT_REPOSITORY_ID: qa.id, FACT_PROMOTION_DEPTH: 3} for e in moved)
    assert moved[0].contents["imageName"] == f"{qa.name}:stable"


def test_promoting_the_same_image_again_changes_nothing(world: World) -> None:
    image = signed_index(world)
    qa = world.repository("qa")
    world.copy(image.dev, "1.0", qa, "1.0")
    files = world.blob_files()

    again = world.copy(image.dev, "1.0", qa, "1.0")

    assert (again.moved, again.copied, again.linked_blobs, again.fallback_tags) == (
        False,
        (),
        0,
        (),
    )
    assert again.events == ()
    assert not again.changed
    assert again.previous_digest == image.index.digest
    assert world.blob_files() == files


def test_a_signature_added_after_a_promotion_comes_with_the_next_one(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    image = world.image(dev, "late", "1.0")
    world.copy(dev, "1.0", qa, "1.0")
    signature = world.artifact(dev, SIGNATURE, b"signed later", image)

    again = world.copy(dev, "1.0", qa, "1.0")

    assert (again.moved, again.copied) == (False, (signature.digest,))
    assert [e.type for e in again.events] == [EventType.MANIFEST_PUSH]
    assert world.referrers(qa, image.digest) == {signature.digest}


def test_one_image_promoted_under_a_second_tag_moves_only_that_tag(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    world.image(dev, "twice", "1.0")
    world.copy(dev, "1.0", qa, "1.0")
    files = world.blob_files()

    second = world.copy(dev, "1.0", qa, "latest")

    assert (second.moved, second.copied, second.linked_blobs) == (True, (), 0)
    assert [e.type for e in second.events] == [EventType.TAG_PUSH]
    assert world.tags(qa) == ["1.0", "latest"]
    assert world.blob_files() == files


def test_a_mutable_tag_moves_and_says_what_it_named(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    first, second = world.image(dev, "first", "a"), world.image(dev, "second", "b")
    world.copy(dev, "a", qa, "stable")

    moved = world.copy(dev, "b", qa, "stable")

    assert (moved.moved, moved.previous_digest, moved.digest) == (
        True,
        first.digest,
        second.digest,
    )
    assert world.pull(qa, "stable") == second.body
    assert world.pull(qa, first.digest) == first.body  # the old image stays, untagged


def test_an_immutable_tag_naming_another_image_refuses_and_changes_nothing(
    world: World,
) -> None:
    dev = world.repository("dev")
    prod = world.repository("prod", immutable_tags=True)
    first, second = world.image(dev, "first", "a"), world.image(dev, "second", "b")
    world.copy(dev, "a", prod, "1.0")
    files = world.blob_files()

    with pytest.raises(TagImmutable) as refused:
        world.copy(dev, "b", prod, "1.0")

    assert "immutable" in refused.value.message
    assert refused.value.current == first.digest
    assert world.pull(prod, "1.0") == first.body
    with pytest.raises(ManifestUnknown):
        world.pull(prod, second.digest)  # nothing of the refused copy was kept
    assert world.blob_files() == files
    # The same image again is no move; another image under a new tag is fine.
    assert world.copy(dev, "a", prod, "1.0").events == ()
    assert world.copy(dev, "b", prod, "1.1").moved


def test_a_fallback_tag_the_target_has_for_its_own_signature_is_kept(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    image = world.image(dev, "signed twice", "1.0")
    name = fallback_tag_names(image.digest)[0]
    world.artifact(dev, SIGNATURE, b"dev's signature", None, name)
    world.copy(dev, "1.0", qa, "1.0")
    # qa signs the image itself (cosign would append to the tag's manifest: a new one).
    own = world.artifact(qa, SIGNATURE, b"qa's signature", None, name)
    newer = world.artifact(dev, SIGNATURE, b"dev's second signature", None, name)

    again = world.copy(dev, "1.0", qa, "1.0")

    assert again.kept_tags == (name,)
    assert again.copied == (newer.digest,)  # copied, but the tag keeps naming qa's
    assert world.pull(qa, name) == own.body


def test_the_target_takes_its_own_scan_on_push_setting(world: World) -> None:
    dev = world.repository("dev", scan_on_push=False)
    qa = world.repository("qa", scan_on_push=True)
    world.image(dev, "scan me", "1.0")

    copied = world.copy(dev, "1.0", qa, "1.0")

    [pushed] = [e for e in copied.events if e.type is EventType.MANIFEST_PUSH]
    assert pushed.facts[FACT_SCAN_ON_PUSH] is True
    assert pushed.facts[FACT_SCANNABLE] is True


def test_a_promotion_within_one_repository_only_tags(world: World) -> None:
    dev = world.repository("dev")
    image = world.image(dev, "retag", "1.0")
    copied = world.copy(dev, "1.0", dev, "release")
    assert (copied.moved, copied.copied, copied.linked_blobs) == (True, (), 0)
    assert world.pull(dev, "release") == image.body


# --- refusals ----------------------------------------------------------------------------------


def test_an_unknown_reference_or_a_bad_tag_is_refused(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    world.image(dev, "known", "1.0")
    with pytest.raises(ManifestUnknown):
        world.copy(dev, "nope", qa, "1.0")
    with pytest.raises(ManifestUnknown):
        world.copy(dev, "sha256:" + "ab" * 32, qa, "1.0")
    with pytest.raises(TagInvalid):
        world.copy(dev, "1.0", qa, "-bad")
    with pytest.raises(TagInvalid):
        world.copy(dev, "bad tag", qa, "1.0")
    assert world.tags(qa) == []


def test_an_image_beyond_the_bounds_is_refused_not_half_copied(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    image = world.image(dev, "deep", "1.0")
    signature = world.artifact(dev, SIGNATURE, b"level 1", image)
    world.artifact(dev, SIGNATURE, b"level 2", signature)
    monkeypatch.setattr(promotion_module, "MAX_LEVELS", 2)
    with pytest.raises(CopyTooLarge, match="levels"):
        world.copy(dev, "1.0", qa, "1.0")
    monkeypatch.setattr(promotion_module, "MAX_LEVELS", 3)
    monkeypatch.setattr(promotion_module, "MAX_MANIFESTS", 2)
    with pytest.raises(CopyTooLarge, match="manifests"):
        world.copy(dev, "1.0", qa, "1.0")
    monkeypatch.setattr(promotion_module, "MAX_MANIFESTS", 3)
    monkeypatch.setattr(promotion_module, "MAX_PAYLOAD_BYTES", 100)
    with pytest.raises(CopyTooLarge, match="bytes"):
        world.copy(dev, "1.0", qa, "1.0")
    assert world.tags(qa) == []
    monkeypatch.setattr(promotion_module, "MAX_PAYLOAD_BYTES", 1 << 20)
    assert len(world.copy(dev, "1.0", qa, "1.0").copied) == 3


# --- racing promotions (PostgreSQL: SQLite runs one writer at a time) ---------------------------


def race(world: World, first: tuple[Any, ...], second: tuple[Any, ...]) -> list[Any]:
    """Run the copy `first` in a transaction that stays open until the copy `second`, started
    in another session, waits for one of its locks; then commit. What each returned (or
    raised), in that order."""
    outcome: list[Any] = []
    pid: list[int] = []

    def other() -> None:
        try:
            with write_tx(world.engine) as conn:
                pid.append(conn.scalar(text("SELECT pg_backend_pid()")))
                outcome.append(world.copier.copy(conn, *second, actor="pat"))
        except BaseException as error:
            outcome.append(error)

    with write_tx(world.engine) as conn:
        mine = world.copier.copy(conn, *first, actor="pat")
        thread = threading.Thread(target=other)
        thread.start()
        waiting_for_a_lock(world.engine, pid)
    thread.join(timeout=60)
    assert not thread.is_alive()
    return [mine, *outcome]


def waiting_for_a_lock(engine: Engine, pid: list[int]) -> None:
    deadline = time.monotonic() + 60
    with engine.connect() as watcher:
        while True:
            if pid:
                state = watcher.scalar(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid[0]},
                )
                watcher.rollback()
                if state == "Lock":
                    return
            assert time.monotonic() < deadline, "the other promotion never waited"
            time.sleep(0.01)


def test_two_promotions_of_one_image_to_a_new_tag_at_once_move_it_once(world: World) -> None:
    if world.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    dev, qa = world.repository("dev"), world.repository("qa")
    image = world.image(dev, "raced", "1.0")
    world.artifact(dev, SIGNATURE, b"signed", image)

    first, second = race(world, (dev, "1.0", qa, "1.0"), (dev, image.digest, qa, "1.0"))

    assert isinstance(first, CopiedImage)
    assert isinstance(second, CopiedImage), second
    assert (first.moved, len(first.copied)) == (True, 2)
    assert (second.moved, second.copied, second.events) == (False, (), ())
    assert world.pull(qa, "1.0") == image.body


def test_an_immutable_tag_claimed_by_a_concurrent_promotion_refuses_the_other(
    world: World,
) -> None:
    if world.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    dev = world.repository("dev")
    prod = world.repository("prod", immutable_tags=True)
    one, two = world.image(dev, "one", "1"), world.image(dev, "two", "2")

    first, second = race(world, (dev, "1", prod, "1.0"), (dev, "2", prod, "1.0"))

    assert isinstance(first, CopiedImage)
    assert first.moved
    assert isinstance(second, TagImmutable), second
    assert second.current == one.digest
    assert world.pull(prod, "1.0") == one.body
    with pytest.raises(ManifestUnknown):
        world.pull(prod, two.digest)
