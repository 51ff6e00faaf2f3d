"""workflows.testing: the seed's introspection API, with in-process runs and time skipping."""

import time

import pytest

from tests.testapp.ledger import count
from workflows import WorkflowTimeoutError, get_workflow
from workflows.models import Attempt, Instance, TestOverride
from workflows.testing import InProcessRunner, IntrospectionError, introspect_workflow, introspect_workflow_instance

# Without time skipping, a sleep or a delay that a modification failed to remove leaves the
# instance stuck ("nothing left to run"), so each modification below is really needed.
NO_SKIPPING = InProcessRunner(time_skipping=False)
ERRORED = "reached status 'errored'"


def test_the_readme_example_mocks_a_step_skips_a_week_and_delivers_an_approval(workflow_runner):
    started = time.perf_counter()
    trial = get_workflow("t-trial")
    with introspect_workflow_instance(trial, "user-1") as instance:
        instance.modify(
            lambda m: (
                m.disable_sleeps(),
                m.mock_step_result({"name": "check conversion"}, False),
                m.mock_event({"type": "approval", "payload": {"approved": True}}),
            )
        )
        trial.create(id="user-1", params={"email": "ada@example.com"})
        assert instance.wait_for_step_result("check conversion") is False
        assert instance.wait_for_status("complete") == "complete"
        assert instance.get_output() == "extended"
    assert count("user-1", "check") == 0, "a mocked step's callback is not run"
    assert time.perf_counter() - started < 5  # generous: this is a smoke bound, not a benchmark


def test_without_disable_sleeps_waiting_skips_time_to_the_next_timer(workflow_runner):
    trial = get_workflow("t-trial")
    with introspect_workflow_instance(trial, "user-2") as instance:
        instance.modify(lambda m: m.mock_event({"type": "approval", "payload": {"approved": False}}))
        trial.create(id="user-2", params={"email": "b@example.com"})
        assert instance.wait_for_status("complete")
        assert instance.get_output() == "expired"
        assert count("user-2", "check") == 1


def test_a_wait_with_no_event_times_out_by_skipping_to_its_deadline(workflow_runner):
    trial = get_workflow("t-trial")
    with introspect_workflow_instance(trial, "user-3") as instance:
        trial.create(id="user-3", params={"email": "c@example.com"})
        with pytest.raises(
            IntrospectionError,
            match="has reached status 'errored'. This is a finite status that prevents it from ever reaching "
            "the expected status of 'complete'.",
        ):
            instance.wait_for_status("complete")
        assert instance.get_error()["name"] == "WorkflowTimeoutError"


def test_mock_step_error_with_times_then_the_real_callback_and_disabled_retry_delays(workflow_runner):
    trial = get_workflow("t-trial")
    with introspect_workflow_instance(trial, "user-4", runner=NO_SKIPPING) as instance:
        instance.modify(
            lambda m: (
                m.disable_sleeps(),
                m.disable_retry_delays(),
                m.mock_step_error({"name": "check conversion"}, ConnectionError("db down"), times=2),
                m.force_event_timeout({"name": "manager approval"}),
            )
        )
        trial.create(id="user-4", params={"email": "d@example.com"})
        with pytest.raises(IntrospectionError, match=ERRORED):
            instance.wait_for_status("complete")
        assert instance.get_error()["name"] == "WorkflowTimeoutError"
        check = next(s for s in instance._handle().describe()["steps"] if s["name"] == "check conversion")
        assert [a["success"] for a in check["attempts"]] == [False, False, True], "two mocked errors, then real"
        assert [a["retry_delay"] for a in check["attempts"][:2]] == [0, 0], "retry delays disabled"
        assert count("user-4", "check") == 1, "the real callback ran once, after the mocked errors"
    attempts = Attempt.objects.filter(step__name="check conversion")
    assert not attempts.exists(), "dispose deleted the instance and its state"


def test_a_step_that_fails_for_good_raises_its_error_from_wait_for_step_result(workflow_runner):
    trial = get_workflow("t-trial")
    with introspect_workflow_instance(trial, "user-5") as instance:
        instance.modify(
            lambda m: (
                m.disable_sleeps(),
                m.disable_retry_delays(),
                m.mock_step_error({"name": "check conversion"}, ConnectionError("db down")),
            )
        )
        trial.create(id="user-5", params={"email": "e@example.com"})
        with pytest.raises(ConnectionError, match="db down"):
            instance.wait_for_step_result("check conversion")
        assert Attempt.objects.filter(step__name="check conversion").count() == 4


def test_force_step_timeout_fails_attempts_with_workflow_timeout_error(workflow_runner):
    with introspect_workflow_instance("t-flaky", "flaky-1") as instance:
        instance.modify(lambda m: (m.force_step_timeout("call", times=1), m.disable_retry_delays()))
        get_workflow("t-flaky").create(id="flaky-1", params={"fail": 0})
        assert instance.wait_for_status("complete")
        assert instance.get_output() == 2
        first = Attempt.objects.filter(step__name="call").order_by("number").first()
        assert first.error["name"] == "WorkflowTimeoutError"


