"""Approvals as a first-class part of a workflow: who may decide, how many must agree, what
they fill in, and that every decision is recorded once and delivered once."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User

from tests.helpers import later, run, start, steps_of
from tests.testapp.ledger import count
from workflows import WorkflowFatalError, approvals, clock
from workflows.approvals import DecisionRefused
from workflows.models import ApprovalDecision, ApprovalRequest, Event

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def people(db):
    """ada and bob in finance; carol a director; dave who asks; eve an approver by permission; root a superuser."""
    finance = Group.objects.create(name="finance")
    directors = Group.objects.create(name="directors")
    users = {name: User.objects.create_user(name, password="pw") for name in ("ada", "bob", "carol", "dave", "eve")}
    users["ada"].groups.add(finance)
    users["bob"].groups.add(finance)
    users["carol"].groups.add(directors)
    users["eve"].user_permissions.add(Permission.objects.get(codename="approve_instance"))
    users["root"] = User.objects.create_superuser("root", password="pw")
    return {name: User.objects.get(username=name) for name in users}  # fresh: permission caches empty


def request_of(instance):
    return approvals.get(ApprovalRequest.objects.get(instance_key=instance.id).pk)


def waiting(params=None, id=None):
    instance = start("t-approval", params or {}, id=id)
    assert run(instance)["status"] == "waiting"
    return instance, request_of(instance)


def refused(request, user, reason, **decision):
    with pytest.raises(DecisionRefused) as caught:
        approvals.decide(request.id, user=user, approved=decision.pop("approved", True), **decision)
    assert caught.value.reason == reason, str(caught.value)
    return str(caught.value)


# --------------------------------------------------------------------------- the author's API


def test_a_request_carries_its_title_details_approvers_quorum_and_deadline(people):
    params = {
        "approvers": ["group:finance", "user:carol"], "quorum": 2, "requested_by": "dave",
        "title": "Expense from {requested_by}: {summary}", "summary": "laptop", "timeout": "48h",
        "details": {"Amount": 1900, "Receipt": approvals.Image("receipts/r1.png")},
    }  # fmt: skip
    instance, request = waiting(params)
    assert (request.workflow, request.instance_id, request.step, request.count) == (
        "t-approval",
        instance.id,
        "sign off",
        1,
    )
    assert request.title == "Expense from dave: laptop"
    assert request.details == {"Amount": 1900, "Receipt": approvals.Image("receipts/r1.png")}
    assert (request.approvers, request.quorum, request.requested_by) == (["group:finance", "user:carol"], 2, "dave")
    assert request.deadline == steps_of(instance)[0].wake_at
    assert timedelta(hours=47, minutes=59) < request.deadline - request.created_at <= timedelta(hours=48)
    assert request.is_open and request.decisions == []


@pytest.mark.parametrize(
    "params,message",
    [
        ({"approvers": "group:finance"}, "approvers must be a non-empty list"),
        ({"approvers": ["team:finance"]}, "approver 'team:finance' must be"),
        ({"approvers": ["perm:approve"]}, "a permission is written 'perm:<app_label>.<codename>'"),
        ({"quorum": 0}, "quorum must be a whole number from 1 to 100"),
        ({"requested_by": ""}, "requested_by must be a username"),
        ({"details": ["not", "a", "mapping"]}, "details must be a mapping"),
        ({"title": "{missing}"}, "names a missing param"),
    ],
)
def test_bad_arguments_error_the_instance_with_a_message_naming_the_rule(people, params, message):
    instance = start("t-approval", params)
    status = run(instance)
    assert status["status"] == "errored" and status["error"]["name"] == WorkflowFatalError.__name__
    assert message in status["error"]["message"] and "sign off" in status["error"]["message"]
    assert not ApprovalRequest.objects.exists()


def test_a_plain_wait_for_event_is_not_an_approval_and_send_event_cannot_decide_one(people):
    waiter = start("t-waiter")
    instance, request = waiting()
    run()
    assert [r.instance_id for r in approvals.pending()] == [instance.id], "a plain wait is no approval"
    instance.send_event("approval-response", {"approved": True, "by": "ceo"})
    run()
    assert request_of(instance).is_open and instance.status()["status"] == "waiting"
    assert waiter.status()["status"] == "waiting"


# --------------------------------------------------------------------------- who may decide


def test_anyone_with_the_approve_permission_decides_when_no_approvers_are_named(people):
    _, request = waiting()
    refused(request, people["ada"], "not_approver")
    approvals.decide(request.id, user=people["eve"], approved=True, comment="fine")
    assert request_of(_).status == "approved"


def test_every_refusal_names_its_reason_and_records_nothing(people):
    instance, request = waiting({"approvers": ["group:finance"], "quorum": 2, "requested_by": "ada"})
    assert "not an approver (group:finance)" in refused(request, people["carol"], "not_approver")
    assert "ada's own request" in refused(request, people["ada"], "own_request")
    approvals.decide(request.id, user=people["bob"], approved=True)
    assert "bob has already decided it" in refused(request, people["bob"], "already_decided", approved=False)
    assert ApprovalDecision.objects.count() == 1
    anonymous = refused(request, _anonymous(), "not_approver")
    assert "only an active, logged-in user" in anonymous


def _anonymous():
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


def test_a_closed_request_says_by_whom_and_when(people):
    _, request = waiting({"approvers": ["group:finance"]})
    approvals.decide(request.id, user=people["ada"], approved=False, comment="no budget")
    message = refused(request, people["bob"], "closed")
    assert "already closed: rejected by ada at" in message


def test_a_request_past_its_deadline_is_refused_and_its_step_times_out(people):
    instance, request = waiting({"timeout": "1h"})
    clock.advance(timedelta(hours=2))
    assert "timed out at" in refused(request, people["eve"], "timed_out")
    run()
    assert instance.status()["output"]["timed_out"].startswith(
        "Execution timed out after 3600000ms waiting for approval"
    )
    assert request_of(instance).status == "timed_out"
    assert refused(request, people["eve"], "timed_out")


def test_a_terminated_instance_cancels_its_request(people):
    instance, request = waiting()
    instance.terminate()
    assert request_of(instance).status == "cancelled"
    assert "no longer waiting" in refused(request, people["eve"], "not_waiting")
    assert approvals.pending(people["eve"]) == []


def test_group_changes_apply_at_once(people):
    _, request = waiting({"approvers": ["group:finance"]})
    carol = people["carol"]
    refused(request, carol, "not_approver")
    carol.groups.add(Group.objects.get(name="finance"))
    carol = User.objects.get(pk=carol.pk)
    approvals.decide(request.id, user=carol, approved=True)
    assert request_of(_).closed_by == "carol"


def test_a_superuser_may_decide_anything_and_the_record_says_so_but_never_their_own(people):
    _, request = waiting({"approvers": ["user:ada"]})
    approvals.decide(request.id, user=people["root"], approved=True)
    (decision,) = request_of(_).decisions
    assert decision.by == "root" and decision.as_superuser is True
    _, own = waiting({"approvers": ["user:ada"], "requested_by": "root"})
    refused(own, people["root"], "own_request")


# --------------------------------------------------------------------------- quorum and veto


def test_a_quorum_closes_on_its_last_approval_and_delivers_every_decision_once(people):
    instance, request = waiting({"approvers": ["group:finance", "user:carol"], "quorum": 2})
    after_one = approvals.decide(request.id, user=people["ada"], approved=True, comment="ok")
    assert after_one.is_open and after_one.approvals == 1
    run()
    assert instance.status()["status"] == "waiting", "one approval of two does not wake the step"
    approvals.decide(request.id, user=people["carol"], approved=True, comment="fine by me")
    run()
    payload = instance.status()["output"]
    assert (payload["approved"], payload["by"], payload["comment"], payload["data"]) == (
        True,
        "carol",
        "fine by me",
        {},
    )
    assert [(d["by"], d["approved"], d["comment"]) for d in payload["decisions"]] == [
        ("ada", True, "ok"), ("carol", True, "fine by me"),
    ]  # fmt: skip
    assert count(instance.id, "act") == 1 and not Event.objects.exists()
    refused(request, people["bob"], "closed")


def test_one_rejection_closes_a_request_whatever_the_quorum(people):
    instance, request = waiting({"approvers": ["group:finance"], "quorum": 2})
    approvals.decide(request.id, user=people["ada"], approved=True)
    approvals.decide(request.id, user=people["bob"], approved=False, comment="over budget")
    run()
    payload = instance.status()["output"]
    assert (payload["approved"], payload["by"], payload["comment"]) == (False, "bob", "over budget")
    assert len(payload["decisions"]) == 2


def test_two_approvals_in_a_row_each_get_their_own_decision(people):
    instance = start("t-two-approvals", {"n": 2})
    run(instance)
    (first,) = approvals.pending(people["eve"])
    assert first.title == "first of 2"
    approvals.decide(first.id, user=people["eve"], approved=True)
    run(instance)
    (second,) = approvals.pending(people["eve"])
    assert second.title == "second of 2" and second.id != first.id
    approvals.decide(second.id, user=people["eve"], approved=False)
    assert run(instance)["output"] == [True, False]


# --------------------------------------------------------------------------- forms


def test_an_approval_must_fill_the_form_and_its_data_round_trips_through_the_codec(people):
    instance, request = waiting({"form": "spend"})
    refusal = refused(request, people["eve"], "invalid_data", data={"approved_amount": "-5"})
    with pytest.raises(DecisionRefused) as caught:
        approvals.decide(request.id, user=people["eve"], approved=True, data={"approved_amount": "x"})
    assert set(caught.value.errors) == {"approved_amount", "cost_centre"} and "the form is not valid" in refusal
    assert not ApprovalDecision.objects.exists()
    approvals.decide(
        request.id, user=people["eve"], approved=True,
        data={"approved_amount": "1250.50", "cost_centre": "ops", "review_on": "2027-01-15"},
    )  # fmt: skip
    run()
    data = instance.status()["output"]["data"]
    assert data == {"approved_amount": Decimal("1250.50"), "cost_centre": "ops", "review_on": date(2027, 1, 15)}
    assert type(data["approved_amount"]) is Decimal and type(data["review_on"]) is date


def test_a_rejection_skips_the_form_unless_the_form_asks_for_it(people):
    _, lenient = waiting({"form": "spend"})
    approvals.decide(lenient.id, user=people["eve"], approved=False, comment="no")
    assert request_of(_).status == "rejected"
    _, strict = waiting({"form": "strict"})
    with pytest.raises(DecisionRefused) as caught:
        approvals.decide(strict.id, user=people["eve"], approved=False)
    assert caught.value.reason == "invalid_data" and set(caught.value.errors) == {"reason"}
    approvals.decide(strict.id, user=people["eve"], approved=False, data={"reason": "duplicate"})


def test_data_without_a_form_is_refused(people):
    _, request = waiting()
    refused(request, people["eve"], "invalid_data", data={"anything": 1})


# --------------------------------------------------------------------------- lists


def test_pending_shows_each_person_their_own_work_soonest_deadline_first(people):
    later_one, _ = waiting({"approvers": ["group:finance"], "timeout": "2h"}, id="later")
    sooner, _ = waiting({"approvers": ["group:finance"], "timeout": "1h", "requested_by": "bob"}, id="sooner")
    waiting({"approvers": ["group:directors"]}, id="directors")
    assert [r.instance_id for r in approvals.pending(people["ada"])] == ["sooner", "later"]
    assert [r.instance_id for r in approvals.pending(people["bob"])] == ["later"], "never their own request"
    assert [r.instance_id for r in approvals.pending(people["carol"])] == ["directors"]
    assert approvals.count_pending(people["ada"]) == 2 and approvals.count_pending(people["dave"]) == 0
    assert len(approvals.pending(people["root"])) == 3 and len(approvals.pending()) == 3
    approvals.decide(request_of(sooner).id, user=people["ada"], approved=True)
    assert [r.instance_id for r in approvals.pending(people["ada"])] == ["later"]
    assert all(r.can_decide(people["ada"]) for r in approvals.pending(people["ada"]))


def test_decided_lists_history_filtered_by_decider_workflow_outcome_and_date(people):
    first, one = waiting({"approvers": ["group:finance"]})
    second, two = waiting({"approvers": ["group:finance"]})
    approvals.decide(one.id, user=people["ada"], approved=True)
    approvals.decide(two.id, user=people["bob"], approved=False)
    assert [r.id for r in approvals.decided(decider=people["ada"])] == [one.id]
    assert [r.id for r in approvals.decided(outcome="rejected")] == [two.id]
    assert {r.id for r in approvals.decided(workflow="t-approval")} == {one.id, two.id}
    assert approvals.decided(since=clock.now() + timedelta(seconds=1)) == []


def test_pausing_moves_the_deadline_by_the_paused_time(people):
    instance, request = waiting({"timeout": "1h"})
    instance.pause()
    later(hours=3)
    instance.resume()
    run()
    assert request_of(instance).deadline - request.deadline >= timedelta(hours=3)
    approvals.decide(request.id, user=people["eve"], approved=True)
    assert run(instance)["output"]["approved"] is True


def test_restart_cancels_the_open_request_and_the_new_run_opens_another(people):
    instance, request = waiting()
    instance.restart()
    assert approvals.get(request.id).status == "cancelled"
    run(instance)
    (again,) = approvals.pending(people["eve"])
    assert again.id != request.id and again.instance_id == instance.id


# --------------------------------------------------------------------------- many deciders at once

DECIDER = """
import os, sys, time, django
django.setup()
from django.contrib.auth.models import User
from workflows import approvals
request_id, username, start_at = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
user = User.objects.get(username=username)
time.sleep(max(0.0, start_at - time.time()))
try:
    approvals.decide(request_id, user=user, approved=True, channel="cli")
    print("recorded")
