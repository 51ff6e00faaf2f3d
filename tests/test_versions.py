"""Safe deploys while instances are parked: versions recorded, patch markers, divergence caught
(warn or error), a replay check before deploying, histories kept as fixtures.

A t-lifecycle instance parks for 7 days; the test then swaps its code (a renamed step, an
inserted step, a patch marker) as a deploy would, and lets the 7 days pass.
"""

import io

import pytest
from django.core.management import call_command

from tests.helpers import run, start
from tests.testapp.ledger import count
from tests.testapp.workflows import LIFECYCLE_CODE, Lifecycle
from workflows import get_workflow, list_versions, metrics_text
from workflows.models import Instance
from workflows.testing import InProcessRunner, check_replay, export_history
from workflows.versions import workflow_version

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture(autouse=True)
def code():
    """The deployed code of t-lifecycle: v1 unless a test deploys another."""
    LIFECYCLE_CODE["variant"] = "v1"
    yield LIFECYCLE_CODE
    LIFECYCLE_CODE["variant"] = "v1"


def parked_on_v1():
    handle = start("t-lifecycle")
    assert run(handle)["status"] == "waiting"
    return handle


def week_passes():
    InProcessRunner().advance("7 days")


def test_each_instance_records_its_version_and_the_deployment_that_ran_it():
    handle = parked_on_v1()
    row = Instance.objects.get(instance_id=handle.id)
    assert row.version == workflow_version(Lifecycle) and row.version.startswith("src-")
    assert row.deployment  # the git commit of this checkout, or the package version
    story = handle.describe()
    assert story["version"] == row.version and story["deployment"] == row.deployment


def test_an_explicit_version_and_the_overview_of_draining_versions(monkeypatch):
    parked_on_v1()
    old = workflow_version(Lifecycle)
    monkeypatch.setattr(Lifecycle, "version", "2026-12-b", raising=False)
    monkeypatch.setattr("workflows.versions._VERSIONS", {})
    parked_on_v1()
    rows = {r["version"]: r for r in list_versions() if r["workflow"] == "t-lifecycle"}
    assert rows["2026-12-b"]["state"] == "current" and rows["2026-12-b"]["unfinished"] == 1
    assert rows[old]["state"] == "draining" and rows[old]["unfinished"] == 1
    assert get_workflow("t-lifecycle").list(version=old)["instances"][0]["id"]


def test_a_renamed_step_is_a_divergence_recorded_on_the_instance_and_the_instance_carries_on(code):
    handle = parked_on_v1()
    code["variant"] = "v2-renamed"
    week_passes()
    story = handle.describe()
    assert story["status"] == "complete" and story["output"] == ["loaded", "notified"]
    assert story["divergence"]["kind"] == "renamed"
    assert 'step "load"' in story["divergence"]["message"] and 'step "fetch"' in story["divergence"]["message"]
    assert 'workflows_divergences_total{workflow="t-lifecycle"} 1.0' in metrics_text()


def test_in_error_mode_a_rename_errors_the_instance_before_the_new_step_runs(code, settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ON_DIVERGENCE": "error"}
    handle = parked_on_v1()
    code["variant"] = "v2-renamed"
    week_passes()
    status = handle.status()
    assert status["status"] == "errored" and status["error"]["name"] == "NonDeterminismError"
    assert 'step "fetch"' in status["error"]["message"]
    assert count(handle.id, "load") == 0, "the renamed step never ran"


def test_an_inserted_step_before_recorded_ones_is_caught(code, settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ON_DIVERGENCE": "error"}
    handle = parked_on_v1()
    code["variant"] = "v2-inserted"
    week_passes()
    assert handle.status()["error"]["name"] == "NonDeterminismError"
    assert 'step "audit"' in handle.status()["error"]["message"] and count(handle.id, "audit") == 0


def test_a_step_named_from_uuid4_diverges_on_the_next_replay(code):
    code["variant"] = "uuid"
    handle = start("t-lifecycle")
    run(handle)
    week_passes()
    assert handle.describe()["divergence"] is not None
    assert count(handle.id, "fetch") == 2, "the step ran again under a new random name: why the seed warns"


def test_a_patch_marker_keeps_old_instances_on_the_old_path_and_new_ones_on_the_new(code):
    old = parked_on_v1()
    code["variant"] = "v2-patched"
    new = start("t-lifecycle")
    run()
    week_passes()
    assert old.status()["output"] == ["fetched", "notified"] and count(old.id, "load") == 0
    assert new.status()["output"] == ["loaded", "notified"] and count(new.id, "fetch") == 0
    assert old.describe()["divergence"] is None and new.describe()["divergence"] is None
    for handle, taken in ((old, False), (new, True)):
        markers = {s["name"]: s["taken"] for s in handle.describe()["steps"] if s["kind"] == "patch"}
        assert markers == {"load-instead-of-fetch": taken}, "the answer is recorded: every later replay agrees"


def test_check_replay_reports_exactly_the_diverging_instances_and_exits_1(code):
    renamed = parked_on_v1()
    kept = parked_on_v1()
    code["variant"] = "v2-patched"
    out = io.StringIO()
    call_command("workflows", "check-replay", "t-lifecycle", stdout=out)
    assert "2 instance(s) replayed: 2 clean, 0 not" in out.getvalue()
    code["variant"] = "v2-renamed"
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("workflows", "check-replay", "t-lifecycle", stdout=out)
    assert exited.value.code == 1
    text = out.getvalue()
    assert f"diverges  t-lifecycle/{renamed.id}" in text and f"diverges  t-lifecycle/{kept.id}" in text
    assert count(renamed.id, "load") == 0 and Instance.objects.get(instance_id=renamed.id).divergence is None, (
        "a replay check runs and writes nothing"
    )


def test_a_kept_history_replays_against_new_code_as_a_test_fixture(code, tmp_path):
    handle = parked_on_v1()
    path = tmp_path / "lifecycle.json"
    export_history(handle, path)
    assert check_replay(Lifecycle, path).result == "clean"
    code["variant"] = "v2-renamed"
    report = check_replay(Lifecycle, path)
    assert report.result == "diverges" and "fetch" in report.detail
    code["variant"] = "v2-patched"
    assert check_replay(Lifecycle, path).result == "clean"


def test_a_pinned_process_claims_no_handed_out_step_of_a_version_it_does_not_have(monkeypatch, settings):
    """Every deployment's fast lane hears of a handed-out step; only one with the instance's
    version may run it."""
    from workflows import clock
    from workflows.engine.leases import claim_step
    from workflows.models import Step
    from workflows.states import StepStatus

    handle = parked_on_v1()
    row = Instance.objects.get(instance_id=handle.id)
    queued = Step.objects.create(
        instance=row, kind="do", name="handed out", occurrence=0, seq=99,
        status=StepStatus.QUEUED, attempts=0, started_at=clock.now(),
    )  # fmt: skip
    settings.WORKFLOWS = {**settings.WORKFLOWS, "PIN_VERSIONS": True}
    monkeypatch.setattr(Lifecycle, "version", "2026-12-b", raising=False)
    monkeypatch.setattr("workflows.versions._VERSIONS", {})
    assert claim_step(queued.pk, clock.now()) is None, "a deployment of another version"
    monkeypatch.undo()
    settings.WORKFLOWS = {**settings.WORKFLOWS, "PIN_VERSIONS": True}
    claimed = claim_step(queued.pk, clock.now())
    assert claimed is not None and claimed[0].pk == row.pk, "a deployment with the instance's version"
