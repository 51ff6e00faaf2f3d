"""Metrics for Prometheus: counters and histograms kept in the database, exposed by prometheus-client.

Events that happen anywhere (a reminder sent by one worker's dispatcher, a decision taken
in a web process) add to one row per (metric, labels) in ``wf_metric``, in the transaction
of the event itself: every process and machine adds to the same figure, nothing is lost with
a process, and a scrape reads this small table rather than scanning the engine's tables.
``render()`` turns the rows (and a few gauges read from indexes) into the text format.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db import connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

# name -> (help, kind, label names); histograms also have their buckets below.
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "workflows_approval_decision_seconds": (
        "How long approval requests took to be decided (opened to closed), by workflow and outcome.",
        "histogram",
        ("workflow", "outcome"),
    ),
    "workflows_approval_reminders": (
        "Reminders sent to approvers (one per slot and person).",
        "counter",
        ("workflow",),
    ),
    "workflows_approval_escalations": ("Approval requests escalated to more approvers.", "counter", ("workflow",)),
    "workflows_approval_timeouts": (
        "Approval requests that reached their deadline undecided.",
        "counter",
        ("workflow",),
    ),
    "workflows_notifications_failed": ("Notifications that failed for good, by notifier.", "counter", ("notifier",)),
}
BUCKETS: dict[str, tuple[float, ...]] = {
    "workflows_approval_decision_seconds": (60, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400),
}


def _key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def _add(name: str, labels: dict[str, str], by: float) -> None:
    """value += by for (name, labels), creating the row the first time (one statement, race-free)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wf_metric (name, labels, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (name, labels) DO UPDATE SET value = wf_metric.value + EXCLUDED.value",
            [name, _key(labels), by],
        )


def increment(name: str, by: float = 1, **labels: str) -> None:
    if METRICS[name][1] != "counter":
        raise ValueError(f"{name} is not a counter")
    _add(name, labels, by)


def observe(name: str, value: float, **labels: str) -> None:
    """Record one observation in a histogram: its buckets, its sum and its count."""
    if METRICS[name][1] != "histogram":
        raise ValueError(f"{name} is not a histogram")
    for bound in BUCKETS[name]:
        if value <= bound:
            _add(f"{name}:bucket", {**labels, "le": _le(bound)}, 1)
    _add(f"{name}:bucket", {**labels, "le": "+Inf"}, 1)
    _add(f"{name}:sum", labels, value)


def _le(bound: float) -> str:
    return str(float(bound))


class _DatabaseCollector:
    """Yields the stored counters and histograms, and the gauges the health check computes."""

    def collect(self) -> Iterator[Metric]:
        from workflows.models import MetricSample

        rows: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for name, text, amount in MetricSample.objects.values_list("name", "labels", "value"):
            rows[name].append((json.loads(text), amount))
        for name, (help_text, kind, label_names) in METRICS.items():
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=label_names)
                for labels, value in rows.get(name, []):
                    family.add_metric([labels.get(label, "") for label in label_names], value)
                yield family
            else:
                yield _histogram(name, help_text, label_names, rows)
        yield from _gauges()


def _histogram(
    name: str, help_text: str, label_names: tuple[str, ...], rows: dict[str, list[tuple[dict[str, str], float]]]
) -> Metric:
    family = HistogramMetricFamily(name, help_text, labels=label_names)
    series: dict[tuple[str, ...], dict[str, Any]] = defaultdict(lambda: {"buckets": {}, "sum": 0.0})
    for labels, value in rows.get(f"{name}:bucket", []):
        key = tuple(labels.get(label, "") for label in label_names)
        series[key]["buckets"][labels["le"]] = value
    for labels, value in rows.get(f"{name}:sum", []):
        series[tuple(labels.get(label, "") for label in label_names)]["sum"] = value
    order = [_le(bound) for bound in BUCKETS[name]] + ["+Inf"]
    for key, data in sorted(series.items()):
        buckets = [(le, data["buckets"].get(le, 0.0)) for le in order]
        family.add_metric(list(key), buckets, data["sum"])
    return family


def _gauges() -> Iterator[Metric]:
    from workflows.health import gauges

    for name, help_text, label_names, samples in gauges():
        family = GaugeMetricFamily(name, help_text, labels=label_names)
        for labels, value in samples:
            family.add_metric(labels, value)
        yield family


def render() -> bytes:
    """The Prometheus text exposition of every metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseCollector())
    return generate_latest(registry)
