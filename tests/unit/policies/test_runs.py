"""Policy runs on SQLite and PostgreSQL, from the push to the promotion: the facts of stored
images (in the same few queries for 3 tags as for 12), the triggers queuing evaluations in the
publishing transaction (not for fallback tags, not for repositories without enabled
policies, not before a scan the push queued), the runner (promote as the template says, stop
when the tag moved, a failing rule moves nothing, a pending one asks for a scan and the scan's
end runs it again, a creator who may no longer push leaves last_error, the depth guard stops a
chain), a triage change and the initial run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, select, update

from tests.support.databases import migrated_engine
from trustyard.config import PoliciesSettings
from trustyard.content.hotreads import StoreHotReads
from trustyard.content.images import ImageReads
from trustyard.content.interfaces import Repository
from trustyard.content.manifests import ManifestService
from trustyard.content.repositories import RepositoryService
from trustyard.content.stores import ContentStore
from trustyard.db.engine import read_tx, write_tx
from trustyard.db.tables import jobs, promotions
from trustyard.events import model as events
from trustyard.events.outbox import Outbox
from trustyard.jobs.interfaces import JobContext, PermanentJobError
from trustyard.jobs.queue import SqlJobQueue
from trustyard.oci import mediatypes as mt
from trustyard.oci.digest import digest_bytes
from trustyard.policies import runner
from trustyard.policies.facts import FactsLoader
from trustyard.policies.interfaces import Need, PolicyRecord
from trustyard.policies.jobs import PushPolicies
from trustyard.policies.promotion import PromotionService
from trustyard.policies.runner import Evaluate, PolicyRunner, PushCheck, Ran, Verdict
from trustyard.policies.service import PolicyService
from trustyard.policies.stores import PolicyStore
from trustyard.policies.triggers import EVALUATE_KIND, PUSH_KIND, RUN_KIND, PolicyTriggers
from trustyard.scanning.policy_facts import ScanComponents
from trustyard.scanning.service import SCAN_KIND, ScanService
from trustyard.scanning.stores import ScanStore
from trustyard.storage.filesystem import FilesystemDriver
from trustyard.vulnerabilities.components import Target, Via
from trustyard.vulnerabilities.images import ImageMatcher, ImageStore
from trustyard.vulnerabilities.interfaces import ImageComponent, ImageFinding
from trustyard.vulnerabilities.jobs import MatchScan
from trustyard.vulnerabilities.ordering import component_version_order
from trustyard.vulnerabilities.policy_counts import TriagedCounts
from trustyard.vulnerabilities.rematch import MATCH_KIND
from trustyard.vulnerabilities.service import VulnerabilityService
from trustyard.vulnerabilities.triage import IMAGE, REPOSITORY, Scope, TriageStore
from trustyard.wiring.policies import ScanComponentFacts, TriagedCountFacts

CREATED = "2026-03-01T10:00:00.123456789Z"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DAY = timedelta(days=1, seconds=1)
PLATFORM_AMD = {"os": "linux", "architecture": "amd64"}
PLATFORM_ARM = {"os": "linux", "architecture": "arm64", "variant": "v8"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request, tmp_path_factory, request.param) as made:
        yield made


class World:
    """Repositories of their own (a fresh namespace per test), images pushed through the
    content service with the triggers as the outbox's consumer, and the runner."""

    def __init__(
        self, engine: Engine, blobs: Path, *, max_depth: int = 10, scan_on_push: bool = False
    ) -> None:
        self.engine = engine
        self.driver = FilesystemDriver(blobs)
        self.store = ContentStore()
        self.manifests = ManifestService(self.store, StoreHotReads(engine, self.store))
        self.queue = SqlJobQueue(engine)
        self.policies = PolicyService(PolicyStore(), PoliciesSettings(), component_version_order)
        self.triggers = PolicyTriggers(
            self.queue, ImageReads(self.driver), scan_on_push=scan_on_push
        )
        self.scans = ScanService(self.queue)
        self.loader = FactsLoader(
            ImageReads(self.driver),
            ScanComponentFacts(ScanComponents(self.scans)),
            TriagedCountFacts(TriagedCounts(ImageStore(ScanStore()))),
        )
        self.outbox = Outbox(self.queue, wanted=lambda conn, types: False, inline=[self.triggers])
        self.refusal: str | None = None
        check: PushCheck = lambda conn, user, target: self.refusal  # noqa: E731
        self.runner = PolicyRunner(
            engine,
            self.policies,
            self.loader,
            PromotionService(),
            self.outbox,
            self.triggers,
            max_depth=max_depth,
            requester=ScanComponents(self.scans),
            may_push=check,
        )
        self.prefix = f"n{uuid.uuid4().hex[:8]}"
        with write_tx(engine) as conn:  # what earlier tests left on the module's database
            conn.execute(
                update(jobs)
                .where(jobs.c.state.in_(("queued", "running")))
                .values(state="cancelled", dedupe_key=None)
            )

    def repository(self, name: str) -> Repository:
        with write_tx(self.engine) as conn:
            return RepositoryService(self.store).create(conn, f"{self.prefix}/{name}")

    def blob(self, conn: Connection, repository: Repository, data: bytes) -> dict[str, Any]:
        digest = digest_bytes(data)
        path = self.driver.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.store.record_blob(conn, str(digest), len(data))
        self.store.link_blob(conn, repository.id, str(digest))
        return {"digest": str(digest), "size": len(data)}

    def push(
        self, repository: Repository, tag: str, label: str, labels: dict[str, str] | None = None
    ) -> str:
        """An image pushed under `tag`, its events published; its digest."""
        config = {
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "created": CREATED,
            "config": {"Labels": labels or {}},
            "rootfs": {"type": "layers", "diff_ids": []},
            "label": label,
        }
        with write_tx(self.engine) as conn:
            config_blob = self.blob(conn, repository, json.dumps(config).encode())
            layer = self.blob(conn, repository, label.encode() * 10)
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, **config_blob},
                    "layers": [{"mediaType": LAYER, **layer}],
                }
            ).encode()
            pushed = self.manifests.put(conn, repository.name, tag, body, mt.OCI_MANIFEST)
            self.outbox.publish(conn, *pushed.events)
        return str(pushed.digest)

    def policy(
        self,
        source: Repository,
        target: Repository,
        rules: Sequence[dict[str, Any]],
        template: str = "%n",
    ) -> PolicyRecord:
        with write_tx(self.engine) as conn:
            return self.policies.create(
                conn,
                source,
                target,
                rules=rules,
                expression=None,
                tag_template=template,
                created_by="olga",
            )

    def queued(self, kind: str) -> list[tuple[int, dict[str, Any]]]:
        if kind == EVALUATE_KIND:  # the pushes' jobs first become their evaluations
            self.fan_out()
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.payload)
                .where(jobs.c.kind == kind, jobs.c.state == "queued")
                .order_by(jobs.c.id)
            )
            return [(row.id, json.loads(row.payload)) for row in rows]

    def fan_out(self) -> None:
        """Run the queued `policies.push` jobs as the worker does: each becomes an
        evaluation per policy it names."""
        with write_tx(self.engine) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.payload)
                .where(jobs.c.kind == PUSH_KIND, jobs.c.state == "queued")
                .order_by(jobs.c.id)
            ).all()
            for row in rows:
                self.triggers.fan_out(conn, json.loads(row.payload))
                done = update(jobs).where(jobs.c.id == row.id)
                conn.execute(done.values(state="succeeded", dedupe_key=None))

    def take(self, kind: str) -> list[tuple[int, dict[str, Any]]]:
        """The queued jobs of `kind`, marked running (claimed by the test) without their
        dedupe keys (as a running evaluation gives its key up first)."""
        found = self.queued(kind)
        with write_tx(self.engine) as conn:
            for job_id, _ in found:
                claim = update(jobs).where(jobs.c.id == job_id)
                conn.execute(claim.values(state="running", dedupe_key=None))
        return found

    def drain(self) -> list[Verdict]:
        """Run the queued evaluations (and the ones they queue) until none is left."""
        verdicts = []
        while batch := self.take(EVALUATE_KIND):
            for job_id, payload in batch:
                verdicts.append(self.runner.evaluate(Evaluate(**payload), job_id))
                with write_tx(self.engine) as conn:
                    done = update(jobs).where(jobs.c.id == job_id).values(state="succeeded")
                    conn.execute(done)
        return verdicts

    def names(self, repository: Repository, tag: str) -> str | None:
        with read_tx(self.engine) as conn:
            found = self.store.resolve_tag(conn, repository.name, tag)
        return found.digest if found is not None else None

    def record(self, policy: PolicyRecord) -> PolicyRecord:
        with read_tx(self.engine) as conn:
            found = PolicyStore().get(conn, policy.id)
        assert found is not None
        return found


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    return World(engine, tmp_path / "blobs")


