"""The engine's guarantees with real worker processes, real kills and the real database.

Run on SQLite and PostgreSQL by CI. Timing is only bounded generously here; speed is
measured in bench/, not asserted.
"""

import signal
import time

import pytest

from tests.testapp.ledger import count, read
from workflows import get_workflow
from workflows.models import Attempt, Step

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers(runner):
    return runner.start


def wait_for(predicate, timeout, what, runner):
    return runner.wait(predicate, what, timeout)


def status_is(instance, wanted):
    return lambda: instance.status()["status"] == wanted


def test_a_worker_runs_an_instance_through_a_sleep_without_rerunning_finished_steps(workers, runner, uid):
    workers()
    instance = get_workflow("t-memo").create(id=uid())
    wait_for(status_is(instance, "waiting"), 30, "the sleep", runner)
    wait_for(status_is(instance, "complete"), 30, "completion", runner)
    assert instance.status()["output"] == [{"x": 1}, None]
    assert (count(instance.id, "a"), count(instance.id, "n"), count(instance.id, "replay")) == (1, 1, 2)
    slept = read(instance.id, "replay")[1]["t"] - read(instance.id, "a")[0]["t"]
    assert 1 - 0.05 <= slept < 10, f"woke {slept:.2f}s after the step before the 1 s sleep"


def test_send_event_wakes_a_waiting_instance(workers, runner, uid):
    workers()
    instance = get_workflow("t-waiter").create(id=uid(), params={"timeout": "1h"})
    wait_for(status_is(instance, "waiting"), 30, "the wait", runner)
    instance.send_event("go", {"approved": True})
    wait_for(status_is(instance, "complete"), 10, "the event to wake the instance", runner)
    assert instance.status()["output"] == [{"approved": True}]


def test_a_worker_killed_mid_step_loses_nothing_and_reruns_only_the_interrupted_step(workers, runner, uid):
    first = workers()
    instance = get_workflow("t-crashy").create(id=uid())
    wait_for(lambda: count(instance.id, "slow") == 1, 30, "the slow step to start", runner)
    runner.kill(first)
    workers()
    wait_for(status_is(instance, "complete"), 60, "recovery by another worker", runner)
    assert instance.status()["output"] == 2
    assert count(instance.id, "before") == 1, "a finished step ran again"
    assert [e["attempt"] for e in read(instance.id, "slow")] == [1, 2]
    assert count(instance.id, "after") == 1
    slow = next(s for s in instance.describe()["steps"] if s["name"] == "slow")
    assert slow["attempts"][0]["error"]["name"] == "WorkflowInternalError" and slow["attempts"][1]["success"]


def test_two_workers_racing_for_the_same_instances_never_run_a_step_twice(workers, runner, uid):
    workers()
    workers()  # a second cluster competing for the same instances
    handles = get_workflow("t-counter").create_batch([{"id": uid("race"), "params": {"steps": 6}} for _ in range(40)])
    # Extra kicks for every instance: both clusters now compete for each one.
    from workflows.models import Instance
    from workflows.timers import kick

    for pk in Instance.objects.filter(instance_id__in=[h.id for h in handles]).values_list("pk", flat=True):
        kick(pk)
        kick(pk)
    wait_for(lambda: all(h.status()["status"] == "complete" for h in handles), 90, "all 40 instances", runner)
    for handle in handles:
        assert handle.status()["output"] == 15
        assert [count(handle.id, f"step-{i}") for i in range(6)] == [1] * 6, handle.id
    pids = {e["pid"] for h in handles for e in read(h.id)}
    assert len(pids) >= 2, "the work should have been spread over several processes"


def test_a_crash_loop_errors_the_instance_instead_of_crashing_workers_forever(workers, runner, uid):
    workers(lease_seconds=1)
    instance = get_workflow("t-always-crash").create(id=uid())
    wait_for(status_is(instance, "errored"), 90, "the crash loop to be cut off", runner)
    error = instance.status()["error"]
    assert error["name"] == "WorkflowInternalError"
    assert "died 6 times in a row (in step 'die')" in error["message"]
    assert count(instance.id, "die") == 6


def test_sigterm_drains_a_step_in_flight_and_its_instance_continues_elsewhere(workers, runner, uid):
    first = workers()
    instance = get_workflow("t-long-step").create(id=uid(), params={"seconds": 3, "then": True})
    wait_for(lambda: count(instance.id, "long") == 1, 30, "the long step to start", runner)
    started = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0
    assert time.monotonic() - started < 20
    # The step in flight finished and was kept; the instance was handed back before the next one.
    assert instance.status()["status"] == "queued"
    assert [(s["name"], s["status"]) for s in instance.describe()["steps"]] == [("long", "succeeded")]
    assert count(instance.id, "after") == 0
    workers()
    wait_for(status_is(instance, "complete"), 30, "a new worker to take over", runner)
    assert (count(instance.id, "long"), count(instance.id, "after")) == (1, 1)
    assert not Attempt.objects.filter(step__instance__instance_id=instance.id).exists(), "nothing was interrupted"


def test_a_step_longer_than_the_lease_is_kept_by_its_worker_and_runs_once(workers, runner, uid):
    workers(lease_seconds=1)
    workers(lease_seconds=1)
    instance = get_workflow("t-long-step").create(id=uid(), params={"seconds": 4})
    wait_for(status_is(instance, "complete"), 40, "the long step", runner)
    assert count(instance.id, "long") == 1, "another worker took over a live lease"
    assert Attempt.objects.filter(step__instance__instance_id=instance.id).count() == 0, "no failed attempt"
    assert instance.describe()["steps"][0]["attempts"][0]["success"]


def test_a_worker_killed_mid_fan_out_loses_nothing_and_reruns_only_unfinished_steps(workers, runner, uid):
    first = workers()
    workers()
    instance = get_workflow("t-slow-fanout").create(id=uid(), params={"n": 8})
    committed = Step.objects.filter(instance__instance_id=instance.id, status="succeeded", name__startswith="part")
    wait_for(lambda: committed.count() >= 2, 60, "two parts to finish", runner)
    runner.kill(first)
    # Finished means committed: a callback that ran to its end but was killed before its
    # result was saved runs again (at-least-once), a committed one never does.
    finished_before_kill = {int(name.split()[1]) for name in committed.values_list("name", flat=True)}
    workers()
    wait_for(status_is(instance, "complete"), 120, "the fan-out to complete", runner)
    assert instance.status()["output"] == sum(range(8))
    starts = [e["i"] for e in read(instance.id, "start")]
    for i in finished_before_kill:
        assert starts.count(i) == 1, f"part {i} had finished, yet ran again"
    assert {e["i"] for e in read(instance.id, "end")} == set(range(8))