except approvals.DecisionRefused as exc:
    print(exc.reason)
"""


def decide_from_processes(request_id, usernames):
    """Each username decides from its own process, all at the same instant; returns what each was told."""
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings

    from workflows.testing import database_url

    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    start_at = time.time() + 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDER, str(request_id), name, str(start_at)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in usernames
    ]
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answers.append(out.strip())
    return answers


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_concurrent_deciders_in_separate_processes_close_a_request_once_and_lose_no_decision(people):
    finance = Group.objects.get(name="finance")
    for n in range(4):
        User.objects.create_user(f"clerk{n}").groups.add(finance)
    instance, request = waiting({"approvers": ["group:finance"], "quorum": 3})
    deciders = ["ada", "bob", "clerk0", "clerk1", "clerk2", "clerk3"]
    answers = decide_from_processes(request.id, deciders)
    assert sorted(answers) == ["closed"] * 3 + ["recorded"] * 3, answers
    closed = request_of(instance)
    assert closed.status == "approved" and closed.approvals == 3 and len(closed.decisions) == 3
    run()
    output = instance.status()["output"]
    assert len(output["decisions"]) == 3 and count(instance.id, "act") == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_one_person_deciding_from_several_processes_at_once_is_recorded_once(people):
    instance, request = waiting({"approvers": ["group:finance"], "quorum": 2})
    answers = decide_from_processes(request.id, ["ada"] * 4)
    assert sorted(answers) == ["already_decided"] * 3 + ["recorded"], answers
    assert ApprovalDecision.objects.filter(request_id=request.id).count() == 1
    assert request_of(instance).is_open