TAG_1X = {"field": "tag", "operator": "sw", "values": ["1."]}


def test_facts_of_many_tags_in_the_same_few_queries(world: World, engine: Engine) -> None:
    repository = world.repository("app")
    first = world.push(repository, "1.0", "a", {"team": "core"})
    world.push(repository, "latest", "a", {"team": "core"})
    for number in range(10):
        world.push(repository, f"0.{number}", f"b{number}")

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    needs = frozenset({Need.CONFIG})
    event.listen(engine, "before_cursor_execute", count)
    try:
        with read_tx(engine) as conn:
            few = world.loader.tags(conn, repository, needs, ["1.0", "latest", "0.1"])
            asked = len(statements)
            every = world.loader.tags(conn, repository, needs)
            missing = world.loader.tag(conn, repository, "nope", needs)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) - asked - 1 <= asked  # 12 tags (and a miss) cost what 3 did
    assert [f.tag for f in few] == ["1.0", "latest", "0.1"]  # least recently pushed first
    assert len(every) == 12
    assert missing is None
    facts = few[0]
    assert facts.digest == first
    assert facts.tags == ("1.0", "latest")
    assert facts.platforms == ("linux/arm64/v8",)
    assert facts.labels == {"team": "core"}
    assert facts.created_at == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert facts.size > 10
    assert facts.pushed_at is not None
    assert facts.components is None
    assert facts.vulnerabilities is None


