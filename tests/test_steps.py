"""step.do: memoised by (name, occurrence), retried under its config, failures cached."""

import pytest

from tests.helpers import attempts_of, later, row, run, start, steps_of
from tests.testapp.ledger import count, read
from workflows import tasks
from workflows.states import Status

pytestmark = pytest.mark.usefixtures("engine")


def test_finished_steps_are_not_run_again_when_run_replays_after_a_sleep():
    instance = start("t-memo")
    assert run(instance)["status"] == "waiting"
    later(seconds=1)
    assert instance.status() == {"status": "complete", "output": [{"x": 1}, None], "error": None}
    assert (count(instance.id, "a"), count(instance.id, "n"), count(instance.id, "replay")) == (1, 1, 2)


def test_a_def_run_works_like_an_async_one_and_callbacks_get_a_context():
    instance = start("t-sync-memo")
    run(instance)
    later(seconds=1)
    assert instance.status()["output"] == [{"x": 1}, ["b", 1, 1]]
    assert count(instance.id, "a") == 1


def test_limit_counts_retries_and_exponential_backoff_parks_the_instance_between_attempts():
    instance = start("t-flaky", {"fail": 3, "retries": {"limit": 3, "delay": 10}})
    assert run(instance)["status"] == "waiting"
    waits = []
    for expected in (10, 20, 40):
        step = steps_of(instance)[0]
        waits.append(round((step.wake_at - attempts_of(instance, "call")[-1].ended_at).total_seconds()))
        later(seconds=expected - 1)
        assert count(instance.id, "attempt") == len(waits), "a retry must not run before its delay"
        later(seconds=1)
    assert waits == [10, 20, 40]
    assert instance.status()["output"] == 4
    assert [a.success for a in attempts_of(instance, "call")] == [False, False, False, True]
    assert attempts_of(instance, "call")[0].error == {"name": "ConnectionError", "message": "attempt 1 failed"}
    assert "ConnectionError: attempt 1 failed" in attempts_of(instance, "call")[0].traceback


@pytest.mark.parametrize("backoff,waits", [("constant", [5, 5]), ("linear", [5, 10])])
def test_constant_and_linear_backoff(backoff, waits):
    instance = start("t-flaky", {"fail": 2, "retries": {"limit": 2, "delay": "5s", "backoff": backoff}})
    run(instance)
    for wait in waits:
        assert attempts_of(instance, "call")[-1].retry_delay == wait
        later(seconds=wait)
    assert instance.status()["output"] == 3


def test_exhausted_retries_error_the_instance_with_the_original_class_name():
    instance = start("t-flaky", {"fail": 9, "retries": {"limit": 1, "delay": 0}})
    assert run(instance) == {
        "status": "errored",
        "output": None,
        "error": {"name": "ConnectionError", "message": "attempt 2 failed"},
    }
    assert count(instance.id, "attempt") == 2


def test_a_final_failure_is_cached_and_replays_take_the_same_except_branch():
    instance = start("t-catch")
    run(instance)
    later(seconds=1)
    expected = [["KeyError", "'missing'"], ["NonRetryableError", "card declined"]]
    assert instance.status()["output"] == expected
    assert count(instance.id, "bad") == 3, "limit 2 means three attempts, then the failure is cached"
    assert count(instance.id, "fatal") == 1, "a NonRetryableError is not retried, nor re-run on replay"


def test_an_uncaught_non_retryable_error_errors_the_instance_with_its_message():
    instance = start("t-uncaught")
    assert run(instance)["error"] == {"name": "NonRetryableError", "message": "no retry for you"}
    assert len(attempts_of(instance, "fatal")) == 1


def test_an_attempt_that_runs_past_its_timeout_fails_with_workflow_timeout_error():
    instance = start("t-timeout")
    output = run(instance)["output"]
    assert output.startswith("Execution timed out after 200ms")
    assert [a.error["name"] for a in attempts_of(instance, "slow")] == ["WorkflowTimeoutError"] * 2


def test_a_plain_function_past_its_timeout_has_its_result_discarded_even_when_waited_for():
    instance = start("t-timeout-plain")
    assert run(instance)["output"].startswith('Execution timed out after 200ms (step "slow" attempt 1)')


def test_a_non_serialisable_result_errors_the_instance_at_once_even_if_caught():
    for kind in ("set", "caught-set"):
        instance = start("t-bad", {"kind": kind})
        status = run(instance)
        assert status["status"] == "errored"
        assert status["error"]["name"] == "WorkflowFatalError"
        assert 'step "set" returned a value which is not serialisable' in status["error"]["message"]
        assert len(attempts_of(instance, "set")) == 1


def test_an_oversized_result_is_a_retryable_attempt_failure():
    instance = start("t-bad", {"kind": "huge"})
    status = run(instance)
    assert status["error"]["name"] == "WorkflowInternalError"
    assert "output is too large" in status["error"]["message"]
    assert len(attempts_of(instance, "huge")) == 2


def test_an_oversized_run_output_errors_the_instance():
    status = run(start("t-bad", {"kind": "huge-output"}))
    assert status["error"]["name"] == "ValueTooLarge"


@pytest.mark.parametrize(
    "kind,name,fragment",
    [
        ("config", "WorkflowFatalError", "unknown retries key(s) ['jitter']"),
        ("name", "WorkflowFatalError", "256 characters"),
        ("event-type", "InvalidEventType", "invalid event type 'a.b'"),
    ],
)
def test_misusing_the_step_api_errors_the_instance_naming_the_problem(kind, name, fragment):
    status = run(start("t-bad", {"kind": kind}))
    assert status["status"] == "errored"
    assert status["error"]["name"] == name
    assert fragment in status["error"]["message"]


def test_the_step_limit_counts_step_do_calls(settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "STEP_LIMIT": 3}
    status = run(start("t-bad", {"kind": "limit"}))
    assert status["error"] == {
        "name": "WorkflowFatalError",
        "message": "The limit of 3 steps has been reached. This limit can be changed with WORKFLOWS['STEP_LIMIT'].",
    }


def test_gathered_steps_run_concurrently_in_a_worker_and_keep_their_order():
    instance = start("t-parallel", {"n": 4, "seconds": 0.5})
    assert tasks.advance(row(instance).pk, renew_leases=False) == "complete"
    assert instance.status()["output"] == [0, 1, 4, 9]
    events = [e["ev"] for e in read(instance.id) if e["ev"] in ("start", "end")]
    assert events[:4] == ["start"] * 4, f"every branch should start before any finishes: {events}"


def test_parallel_sleeps_wake_each_branch_at_its_own_time():
    instance = start("t-parallel-sleeps")
    run(instance)
    assert row(instance).status == Status.WAITING
    later(seconds=60)
    assert [s.name for s in steps_of(instance) if s.status == "succeeded"] == ["sleep 1", "after 1"]
    later(seconds=3600)
    assert instance.status()["output"] == [1, 2]


def test_a_claim_reads_retrying_and_failed_steps_with_their_config_errors_and_times():
    from datetime import timedelta

    from workflows import clock
    from workflows.engine.leases import claim
    from workflows.engine.rows import load_steps

    instance = start("t-flaky", {"fail": 9, "retries": {"limit": 1, "delay": 10}})
    run(instance)
    clock.advance(timedelta(seconds=10))
    claimed = claim(row(instance).pk, clock.now())
    assert claimed.steps == load_steps(row(instance).pk, claimed.lease.run_number)[0]
    (step,) = claimed.steps.values()
    assert step.config and step.wake_at and step.status == "retrying"
