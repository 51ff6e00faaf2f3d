"""Metrics for Prometheus: counters and histograms kept in the database, exposed by prometheus-client.

Events that happen anywhere (a reminder sent by one worker's dispatcher, a decision taken
in a web process) add to one row per (metric, labels) in ``wf_metric``: every process and
machine adds to the same figure, and a scrape reads this small table (plus a few gauges
read from indexes) rather than scanning the engine's tables. So any web process's
``/metrics`` is the whole deployment's, however many worker processes there are.

Rare events (``increment``, ``observe``) are written in the transaction of the event.
Frequent ones, on the step path (``count``, ``time``), are added up in the process and
written every ``FLUSH_SECONDS`` by a background thread (and at exit), so a step pays a
dictionary update, not a query; a process killed with SIGKILL loses at most that interval.
"""

from __future__ import annotations

import atexit
import bisect
import functools
import json
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db import connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from workflows import conf

log = logging.getLogger("workflows.metrics")

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
    "workflows_divergences": (
        "Replays that found the code and the recorded history disagreeing, by workflow.",
        "counter",
        ("workflow",),
    ),
    "workflows_instances_started": ("Instances created, by workflow.", "counter", ("workflow",)),
    "workflows_instances_completed": ("Instances that completed, by workflow.", "counter", ("workflow",)),
    "workflows_instances_failed": ("Instances that errored, by workflow.", "counter", ("workflow",)),
    "workflows_step_attempt_seconds": (
        "How long step.do attempts took, by workflow, step and outcome (succeeded, failed).",
        "histogram",
        ("workflow", "step", "outcome"),
    ),
    "workflows_steps_retried": (
        "Step attempts that failed and will be retried, by workflow.",
        "counter",
        ("workflow",),
    ),
    "workflows_schedule_to_start_seconds": (
        "From an instance being due (created, woken, retried) to a worker taking it: the queue lag.",
        "histogram",
        ("workflow",),
    ),
}
BUCKETS: dict[str, tuple[float, ...]] = {
    "workflows_approval_decision_seconds": (60, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400),
    "workflows_step_attempt_seconds": (0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600),
    "workflows_schedule_to_start_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 120),
}
FLUSH_SECONDS = 5


def _key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


Row = tuple[str, str, float]  # (row name, labels key, amount to add)


def _write(rows: list[Row]) -> None:
    """value += amount for each (name, labels), creating rows the first time (race-free upserts)."""
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO wf_metric (name, labels, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (name, labels) DO UPDATE SET value = wf_metric.value + EXCLUDED.value",
            [list(row) for row in rows],
        )


@functools.lru_cache(maxsize=4096)
def _histogram_keys(name: str, label_items: tuple[tuple[str, str], ...]) -> tuple[tuple[tuple[float, str], ...], str]:
    """The row keys of a histogram's buckets (+Inf last) and of its sum, for one set of labels:
    built once, as every step attempt observes one."""
    # _key's JSON (sorted keys, compact), assembled from pairs encoded once: a new step name
    # (a loop's f"item {i}") misses this cache every time, and ten json.dumps showed.
    pairs = {key: f"{json.dumps(key)}:{json.dumps(value)}" for key, value in label_items if key != "le"}
    order = sorted([*pairs, "le"])
    keys = []
    for bound in (*BUCKETS[name], math.inf):
        pairs["le"] = f'"le":{json.dumps("+Inf" if bound == math.inf else _le(bound))}'
        keys.append((bound, "{" + ",".join(pairs[key] for key in order) + "}"))
    return tuple(keys), _key(dict(label_items))


def increment(name: str, by: float = 1, **labels: str) -> None:
    if METRICS[name][1] != "counter":
        raise ValueError(f"{name} is not a counter")
    _write([(name, _key(labels), by)])


def observe(name: str, value: float, **labels: str) -> None:
    """Record one observation in a histogram: its buckets, its sum and its count."""
    if METRICS[name][1] != "histogram":
        raise ValueError(f"{name} is not a histogram")
    series = _series(name, labels)
    counts = _no_observations(name)
    _count(counts, name, value)
    _write(_observed_rows({series: counts}))


# --------------------------------------------------------------------------- buffered, for the step path


_pending: dict[tuple[str, str], float] = defaultdict(float)  # (row name, labels key) -> amount to add
Series = tuple[str, tuple[tuple[str, str], ...]]  # (histogram, sorted label pairs)
# time_taken's observations, counted per series (_no_observations) until the flush
_observed: dict[Series, list[float]] = {}
_pending_lock = threading.Lock()
_flusher: threading.Thread | None = None


