"""PromotionService on SQLite and PostgreSQL: a promotion that moves a tag writes its
`promotions` row and a PROMOTION event after the target's own events; a repeat writes neither;
refusals (an immutable tag, a template's bad tag) are PromotionRefused; the history reads both
ways; and the target's scan on push applies to what was promoted, through the outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.databases import migrated_engine
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.interfaces import Repository
from trustyard.content.manifests import ManifestService
from trustyard.content.promotion import FACT_PROMOTION_DEPTH
from trustyard.content.repositories import RepositoryService
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import jobs, promotions
from trustyard.errors import Invalid, ManifestUnknown, TagInvalid
from trustyard.events.model import EventType
from trustyard.events.outbox import Outbox
from trustyard.jobs.queue import SqlJobQueue
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.policies.interfaces import PolicyRecord, PromotionRefused
from trustyard.policies.promotion import PromotionResult, PromotionService
from trustyard.scanning.service import ScanService

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as made:
        yield made


class World:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = ContentStore()
        self.manifests = ManifestService(self.store, StoreHotReads(engine, self.store))
        self.service = PromotionService()
        self.prefix = f"s{uuid.uuid4().hex[:8]}"

    def repository(self, name: str, **settings: Any) -> Repository:
        service = RepositoryService(self.store)
        with write_tx(self.engine) as conn:
            made = service.create(conn, f"{self.prefix}/{name}")
            if settings:
                made = service.update(conn, made.name, **settings)
        return made

    def image(self, repository: Repository, label: str, tag: str) -> str:
        """An image pushed under `tag` (its blobs only recorded: no driver here); its digest."""
        descriptors = []
        with write_tx(self.engine) as conn:
            for media_type, data in (
                (CONFIG, b'{"l": "%s"}' % label.encode()),
                (LAYER, label.encode()),
            ):
                digest = str(digest_bytes(data))
                self.store.record_blob(conn, digest, len(data))
                self.store.link_blob(conn, repository.id, digest)
                descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": descriptors[0],
                    "layers": descriptors[1:],
                }
            ).encode()
            pushed = self.manifests.put(conn, repository.name, tag, body, mt.OCI_MANIFEST)
        return str(pushed.digest)

    def promote(
        self,
        source: Repository,
        reference: str,
        target: Repository,
        tag: str,
        *,
        policy: PolicyRecord | None = None,
        trigger: str = "manual",
        depth: int = 0,
        outbox: Outbox | None = None,
    ) -> PromotionResult:
        with write_tx(self.engine) as conn:
            result = self.service.promote(
                conn,
                source,
                reference,
                target,
                tag,
                actor="pat",
                promoted_as="olga" if policy else "pat",
                policy=policy,
                trigger=trigger,
                depth=depth,
            )
            if outbox is not None:
                outbox.publish(conn, *result.events)
        return result

    def rows(self, target: Repository) -> int:
        with read_tx(self.engine) as conn:
            query = select(promotions.c.id).where(promotions.c.target_repository_id == target.id)
            return len(list(conn.scalars(query)))


CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def policy_of(source: Repository, target: Repository, revision: int = 4) -> PolicyRecord:
    return PolicyRecord(
        id=7,
        source_repository_id=source.id,
        source_repository=source.name,
        target_repository_id=target.id,
        target_repository=target.name,
        enabled=True,
        rules=({"field": "tag", "operator": "sw", "values": ["1."]},),
        expression=None,
        tag_template="%n-qa",
        needs=frozenset(),
        revision=revision,
        created_by="olga",
        created_at=T0,
        updated_at=T0,
        last_promoted_at=None,
    )


def test_a_promotion_records_itself_and_ends_its_events_with_promotion(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    digest = world.image(dev, "one", "1.2")

    result = world.promote(
        dev, "1.2", qa, "1.2-qa", policy=policy_of(dev, qa), trigger="push", depth=1
    )

    record = result.record
    assert record is not None
    assert result.moved
    assert (record.target_repository, record.target_tag, record.digest) == (
        qa.name,
        "1.2-qa",
        digest,
    )
    assert (record.source_repository, record.source_reference) == (dev.name, "1.2")
    assert (record.policy_id, record.policy_revision, record.trigger, record.depth) == (
        7,
        4,
        "push",
        1,
    )
    assert (record.actor, record.promoted_as, record.previous_digest) == ("pat", "olga", None)
    assert record.id > 0
    assert [e.type for e in result.events] == [
        EventType.MANIFEST_PUSH,
        EventType.TAG_PUSH,
        EventType.PROMOTION,
    ]
    promoted = result.events[-1]
    assert promoted.repository == qa.name
    assert dict(promoted.facts) == {FACT_PROMOTION_DEPTH: 1}
    contents = dict(promoted.contents)
    promoted_at = contents.pop("promotedAt")
    assert promoted_at.endswith("Z")
    assert contents == {
        "namespace": world.prefix,
        "repository": qa.name,
        "author": "pat",
        "sourceRepository": dev.name,
        "sourceReference": "1.2",
        "tag": "1.2-qa",
        "digest": digest,
        "imageName": f"{qa.name}:1.2-qa",
        "policyId": 7,
        "trigger": "push",
    }
    with read_tx(world.engine) as conn:
        assert world.service.store.get(conn, record.id) == record


def test_the_same_promotion_again_writes_no_record_and_no_event(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    world.image(dev, "one", "1.0")
    assert world.promote(dev, "1.0", qa, "1.0").moved

    again = world.promote(dev, "1.0", qa, "1.0")

    assert (again.record, again.events) == (None, ())
    assert world.rows(qa) == 1


def test_a_moved_tag_records_what_it_named_before(world: World) -> None:
    dev, qa = world.repository("dev"), world.repository("qa")
    first, second = world.image(dev, "one", "1"), world.image(dev, "two", "2")
    world.promote(dev, "1", qa, "stable")
    moved = world.promote(dev, second, qa, "stable")
    assert moved.record is not None
    assert (moved.record.previous_digest, moved.record.source_reference) == (first, second)
    assert [e.type for e in moved.events] == [
        EventType.MANIFEST_PUSH,
        EventType.TAG_PUSH,
        EventType.PROMOTION,
    ]


def test_the_history_of_an_image_reads_promotions_into_and_out_of_a_repository(
    world: World,
) -> None:
    dev, qa, prod = (world.repository(n) for n in ("dev", "qa", "prod"))
    digest = world.image(dev, "chain", "1.0")
    other = world.image(dev, "other", "2.0")
    world.promote(dev, "1.0", qa, "1.0", trigger="manual")
    world.promote(qa, "1.0", prod, "1.0-prod", policy=policy_of(qa, prod), trigger="push", depth=1)
    world.promote(dev, "2.0", qa, "2.0")

    with read_tx(world.engine) as conn:
        in_dev = world.service.history(conn, dev.id, digest)
        in_qa = world.service.history(conn, qa.id, digest)
        in_prod = world.service.history(conn, prod.id, digest)
        of_other = world.service.history(conn, qa.id, other)
    assert [(r.source_repository, r.target_repository) for r in in_dev] == [(dev.name, qa.name)]
    assert [(r.source_repository, r.target_repository, r.target_tag) for r in in_qa] == [
        (dev.name, qa.name, "1.0"),
        (qa.name, prod.name, "1.0-prod"),
    ]
    assert [(r.policy_id, r.depth, r.promoted_as) for r in in_prod] == [(7, 1, "olga")]
    assert [r.digest for r in of_other] == [other]
    assert all(r.created_at.tzinfo is not None for r in in_qa)


def test_refusals_are_promotion_refused_or_bad_input(world: World) -> None:
    dev = world.repository("dev")
    prod = world.repository("prod", immutable_tags=True)
    world.image(dev, "one", "1")
    world.image(dev, "two", "2")
    world.promote(dev, "1", prod, "release")

    with pytest.raises(PromotionRefused, match="immutable"):
        world.promote(dev, "2", prod, "release")
    with pytest.raises(PromotionRefused, match="policy 7 made the tag"):
        world.promote(dev, "2", prod, "bad tag", policy=policy_of(dev, prod), trigger="push")
    with pytest.raises(TagInvalid):
        world.promote(dev, "2", prod, "bad tag")  # a person's typo: 400, not a refusal
    with pytest.raises(ManifestUnknown):
        world.promote(dev, "3", prod, "3")
    with pytest.raises(Invalid, match="trigger"):
        world.promote(dev, "2", prod, "2", trigger="whenever")
    with pytest.raises(Invalid, match="depth"):
        world.promote(dev, "2", prod, "2", depth=-1)
    assert world.rows(prod) == 1


def test_the_targets_scan_on_push_applies_to_the_promoted_image(world: World) -> None:
    dev = world.repository("dev", scan_on_push=False)
    qa = world.repository("qa", scan_on_push=True)
    digest = world.image(dev, "scan me", "1.0")
    queue = SqlJobQueue(world.engine)
    outbox = Outbox(queue, inline=[ScanService(queue)])

    world.promote(dev, "1.0", qa, "1.0", outbox=outbox)

    with read_tx(world.engine) as conn:
        found = list(conn.scalars(select(jobs.c.dedupe_key).where(jobs.c.kind == "scan.image")))
    assert f"scan.image:{qa.id}:{digest}" in found
    assert f"scan.image:{dev.id}:{digest}" not in found
