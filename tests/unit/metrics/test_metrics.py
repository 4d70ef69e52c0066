"""trustyard.metrics and the /metrics edge (trustyard.metrics_http) without a server: bucket
placement, counts added up across processes (each a Recorder with a file of its own), the
exposition, the route and method labels, the access rule, and the settings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from trustyard.config import MetricsSettings
from trustyard.jobs.stats import KindStats
from trustyard.kit.asgi import ROUTE_KEY, Scope
from trustyard.metrics import recorder as metrics
from trustyard.metrics.exposition import event_families, render
from trustyard.metrics.recorder import HTTP_REQUESTS, JOB_RUNS, REQUEST_BUCKETS, Recorder
from trustyard.metrics_http.endpoint import MetricsAccess, job_families, route_label

API = "/api/v1"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


# -- buckets -----------------------------------------------------------------------------


durations = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)


@given(st.lists(durations, max_size=50))
def test_each_bucket_counts_the_durations_up_to_its_bound(seconds: list[float]) -> None:
    recorder = Recorder()
    for value in seconds:
        recorder.tables[HTTP_REQUESTS.key].observe(("base", "GET", 200), value)
    families = event_families(recorder.totals())
    histogram = next(f for f in families if f.name == HTTP_REQUESTS.histogram)
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    if not seconds:
        assert buckets == {}
        return
    for bound in REQUEST_BUCKETS:
        assert buckets[repr(bound)] == sum(1 for value in seconds if value <= bound)
    assert buckets["+Inf"] == len(seconds)
    total = next(s.value for s in histogram.samples if s.name.endswith("_sum"))
    assert math.isclose(total, sum(seconds), rel_tol=1e-9, abs_tol=1e-12)


def test_a_duration_on_a_bound_falls_in_that_bucket() -> None:
    recorder = Recorder()
    recorder.tables[HTTP_REQUESTS.key].observe(("base", "GET", 200), 0.001)
    values = recorder.totals()[HTTP_REQUESTS.key][("base", "GET", 200)]
    index = REQUEST_BUCKETS.index(0.001)
    assert values[1 + index] == 1  # le="0.001" counts it; le="0.0005" does not
    assert sum(values[1:]) == 1


# -- processes ----------------------------------------------------------------------------


def test_counts_of_every_process_add_up_and_outlive_their_process(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    first.configure(tmp_path, interval=3600)
    second.configure(tmp_path, interval=3600)
    for _ in range(3):
        first.tables[HTTP_REQUESTS.key].observe(("manifest", "GET", 200), 0.0002)
    second.tables[HTTP_REQUESTS.key].observe(("manifest", "GET", 200), 0.0004)
    second.tables[HTTP_REQUESTS.key].observe(("blob", "HEAD", 404), 0.0004)
    second.tables[JOB_RUNS.key].observe(("test.noop", "succeeded"), 0.5)
    second.flush()
    second.close()  # the process is gone; its file stays
    totals = first.totals()  # writes first's own counts, then reads both files
    http = totals[HTTP_REQUESTS.key]
    assert sum(http[("manifest", "GET", 200)][1:]) == 4
    assert sum(http[("blob", "HEAD", 404)][1:]) == 1
    assert math.isclose(http[("manifest", "GET", 200)][0], 0.001)
    assert sum(totals[JOB_RUNS.key][("test.noop", "succeeded")][1:]) == 1
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_a_scrape_sees_the_answering_process_at_once_and_others_after_their_flush(
    tmp_path: Path,
) -> None:
    answering, other = Recorder(), Recorder()
    answering.configure(tmp_path, interval=3600)
    other.configure(tmp_path, interval=3600)
    answering.tables[HTTP_REQUESTS.key].observe(("base", "GET", 200), 0.0001)
    other.tables[HTTP_REQUESTS.key].observe(("base", "GET", 200), 0.0001)
    assert sum(answering.totals()[HTTP_REQUESTS.key][("base", "GET", 200)][1:]) == 1
    other.flush()
    assert sum(answering.totals()[HTTP_REQUESTS.key][("base", "GET", 200)][1:]) == 2


def test_unreadable_and_foreign_files_are_skipped(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.configure(tmp_path, interval=3600)
    recorder.tables[HTTP_REQUESTS.key].observe(("base", "GET", 200), 0.0001)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "short.json").write_text(
        json.dumps({"pid": 1, "tables": {"http": [[["base", "GET", 200], [0.1, 1.0]]]}})
    )
    (tmp_path / ".tmp-half-written").write_text("{")
    assert sum(recorder.totals()[HTTP_REQUESTS.key][("base", "GET", 200)][1:]) == 1


def test_wipe_forgets_the_previous_run(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.configure(tmp_path / "metrics", interval=3600)
    recorder.tables[HTTP_REQUESTS.key].observe(("base", "GET", 200), 0.0001)
    recorder.flush()
    recorder.close()
    (tmp_path / "metrics" / "keep.txt").write_text("not ours")
    metrics.wipe(tmp_path / "metrics")
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["keep.txt"]
    metrics.wipe(tmp_path / "new")
    assert (tmp_path / "new").is_dir()


def test_a_forked_child_starts_from_nothing(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.configure(tmp_path, interval=3600)
    table = recorder.tables[HTTP_REQUESTS.key]
    table.observe(("base", "GET", 200), 0.0001)
    recorder.reset_after_fork()
    assert recorder.tables[HTTP_REQUESTS.key] is table  # callers keep their reference
    assert table.series == {}
    assert recorder.path is None
    recorder.flush()  # unconfigured: writes nothing
    assert sum(recorder.totals()[HTTP_REQUESTS.key].get(("base", "GET", 200), [0.0])) == 0


# -- exposition ----------------------------------------------------------------------------


def test_the_exposition_names_labels_and_content_types() -> None:
    recorder = Recorder()
    recorder.tables[HTTP_REQUESTS.key].observe(("manifest", "GET", 200), 0.0003)
    recorder.tables[HTTP_REQUESTS.key].observe(("manifest", "GET", 404), 0.0007)
    recorder.tables[JOB_RUNS.key].observe(("test.noop", "failed"), 2.0)
    families = event_families(recorder.totals())
    families += job_families([KindStats("scan.image", 3, 1, 2, 12.5)])

    class Collect:
        def collect(self) -> list[object]:
            return list(families)

    from prometheus_client.exposition import generate_latest

    found = samples(generate_latest(Collect()).decode())  # type: ignore[arg-type]
    requests = "trustyard_http_requests_total"
    assert found[(requests, labels(route="manifest", method="GET", status="200"))] == 1
    assert found[(requests, labels(route="manifest", method="GET", status="404"))] == 1
    duration = "trustyard_http_request_duration_seconds"
    assert found[(f"{duration}_count", labels(route="manifest", method="GET"))] == 2
    bucket = labels(route="manifest", method="GET", le="0.0005")
    assert found[(f"{duration}_bucket", bucket)] == 1
    runs = "trustyard_jobs_runs_total"
    assert found[(runs, labels(kind="test.noop", outcome="failed"))] == 1
    assert found[("trustyard_jobs_run_duration_seconds_sum", labels(kind="test.noop"))] == 2.0
    depth = "trustyard_jobs_queue_depth"
    assert found[(depth, labels(kind="scan.image", state="queued"))] == 3
    assert found[(depth, labels(kind="scan.image", state="running"))] == 1
    assert found[("trustyard_jobs_dead", labels(kind="scan.image"))] == 2
    age = "trustyard_jobs_oldest_due_age_seconds"
    assert found[(age, labels(kind="scan.image"))] == 12.5


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "text/plain; version=0.0.4; charset=utf-8"),
        ("text/plain", "text/plain; version=0.0.4; charset=utf-8"),
        (
            "application/openmetrics-text; version=1.0.0",
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
        ),
    ],
)
def test_render_negotiates_the_format(accept: str | None, content_type: str) -> None:
    body, chosen = render(Recorder(), accept)
    assert chosen == content_type
    family = b"trustyard_http_requests" + (b"" if "openmetrics" in content_type else b"_total")
    assert b"# TYPE " + family + b" counter\n" in body


def test_webhook_outcomes_are_a_closed_vocabulary() -> None:
    recorder = Recorder()
    for outcome in ("success", "http_error", "network_error", "refused"):
        recorder.observe_webhook_delivery(outcome, 0.05)
    with pytest.raises(ValueError, match="unknown webhook delivery outcome"):
        recorder.observe_webhook_delivery("https://example.invalid/hook", 0.05)
    totals = recorder.totals()["webhooks"]
    assert {key[0] for key in totals} <= metrics.WEBHOOK_OUTCOMES


# -- labels --------------------------------------------------------------------------------


def test_route_labels() -> None:
    assert route_label({ROUTE_KEY: "manifest"}, API) == "manifest"
    relative = SimpleNamespace(path_format="/repositories/{name}")
    assert route_label({"route": relative}, API) == "/api/v1/repositories/{name}"
    absolute = SimpleNamespace(path_format="/api/v1/openapi.json")
    assert route_label({"route": absolute}, API) == "/api/v1/openapi.json"
    dtr = SimpleNamespace(path_format="/api/v0/repositories/{namespace}/{reponame}/x")
    assert route_label({"route": dtr}, API) == "/api/v0/repositories/{namespace}/{reponame}/x"
    assert route_label({"route": object()}, API) == metrics.UNMATCHED
    assert route_label({"path": "/v2/team/app/manifests/1.0"}, API) == metrics.UNMATCHED


@given(st.text(max_size=20))
def test_methods_outside_the_standard_ones_share_one_label(method: str) -> None:
    label = metrics.method_label(method)
    if method in {"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"}:
        assert label == method
    else:
        assert label == "other"


# -- access --------------------------------------------------------------------------------


def scope(client: str | None, authorization: bytes | None = None) -> Scope:
    headers = [(b"authorization", authorization)] if authorization is not None else []
    return {"client": (client, 50000) if client else None, "headers": headers}


LOOPBACK = ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("client", "refusal"),
    [
        ("127.0.0.1", None),
        ("127.5.6.7", None),
        ("::1", None),
        ("::ffff:127.0.0.1", None),  # IPv4 loopback seen on a dual-stack socket
        ("10.1.2.3", 403),
        ("::ffff:10.1.2.3", 403),
        ("2001:db8::1", 403),
        ("not-an-address", 403),
        (None, 403),
    ],
)
def test_without_a_token_only_allowed_networks_may_read(
    client: str | None, refusal: int | None
) -> None:
    assert MetricsAccess(None, LOOPBACK).refusal(scope(client)) == refusal


def test_an_empty_allow_list_refuses_everyone_without_a_token() -> None:
    assert MetricsAccess(None, []).refusal(scope("127.0.0.1")) == 403


@pytest.mark.parametrize(
    ("authorization", "refusal"),
    [
        (b"Bearer the-metrics-token-0123", None),
        (b"bearer the-metrics-token-0123", None),
        (b"Bearer the-metrics-token-0124", 401),
        (b"Bearer ", 401),
        (b"Basic dXNlcjpwYXNz", 401),
        (b"the-metrics-token-0123", 401),
        (None, 401),
    ],
)
def test_with_a_token_every_caller_must_present_it(
    authorization: bytes | None, refusal: int | None
) -> None:
    access = MetricsAccess("the-metrics-token-0123", LOOPBACK)
    assert access.refusal(scope("127.0.0.1", authorization)) == refusal
    assert access.refusal(scope("192.0.2.1", authorization)) == refusal  # address unused


# -- settings ------------------------------------------------------------------------------


def test_metrics_settings_defaults_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustyard.config import Settings

    assert MetricsSettings().allow_from == LOOPBACK
    assert MetricsSettings().enabled is True
    monkeypatch.setenv("TRUSTYARD_METRICS__ALLOW_FROM", "10.0.0.0/8, 192.168.1.7")
    settings = Settings()
    assert settings.metrics.allow_from == ["10.0.0.0/8", "192.168.1.7"]
    exported = settings.to_environment()["TRUSTYARD_METRICS__ALLOW_FROM"]
    monkeypatch.setenv("TRUSTYARD_METRICS__ALLOW_FROM", exported)  # as worker processes see it
    assert Settings().metrics.allow_from == ["10.0.0.0/8", "192.168.1.7"]
    monkeypatch.setenv("TRUSTYARD_METRICS__ALLOW_FROM", "")
    assert Settings().metrics.allow_from == []


@pytest.mark.parametrize(
    "values",
    [{"allow_from": ["10.0.0.0/33"]}, {"allow_from": "localhost"}, {"token": "short"}],
)
def test_invalid_metrics_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MetricsSettings.model_validate(values)