def test_a_push_queues_an_evaluation_of_each_enabled_policy_and_no_more(world: World) -> None:
    source, target, other = world.repository("dev"), world.repository("qa"), world.repository("x")
    policy = world.policy(source, target, [TAG_1X])
    digest = world.push(source, "1.0", "a")
    world.push(source, "sha256-" + "a" * 64 + ".sig", "sig")  # cosign's fallback tag
    world.push(other, "1.0", "a")  # no policy there
    queued = world.queued(EVALUATE_KIND)
    assert [payload for _, payload in queued] == [
        {
            "policy_id": policy.id,
            "tag": "1.0",
            "digest": digest,
            "trigger": "push",
            "depth": 1,
            "actor": None,
        }
    ]
    world.push(source, "1.0", "a")  # the same image again: the waiting job holds the key
    assert len(world.queued(EVALUATE_KIND)) == 1


def test_a_passing_image_is_promoted_as_the_template_says(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    policy = world.policy(source, target, [TAG_1X], "%n-qa")
    digest = world.push(source, "1.2", "a")
    world.push(source, "dev", "b")  # fails the rule
    verdicts = world.drain()
    assert [v.ran for v in verdicts] == [Ran.PROMOTED, Ran.FAILED]
    assert world.names(target, "1.2-qa") == digest
    assert world.names(target, "dev-qa") is None
    record = world.record(policy)
    assert record.last_promoted_at is not None
    assert record.last_error is None
    with read_tx(world.engine) as conn:
        row = conn.execute(select(promotions).where(promotions.c.policy_id == policy.id)).one()
    assert (row.trigger, row.depth, row.promoted_as, row.policy_revision) == ("push", 1, "olga", 1)


def test_a_job_for_an_image_the_tag_no_longer_names_stops(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    world.policy(source, target, [TAG_1X])
    world.push(source, "1.0", "old")
    newer = world.push(source, "1.0", "new")
    assert [v.ran for v in world.drain()] == [Ran.MOVED, Ran.PROMOTED]
    assert world.names(target, "1.0") == newer


def test_a_creator_who_may_no_longer_push_leaves_the_reason(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    policy = world.policy(source, target, [TAG_1X])
    world.refusal = "the policy's creator 'olga' may no longer push to 'qa'"
    world.push(source, "1.0", "a")
    assert [v.ran for v in world.drain()] == [Ran.REFUSED]
    assert world.names(target, "1.0") is None
    error = world.record(policy).last_error
    assert error is not None
    assert "may no longer push" in error
    assert "1.0" in error
    world.refusal = None
    world.push(source, "1.1", "b")
    assert [v.ran for v in world.drain()] == [Ran.PROMOTED]
    assert world.record(policy).last_error is None  # a run that promotes clears it


def test_a_chain_runs_down_to_the_depth_guard(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, tmp_path / "blobs", max_depth=2)
    a, b, c, d = (world.repository(name) for name in "abcd")
    world.policy(a, b, [TAG_1X])
    world.policy(b, c, [TAG_1X])
    last = world.policy(c, d, [TAG_1X])
    digest = world.push(a, "1.0", "a")
    assert [v.ran for v in world.drain()] == [Ran.PROMOTED, Ran.PROMOTED, Ran.REFUSED]
    assert world.names(b, "1.0") == digest
    assert world.names(c, "1.0") == digest
    assert world.names(d, "1.0") is None
    error = world.record(last).last_error
    assert error is not None
    assert "max_depth (2)" in error


def test_a_pending_policy_asks_for_a_scan_and_its_end_runs_it_again(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    rules = [TAG_1X, {"field": "component.name", "operator": "neq", "values": ["openssl"]}]
    world.policy(source, target, rules)
    digest = world.push(source, "1.0", "a")
    assert [v.ran for v in world.drain()] == [Ran.PENDING]
    scans = world.queued(SCAN_KIND)
    assert [payload["digest"] for _, payload in scans] == [digest]
    bom = {
        "manifest_digest": digest,
        "platform": "linux/arm64",
        "components": [
            {"ecosystem": "pypi", "name": "django", "version": "4.2.1", "purl": "pkg:pypi/django"}
        ],
    }
    store = ScanStore()
    with write_tx(world.engine) as conn:
        scan = store.by_job(conn, scans[0][0])
        assert scan is not None
        store.succeed(conn, scan, [bom], [])
        completed = events.scan_completed(source.name, digest, ["linux/arm64"], 1, None)
        world.outbox.publish(conn, completed)
    assert [v.ran for v in world.drain()] == [Ran.PROMOTED]
    assert world.names(target, "1.0") == digest


def test_a_triage_change_and_the_initial_run_queue_what_they_should(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    gate = {"field": "vulnerability.critical", "operator": "eq", "values": ["0"]}
    vulnerable = world.policy(source, target, [gate])
    plain = world.policy(source, world.repository("prod"), [TAG_1X])
    digest = world.push(source, "1.0", "a")
    world.push(source, "2.0", "b")
    world.take(EVALUATE_KIND)  # the pushes' own evaluations
    with write_tx(world.engine) as conn:
        assert world.triggers.counts_changed(conn, repository_id=source.id, digest=digest) == 1
        assert world.triggers.counts_changed(conn, namespace=world.prefix) == 1
    queued = world.queued(EVALUATE_KIND)
    assert [(p["policy_id"], p["tag"], p["trigger"]) for _, p in queued] == [
        (vulnerable.id, "1.0", "triage")
    ]
    assert [p for _, p in world.queued(RUN_KIND)] == [
        {"policy_id": vulnerable.id, "trigger": "triage"}
    ]
    world.take(EVALUATE_KIND)
    assert world.runner.run(plain.id, "initial") == 1  # 1.0 passes, 2.0 fails
    assert [(p["policy_id"], p["tag"]) for _, p in world.queued(EVALUATE_KIND)] == [
        (plain.id, "1.0")
    ]


def matched(world: World, repository: Repository, digest: str, critical: list[str]) -> None:
    """A succeeded, matched scan of the image with one critical finding per name."""
    component = ImageComponent(
        "linux/arm64",
        "pypi",
        "urllib3",
        "1.24.1",
        "pkg:pypi/urllib3@1.24.1",
        "sha256:" + "1" * 64,
        Target("PyPI", "urllib3", "1.24.1", Via.PACKAGE),
    )
    findings = [
        ImageFinding(component, name, (name,), (), "critical", 9.8, None, "1.26.5")
        for name in critical
    ]
    store = ScanStore()
    with write_tx(world.engine) as conn:
        scan_id = store.create_scan(
            conn, repository.id, digest, job_id=None, trigger="push", force=False, requested_by=None
        )
        scan = store.get(conn, scan_id)
        assert scan is not None
        store.succeed(conn, scan, [], [])
        ImageStore(store).replace(conn, scan, [component], findings, 1)


def test_counts_after_triage_of_many_images(world: World) -> None:
    repository = world.repository("app")
    first, second = world.push(repository, "1", "a"), world.push(repository, "2", "b")
    matched(world, repository, first, ["CVE-1", "CVE-2"])
    matched(world, repository, second, ["CVE-1"])
    counts = TriagedCounts(ImageStore(ScanStore()))
    never = world.push(repository, "3", "c")
    now = datetime.now(UTC)
    with read_tx(world.engine) as conn:  # no decision anywhere: the stored counts
        found = counts.counts(conn, repository.id, world.prefix, [first, second, never], now)
    assert {d: c.critical for d, c in found.items()} == {first: 2, second: 1}
    with write_tx(world.engine) as conn:
        TriageStore().add_override(
            conn,
            Scope(IMAGE, world.prefix, repository.id, first),
            "CVE-2",
            statement="not reachable",
            created_by="olga",
            now=now,
        )
        TriageStore().add_override(
            conn,
            Scope(REPOSITORY, world.prefix, repository.id),
            "CVE-1",
            statement="mitigated",
            created_by="olga",
            now=now,
            expires_at=now + timedelta(days=1),
        )
    with read_tx(world.engine) as conn:
        found = counts.counts(conn, repository.id, world.prefix, [first, second], now)
        later = counts.counts(conn, repository.id, world.prefix, [first, second], now + DAY)
    assert {d: c.critical for d, c in found.items()} == {first: 0, second: 0}
    assert {d: c.critical for d, c in later.items()} == {first: 1, second: 1}  # expired


def test_a_retried_match_runs_the_policies_judging_counts(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    gate = {"field": "vulnerability.critical", "operator": "eq", "values": ["0"]}
    policy = world.policy(source, target, [gate])
    digest = world.push(source, "1.0", "a")
    world.take(EVALUATE_KIND)
    store = ScanStore()
    with write_tx(world.engine) as conn:
        scan_id = store.create_scan(
            conn, source.id, digest, job_id=None, trigger="push", force=False, requested_by=None
        )
        scan = store.get(conn, scan_id)
        assert scan is not None
        store.succeed(conn, scan, [], [])

    def matched(conn: Connection, repository_id: int, image: str) -> None:
        world.triggers.counts_changed(
            conn, repository_id=repository_id, digest=image, trigger="vulnerabilities"
        )

    matcher = ImageMatcher(ImageStore(store), VulnerabilityService())
    job = JobContext(1, MATCH_KIND, {"scan_id": scan_id}, 1, 3, "test-worker")
    MatchScan(world.engine, matcher, matched)(job)
    queued = [(p["policy_id"], p["tag"], p["trigger"]) for _, p in world.queued(EVALUATE_KIND)]
    assert queued == [(policy.id, "1.0", "vulnerabilities")]
    assert [v.ran for v in world.drain()] == [Ran.PROMOTED]  # matched: no findings


def test_facts_of_an_index(world: World) -> None:
    repository = world.repository("multi")
    amd = world.push(repository, "amd", "a", {"team": "core"})
    arm = world.push(repository, "arm", "b")
    with read_tx(world.engine) as conn:
        sizes = {d: world.loader.digest(conn, repository, d, frozenset()) for d in (amd, arm)}
    entries = [
        {"mediaType": mt.OCI_MANIFEST, "digest": amd, "size": 1, "platform": PLATFORM_AMD},
        {"mediaType": mt.OCI_MANIFEST, "digest": arm, "size": 1, "platform": PLATFORM_ARM},
        {  # BuildKit's attestation: no platform, and not counted as the first image
            "mediaType": mt.OCI_MANIFEST,
            "digest": arm,
            "size": 1,
            "platform": {"os": "unknown", "architecture": "unknown"},
        },
    ]
    body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    with write_tx(world.engine) as conn:
        pushed = world.manifests.put(conn, repository.name, "1.0", body.encode(), mt.OCI_INDEX)
    with read_tx(world.engine) as conn:
        facts = world.loader.tag(conn, repository, "1.0", frozenset({Need.CONFIG}))
        bare = world.loader.tag(conn, repository, "1.0", frozenset())
    assert facts is not None
    assert bare is not None
    assert facts.digest == str(pushed.digest)
    assert facts.platforms == ("linux/amd64", "linux/arm64/v8")
    children = sum(f.size for f in sizes.values() if f is not None)
    assert facts.size == len(body) + children
    assert facts.labels == {"team": "core"}  # the first platform image's config
    assert bare.labels == {}  # config facts of an index are read only when needed


def test_a_push_the_scan_will_judge_waits_for_the_scan_end(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, tmp_path / "blobs", scan_on_push=True)
    source, target = world.repository("qa"), world.repository("prod")
    gate = {"field": "vulnerability.all", "operator": "eq", "values": ["0"]}
    policy = world.policy(source, target, [gate])  # needs the counts only, not the BOM
    plain = world.policy(source, world.repository("mirror"), [TAG_1X])
    digest = world.push(source, "1.0", "a")  # a new image: its scan is queued by the push
    assert [p["policy_id"] for _, p in world.queued(EVALUATE_KIND)] == [plain.id]
    world.take(EVALUATE_KIND)
    completed = events.scan_completed(source.name, digest, ["linux/arm64"], 0, None)
    with write_tx(world.engine) as conn:
        world.outbox.publish(conn, completed)
    queued = [(p["policy_id"], p["tag"], p["trigger"]) for _, p in world.queued(EVALUATE_KIND)]
    assert queued == [(policy.id, "1.0", "scan")]


def test_a_run_over_a_repository_goes_by_batches_in_push_order(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "RUN_BATCH", 2)
    source, target = world.repository("dev"), world.repository("qa")
    for tag in ("1.9", "1.1", "2.0", "1.5", "sha256-" + "c" * 64 + ".sig"):
        world.push(source, tag, tag)
    policy = world.policy(source, target, [TAG_1X], "latest")
    world.take(EVALUATE_KIND)
    assert world.runner.run(policy.id, "initial") == 3
    assert [p["tag"] for _, p in world.queued(EVALUATE_KIND)] == ["1.9", "1.1", "1.5"]


def test_a_running_evaluation_gives_up_its_key(world: World) -> None:
    source, target = world.repository("dev"), world.repository("qa")
    world.policy(source, target, [TAG_1X])
    world.push(source, "1.0", "a")
    ((job_id, payload),) = world.queued(EVALUATE_KIND)
    with write_tx(world.engine) as conn:  # claimed, its key kept (as the queue claims)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(state="running"))
    assert world.runner.evaluate(Evaluate(**payload), job_id).ran is Ran.PROMOTED
    world.push(source, "1.0", "a")  # the same image again, while the job still runs
    assert [p for _, p in world.queued(EVALUATE_KIND)] == [payload]


def test_a_push_job_becomes_one_evaluation_per_policy_and_a_bad_one_fails_for_good(
    engine: Engine, tmp_path: Path
) -> None:
    world = World(engine, tmp_path / "blobs")
    handler = PushPolicies(engine, world.triggers)
    good = {"tag": "1.0", "digest": "sha256:" + "a" * 64, "depth": 1, "actor": "olga"}
    handler(JobContext(1, PUSH_KIND, good | {"policy_ids": [7, 9]}, 1, 3, "w"))
    queued = [(p["policy_id"], p["tag"], p["trigger"]) for _, p in world.queued(EVALUATE_KIND)]
    assert queued == [(7, "1.0", "push"), (9, "1.0", "push")]
    # The same push job again (a retry): the evaluations waiting already are not doubled.
    handler(JobContext(1, PUSH_KIND, good | {"policy_ids": [7, 9]}, 2, 3, "w"))
    assert len(world.queued(EVALUATE_KIND)) == 2
    with pytest.raises(PermanentJobError):
        handler(JobContext(2, PUSH_KIND, good | {"policy_ids": ["7"]}, 1, 3, "w"))
