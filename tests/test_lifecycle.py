"""pause, resume, terminate and restart, and the statuses they lead through."""

from datetime import timedelta

import pytest

from tests.helpers import attempts_of, later, row, run, start, steps_of
from tests.testapp.ledger import count
from workflows import clock, get_workflow, tasks
from workflows.engine import leases, records
from workflows.engine.rows import StepRow
from workflows.errors import InvalidState
from workflows.models import Event, Instance

pytestmark = pytest.mark.usefixtures("engine")


def test_pausing_a_sleeping_instance_is_immediate_and_paused_time_does_not_count():
    instance = start("t-memo")
    run(instance)
    wake = steps_of(instance)[-1].wake_at
    instance.pause()
    assert instance.status()["status"] == "paused"
    later(hours=1)
    assert instance.status()["status"] == "paused"
    instance.resume()
    shifted = steps_of(instance)[-1].wake_at - wake
    assert timedelta(hours=1) <= shifted < timedelta(hours=1, seconds=1)
    assert run(instance)["status"] == "waiting"
    later(seconds=1)
    assert instance.status()["status"] == "complete"


def test_pause_while_a_step_runs_waits_for_it_then_stops_before_the_next(monkeypatch):
    from tests.testapp import workflows as testapp

    instance = start("t-counter", {"steps": 3})
    real_record = testapp.record

    def record_then_pause(iid, event, **fields):
        real_record(iid, event, **fields)
        if event == "step-0":  # an operator pauses while the first step runs
            get_workflow("t-counter").get(iid).pause()
            assert get_workflow("t-counter").get(iid).status()["status"] == "waitingForPause"

    monkeypatch.setattr(testapp, "record", record_then_pause)
    assert run(instance)["status"] == "paused"
    assert (count(instance.id, "step-0"), count(instance.id, "step-1")) == (1, 0)
    assert [(s.name, s.status) for s in steps_of(instance)] == [("add 0", "succeeded")]
    monkeypatch.setattr(testapp, "record", real_record)
    instance.resume()
    assert run(instance)["output"] == 3
    assert [count(instance.id, f"step-{i}") for i in range(3)] == [1, 1, 1]


def test_a_pause_asked_before_the_first_step_stops_the_claim_before_any_step():
    instance = start("t-counter", {"steps": 3})
    claim = leases.claim(row(instance).pk, clock.now())
    instance.pause()
    assert instance.status()["status"] == "waitingForPause"
    # The worker that holds the claim now reaches a step boundary.
    from workflows.engine.bridge import DatabaseBridge
    from workflows.engine.replay import InstanceRun

    bridge = DatabaseBridge()
    assert bridge.serve(InstanceRun(claim, bridge).main) == "paused"
    assert instance.status()["status"] == "paused"
    assert count(instance.id, "step-0") == 0
    instance.resume()
    assert run(instance)["output"] == 3


def test_resume_cancels_a_pending_pause_and_is_a_no_op_otherwise():
    instance = start("t-counter")
    instance.resume()
    assert instance.status()["status"] == "queued"
    leases.claim(row(instance).pk, clock.now())
    instance.pause()
    instance.resume()
    assert instance.status()["status"] == "running"


def test_terminate_stops_the_instance_and_a_finished_one_cannot_be_terminated():
    instance = start("t-memo")
    run(instance)
    instance.terminate()
    assert instance.status()["status"] == "terminated"
    later(seconds=5)
    assert instance.status()["status"] == "terminated"
    with pytest.raises(InvalidState, match="cannot_terminate"):
        instance.terminate()


def test_a_terminated_worker_cannot_write_another_step():
    instance = start("t-counter", {"steps": 2})
    claim = leases.claim(row(instance).pk, clock.now())
    instance.terminate()
    with pytest.raises(leases.LeaseLost):
        records.begin_attempt(claim.lease, ("do", "add 0", 1), None, 1, {}, clock.now())
    assert not steps_of(instance)


def test_restart_from_scratch_runs_every_step_again_and_drops_buffered_events():
    instance = start("t-memo")
    run(instance)
    instance.send_event("go", "buffered while asleep")
    assert Event.objects.filter(instance=row(instance)).count() == 1
    later(seconds=1)
    instance.restart()
    assert not Event.objects.filter(instance=row(instance)).exists()
    assert instance.status()["status"] == "queued"
    run(instance)
    later(seconds=1)
    assert instance.status()["output"] == [{"x": 1}, None]
    assert count(instance.id, "a") == 2


def test_restart_from_a_step_keeps_earlier_results():
    instance = start("t-counter", {"steps": 3})
    assert run(instance)["output"] == 3
    instance.restart(from_step="add 1")
    assert run(instance)["output"] == 3
    assert [count(instance.id, f"step-{i}") for i in range(3)] == [1, 2, 2]
    with pytest.raises(InvalidState, match='Step "nope"'):
        instance.restart(from_step=("nope", 1))


