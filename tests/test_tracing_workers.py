"""Traces with real worker processes: one instance's whole life in one connected trace,
across a worker SIGKILL, from the API request that created it to the child it started."""

import json
import time

import pytest
from django.contrib.auth.models import Permission, User

from api.models import ApiToken
from workflows import get_workflow
from workflows.testing import WorkerRunner

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans_file(tmp_path, settings, monkeypatch):
    path = tmp_path / "spans.jsonl"
    monkeypatch.setenv("WORKFLOWS_TRACING", f"file:{path}")  # the workers trace to the same file
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True, "TRACING": f"file:{path}"}
    return path


def spans(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_one_trace_from_the_creating_request_through_a_kill_to_the_child(spans_file, tmp_path, client):
    runner = WorkerRunner(tmp_path)
    try:
        first = runner.start()
        user = User.objects.create_user("svc")
        user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "send_event"]))
        headers = {
            "Authorization": f"Bearer {ApiToken.issue(user)[1]}",
            "traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01",  # the caller's own trace
        }
        created = client.post(
            "/api/workflows/t-traced/instances", data={"id": "tr-1"}, content_type="application/json", headers=headers
        )
        assert created.status_code == 201
        handle = get_workflow("t-traced").get("tr-1")
        runner.wait(lambda: handle.status()["status"] == "waiting" and "wait" in str(handle.describe()["steps"]),
                    "the wait for the event", 60)  # fmt: skip
        time.sleep(1.5)
        runner.kill(first)  # SIGKILL: the next segment runs on another worker
        runner.start()
        handle.send_event("go", {"n": 1})
        runner.wait(lambda: handle.status()["status"] == "complete", "completion after the kill", 90)
        runner.wait(lambda: any(s["name"] == "create t-counter" for s in spans(spans_file)), "the child's span", 30)
    finally:
        runner.stop()
    found = [s for s in spans(spans_file) if s["trace_id"] == CALLER_TRACE]
    names = [s["name"] for s in found]
    assert "create t-traced" in names, "the instance's trace is the creating request's"
    segments = [s for s in found if s["name"] == "run t-traced"]
    assert len({s["attributes"]["process.pid"] for s in segments}) >= 2, "segments from two worker processes"
    assert all(s["links"] for s in segments[1:]), "each later segment links to the one before"
    steps = [s for s in found if s["name"] == "step flaky"]
    assert [s["attributes"]["workflow.outcome"] for s in steps] == ["failed", "succeeded"]
    assert any(s["name"] == "sleep nap" and s["attributes"]["workflow.waited_seconds"] >= 1 for s in found)
    wait = next(s for s in found if s["name"] == "wait_for_event answer")
    assert wait["links"], "the wait links to the send_event that delivered its event"
    child = next(s for s in found if s["name"] == "create t-counter")
    assert child["parent_id"] == next(s for s in found if s["name"] == "step start child")["span_id"]
    assert any(s["name"] == "run t-counter" for s in found), "the child's own run is in the same trace"
