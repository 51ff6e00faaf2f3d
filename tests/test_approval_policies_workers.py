"""Reminders, escalation and the deadline's default with real worker processes: each slot is
sent once with two workers and across a SIGKILL, nothing is sent after a decision, and the
deadline decides by itself. Notices go to a local webhook receiver in this process.

Timing is bounded generously (the machine is shared): a reminder must never come early,
and must come within a few seconds of its slot.
"""

import json
import time

import pytest
from django.contrib.auth.models import User

from tests.test_approval_policies import FlakyReceiver
from workflows import approvals, get_workflow
from workflows.models import ApprovalRequest, Notification
from workflows.testing import WorkerRunner

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver(monkeypatch, settings):
    found = FlakyReceiver(failures=0)
    webhook = {
        "WORKFLOWS_APPROVAL_NOTIFIERS": "workflows.notifiers.WebhookNotifier",
        "WORKFLOWS_APPROVAL_WEBHOOK_URL": found.url, "WORKFLOWS_APPROVAL_WEBHOOK_SECRET": "s3cret",
    }  # fmt: skip
    for name, value in webhook.items():
        monkeypatch.setenv(name, value)  # the worker processes read these
    settings.WORKFLOWS = {
        **settings.WORKFLOWS, "ENQUEUE": True, "APPROVAL_NOTIFIERS": ["workflows.notifiers.WebhookNotifier"],
        "APPROVAL_WEBHOOK_URL": found.url, "APPROVAL_WEBHOOK_SECRET": "s3cret",
    }  # fmt: skip
    yield found
    found.close()


@pytest.fixture
def runner(tmp_path, receiver):
    runner = WorkerRunner(tmp_path)
    yield runner
    runner.stop()


def notices(receiver):
    """(type, slot, recipient, arrival time) of every webhook post received."""
    found = []
    for _, body in list(receiver.received):
        payload = json.loads(body)
        found.append((payload["type"], payload["slot"], payload["recipient"]["username"], payload["id"]))
    return found


def arrivals(receiver, kind):
    return [n for n in notices(receiver) if n[0] == kind]


def test_reminders_fire_once_per_slot_with_two_workers_and_across_a_kill_and_stop_at_the_decision(
    runner, receiver, uid
):
    ada = User.objects.create_user("ada")
    first = runner.start()
    runner.start()  # two workers' dispatchers compete for every slot
    instance = get_workflow("t-approval").create(
        id=uid(), params={"approvers": ["user:ada"], "timeout": "60s", "remind_every": "2s"}
    )
    runner.wait(lambda: len(arrivals(receiver, "approval.reminder")) >= 2, "two reminders", 60)
    runner.kill(first)  # SIGKILL one whole worker tree mid-way
    runner.start()
    runner.wait(lambda: len(arrivals(receiver, "approval.reminder")) >= 5, "five reminders", 60)
    request = ApprovalRequest.objects.get(instance_key=instance.id)
    approvals.decide(request.pk, user=ada, approved=True)
    runner.wait(lambda: instance.status()["status"] == "complete", "the decision to complete the instance", 30)
    sent_at_decision = len(arrivals(receiver, "approval.reminder"))
    time.sleep(5)  # two more slots' worth of time
    reminders = arrivals(receiver, "approval.reminder")
    assert len(reminders) == sent_at_decision, "a reminder went out after the decision"
    slots = [slot for _, slot, _, _ in reminders]
    assert slots == list(range(1, len(slots) + 1)), f"each slot once, in order: {slots}"
    assert len({n[3] for n in notices(receiver)}) == len(notices(receiver)), "a notification was sent twice"
    rows = Notification.objects.filter(request=request, kind="reminder")
    assert sorted(rows.values_list("slot", flat=True)) == slots
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert len(arrivals(receiver, "approval.opened")) == 1
    opened = request.created_at.timestamp()
    for (kind, slot, _, _), at in zip(notices(receiver), receiver.arrived, strict=True):
        if kind == "approval.reminder":
            due = opened + 2 * slot
            assert due - 0.05 <= at < due + 10, f"reminder {slot} came {at - due:+.2f}s from its slot"


def test_escalation_and_the_default_at_the_deadline_with_real_workers(runner, receiver, uid):
    User.objects.create_user("ada")
    User.objects.create_user("carol")
    runner.start()
    instance = get_workflow("t-approval").create(
        id=uid(),
        params={
            "approvers": ["user:ada"], "timeout": "8s", "escalate_after": "3s", "escalate_to": ["user:carol"],
            "on_timeout": "reject",
        },
    )  # fmt: skip
    runner.wait(lambda: instance.status()["status"] == "complete", "the deadline to reject the request", 60)
    output = instance.status()["output"]
    assert (output["approved"], output["by"]) == (False, "timeout")
    escalations = arrivals(receiver, "approval.escalation")
    assert [(slot, who) for _, slot, who, _ in escalations] == [(0, "carol")]
    request = approvals.get(ApprovalRequest.objects.get(instance_key=instance.id).pk)
    assert (request.status, request.closed_by) == ("rejected", "timeout")
    assert request.approvers == ["user:ada"] and request.policy.escalated_at is not None
