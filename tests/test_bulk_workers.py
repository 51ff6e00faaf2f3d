"""Bulk jobs and repairs with real worker processes and real kills.

A job over thousands of parked instances (5,000 on PostgreSQL) survives a worker SIGKILL in
the middle: every instance is acted on exactly once and the results are complete. A step
resolved by hand carries its instance on even if the worker is killed right after.
"""

import pytest
from django.contrib.auth.models import User
from django.db import connection

from tests.testapp.ledger import count
from workflows import acting, audit_log, bulk_jobs, get_workflow, now
from workflows.models import BulkJobItem, Instance
from workflows.testing import WorkerRunner

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def runner(tmp_path, settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True}
    runner = WorkerRunner(tmp_path, lease_seconds=3)
    yield runner
    runner.stop()


def parked(n):
    """n t-waiter instances parked far ahead (rows, as thousands of real ones would be)."""
    from datetime import timedelta

    moment = now()
    Instance.objects.bulk_create(
        [
            Instance(
                workflow_name="t-waiter",
                instance_id=f"bulk-{i}",
                status="waiting",
                params="{}",
                created_at=moment,
                updated_at=moment,
                started_at=moment,
                wake_at=moment + timedelta(days=30),
                due_at=None,
            )  # fmt: skip
            for i in range(n)
        ],
        batch_size=1000,
    )


def test_a_bulk_job_over_thousands_survives_a_killed_worker_and_acts_once_on_each(runner):
    n = 5000 if connection.vendor == "postgresql" else 800
    parked(n)
    olga = User.objects.create_user("olga")
    with acting(olga, "api"):
        job = bulk_jobs.start("terminate", {"workflow": "t-waiter", "id_prefix": "bulk-"})
    first = runner.start()
    runner.wait(lambda: bulk_jobs.get(job.id).done >= n // 5, "a fifth of the job", 300)
    runner.kill(first)  # SIGKILL mid-job: the lease runs out and another worker's runner takes over
    runner.start()
    runner.wait(lambda: bulk_jobs.get(job.id).status == "done", "the job to finish after the kill", 600)
    finished = bulk_jobs.get(job.id)
    assert (finished.total, finished.done, finished.refused, finished.skipped) == (n, n, 0, 0)
    assert BulkJobItem.objects.filter(job_id=job.id, status="done").count() == n
    assert Instance.objects.filter(instance_id__startswith="bulk-", status="terminated").count() == n
    records = [r for r in audit_log(workflow="t-waiter", limit=10_000) if r["details"].get("bulk_job") == job.id]
    assert len(records) == n and len({r["instance_id"] for r in records}) == n, "an instance was acted on twice"
    assert {r["actor"] for r in records} == {"olga"}


def test_a_step_resolved_by_hand_carries_on_even_if_the_worker_dies_right_after(runner, uid):
    worker = runner.start()
    handle = get_workflow("t-fixable").create(id=uid("fix"))
    runner.wait(lambda: handle.status()["status"] == "errored", "the step to fail for good", 60)
    handle.resolve_step("call", "by hand", note="service restored manually")
    runner.kill(worker)
    runner.start()
    runner.wait(lambda: handle.status()["status"] == "complete", "the instance to carry on", 120)
    assert handle.status()["output"] == ["prepared", "by hand"]
    assert count(handle.id, "call") == 2 and count(handle.id, "prepare") == 1
