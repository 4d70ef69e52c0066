"""The Prometheus exposition of the recorded counts: a counter and a duration histogram per
event kind, plus whatever families the caller adds (the job queue's gauges);
prometheus_client encodes the text or OpenMetrics format."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from trustyard.metrics.recorder import KINDS, Key, Recorder


def event_families(totals: dict[str, dict[Key, list[float]]]) -> list[Metric]:
    """Counter and histogram families of every event kind, from added-up counts."""
    families: list[Metric] = []
    for kind in KINDS:
        series = totals.get(kind.key, {})
        counter = CounterMetricFamily(kind.counter, kind.counter_help, labels=kind.labels)
        grouped: dict[Key, list[float]] = {}
        for labels, values in sorted(series.items(), key=lambda item: str(item[0])):
            counter.add_metric([str(label) for label in labels], sum(values[1:]))
            into = grouped.setdefault(labels[: kind.histogram_labels], [0.0] * len(values))
            for index, value in enumerate(values):
                into[index] += value
        histogram = HistogramMetricFamily(
            kind.histogram,
            kind.histogram_help,
            labels=kind.labels[: kind.histogram_labels],
        )
        bounds = [repr(float(bound)) for bound in kind.bounds] + ["+Inf"]
        for labels, values in grouped.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, values[1:], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            histogram.add_metric([str(label) for label in labels], buckets, sum_value=values[0])
        families += [counter, histogram]
    return families


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def render(
    recorder: Recorder, accept: str | None, extra: Iterable[Metric] = ()
) -> tuple[bytes, str]:
    """The exposition (format negotiated from an Accept header) of every process's event
    counts (as `recorder` adds them up) and the `extra` families: (body, content type)."""
    families = event_families(recorder.totals())
    encode, content_type = choose_encoder(accept or "")
    return encode(_Families([*families, *extra])), content_type
