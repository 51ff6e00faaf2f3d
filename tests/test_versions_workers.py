"""Blue-green with real workers: two deployments pinned to their own versions, side by side.

Each deployment's worker advances only the instances created on its version, and records
itself as the deployment that ran them; an old deployment drains its instances while the
new one takes every new instance. And a real deploy under a parked instance: workers of v1
park it, `check-replay` run with v2 on disk reports it, workers of v2 wake it a "week" later
and take the patched path, or record (warn) or refuse (error) the divergence of a rename.
"""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.testapp.ledger import count
from tests.testapp.workflows import Pinned
from workflows import get_workflow, list_versions
from workflows.models import Instance
from workflows.testing import WorkerRunner, database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def runner(tmp_path, settings):
    # Kicks from this (unpinned) test process reach no pinned queue: the deployments'
    # dispatchers pick the instances up once due, after a short grace.
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True, "DISPATCH_GRACE_SECONDS": 1}
    runner = WorkerRunner(tmp_path)
    yield runner
    runner.stop()


def deployment(runner, name, version):
    env = {"WORKFLOWS_PIN_VERSIONS": "1", "WORKFLOWS_DEPLOYMENT": name, "T_PINNED_VERSION": version}
    return runner.start(env=env)


def test_pinned_workers_of_two_versions_each_advance_only_their_own(runner, monkeypatch, uid):
    old = [get_workflow("t-pinned").create(id=uid("old")) for _ in range(3)]
    monkeypatch.setattr(Pinned, "version", "v2")
    monkeypatch.setattr("workflows.versions._VERSIONS", {})
    new = [get_workflow("t-pinned").create(id=uid("new")) for _ in range(3)]
    deployment(runner, "blue", "v1")
    deployment(runner, "green", "v2")
    everything = old + new
    runner.wait(lambda: all(h.status()["status"] == "complete" for h in everything), "both deployments", 120)
    for handle in old:
        assert handle.status()["output"]["version"] == "v1"
        assert Instance.objects.get(instance_id=handle.id).deployment == "blue"
    for handle in new:
        assert handle.status()["output"]["version"] == "v2"
        assert Instance.objects.get(instance_id=handle.id).deployment == "green"
    states = {r["version"]: r["state"] for r in list_versions() if r["workflow"] == "t-pinned"}
    assert states == {"v1": "drained", "v2": "current"}


# --------------------------------------------------------------------------- a real deploy


def deploy(runner, variant, **env):
    """Workers running another version of t-lifecycle's code, as after a deploy."""
    return runner.start(env={"T_LIFECYCLE_CODE": variant, **env})


def a_week_passes(handle):
    """What seven days do to a parked instance: its sleep is due (the workers' clock is real)."""
    from workflows import clock
    from workflows.states import StepStatus
    from workflows.timers import wake_now, wake_steps_now

    row = Instance.objects.get(workflow_name="t-lifecycle", instance_id=handle.id)
    now = clock.now()
    wake_steps_now(row.pk, StepStatus.SLEEPING, now)
    Instance.objects.filter(pk=row.pk).update(**{**wake_now(now), "due_at": now})


def check_replay_with(variant):
    """`manage.py workflows check-replay` with that code on disk, against the test database."""
    env = {**os.environ, "T_LIFECYCLE_CODE": variant, "DATABASE_URL": database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", "workflows", "check-replay", "t-lifecycle"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["warn", "error"])
def test_a_deploy_that_renames_a_step_under_parked_instances(runner, uid, mode):
    deploy(runner, "v1")
    handle = get_workflow("t-lifecycle").create(id=uid("parked"))
    runner.wait(lambda: handle.status()["status"] == "waiting", "the instance to park on v1", 60)
    runner.stop()
    checked = check_replay_with("v2-renamed")
    assert checked.returncode == 1 and f"diverges  t-lifecycle/{handle.id}" in checked.stdout, checked.stdout
    assert check_replay_with("v1").returncode == 0, "the code it parked under replays cleanly"
    deploy(runner, "v2-renamed", WORKFLOWS_ON_DIVERGENCE=mode)
    a_week_passes(handle)
    if mode == "warn":
        runner.wait(lambda: handle.status()["status"] == "complete", "the instance to carry on", 60)
        assert handle.status()["output"] == ["loaded", "notified"], "as Cloudflare would: the new step runs"
        divergence = Instance.objects.get(instance_id=handle.id).divergence
        assert "fetch" in str(divergence) and "load" in str(divergence)
    else:
        runner.wait(lambda: handle.status()["status"] == "errored", "the instance to error", 60)
        assert handle.status()["error"]["name"] == "NonDeterminismError"
        assert count(handle.id, "load") == 0, "the new step never ran"
    assert count(handle.id, "fetch") == 1, "the finished step never ran again"


def test_a_deploy_with_a_patch_marker_keeps_parked_instances_on_the_old_path(runner, uid):
    deploy(runner, "v1")
    old = get_workflow("t-lifecycle").create(id=uid("old"))
    runner.wait(lambda: old.status()["status"] == "waiting", "the instance to park on v1", 60)
    runner.stop()
    assert check_replay_with("v2-patched").returncode == 0, "a patched change replays cleanly"
    deploy(runner, "v2-patched")
    new = get_workflow("t-lifecycle").create(id=uid("new"))
    runner.wait(lambda: new.status()["status"] == "waiting", "a new instance to park on v2", 60)
    a_week_passes(old)
    a_week_passes(new)
    runner.wait(lambda: old.status()["status"] == new.status()["status"] == "complete", "both to finish", 60)
    assert old.status()["output"] == ["fetched", "notified"] and count(old.id, "fetch") == 1
    assert new.status()["output"] == ["loaded", "notified"] and count(new.id, "fetch") == 0
    assert Instance.objects.get(instance_id=old.id).divergence is None