def test_introspect_workflow_captures_every_instance_created_while_active(workflow_runner):
    trial = get_workflow("t-trial")
    before = trial.create(id="before-session", params={"email": "x@example.com"})
    with introspect_workflow(trial, runner=NO_SKIPPING) as session:
        session.modify_all(lambda m: (m.disable_sleeps(), m.force_event_timeout({"name": "manager approval"})))
        trial.create_batch([{"id": f"batch-{i}", "params": {"email": f"{i}@example.com"}} for i in range(3)])
        captured = session.get()
        assert [i.instance_id for i in captured] == ["batch-0", "batch-1", "batch-2"]
        for instance in captured:
            with pytest.raises(IntrospectionError, match=ERRORED):
                instance.wait_for_status("complete")
            assert instance.get_error()["name"] == "WorkflowTimeoutError"
        with pytest.raises(IntrospectionError, match='Workflow "t-trial" already has an active introspection session'):
            introspect_workflow(trial)
    assert list(Instance.objects.values_list("instance_id", flat=True)) == [before.id]
    assert not TestOverride.objects.exists()


def test_misuse_gets_the_spec_messages(workflow_runner):
    with introspect_workflow_instance("t-trial", "misuse") as instance:
        instance.modify(lambda m: m.mock_step_result({"name": "check conversion"}, True))
        with pytest.raises(
            IntrospectionError, match=r"\[WorkflowIntrospector\] Trying to mock step 'check conversion' multiple times!"
        ):
            instance.modify(lambda m: m.mock_step_result({"name": "check conversion"}, True))
        with pytest.raises(
            IntrospectionError, match="Trying to mock error on step 'check conversion' after mocking its result!"
        ):
            instance.modify(lambda m: m.mock_step_error({"name": "check conversion"}, ValueError("x")))
        with pytest.raises(
            IntrospectionError, match="Trying to force timeout on step 'check conversion' after mocking its result!"
        ):
            instance.modify(lambda m: m.force_step_timeout({"name": "check conversion"}))
        with pytest.raises(IntrospectionError, match="index is 1-based"):
            instance.modify(lambda m: m.disable_sleeps([{"name": "trial period", "index": 0}]))
        get_workflow("t-trial").create(id="misuse", params={"email": "m@example.com"})
        with pytest.raises(
            IntrospectionError,
            match='Cannot retrieve output: Workflow instance is in status "queued" but must be "complete" '
            "to have an output available",
        ):
            instance.get_output()
        with pytest.raises(
            IntrospectionError,
            match='Cannot retrieve error: Workflow instance is in status "queued" but must be "errored" '
            "to have error information available",
        ):
            instance.get_error()


def test_the_timeout_error_is_catchable_in_run(workflow_runner):
    with introspect_workflow_instance("t-waiter", "w1", runner=NO_SKIPPING) as instance:
        instance.modify(lambda m: m.force_event_timeout({"name": "wait 0"}))
        get_workflow("t-waiter").create(id="w1")
        instance.wait_for_status("complete")
        assert instance.get_output() == [f"timeout: {WorkflowTimeoutError.__name__}"]


def test_wait_for_status_queued_really_waits_and_refuses_a_finished_instance(workflow_runner):
    with introspect_workflow_instance("t-counter", "q1") as instance:
        get_workflow("t-counter").create(id="q1", params={"steps": 1})
        assert instance.status() == "queued"
        assert instance.wait_for_status("queued") == "queued"
        assert instance.wait_for_status("complete") == "complete"
        with pytest.raises(IntrospectionError, match="status 'complete'. This is a finite status"):
            instance.wait_for_status("queued")


def test_in_process_wait_honours_its_timeout(workflow_runner):
    def never():
        time.sleep(0.05)
        return False

    get_workflow("t-waiter").create(id="many-timers", params={"waits": 100})  # 100 one-hour deadlines to skip
    started = time.monotonic()
    with pytest.raises(IntrospectionError, match=r"timed out after 0.2s waiting for nothing"):
        workflow_runner.wait(never, "nothing", timeout=0.2)
    assert time.monotonic() - started < 2


def test_run_until_idle_counts_the_advances_that_claimed_an_instance(workflow_runner):
    get_workflow("t-counter").create(id="idle-1", params={"steps": 2})
    assert workflow_runner.run_until_idle() == 1
    assert workflow_runner.run_until_idle() == 0
    assert get_workflow("t-counter").get("idle-1").status()["output"] == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_until_idle_with_real_workers_waits_for_them(worker_runner):
    handle = get_workflow("t-counter").create(id="idle-real", params={"steps": 3})
    assert worker_runner.run_until_idle(timeout=30) == 0
    assert handle.status()["status"] == "complete"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_same_introspection_works_against_a_real_worker(worker_runner):
    trial = get_workflow("t-trial")
    with introspect_workflow_instance(trial, "real-1", runner=worker_runner) as instance:
        instance.modify(
            lambda m: (
                m.disable_sleeps(),
                m.mock_step_result({"name": "check conversion"}, False),
                m.mock_event({"type": "approval", "payload": {"approved": True}}),
            )
        )
        trial.create(id="real-1", params={"email": "r@example.com"})
        assert instance.wait_for_status("complete", timeout=30)
        assert instance.get_output() == "extended"
