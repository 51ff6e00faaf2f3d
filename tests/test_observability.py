"""Observability: metrics named like the peers', no table scan on a scrape, traces that follow an
instance from its creator through every step, wait and decision, logs that carry the trace,
and a Grafana board whose queries name metrics that exist."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers import run, start
from workflows import get_workflow, metrics_text
from workflows.testing import InProcessRunner

pytestmark = pytest.mark.usefixtures("engine")
ROOT = Path(django_settings.BASE_DIR)


def value(text, line_start):
    line = next(line for line in text.splitlines() if line.startswith(line_start))
    return float(line.rsplit(" ", 1)[1])


def test_metrics_after_a_known_run_have_the_expected_values():
    start("t-flaky", {"fail": 2, "retries": {"limit": 3, "delay": 0}})
    start("t-memo")
    InProcessRunner().advance("5s")
    text = metrics_text()
    assert value(text, 'workflows_instances_started_total{workflow="t-flaky"}') == 1
    assert value(text, 'workflows_instances_completed_total{workflow="t-flaky"}') == 1
    assert value(text, 'workflows_steps_retried_total{workflow="t-flaky"}') == 2
    failed = 'workflows_step_attempt_seconds_count{outcome="failed",step='
    assert value(text, failed) == 2 and "workflows_schedule_to_start_seconds_bucket" in text
    assert 'workflows_instances_completed_total{workflow="t-memo"} 1.0' in text


def test_a_scrape_reads_no_instance_or_attempt_table_in_full():
    start("t-waiter")
    run()
    with CaptureQueriesContext(connection) as queries:
        metrics_text()
    scans = [
        q["sql"]
        for q in queries
        if "GROUP BY" in q["sql"] and ('"wf_instance"' in q["sql"] or '"wf_attempt"' in q["sql"])
    ]
    assert scans == [], "a GROUP BY over every instance or attempt on each scrape"
    assert 'workflows_parked_steps{kind="wait_for_event"} 1.0' in metrics_text()


@pytest.fixture
def traced(settings, tmp_path):
    path = tmp_path / "spans.jsonl"
    settings.WORKFLOWS = {**settings.WORKFLOWS, "TRACING": f"file:{path}"}
    return path


def spans(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_instance_is_one_connected_trace_with_its_steps_waits_and_child(traced):
    parent = start("t-parent")
    run()
    InProcessRunner().advance("2s")
    found = spans(traced)
    mine = [s for s in found if s["attributes"].get("workflow.instance_id") == parent.id]
    trace_id = mine[0]["trace_id"]
    assert {s["trace_id"] for s in mine} == {trace_id}, "every segment of the instance in one trace"
    names = {s["name"] for s in found if s["trace_id"] == trace_id}
    assert "create t-parent" in names and "run t-parent" in names
    assert any(n.startswith("step ") for n in names)

    segments = [s for s in found if s["name"] == "run t-parent"]
    assert len(segments) >= 2 and any(
        link["attributes"].get("relation") == "previous segment" for link in segments[-1]["links"]
    )


def test_failed_attempts_are_error_spans_and_events_link_to_their_sender(traced):
    handle = start("t-flaky", {"fail": 1, "retries": {"limit": 2, "delay": 0}})
    run()
    errors = [s for s in spans(traced) if s["name"].startswith("step ") and s["status"] == "ERROR"]
    assert errors and errors[0]["attributes"]["workflow.outcome"] == "failed"
    waiter = start("t-waiter")
    run()
    from opentelemetry import trace

    with trace.get_tracer("test").start_as_current_span("the webhook that answers"):
        waiter.send_event("go", {"ok": True})
    run()
    waits = [s for s in spans(traced) if s["name"].startswith("wait_for_event")]
    assert waits and waits[0]["links"] and waits[0]["links"][0]["attributes"]["relation"] == "event sender"
    assert handle.describe()["trace_id"] == [s for s in spans(traced) if s["name"] == "create t-flaky"][0]["trace_id"]


def test_without_tracing_the_engine_imports_no_opentelemetry():
    script = (
        "import sys, django; django.setup()\n"
        "from workflows.testing import run_until_idle\n"
        "from workflows import get_workflow\n"
        "import workflows.engine.replay, workflows.api, workflows.tracing\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "WORKFLOWS_TRACING": ""},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_grafana_board_and_the_alert_rules_name_metrics_that_exist():
    from workflows.metrics import METRICS

    exposed = set()
    for name, (_, kind, _) in METRICS.items():
        exposed |= {f"{name}_total"} if kind == "counter" else {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    exposed |= {g[0] for g in __import__("workflows.health", fromlist=["gauges"]).gauges()}
    board = json.loads((ROOT / "deploy" / "grafana" / "workflows.json").read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    import re

    named = set(re.findall(r"\bworkflows_[a-z_]+", " ".join(exprs) + rules))
    assert exprs and named and named <= exposed, f"unknown metrics: {sorted(named - exposed)}"
    assert {"workflows_step_attempt_seconds_bucket", "workflows_approvals_open"} <= named


def test_log_lines_carry_the_trace_when_tracing_is_on(traced):
    import logging

    from opentelemetry import trace

    from workflows.logs import JsonFormatter
    from workflows.tracing import tracer

    tracer()
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    with trace.get_tracer("test").start_as_current_span("outer") as span:
        entry = json.loads(JsonFormatter().format(record))
    assert entry["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_the_cli_prints_an_instance_trace_as_a_tree(traced):
    import io

    from django.core.management import call_command

    handle = get_workflow("t-memo").create()
    InProcessRunner().advance("2s")
    out = io.StringIO()
    call_command("workflows", "trace", "t-memo", handle.id, stdout=out)
    text = out.getvalue()
    assert text.startswith("trace ") and "create t-memo" in text and "  run t-memo" in text and "step " in text


def test_step_names_past_the_cardinality_limit_share_one_label(monkeypatch):
    from workflows import metrics

    monkeypatch.setattr(metrics, "MAX_STEP_LABELS", 2)
    monkeypatch.setattr(metrics, "_step_labels", type(metrics._step_labels)(set))
    labels = [metrics.step_label("loop", f"item {i}") for i in range(4)]
    assert labels == ["item 0", "item 1", "(other)", "(other)"]
    assert metrics.step_label("loop", "item 1") == "item 1", "a name already labelled keeps its label"
    assert metrics.step_label("another", "item 9") == "item 9", "the limit is per workflow"