def test_a_dead_workers_attempt_is_recorded_failed_and_retried_by_the_next_claim(settings):
    instance = start("t-counter", {"steps": 1})
    claim = leases.claim(row(instance).pk, clock.now())
    records.begin_attempt(
        claim.lease,
        ("do", "add 0", 1),
        None,
        1,
        {"retries": {"limit": 5, "delay": 10, "backoff": "exponential"}, "timeout": 600},
        clock.now(),
    )
    # The worker dies here; its lease runs out.
    later(seconds=settings.WORKFLOWS.get("LEASE_SECONDS", 20) + 1)
    assert instance.status()["output"] == 0
    step = steps_of(instance)[0]
    assert step.attempts == 2
    first, second = attempts_of(instance, "add 0")
    assert first.error["name"] == "WorkflowInternalError" and second.success
    assert Instance.objects.get(pk=row(instance).pk).worker_crashes == 0


def test_a_crash_loop_errors_the_instance_after_the_configured_number_of_takeovers(settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "MAX_WORKER_CRASHES": 2}
    instance = start("t-counter", {"steps": 1})
    for _ in range(3):
        claim = leases.claim(row(instance).pk, clock.now())
        records.begin_attempt(
            claim.lease,
            ("do", "add 0", 1),
            steps_and_row(instance),
            1,
            {"retries": {"limit": 9, "delay": 0, "backoff": "constant"}, "timeout": 600},
            clock.now(),
        )
        clock.advance(timedelta(seconds=60))
    assert tasks.advance(row(instance).pk, renew_leases=False) == "errored"
    error = instance.status()["error"]
    assert error["name"] == "WorkflowInternalError" and "died 3 times in a row (in step 'add 0')" in error["message"]


def steps_and_row(instance):
    step = next(iter(steps_of(instance)), None)
    if step is None:
        return None
    return StepRow(step.id, step.kind, step.name, step.occurrence, step.seq, step.status, attempts=step.attempts)


# --------------------------------------------------------------------------- history is kept


def test_retrying_from_the_failed_step_keeps_its_failed_attempts_as_an_earlier_run():
    from tests.testapp.ledger import ledger_dir

    instance = start("t-fixable", id="fix-history")
    assert run(instance)["status"] == "errored"
    open(f"{ledger_dir()}/fix-history.fixed", "w").close()
    instance.restart(from_step=instance.failed_step())
    assert run(instance)["output"] == ["prepared", "done"]
    story = instance.describe()
    assert story["run"] == 2
    call = next(s for s in story["steps"] if s["name"] == "call")
    assert (call["status"], call["run"], [a["success"] for a in call["attempts"]]) == ("succeeded", 2, [True])
    (earlier,) = call["earlier_runs"]
    assert (earlier["run"], earlier["status"]) == (1, "failed")
    assert [a["error"]["name"] for a in earlier["attempts"]] == ["ConnectionError", "ConnectionError"]
    assert all("the service is down" in a["traceback"] for a in earlier["attempts"])
    prepare = next(s for s in story["steps"] if s["name"] == "prepare")
    assert (prepare["run"], prepare["earlier_runs"]) == (2, []), "a kept step moves to the new run"
    assert count(instance.id, "prepare") == 1


def test_restarting_from_scratch_keeps_the_whole_earlier_run_as_history():
    instance = start("t-memo")
    run(instance)
    later(seconds=1)
    instance.restart()
    story = instance.describe()
    assert story["run"] == 2 and story["steps"] == []
    assert [(s["name"], s["run"], s["status"]) for s in story["earlier_steps"]] == [
        ("a", 1, "succeeded"), ("n", 1, "succeeded"), ("nap", 1, "succeeded"),
    ]  # fmt: skip
    run(instance)
    later(seconds=1)
    assert instance.status()["status"] == "complete"
    assert [len(s["earlier_runs"]) for s in instance.describe()["steps"]] == [1, 1, 1]


def test_a_terminated_instance_leaves_no_step_waiting_or_retrying():
    waiter, flaky = start("t-waiter"), start("t-flaky", {"fail": 5, "retries": {"limit": 5, "delay": 60}})
    run()
    assert [s.status for s in steps_of(waiter)] == ["waiting"] and [s.status for s in steps_of(flaky)] == ["retrying"]
    waiter.terminate()
    flaky.terminate()
    assert [s.status for s in steps_of(waiter)] == ["cancelled"] and [s.status for s in steps_of(flaky)] == [
        "cancelled"
    ]
    assert all(s.ended_at is not None for s in steps_of(waiter) + steps_of(flaky))
    later(hours=2)
    assert (waiter.status()["status"], flaky.status()["status"]) == ("terminated", "terminated")


def test_restarting_a_terminated_instance_from_an_earlier_step_reruns_what_was_cancelled():
    instance = start("t-waiter", {"waits": 2})
    run(instance)
    instance.send_event("go", 1)
    run(instance)
    instance.terminate()
    instance.restart(from_step="wait 1")
    assert [s["status"] for s in instance.describe()["steps"]] == ["succeeded"]
    assert run(instance)["status"] == "waiting"
    instance.send_event("go", 2)
    assert run(instance)["output"] == [1, 2]
