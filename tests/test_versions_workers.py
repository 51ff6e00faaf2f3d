"""Blue-green with real workers: two deployments pinned to their own versions, side by side.

Each deployment's worker advances only the instances created on its version, and records
itself as the deployment that ran them; an old deployment drains its instances while the
new one takes every new instance.
"""

import pytest

from tests.testapp.workflows import Pinned
from workflows import get_workflow, list_versions
from workflows.models import Instance
from workflows.testing import WorkerRunner

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
