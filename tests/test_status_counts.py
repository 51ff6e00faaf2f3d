"""The status counts the overview, the list and the API show are exact at every moment, without
counting the instances: database triggers record each change, whatever code made it."""

from datetime import timedelta

import pytest
from django.db.models import Count

from tests.helpers import run, start
from workflows import clock, count_instances, get_workflow, list_versions, list_workflows, status_counts
from workflows.models import Instance, StatusCount, StatusDelta
from workflows.retention import prune_finished

pytestmark = pytest.mark.usefixtures("engine")


def counted_directly():
    rows = Instance.objects.values_list("workflow_name", "version", "status").annotate(n=Count("pk")).order_by()
    return {(w, v, s): n for w, v, s, n in rows}


def shown():
    return status_counts.counts().by_key


def a_busy_history():
    for i in range(3):
        start("t-counter", {"steps": 2}, id=f"c{i}")
    start("t-flaky", {"fail": 99, "retries": {"limit": 0, "delay": 0}}, id="f1")
    waiting = start("t-waiter", id="w1")
    get_workflow("t-counter").create_batch([{"id": f"b{i}", "params": {"steps": 1}} for i in range(5)])
    run()
    waiting.terminate()
    get_workflow("t-counter").get("c1").restart()
    Instance.objects.filter(instance_id="b0").update(status="paused")  # even a raw update is counted


def test_counts_follow_every_change_before_and_after_they_are_folded():
    a_busy_history()
    assert StatusDelta.objects.exists()
    assert shown() == counted_directly()
    assert status_counts.compact() > 0
    assert not StatusDelta.objects.exists()
    assert shown() == counted_directly()
    run()
    assert shown() == counted_directly()


def test_the_pages_figures_come_from_the_counts_and_match_the_rows():
    a_busy_history()
    status_counts.compact()
    counter = next(w for w in list_workflows() if w["name"] == "t-counter")
    for status, n in counter["counts"].items():
        assert n == Instance.objects.filter(workflow_name="t-counter", status=status).count()
    assert counter["last_activity"] is not None
    assert count_instances("t-counter") == Instance.objects.filter(workflow_name="t-counter").count()
    assert (
        count_instances(statuses=["complete", "queued"])
        == Instance.objects.filter(status__in=["complete", "queued"]).count()
    )
    # Filters the counts cannot answer still count the rows.
    assert count_instances("t-counter", id_prefix="b") == 5


def test_pruned_instances_leave_the_counts():
    a_busy_history()
    clock.advance(timedelta(days=400))
    assert prune_finished() > 0
    assert shown() == counted_directly()
    status_counts.compact()
    assert shown() == counted_directly()
    assert not StatusCount.objects.filter(n=0).exists(), "empty rows are dropped when folding"


def test_a_version_with_only_finished_instances_is_drained():
    a_busy_history()
    Instance.objects.filter(workflow_name="t-counter", status="complete").update(version="old")
    states = {(r["workflow"], r["version"]): r for r in list_versions()}
    assert states[("t-counter", "old")]["state"] == "drained"
    assert states[("t-counter", "old")]["unfinished"] == 0


def test_a_reader_folds_the_deltas_when_no_dispatcher_has_for_a_while(monkeypatch):
    monkeypatch.setattr(status_counts, "COMPACT_READ_THRESHOLD", 3)
    a_busy_history()
    assert StatusDelta.objects.count() > 3
    assert shown() == counted_directly()
    assert not StatusDelta.objects.exists(), "folded by the reader"
    assert shown() == counted_directly()
