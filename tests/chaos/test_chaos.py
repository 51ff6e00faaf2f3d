"""Chaos: real worker processes killed at random, PostgreSQL restarted, while instances run.

Opt-in (marker ``chaos``; CI runs it): ``scripts/test -m chaos``. CHAOS_INSTANCES sets the
size (default 500).
"""

import os
import random
import subprocess
import threading
import time

import pytest
from django.db import OperationalError, close_old_connections, connection

from tests.testapp.ledger import count
from workflows import get_workflow
from workflows.models import Instance, Step

pytestmark = [pytest.mark.chaos, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
N = int(os.environ.get("CHAOS_INSTANCES", "500"))
EXPECTED = 1 + (0 + 1 + 2) + 5 + 7  # a + parts + flaky + c (event payload n=7)


def statuses():
    while True:
        try:
            return dict(Instance.objects.filter(workflow_name="t-chaos").values_list("instance_id", "status"))
        except OperationalError:  # the database is restarting
            close_old_connections()
            connection.close()
            time.sleep(0.5)


def send_events(ids):
    handle = get_workflow("t-chaos")
    for iid in ids:
        for _ in range(20):
            try:
                handle.get(iid).send_event("go", {"n": 7})
                break
            except OperationalError:
                connection.close()
                time.sleep(0.5)
        else:
            raise AssertionError(f"{iid}: the event could not be sent in 20 tries")


def check_every_effect_and_result(ids):
    for iid in ids:
        for label in ("a", "part 0", "part 1", "part 2", "c"):
            assert count(iid, label) >= 1, f"{iid}: side effect {label!r} never happened"
        assert count(iid, "flaky") >= 2, f"{iid}: the failing step was not retried"
    # Exactly one result per step: each (instance, kind, name, occurrence) once, succeeded.
    steps = Step.objects.filter(instance__workflow_name="t-chaos")
    assert steps.count() == len(ids) * 8
    assert not steps.exclude(status="succeeded").exists()


def wait_all_complete(runner, ids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = statuses()
        if all(current.get(i) == "complete" for i in ids):
            return
        bad = {i: s for i, s in current.items() if s in ("errored", "terminated")}
        assert not bad, f"instances failed: {bad}{runner.log_tails()}"
        time.sleep(0.5)
    stuck = {i: s for i, s in statuses().items() if s != "complete"}
    raise AssertionError(
        f"{len(stuck)} instances not complete after {timeout}s: {dict(list(stuck.items())[:10])}{runner.log_tails()}"
    )


def test_random_sigkills_of_workers_lose_nothing_and_record_every_result_once(settings, tmp_path):
    from workflows.testing import WorkerRunner

    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True}
    runner = WorkerRunner(tmp_path, lease_seconds=2, processes=1)
    trees = [runner.start() for _ in range(3)]
    ids = [f"chaos-{i}" for i in range(N)]
    handle = get_workflow("t-chaos")
    for offset in range(0, N, 100):
        handle.create_batch(
            [{"id": iid, "params": {"nap": 1 + (n % 3)}} for n, iid in enumerate(ids[offset : offset + 100])]
        )
    send_events(ids[: N // 2])  # buffered before the wait; the rest arrive while workers die

    stop = threading.Event()
    kills = []

    def killer():
        rng = random.Random(7)
        while not stop.wait(3):
            victim = rng.randrange(len(trees))
            runner.kill(trees[victim])
            trees[victim] = runner.start()
            kills.append(victim)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        time.sleep(4)
        send_events(ids[N // 2 :])
        wait_all_complete(runner, ids, timeout=600)
    finally:
        stop.set()
        thread.join(10)
        runner.stop()
    assert len(kills) >= 2, "the test should have killed workers along the way"
    assert all(get_workflow("t-chaos").get(i).status()["output"] == EXPECTED for i in ids)
    check_every_effect_and_result(ids)


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="restarts the PostgreSQL server"
)
def test_workers_reconnect_after_postgresql_restarts_mid_run(settings, tmp_path):
    from workflows.testing import WorkerRunner

    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True}
    runner = WorkerRunner(tmp_path, lease_seconds=2, processes=2)
    runner.start()
    ids = [f"pg-{i}" for i in range(60)]
    get_workflow("t-chaos").create_batch([{"id": iid, "params": {"nap": 2}} for iid in ids])
    send_events(ids)
    try:
        time.sleep(2)
        assert any(status != "complete" for status in statuses().values()), "instances are mid-run at the restart"
        version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=120
        )
        connection.close()
        wait_all_complete(runner, ids, timeout=300)
    finally:
        runner.stop()
    check_every_effect_and_result(ids)