def count(name: str, by: float = 1, **labels: str) -> None:
    """A counter increment kept in the process until the next flush."""
    _buffer([(name, _key(labels), by)])


def time_taken(name: str, seconds: float, **labels: str) -> None:
    """A histogram observation kept in the process until the next flush.

    Kept as per-bucket counts and a sum under the raw labels: the rows' JSON keys are
    built at the flush, once per series, not once per step (a loop's step names are new
    every time)."""
    series = _series(name, labels)
    with _pending_lock:
        counts = _observed.get(series)
        if counts is None:
            counts = _observed[series] = _no_observations(name)
        _count(counts, name, seconds)
        _start_flusher()


def _series(name: str, labels: dict[str, str]) -> Series:
    return name, tuple(sorted(labels.items()))


def _no_observations(name: str) -> list[float]:
    """A histogram's counts: one per bucket, one for +Inf, then the sum of the values."""
    return [0.0] * (len(BUCKETS[name]) + 2)


def _count(counts: list[float], name: str, value: float) -> None:
    counts[bisect.bisect_left(BUCKETS[name], value)] += 1  # the first bucket whose bound >= value
    counts[-1] += value


def _observed_rows(observed: dict[Series, list[float]]) -> list[Row]:
    """Histogram counts as ``wf_metric`` rows: the cumulative buckets (those reached), +Inf, the sum."""
    rows: list[Row] = []
    for (name, label_items), counts in observed.items():
        bucket_keys, sum_key = _histogram_keys(name, label_items)
        cumulative = 0.0
        for (_bound, key), in_bucket in zip(bucket_keys, counts, strict=False):
            cumulative += in_bucket
            if cumulative:
                rows.append((f"{name}:bucket", key, cumulative))
        rows.append((f"{name}:sum", sum_key, counts[-1]))
    return rows


# Step names become label values; a loop's f"item {i}" would make one series per item (and
# one wf_metric row per bucket of each). Like OpenTelemetry's cardinality limit: past this
# many distinct names for a workflow in a process, new ones are counted under OVERFLOW_STEP.
MAX_STEP_LABELS = 1000
OVERFLOW_STEP = "(other)"
_step_labels: dict[str, set[str]] = defaultdict(set)


def step_label(workflow: str, step: str) -> str:
    """The ``step`` label for a step of ``workflow``: its name, unless too many names came before."""
    seen = _step_labels[workflow]
    if step in seen:
        return step
    if len(seen) >= MAX_STEP_LABELS:
        return OVERFLOW_STEP
    seen.add(step)
    return step


def _buffer(rows: list[Row]) -> None:
    with _pending_lock:
        for name, key, amount in rows:
            _pending[(name, key)] += amount
        _start_flusher()


def _start_flusher() -> None:
    """Start the background flush (called holding ``_pending_lock``)."""
    global _flusher
    # In-process runs (tests) flush when /metrics is read, on the reader's connection.
    if conf.get("ENQUEUE") and (_flusher is None or not _flusher.is_alive()):
        _flusher = threading.Thread(target=_flush_forever, name="workflows-metrics", daemon=True)
        _flusher.start()
        atexit.unregister(flush)
        atexit.register(flush, quiet=True)


def discard() -> None:
    """Forget this process's unwritten counts (a test starting on a fresh database)."""
    with _pending_lock:
        _pending.clear()
        _observed.clear()


def flush(*, quiet: bool = False) -> None:
    """Write what this process has added up (one upsert per metric row); ``quiet``: no warning
    when that fails (at exit the database, a test's, or the log may be gone)."""
    with _pending_lock:
        observed = dict(_observed)
        _observed.clear()
        for row_name, labels_key, amount in _observed_rows(observed):
            _pending[(row_name, labels_key)] += amount
        batch = list(_pending.items())
        _pending.clear()
    if not batch:
        return
    try:
        _write([(name, labels, amount) for (name, labels), amount in batch])
    except Exception:  # noqa: BLE001 - metrics never break the work; the counts are kept for the next try
        with _pending_lock:
            for series, unwritten in batch:
                _pending[series] += unwritten
        if not quiet:
            log.warning("metrics: could not write %d rows; will retry", len(batch), exc_info=True)


def _flush_forever() -> None:
    from django.db import close_old_connections

    while True:
        time.sleep(FLUSH_SECONDS)
        if conf.get("ENQUEUE"):  # in-process runs (tests) flush when /metrics is read instead
            close_old_connections()
            flush()


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
    """The Prometheus text exposition of every metric (this process's pending counts first)."""
    flush()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseCollector())
    return generate_latest(registry)
